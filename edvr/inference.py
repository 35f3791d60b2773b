"""Restoring clips with EDVR, the library under ``edvr.infer``: temporal windows at clip ends,
spatial padding to the model's size multiple, tiling, the ``Restorer`` (graph, session and
restored weights of one checkpoint) and the streaming of a clip from a source into a sink
(``edvr.video``).

Spatial padding: one mode, ``SPATIAL_PAD_MODE`` (mirror without repeating the border row),
for ``edvr.infer`` (NumPy, ``pad_to_multiple``) and the validation of ``edvr.evaluate`` and
``edvr.train`` (in the graph, ``pad_to_multiple_graph``), so both restore a frame whose size is
not a multiple of 4 the same way.
"""

import numpy as np
from tqdm import tqdm

from edvr.data.frame_indices import PADDINGS, min_clip_frames, window_indices

SPATIAL_PAD_MODE = 'reflect'  # np.pad's name; tf.pad calls it 'REFLECT'


class InferenceError(ValueError):
    """Bad input to edvr.infer."""


def clip_windows(num_frames_in_clip, num_frame, padding):
    """For each frame of the clip, the indices of its model window (list of lists)."""
    if padding not in PADDINGS:
        raise InferenceError(f'--padding must be one of {", ".join(PADDINGS)}, got {padding!r}')
    minimum = min_clip_frames(num_frame, padding)
    if num_frames_in_clip < minimum:
        raise InferenceError(
            f'the clip has {num_frames_in_clip} frames; --padding {padding} with a '
            f'{num_frame}-frame model needs at least {minimum} '
            f'(--padding replicate works with any number)'
        )
    try:
        return [
            window_indices(center, num_frames_in_clip, num_frame, padding)
            for center in range(num_frames_in_clip)
        ]
    except ValueError as e:
        raise InferenceError(f'--padding {padding}: {e}') from None


def pad_amounts(height, width, multiple):
    """(rows, columns) to add at the bottom and right to reach multiples of ``multiple``."""
    return -height % multiple, -width % multiple


def pad_to_multiple(frames, multiple):
    """Pad (..., h, w, c) at the bottom/right to multiples of ``multiple`` (SPATIAL_PAD_MODE;
    edge when a side is too small to mirror); returns (padded, (h, w))."""
    h, w = frames.shape[-3], frames.shape[-2]
    pad_h, pad_w = pad_amounts(h, w, multiple)
    if not pad_h and not pad_w:
        return frames, (h, w)
    widths = [(0, 0)] * (frames.ndim - 3) + [(0, pad_h), (0, pad_w), (0, 0)]
    mode = SPATIAL_PAD_MODE if pad_h < h and pad_w < w else 'edge'
    return np.pad(frames, widths, mode=mode), (h, w)


