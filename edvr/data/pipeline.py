"""tf.data input pipelines: random training windows with augmentation, and a deterministic
validation pass over whole clips.

Training samples are ``num_frames`` consecutive LR frames with the ground truth of the centre
frame. Centres are drawn only where the whole window lies inside the clip (no padding at clip
ends), epoch by epoch in a seeded permutation; crop positions and augmentations come from
stateless random ops seeded by ``(seed, sample number)``, so the stream is reproducible and
can be restarted at any sample (``start_sample``) for an exact ``--resume``. In data-parallel
training (``rank_size`` > 1) every rank takes every ``rank_size``-th sample of that one stream,
so the ranks of a step see distinct windows and together follow the single-process stream.

Validation visits every frame of every clip in order and pads windows at clip ends with
``reflection_circle`` (as BasicSR's REDS test does), see ``frame_indices.window_indices``.
"""

import numpy as np
import tensorflow as tf

from edvr.data import frame_indices, reds

DEFAULT_PARALLEL_CALLS = 8  # the seed decodes with 8 threads
Dataset = tf.data.Dataset


def training_windows(data_dir, spec, num_frames):
    """All training windows of a split, as paths.

    Returns ``(lr_paths, gt_paths)``: NumPy string arrays ``[N, num_frames]`` and ``[N]``,
    one row per centre frame whose window lies inside its clip.
    """
    lr_rows, gt_rows = [], []
    for video in spec.videos:
        lr_paths = reds.lr_frame_paths(data_dir, spec, video)
        gt_paths = reds.gt_frame_paths(data_dir, spec, video)
        half = num_frames // 2
        for center in frame_indices.training_centers(video.nframes, num_frames):
            lr_rows.append(lr_paths[center - half : center + half + 1])
            gt_rows.append(gt_paths[center])
    if not lr_rows:
        raise ValueError(
            f'no clip of {data_dir} has the {num_frames} frames a training window '
            f'needs; clip lengths are {[v.nframes for v in spec.videos]}'
        )
    return np.array(lr_rows), np.array(gt_rows)


def epoch_order(num_windows, seed, start_sample):
    """Endless dataset of ``(sample number, window index)``: a fresh seeded permutation of the
    windows per epoch, starting at global sample number ``start_sample`` (so a restarted stream
    continues exactly where it stopped). Built in-graph from stateless ops."""
    first_epoch, skip = divmod(start_sample, num_windows)

    def permutation(epoch):
        epoch_seed = tf.stack([seed, tf.cast(epoch, tf.int32)])
        keys = tf.random.stateless_uniform([num_windows], epoch_seed)
        samples = epoch * num_windows + tf.range(num_windows, dtype=tf.int64)
        return Dataset.from_tensor_slices((samples, tf.cast(tf.argsort(keys), tf.int64)))

    epochs = Dataset.range(first_epoch, np.iinfo(np.int64).max)
    return epochs.flat_map(permutation).skip(skip)


def rank_order(num_windows, seed, start_sample, rank_size=1, rank_id=0):
    """This rank's share of ``epoch_order``: global samples ``start_sample + rank_id``,
    ``+ rank_size``, ``+ 2 * rank_size``, ... (``start_sample`` counts the samples of all ranks,
    a multiple of ``rank_size`` on a resume).

    Sharding the one seeded stream, rather than giving each rank its own seed, keeps an epoch
    a permutation of the windows across all ranks (no window twice in a step or an epoch),
    keeps every sample's crop and augmentation a function of ``(seed, sample number)``, and
    keeps ``--resume`` exact. The shard is taken before any decoding, so each rank reads only
    its own frames.
    """
    if int(rank_size) < 1 or not 0 <= int(rank_id) < int(rank_size):
        raise ValueError(
            f'rank_id, rank_size: expected 0 <= rank_id < rank_size, got rank_id '
            f'{rank_id!r}, rank_size {rank_size!r}'
        )
    order = epoch_order(num_windows, seed, start_sample)
    return order.shard(int(rank_size), int(rank_id)) if rank_size > 1 else order


def decode_frame(path):
    """Reads one PNG as uint8 ``[h, w, 3]``."""
    return tf.io.decode_png(tf.io.read_file(path), channels=3)


def decode_window(lr_paths, num_frames):
    """Reads a window of LR frames: uint8 ``[t, h, w, 3]``."""
    return tf.stack([decode_frame(lr_paths[i]) for i in range(num_frames)])


def random_crop(lr, gt, lr_crop, seed, scale=reds.SCALE):
    """Crops ``lr [t, h, w, c]`` to ``[t, lr_crop, lr_crop, c]`` at a random position and
    ``gt [H, W, c]`` to the matching ``[scale*lr_crop, scale*lr_crop, c]`` region."""
    shape = tf.shape(lr)
    top = tf.random.stateless_uniform([], seed, 0, shape[1] - lr_crop + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seed + [0, 1], 0, shape[2] - lr_crop + 1, dtype=tf.int32)
    lr = lr[:, top : top + lr_crop, left : left + lr_crop, :]
    gt_crop = lr_crop * scale
    gt = gt[top * scale : top * scale + gt_crop, left * scale : left * scale + gt_crop, :]
    return lr, gt


