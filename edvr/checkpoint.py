"""Checkpoints, in one place: find the latest, check it is whole and fits the model, restore
it, save and prune a run's checkpoints, and write NumPy weights into a graph or a checkpoint.

A checkpoint ``PREFIX`` is TensorFlow's tensor bundle: ``PREFIX.index`` (an SSTable mapping
each tensor name to a ``BundleEntryProto``: data shard, offset, size and masked crc32c of its
bytes) and ``PREFIX.data-SSSSS-of-NNNNN``. ``verify_checkpoint`` reads the index, checks every
data file is there and long enough, and has TensorFlow read every tensor, which recomputes its
crc32c, so a damaged checkpoint is reported in one line naming the file before any restore.

A save (``CheckpointManager``) writes ``DIR/model.ckpt-STEP.{index,data-*}`` (TensorFlow's V2
writer assembles them in temporary files and renames), and only then rewrites the
``DIR/checkpoint`` state file, itself atomically; so a run killed mid-save still points at the
previous complete checkpoint. The state file names checkpoints relative to the folder, so a
copied or moved run folder restores its own weights. Older checkpoints beyond ``max_to_keep``
are deleted after the state is updated. A save that fails (full disk, I/O error) removes what
it half wrote and raises ``CheckpointSaveError``; the previous checkpoint and the state file
are untouched.
"""

import glob
import os
import re
import struct

import numpy as np
import tensorflow as tf
from google.protobuf import text_format

STATE_FILE = 'checkpoint'  # TensorFlow's name for the state file of a folder
RUN_PREFIX = 'model.ckpt'  # a run's checkpoints: RUN_PREFIX-STEP
STEP_PATTERN = re.compile(r'-(\d+)$')


class CheckpointError(ValueError):
    """No checkpoint where one was expected, or one that does not fit the model."""

    exit_code = 1  # edvr.cli.EXIT_CHECKPOINT (edvr.cli imports this module lazily)


class CheckpointDamagedError(CheckpointError):
    """A checkpoint whose files are missing, truncated or fail their checksums."""


class CheckpointSaveError(OSError):
    """A checkpoint could not be written; the previous one is intact."""

    exit_code = 1  # edvr.cli.EXIT_CHECKPOINT


# --- reading the index (an uncompressed LevelDB table, as TensorFlow writes it) -------------

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two block handles (varints, zero-padded to 40 bytes) and the magic
_BLOCK_TRAILER = 5  # compression type byte and masked crc32c after every block