def pad_to_multiple_graph(frames, multiple):
    """``pad_to_multiple`` in the graph, for (b, t, h, w, c) frames of any size at least
    ``multiple`` (the validation's; smaller ones fail in tf.pad); returns the padded frames
    and the original h and w as tensors."""
    import tensorflow as tf

    h, w = tf.shape(frames)[2], tf.shape(frames)[3]
    pad_h, pad_w = pad_amounts(h, w, multiple)
    padded = tf.pad(
        frames, [[0, 0], [0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode=SPATIAL_PAD_MODE.upper()
    )
    return padded, h, w


def receptive_radius(cfg):
    """Input pixels on each side that can affect an output pixel, ignoring DCN offsets.

    A conservative count of the 3x3 convs, stride-2 convs, pools and resizes on the longest
    path (in input pixels), rounded up to the size multiple.
    """
    from edvr.model import size_multiple

    radius = 1 + 2 * cfg['num_extract_block']  # conv_first, extraction blocks
    if cfg['with_predeblur']:
        radius += 64 if cfg['hr_in'] else 40  # its L3 blocks run at 1/4 (1/16) scale
    radius += 48  # pyramid + PCD (L3 convs count x4)
    radius += 24 if cfg['with_tsa'] else 0  # TSA pyramid at 1/2 and 1/4
    radius += 2 * cfg['num_reconstruct_block'] + 4  # reconstruction and upsampling
    if cfg['hr_in']:
        radius *= 4
    multiple = size_multiple(cfg)
    return -(-radius // multiple) * multiple


def tile_spans(size, tile, overlap, multiple):
    """Tiles along one axis of length ``size`` (a multiple of ``multiple``).

    Returns (region_start, region_end, core_start, core_end) tuples: the cores cover
    [0, size) once; each region adds ``overlap`` pixels of context each side, widened to
    multiples of ``multiple`` so the model's stride-2 grids line up with the untiled run.
    """
    spans = []
    for core_start in range(0, size, tile):
        core_end = min(core_start + tile, size)
        region_start = max(0, core_start - overlap) // multiple * multiple
        region_end = min(size, -(-(core_end + overlap) // multiple) * multiple)
        spans.append((region_start, region_end, core_start, core_end))
    return spans


# --- the model ----------------------------------------------------------------------------


class Restorer:
    """An EDVR graph and session for one config and checkpoint; call it on a window.

    The variables come from a tower on frames of any size (``frames``, ``output``); each
    padded frame or tile size then gets a tower of its own with static shapes (``tower``):
    grappler folds its shape ops and fuses every bias add into its convolution, and its FLOPs
    can be counted (bench.flops). For EDVR-M the frame time is the same within noise.
    """

    def __init__(self, cfg, checkpoint, threads=None, compute_dtype=None):
        """``cfg``: the model section; ``threads``: the config's threads section (or None);
        ``compute_dtype``: the model's (edvr.precision.compute_dtype; None: float32)."""
        import tensorflow as tf

        from edvr.checkpoint import resolve_checkpoint, restore
        from edvr.model import build_edvr, center_frame_index, output_scale, size_multiple
        from edvr.session import session_config

        self.cfg = cfg
        self.center = center_frame_index(cfg)
        self.compute_dtype = compute_dtype or tf.float32
        self.scale, self.multiple = output_scale(cfg), size_multiple(cfg)
        self.graph = tf.Graph()
        self._towers = {}
        with self.graph.as_default():
            self.frames = tf.compat.v1.placeholder(
                tf.float32, [1, cfg['num_frame'], None, None, cfg['num_in_ch']], name='frames'
            )
            self.output, _ = build_edvr(self.frames, cfg, compute_dtype=self.compute_dtype)
            self.sess = tf.compat.v1.Session(graph=self.graph, config=session_config(threads))
            restore(self.sess, resolve_checkpoint(checkpoint), tf.compat.v1.global_variables())

    def close(self):
        self.sess.close()

    def tower(self, height, width):
        """(frames (1, t, height, width, c) placeholder, output (1, s*height, s*width, c)) for
        windows of this size (multiples of ``size_multiple``), built on first use."""
        key = (int(height), int(width))
        if key not in self._towers:
            import tensorflow as tf

            from edvr.model import build_edvr

            with self.graph.as_default():
                frames = tf.compat.v1.placeholder(
                    tf.float32,
                    [1, self.cfg['num_frame'], key[0], key[1], self.cfg['num_in_ch']],
                    name=f'frames_{key[0]}x{key[1]}',
                )
                output, _ = build_edvr(
                    frames, self.cfg, reuse=True, compute_dtype=self.compute_dtype
                )
            self._towers[key] = (frames, output)
        return self._towers[key]

    def feature_tower(self, height, width):
        """(frame (1, height, width, c) placeholder, [l1, l2, l3] of its features): the
        per-frame half of the model (``build_frame_features``), built on first use."""
        key = ('features', int(height), int(width))
        if key not in self._towers:
            import tensorflow as tf

            from edvr.model import build_frame_features

            with self.graph.as_default():
                frame = tf.compat.v1.placeholder(
                    tf.float32,
                    [1, key[1], key[2], self.cfg['num_in_ch']],
                    name=f'frame_{key[1]}x{key[2]}',
                )
                # Fetched through Identity: grappler's remapper fails on a fetched IdentityN
                # (lrelu's custom gradient) whose input it fuses, and skips the whole graph.
                feats = [
                    tf.identity(f)
                    for f in build_frame_features(
                        frame, self.cfg, reuse=True, compute_dtype=self.compute_dtype
                    )
                ]
                self._towers[key] = (frame, feats)
        return self._towers[key]

    def window_tower(self, height, width):
        """([l1, l2, l3] placeholders (t, ...) of a window's features, centre frame (1, height,
        width, c) placeholder, output (1, s*height, s*width, c)): the per-window half of the
        model (``build_window_from_features``), built on first use."""
        key = ('window', int(height), int(width))
        if key not in self._towers:
            import tensorflow as tf

            from edvr.model import build_window_from_features

            _, feats = self.feature_tower(height, width)
            t = self.cfg['num_frame']
            with self.graph.as_default():
                placeholders = [
                    tf.compat.v1.placeholder(
                        f.dtype,
                        [t] + f.shape.as_list()[1:],
                        name=f'window_l{level + 1}_{key[1]}x{key[2]}',
                    )
                    for level, f in enumerate(feats)
                ]
                center = tf.compat.v1.placeholder(
                    tf.float32,
                    [1, key[1], key[2], self.cfg['num_in_ch']],
                    name=f'center_{key[1]}x{key[2]}',
                )
                output, _ = build_window_from_features(placeholders, center, self.cfg, reuse=True)
            self._towers[key] = (placeholders, center, output)
        return self._towers[key]

    def _run(self, window):
        frames, output = self.tower(window.shape[1], window.shape[2])
        return self.sess.run(output, {frames: window[None]})[0]

    def _run_cached(self, frames, window, region, cache):
        """The output of ``region`` (r0, r1, q0, q1) from the window's cached features."""
        r0, r1, q0, q1 = region
        frame, feats = self.feature_tower(r1 - r0, q1 - q0)
        placeholders, center, output = self.window_tower(r1 - r0, q1 - q0)

        def features(index):
            return self.sess.run(feats, {frame: frames[index][None, r0:r1, q0:q1]})

        per_frame = [
            cache.get((index, region), lambda index=index: features(index)) for index in window
        ]
        feed = {
            placeholder: np.concatenate([f[level] for f in per_frame])
            for level, placeholder in enumerate(placeholders)
        }
        feed[center] = frames[window[self.center]][None, r0:r1, q0:q1]
        return self.sess.run(output, feed)[0]

    def restore(self, frames, window, tile=None, overlap=0, cache=None):
        """The restored centre frame of ``window``.

        frames: mapping frame index -> (h, w, c) float32, h and w multiples of
        ``size_multiple``; window: the num_frame indices; cache: a FeatureCache (None: the
        whole model on the window). Returns (h * s, w * s, c), s = 4 (1 with hr_in).
        """
        height, width = frames[window[0]].shape[:2]
        if cache is None:

            def run(r0, r1, q0, q1):
                return self._run(np.stack([frames[i][r0:r1, q0:q1] for i in window]))
        else:

            def run(r0, r1, q0, q1):
                return self._run_cached(frames, window, (r0, r1, q0, q1), cache)

        if tile is None:
            return run(0, height, 0, width)
        s = self.scale
        out = np.zeros((height * s, width * s, self.cfg['num_in_ch']), np.float32)
        for r0, r1, c0, c1 in tile_spans(height, tile, overlap, self.multiple):
            for q0, q1, d0, d1 in tile_spans(width, tile, overlap, self.multiple):
                part = run(r0, r1, q0, q1)
                out[c0 * s : c1 * s, d0 * s : d1 * s] = part[
                    (c0 - r0) * s : (c1 - r0) * s, (d0 - q0) * s : (d1 - q0) * s
                ]
        return out

    def __call__(self, window, tile=None, overlap=0):
        """window: (t, h, w, c) float32 -> (h * s, w * s, c), s = 4 (1 with hr_in)."""
        padded, (h, w) = pad_to_multiple(window, self.multiple)
        out = self.restore(dict(enumerate(padded)), list(range(len(padded))), tile, overlap)
        return out[: h * self.scale, : w * self.scale]


def check_tiling(cfg, tile, overlap):
    """The overlap to use with ``--tile`` (default: the receptive radius); errors on bad values."""
    from edvr.model import size_multiple

    if tile is None:
        return 0
    multiple = size_multiple(cfg)
    if tile <= 0 or tile % multiple:
        raise InferenceError(f'--tile must be a positive multiple of {multiple}, got {tile}')
    overlap = receptive_radius(cfg) if overlap is None else overlap
    if overlap < 0:
        raise InferenceError(f'--tile_overlap must be >= 0, got {overlap}')
    return overlap


def restore_stream(
    restorer,
    source,
    sink,
    padding='reflection_circle',
    tile=None,
    overlap=0,
    feature_cache=True,
    progress=True,
):
    """Restore every frame of ``source`` (edvr.video) into ``sink`` as the clip streams;
    returns the FeatureCache (None without ``feature_cache``). The sink is not committed."""
    from edvr.model.feature_cache import FeatureCache
    from edvr.video import sliding_windows

    num_frame = restorer.cfg['num_frame']
    cache = FeatureCache() if feature_cache else None
    padded = (
        frame._replace(pixels=pad_to_multiple(frame.pixels, restorer.multiple)[0])
        for frame in source
    )
    h, w = source.size
    s = restorer.scale
    with tqdm(total=source.count, desc='edvr.infer', unit='frame', disable=not progress) as bar:
        for center, window, held in sliding_windows(
            padded, num_frame, padding, lambda n: clip_windows(n, num_frame, padding)
        ):
            pixels = {index: held[index].pixels for index in window}
            out = restorer.restore(pixels, window, tile, overlap, cache)
            sink.write(held[center], out[: h * s, : w * s])
            if cache is not None:
                cache.release_before(center + 1 - (num_frame - 1))
            bar.update()
    return cache


def restore_clip(
    cfg,
    checkpoint,
    input_path,
    output_path,
    padding='reflection_circle',
    tile=None,
    overlap=None,
    progress=True,
    threads=None,
    feature_cache=True,
    codec=None,
    crf=None,
    fps=None,
    compute_dtype=None,
):
    """Restore every frame of ``input_path`` (PNG folder or video) into ``output_path`` (PNG
    folder or video file, see edvr.video); returns the written paths. Nothing appears under
    ``output_path`` unless the whole clip was restored.

    ``threads``: the config's threads section (thread pools, see ``edvr.session``);
    ``compute_dtype``: the model's (edvr.precision.compute_dtype; None: float32)."""
    from edvr import video
    from edvr.model import output_scale

    overlap = check_tiling(cfg, tile, overlap)
    if padding not in PADDINGS:
        raise InferenceError(f'--padding must be one of {", ".join(PADDINGS)}, got {padding!r}')
    source = video.open_source(input_path)
    try:
        if source.count is not None:  # a clip too short is an error before any work
            clip_windows(source.count, cfg['num_frame'], padding)
        scale = output_scale(cfg)
        sink = video.open_sink(
            output_path, source, (source.size[0] * scale, source.size[1] * scale), codec, crf, fps
        )
        try:
            restorer = Restorer(cfg, checkpoint, threads, compute_dtype)
            try:
                restore_stream(
                    restorer, source, sink, padding, tile, overlap, feature_cache, progress
                )
            finally:
                restorer.close()
            return sink.commit()
        except BaseException:
            sink.abort()
            raise
    finally:
        source.close()
