"""Checkpoints of a training run: atomic saves, pruning to ``max_to_keep``, the latest one.

A save writes ``DIR/model.ckpt-STEP.{index,data-*}`` (TensorFlow's V2 writer assembles them
in temporary files and renames), and only then rewrites the ``DIR/checkpoint`` state file,
itself atomically; so a run killed mid-save still points at the previous complete checkpoint.
The state file names checkpoints relative to the folder, so a copied or moved run folder
restores its own weights. Older checkpoints beyond ``max_to_keep`` are deleted after the
state is updated. A save that fails (full disk, I/O error) removes what it half wrote and
raises ``CheckpointSaveError``; the previous checkpoint and the state file are untouched.
"""

import glob
import os

import tensorflow as tf

# checkpoint_step lives in edvr.checkpoint; edvr.train and edvr.evaluate import it from here.
from edvr.checkpoint import checkpoint_step, error_summary, listed_checkpoints  # noqa: F401

PREFIX = 'model.ckpt'


class CheckpointSaveError(OSError):
    """A checkpoint could not be written; the previous one is intact."""


class CheckpointManager:
    """Saves to and prunes ``directory``; ``saver`` is a tf.compat.v1.train.Saver."""

    def __init__(self, directory, saver, max_to_keep):
        if max_to_keep < 1:
            raise ValueError(f'train.max_to_keep must be >= 1, got {max_to_keep}')
        self.directory, self.saver, self.max_to_keep = directory, saver, max_to_keep

    def kept(self):
        """Names (relative to the directory) of the checkpoints in the state file."""
        return [os.path.basename(p) for p in listed_checkpoints(self.directory)]

    def latest(self):
        """The latest checkpoint prefix, or None."""
        listed = listed_checkpoints(self.directory)
        return listed[-1] if listed else None

    def save(self, sess, step):
        """Saves the session's variables as ``model.ckpt-step``; returns the prefix.

        Raises CheckpointSaveError when the files or the state cannot be written.
        """
        name = f'{PREFIX}-{step}'
        prefix = os.path.join(self.directory, name)
        kept = [n for n in self.kept() if n != name] + [name]
        dropped, kept = kept[:-self.max_to_keep], kept[-self.max_to_keep:]
        try:
            self.saver.save(sess, prefix, write_meta_graph=False, write_state=False)
            self._write_state(name, kept)
        except (tf.errors.OpError, OSError) as e:
            self._remove_partial(name)
            raise CheckpointSaveError(
                f'could not save checkpoint {prefix} at step {step} '
                f'({type(e).__name__}: {error_summary(e)}); the previous '
                f'checkpoint {self.latest() or "(none)"} and the state file are intact') from e
        for old in dropped:
            for path in glob.glob(os.path.join(self.directory, old) + '.*'):
                os.remove(path)
        return prefix

    def _write_state(self, name, kept):
        # Names relative to the folder (TensorFlow joins them to the folder when reading),
        # written to a temporary file and renamed by TensorFlow. The folder is passed
        # absolute: with a relative one TensorFlow takes the names as relative to the cwd.
        tf.compat.v1.train.update_checkpoint_state(os.path.abspath(self.directory), name,
                                                   all_model_checkpoint_paths=kept)

    def _remove_partial(self, name):
        """Deletes what a failed save of ``name`` left: its files (unless the state lists
        it), the writer's temporary files and a half-written state file."""
        if name in self.kept():
            return
        leftovers = glob.glob(os.path.join(self.directory, name) + '.*') + \
            glob.glob(os.path.join(self.directory, name) + '_temp*') + \
            glob.glob(os.path.join(self.directory, 'checkpoint.tmp*'))
        for path in leftovers:
            try:
                if os.path.isdir(path):
                    for inner in glob.glob(os.path.join(path, '*')):
                        os.remove(inner)
                    os.rmdir(path)
                else:
                    os.remove(path)
            except OSError:
                pass  # best effort: nothing refers to these files