def _varint(data, pos):
    """(value, next position) of the base-128 varint at ``data[pos]``."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError('varint runs past the end')
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _proto_fields(data):
    """{field number: last value} of a serialized protobuf message; scalars only (varint,
    fixed32, fixed64), length-delimited fields as bytes."""
    fields, pos = {}, 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number], pos = _varint(data, pos)
        elif wire == 1:
            fields[number], pos = struct.unpack_from('<Q', data, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            fields[number], pos = bytes(data[pos : pos + length]), pos + length
        elif wire == 5:
            fields[number], pos = struct.unpack_from('<I', data, pos)[0], pos + 4
        else:
            raise ValueError(f'unsupported protobuf wire type {wire}')
        if pos > len(data):
            raise ValueError('protobuf field runs past the end')
    return fields


def _block(table, offset, size):
    """The key-value pairs of the table block at ``offset`` (``size`` bytes before its trailer)."""
    if offset + size + _BLOCK_TRAILER > len(table) or size < 4:
        raise ValueError(f'block at byte {offset} ({size} bytes) runs past the end')
    if table[offset + size] != 0:
        raise ValueError(
            f'block at byte {offset} is compressed (type {table[offset + size]}); '
            f'TensorFlow writes checkpoint indexes uncompressed'
        )
    block = table[offset : offset + size]
    num_restarts = struct.unpack_from('<I', block, size - 4)[0]
    end = size - 4 - 4 * num_restarts
    if end < 0:
        raise ValueError(f'block at byte {offset} has a bad restart count')
    pairs, pos, key = [], 0, b''
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_size, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_size > end:
            raise ValueError(f'entry at byte {offset + pos} of the block runs past its end')
        key = key[:shared] + bytes(block[pos : pos + unshared])
        pos += unshared
        pairs.append((key, bytes(block[pos : pos + value_size])))
        pos += value_size
    return pairs


def read_index(index_path):
    """Parse a tensor bundle's ``.index``: (num_shards, {tensor name: entry fields}).

    Entry fields are those of ``BundleEntryProto`` by number (3 shard_id, 4 offset, 5 size,
    6 crc32c, 7 slices). Raises ValueError saying what is wrong with the file.
    """
    with open(index_path, 'rb') as f:
        table = memoryview(f.read())
    if len(table) < _FOOTER_SIZE:
        raise ValueError(f'{len(table)} bytes, shorter than the {_FOOTER_SIZE}-byte table footer')
    footer = table[-_FOOTER_SIZE:]
    if struct.unpack_from('<Q', footer, _FOOTER_SIZE - 8)[0] != _TABLE_MAGIC:
        raise ValueError('no table magic number at its end (truncated, or not an index)')
    _, pos = _varint(footer, 0)  # metaindex block: empty in bundles
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    entries, num_shards = {}, None
    for _, handle in _block(table, index_offset, index_size):
        block_offset, pos = _varint(handle, 0)
        block_size, _ = _varint(handle, pos)
        for key, value in _block(table, block_offset, block_size):
            fields = _proto_fields(value)
            if key == b'':  # the header entry: BundleHeaderProto
                num_shards = fields.get(1, 0)
            else:
                entries[key.decode('utf-8', 'replace')] = fields
    if num_shards is None:
        raise ValueError('no header entry')
    return num_shards, entries


def data_file(prefix, shard, num_shards):
    """The name TensorFlow gives data shard ``shard`` of ``num_shards``."""
    return f'{prefix}.data-{shard:05d}-of-{num_shards:05d}'


def verify_checkpoint(prefix):
    """Raise CheckpointDamagedError (one line naming the file) unless ``prefix`` is whole.

    Checks the index's table structure and (through TensorFlow's checkpoint reader) its
    block checksums, that every data shard exists and holds every entry's byte range, then
    reads every tensor through the reader, which compares the crc32c of its bytes with the
    one stored in the index (so a flipped byte is caught).
    """
    index_path = prefix + '.index'

    def damaged(file, why):
        return CheckpointDamagedError(
            f'checkpoint {prefix} is damaged: {file} {why}; use '
            f'another checkpoint (an older one of the run) or '
            f'write it again'
        )

    if not os.path.isfile(index_path):
        raise CheckpointError(f'checkpoint {prefix}: no such checkpoint (expected {index_path})')
    try:
        num_shards, entries = read_index(index_path)
    except (ValueError, struct.error) as e:
        raise damaged(index_path, f'is not a readable index ({e})') from None
    try:  # TensorFlow checks the crc32c of every block of the index
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise damaged(index_path, f'cannot be opened ({error_summary(e)})') from None
    sizes = {}
    for shard in range(num_shards):
        path = data_file(prefix, shard, num_shards)
        if not os.path.isfile(path):
            raise damaged(path, f'is missing (the index names {num_shards} data file(s))')
        sizes[shard] = os.path.getsize(path)
    for name, fields in sorted(entries.items()):
        if 7 in fields:  # a partitioned variable: its slices hold data
            continue
        shard, end = fields.get(3, 0), fields.get(4, 0) + fields.get(5, 0)
        if shard not in sizes:
            raise damaged(index_path, f'puts tensor {name!r} in shard {shard} of {num_shards}')
        if end > sizes[shard]:
            raise damaged(
                data_file(prefix, shard, num_shards),
                f'is {sizes[shard]} bytes, but the index puts tensor {name!r} up to '
                f'byte {end} (the file is truncated)',
            )
    for name in sorted(reader.get_variable_to_dtype_map()):
        try:
            reader.get_tensor(name)
        except (tf.errors.OpError, ValueError) as e:
            shard = entries.get(name, {}).get(3, 0)
            raise damaged(
                data_file(prefix, shard, num_shards),
                f'fails the check of tensor {name!r} ({error_summary(e)})',
            ) from None


def error_summary(error):
    """The line of a TensorFlow (or other) error that says what went wrong, without the
    graph-execution preamble and node trace TF 2 wraps around it."""
    text = str(getattr(error, 'message', None) or error)
    for line in text.splitlines():
        if (
            line.strip()
            and not line[0].isspace()
            and not line.startswith(
                ('Graph execution error', 'Detected at node', 'Node:', 'Original stack trace')
            )
        ):
            return line.strip()
    return type(error).__name__


# --- finding the checkpoint of a folder -----------------------------------------------------


def checkpoint_step(path):
    """The step number in a checkpoint path ``.../model.ckpt-STEP``."""
    match = STEP_PATTERN.search(path)
    if not match:
        raise ValueError(f'checkpoint path {path!r} does not end in -STEP')
    return int(match.group(1))


def _inside(directory, path):
    directory, path = os.path.realpath(directory), os.path.realpath(path)
    return os.path.dirname(path) == directory


def listed_checkpoints(directory):
    """The checkpoints the folder's state file lists, oldest first (the last is the latest);
    [] without a state file.

    The state file holds paths relative to the folder, so a copied or moved run folder
    stays whole. A path pointing outside the folder (absolute paths of older runs, from
    where the folder was copied) is refused: restoring it would load another run's weights.
    """
    state_path = os.path.join(directory, STATE_FILE)
    if not os.path.isfile(state_path):
        return []
    try:
        state = tf.compat.v1.train.get_checkpoint_state(directory)
    except (text_format.ParseError, UnicodeDecodeError, ValueError, tf.errors.OpError) as e:
        raise CheckpointDamagedError(
            f'{state_path} is damaged ({error_summary(e)}); delete it '
            f'to fall back to the newest checkpoint of the folder'
        )
    if state is None:
        return []
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    for path in paths:
        if not _inside(directory, path):
            raise CheckpointError(
                f'{state_path} points at {path}, outside {directory}: the folder was copied '
                f'or moved from elsewhere and its state file would restore the original '
                f'run\'s weights. Pass the checkpoint prefix itself (e.g. '
                f'{os.path.join(directory, os.path.basename(path))}), or delete the state file '
                f'to use the newest checkpoint of the folder'
            )
    # The latest one last, whatever order the list had.
    latest = state.model_checkpoint_path or paths[-1]
    return [p for p in paths if p != latest] + [latest]


def _newest_index(directory):
    indexes = sorted(glob.glob(os.path.join(directory, '*.index')), key=os.path.getmtime)
    return indexes[-1][: -len('.index')] if indexes else None


def resolve_checkpoint(path):
    """A checkpoint prefix from a prefix or a directory (its latest checkpoint).

    Raises CheckpointError when there is none. ``restore`` checks that it is whole.
    """
    path = str(path)
    if os.path.isdir(path):
        listed = listed_checkpoints(path)
        latest = listed[-1] if listed else _newest_index(path)
        if latest is None:
            raise CheckpointError(
                f'--checkpoint {path}: directory holds no checkpoint '
                f'(expected a `checkpoint` file or PREFIX.index files)'
            )
    else:
        latest = path
        if not os.path.isfile(path + '.index'):
            raise CheckpointError(
                f'--checkpoint {path}: no such checkpoint (expected '
                f'{path}.index or a directory of checkpoints)'
            )
    return latest


def newest_intact_checkpoint(directory, warn):
    """The newest whole checkpoint of a run folder, for ``train --resume``; None if it has none.

    Goes back through the state file's list (or, without one, the folder's checkpoints by
    step) past damaged ones, calling ``warn(message)`` naming the damaged and the chosen one.
    Raises CheckpointDamagedError when every checkpoint is damaged.
    """
    try:
        candidates = listed_checkpoints(directory)
    except CheckpointDamagedError as e:
        warn(f'warning: {e}; looking for checkpoints in the folder instead')
        candidates = []
    if not candidates:
        prefixes = [p[: -len('.index')] for p in glob.glob(os.path.join(directory, '*.index'))]
        candidates = sorted((p for p in prefixes if STEP_PATTERN.search(p)), key=checkpoint_step)
    damaged = []
    for prefix in reversed(candidates):
        try:
            verify_checkpoint(prefix)
        except CheckpointError as e:
            damaged.append(e)
            continue
        if damaged:
            warn(f'warning: {damaged[0]}. Resuming from {prefix}, the newest intact checkpoint')
        return prefix
    if damaged:
        raise CheckpointDamagedError(
            f'{damaged[0]} (and no older intact checkpoint in {directory})'
        )
    return None


# --- restoring --------------------------------------------------------------------------------


def mismatch_report(missing=(), unexpected=(), mismatched=(), noun='variables', limit=20):
    """The one description of weights that do not fit a model, '' when they do.

    ``missing``/``unexpected``: names; ``mismatched``: ``'name: got SHAPE, expected SHAPE'``
    lines. E.g. ``missing variables (2): a, b | shape mismatches (1): c: got (7,), expected
    (3,)``; at most ``limit`` names each, then ``... and N more``.
    """

    def listed(items, separator):
        items = sorted(items)
        more = f' ... and {len(items) - limit} more' if len(items) > limit else ''
        return separator.join(items[:limit]) + more

    parts = []
    if missing:
        parts.append(f'missing {noun} ({len(missing)}): {listed(missing, ", ")}')
    if unexpected:
        parts.append(f'unexpected {noun} ({len(unexpected)}): {listed(unexpected, ", ")}')
    if mismatched:
        parts.append(f'shape mismatches ({len(mismatched)}): {listed(mismatched, "; ")}')
    return ' | '.join(parts)


def check_compatible(checkpoint, variables):
    """Raise CheckpointError unless ``checkpoint`` holds every variable with the same shape.

    Variables the model does not have are reported too, except optimizer slots
    (``<variable>/<slot>``) and anything outside the model's top scope (``global_step``).
    """
    stored = dict(tf.compat.v1.train.list_variables(checkpoint))
    wanted = {v.op.name: v.shape.as_list() for v in variables}
    scopes = {name.split('/')[0] for name in wanted}
    missing = set(wanted) - set(stored)
    mismatched = [
        f'{name}: got {tuple(stored[name])}, expected {tuple(shape)}'
        for name, shape in sorted(wanted.items())
        if name in stored and list(stored[name]) != list(shape)
    ]
    unexpected = [
        name
        for name in stored
        if name.split('/')[0] in scopes
        and name not in wanted
        and not any(name.startswith(w + '/') for w in wanted)
    ]
    report = mismatch_report(missing, unexpected, mismatched)
    if report:
        raise CheckpointError(
            f'checkpoint {checkpoint} does not fit the config: {report}. '
            f'Was it written for another config?'
        )


def model_variables(scope='edvr'):
    """The model's variables in the default graph (no optimiser slots, no step): what an
    inference graph restores."""
    return tf.compat.v1.global_variables(scope=scope + '/')


def restore(sess, checkpoint, variables, saver=None, verify=True):
    """Check ``checkpoint`` is whole (unless ``verify`` is False: the caller just did) and fits
    ``variables``, then restore them into ``sess``, through ``saver`` if given (a finalized
    graph cannot make a new one), else a new Saver of ``variables``."""
    if verify:
        verify_checkpoint(checkpoint)
    check_compatible(checkpoint, variables)
    (saver or tf.compat.v1.train.Saver(variables)).restore(sess, checkpoint)


# --- NumPy weights into a graph or a checkpoint ---------------------------------------------


def read_values(checkpoint):
    """{variable name: array} of every variable stored at checkpoint prefix ``checkpoint``."""
    reader = tf.compat.v1.train.NewCheckpointReader(str(checkpoint))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assign_weights(sess, values, variables=None):
    """Assign ``values`` ({variable name without ':0': array}) to ``variables`` (default: the
    graph's global variables) in ``sess``; every variable must be given, and nothing else.

    Raises CheckpointError with the mismatch report otherwise.
    """
    variables = tf.compat.v1.global_variables() if variables is None else list(variables)
    shapes = {v.op.name: tuple(v.shape.as_list()) for v in variables}
    mismatched = [
        f'{name}: got {np.shape(values[name])}, expected {shape}'
        for name, shape in sorted(shapes.items())
        if name in values and tuple(np.shape(values[name])) != shape
    ]
    report = mismatch_report(set(shapes) - set(values), set(values) - set(shapes), mismatched)
    if report:
        raise CheckpointError(f'weights do not fit the graph: {report}')
    feeds, assigns = {}, []
    for var in variables:
        placeholder = tf.compat.v1.placeholder(var.dtype.base_dtype, var.shape)
        assigns.append(tf.compat.v1.assign(var, placeholder))
        feeds[placeholder] = values[var.op.name]
    sess.run(assigns, feeds)


def _model_graph(cfg, scope):
    """A new graph holding ``build_edvr(cfg)`` on (1, t, ?, ?, c) frames; returns the graph."""
    from edvr.model import build_edvr

    graph = tf.Graph()
    with graph.as_default():
        frames = tf.compat.v1.placeholder(
            tf.float32, [1, cfg['num_frame'], None, None, cfg['num_in_ch']]
        )
        build_edvr(frames, cfg, scope=scope)
    return graph


def model_variable_shapes(cfg, scope='edvr'):
    """{name: shape tuple} of the variables ``build_edvr`` creates for the model config ``cfg``."""
    with _model_graph(cfg, scope).as_default():
        return {v.op.name: tuple(v.shape.as_list()) for v in tf.compat.v1.global_variables()}


def write_weights(values, cfg, path, scope='edvr'):
    """Save ``values`` ({name: array}, every variable of ``build_edvr(cfg)``) as a checkpoint
    at the prefix ``path``, with paths relative to its folder (the folder stays portable);
    returns the prefix."""
    graph = _model_graph(cfg, scope)
    with graph.as_default():
        variables = tf.compat.v1.global_variables()
        saver = tf.compat.v1.train.Saver(variables, save_relative_paths=True)
        with tf.compat.v1.Session(graph=graph) as sess:
            assign_weights(sess, values, variables)
            return saver.save(sess, str(path), write_meta_graph=False)


# --- saving during training -----------------------------------------------------------------


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
        name = f'{RUN_PREFIX}-{step}'
        prefix = os.path.join(self.directory, name)
        kept = [n for n in self.kept() if n != name] + [name]
        dropped, kept = kept[: -self.max_to_keep], kept[-self.max_to_keep :]
        try:
            self.saver.save(sess, prefix, write_meta_graph=False, write_state=False)
            self._write_state(name, kept)
        except (tf.errors.OpError, OSError) as e:
            self._remove_partial(name)
            raise CheckpointSaveError(
                f'could not save checkpoint {prefix} at step {step} '
                f'({type(e).__name__}: {error_summary(e)}); the previous '
                f'checkpoint {self.latest() or "(none)"} and the state file are intact'
            ) from e
        for old in dropped:
            for path in glob.glob(os.path.join(self.directory, old) + '.*'):
                os.remove(path)
        return prefix

    def _write_state(self, name, kept):
        # Names relative to the folder (TensorFlow joins them to the folder when reading),
        # written to a temporary file and renamed by TensorFlow. The folder is passed
        # absolute: with a relative one TensorFlow takes the names as relative to the cwd.
        tf.compat.v1.train.update_checkpoint_state(
            os.path.abspath(self.directory), name, all_model_checkpoint_paths=kept
        )

    def _remove_partial(self, name):
        """Deletes what a failed save of ``name`` left: its files (unless the state lists
        it), the writer's temporary files and a half-written state file."""
        if name in self.kept():
            return
        leftovers = (
            glob.glob(os.path.join(self.directory, name) + '.*')
            + glob.glob(os.path.join(self.directory, name) + '_temp*')
            + glob.glob(os.path.join(self.directory, 'checkpoint.tmp*'))
        )
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