def augment(lr, gt, seed, use_flip=True, use_rotation=True, use_temporal_reverse=False):
    """Applies one random transform to every LR frame and to the GT, as BasicSR's ``augment``:
    horizontal flip, then (with rotation) vertical flip and transpose (a 90-degree rotation
    together with the flips), and optionally reverses the frame order.

    ``lr``: ``[t, h, w, c]``, ``gt``: ``[H, W, c]`` with square crops (the transpose keeps
    shapes). ``seed``: int32 ``[2]`` for the stateless draws.
    """
    draws = tf.random.stateless_uniform([4], seed + [0, 2]) < 0.5
    false = tf.constant(False)
    hflip = draws[0] if use_flip else false
    vflip = draws[1] if use_rotation else false
    transpose = draws[2] if use_rotation else false
    reverse = draws[3] if use_temporal_reverse else false

    def maybe(flag, fn, x):
        return tf.cond(flag, lambda: fn(x), lambda: x)

    lr = maybe(hflip, lambda x: tf.reverse(x, [2]), lr)
    gt = maybe(hflip, lambda x: tf.reverse(x, [1]), gt)
    lr = maybe(vflip, lambda x: tf.reverse(x, [1]), lr)
    gt = maybe(vflip, lambda x: tf.reverse(x, [0]), gt)
    lr = maybe(transpose, lambda x: tf.transpose(x, [0, 2, 1, 3]), lr)
    gt = maybe(transpose, lambda x: tf.transpose(x, [1, 0, 2]), gt)
    lr = maybe(reverse, lambda x: tf.reverse(x, [0]), lr)
    return lr, gt


def to_float(image):
    """uint8 -> float32 in [0, 1]."""
    return tf.cast(image, tf.float32) / 255.0


def training_dataset(
    data_dir,
    spec,
    num_frames=5,
    lr_crop=64,
    batch_size=16,
    seed=0,
    start_sample=0,
    use_flip=True,
    use_rotation=True,
    use_temporal_reverse=False,
    num_parallel_calls=DEFAULT_PARALLEL_CALLS,
    prefetch=4,
    rank_size=1,
    rank_id=0,
):
    """Endless dataset of training batches.

    Yields ``{'lr': float32 [b, t, lr_crop, lr_crop, 3], 'gt': float32 [b, 4*lr_crop,
    4*lr_crop, 3]}`` in [0, 1], where ``gt`` is the centre frame. Sample ``k`` of the stream
    depends only on ``(seed, k)``; ``start_sample`` skips the first samples exactly.
    With ``rank_size`` > 1 this rank gets samples ``rank_id``, ``rank_id + rank_size``, ...
    (see ``rank_order``); ``batch_size`` is then per rank and ``start_sample`` counts the
    samples of all ranks.
    """
    lr_paths, gt_paths = training_windows(data_dir, spec, num_frames)
    for video in spec.videos:
        if min(video.x4_shape) < lr_crop:
            raise ValueError(
                f'video {video.name!r} of {data_dir}: LR frames are '
                f'{video.x4_shape[0]}x{video.x4_shape[1]}, smaller than the '
                f'training crop {lr_crop}x{lr_crop}'
            )
    lr_table = tf.constant(lr_paths)
    gt_table = tf.constant(gt_paths)

    order = rank_order(len(gt_paths), seed, start_sample, rank_size, rank_id)

    def load(sample, window):
        sample_seed = tf.stack([tf.constant(seed, tf.int32), tf.cast(sample, tf.int32)])
        lr = decode_window(tf.gather(lr_table, window), num_frames)
        gt = decode_frame(tf.gather(gt_table, window))
        lr, gt = random_crop(lr, gt, lr_crop, sample_seed)
        lr, gt = augment(lr, gt, sample_seed, use_flip, use_rotation, use_temporal_reverse)
        lr = tf.reshape(lr, [num_frames, lr_crop, lr_crop, 3])
        gt = tf.reshape(gt, [lr_crop * reds.SCALE, lr_crop * reds.SCALE, 3])
        return {'lr': to_float(lr), 'gt': to_float(gt)}

    dataset = order.map(load, num_parallel_calls=num_parallel_calls)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(prefetch)


def validation_windows(data_dir, spec, num_frames, padding='reflection_circle'):
    """Every frame of every clip of a split, in order, with its padded window.

    Returns a list of dicts ``{'clip', 'frame', 'lr_paths' [t], 'gt_path'}``.
    """
    items = []
    for video in spec.videos:
        lr_paths = reds.lr_frame_paths(data_dir, spec, video)
        gt_paths = reds.gt_frame_paths(data_dir, spec, video)
        for center in range(video.nframes):
            window = frame_indices.window_indices(center, video.nframes, num_frames, padding)
            items.append(
                {
                    'clip': video.name,
                    'frame': center,
                    'lr_paths': [lr_paths[i] for i in window],
                    'gt_path': gt_paths[center],
                }
            )
    return items


def validation_dataset(
    data_dir,
    spec,
    num_frames=5,
    padding='reflection_circle',
    num_parallel_calls=DEFAULT_PARALLEL_CALLS,
    prefetch=2,
):
    """Deterministic pass over whole validation frames, one per element (clips may differ
    in size).

    Yields ``{'lr': float32 [1, t, h, w, 3], 'gt': float32 [1, 4h, 4w, 3], 'clip': string [1],
    'frame': int32 [1]}``, clip by clip, frame by frame.
    """
    items = validation_windows(data_dir, spec, num_frames, padding)
    columns = {
        'clip': np.array([it['clip'] for it in items]),
        'frame': np.array([it['frame'] for it in items], np.int32),
        'lr_paths': np.array([it['lr_paths'] for it in items]),
        'gt_path': np.array([it['gt_path'] for it in items]),
    }

    def load(item):
        return {
            'lr': to_float(decode_window(item['lr_paths'], num_frames)),
            'gt': to_float(decode_frame(item['gt_path'])),
            'clip': item['clip'],
            'frame': item['frame'],
        }

    dataset = Dataset.from_tensor_slices(columns)
    return dataset.map(load, num_parallel_calls=num_parallel_calls).batch(1).prefetch(prefetch)
