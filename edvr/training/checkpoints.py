"""Checkpoints of a training run: atomic saves, pruning to ``max_to_keep``, the latest one.

A save writes ``DIR/model.ckpt-STEP.{index,data-*}`` (TensorFlow's V2 writer assembles them
in temporary files and renames), and only then rewrites the ``DIR/checkpoint`` state file,
itself atomically; so a run killed mid-save still points at the previous complete checkpoint.
Older checkpoints beyond ``max_to_keep`` are deleted after the state is updated.
"""

import glob
import os
import re

import tensorflow as tf

PREFIX = 'model.ckpt'
STEP_PATTERN = re.compile(r'-(\d+)$')


def checkpoint_step(path):
    """The step number in a checkpoint path ``.../model.ckpt-STEP``."""
    match = STEP_PATTERN.search(path)
    if not match:
        raise ValueError(f'checkpoint path {path!r} does not end in -STEP')
    return int(match.group(1))


class CheckpointManager:
    """Saves to and prunes ``directory``; ``saver`` is a tf.compat.v1.train.Saver."""

    def __init__(self, directory, saver, max_to_keep):
        if max_to_keep < 1:
            raise ValueError(f'train.max_to_keep must be >= 1, got {max_to_keep}')
        self.directory, self.saver, self.max_to_keep = directory, saver, max_to_keep

    def kept(self):
        """Names (relative to the directory) of the checkpoints in the state file."""
        state = tf.compat.v1.train.get_checkpoint_state(self.directory)
        return [os.path.basename(p) for p in state.all_model_checkpoint_paths] if state else []

    def latest(self):
        """The latest checkpoint prefix, or None."""
        return tf.compat.v1.train.latest_checkpoint(self.directory)

    def save(self, sess, step):
        """Saves the session's variables as ``model.ckpt-step``; returns the prefix."""
        name = f'{PREFIX}-{step}'
        prefix = os.path.join(self.directory, name)
        self.saver.save(sess, prefix, write_meta_graph=False, write_state=False)
        kept = [n for n in self.kept() if n != name] + [name]
        dropped, kept = kept[:-self.max_to_keep], kept[-self.max_to_keep:]
        # Paths as saved (TensorFlow stores them relative to the folder when it is relative).
        tf.compat.v1.train.update_checkpoint_state(
            self.directory, prefix,
            all_model_checkpoint_paths=[os.path.join(self.directory, n) for n in kept])
        for old in dropped:
            for path in glob.glob(os.path.join(self.directory, old) + '.*'):
                os.remove(path)
        return prefix
