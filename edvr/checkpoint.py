"""Find a checkpoint and restore the EDVR variables from it, checking it fits the config."""
import glob
import os

import tensorflow as tf


class CheckpointError(ValueError):
    """No checkpoint where one was expected, or one that does not fit the model."""


def resolve_checkpoint(path):
    """A checkpoint prefix from a prefix or a directory (its latest checkpoint)."""
    path = str(path)
    if os.path.isdir(path):
        latest = tf.compat.v1.train.latest_checkpoint(path)
        if latest is None:  # no `checkpoint` state file: take the newest *.index
            indexes = sorted(glob.glob(os.path.join(path, '*.index')), key=os.path.getmtime)
            latest = indexes[-1][:-len('.index')] if indexes else None
        if latest is None:
            raise CheckpointError(f'--checkpoint {path}: directory holds no checkpoint '
                                  f'(expected a `checkpoint` file or PREFIX.index files)')
        return latest
    if not os.path.isfile(path + '.index'):
        raise CheckpointError(f'--checkpoint {path}: no such checkpoint (expected {path}.index '
                              f'or a directory of checkpoints)')
    return path


def check_compatible(checkpoint, variables):
    """Raise CheckpointError unless ``checkpoint`` holds every variable with the same shape.

    Variables the model does not have are reported too, except optimizer slots
    (``<variable>/<slot>``) and anything outside the model's top scope (``global_step``).
    """
    stored = dict(tf.compat.v1.train.list_variables(checkpoint))
    wanted = {v.op.name: v.shape.as_list() for v in variables}
    scopes = {name.split('/')[0] for name in wanted}
    missing = sorted(set(wanted) - set(stored))
    mismatched = [f'{name}: checkpoint {stored[name]}, model {shape}'
                  for name, shape in sorted(wanted.items())
                  if name in stored and list(stored[name]) != list(shape)]
    unexpected = sorted(name for name in stored
                        if name.split('/')[0] in scopes and name not in wanted
                        and not any(name.startswith(w + '/') for w in wanted))
    if missing or mismatched or unexpected:
        parts = []
        if missing:
            parts.append(f'{len(missing)} variables missing (e.g. {", ".join(missing[:3])})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected (e.g. {", ".join(unexpected[:3])})')
        if mismatched:
            parts.append(f'{len(mismatched)} with other shapes (e.g. {"; ".join(mismatched[:3])})')
        raise CheckpointError(f'checkpoint {checkpoint} does not fit the config: '
                              f'{", ".join(parts)}. Was it written for another config?')


def restore(sess, checkpoint, variables):
    """Check ``checkpoint`` against ``variables`` and restore them into ``sess``."""
    check_compatible(checkpoint, variables)
    tf.compat.v1.train.Saver(variables).restore(sess, checkpoint)
