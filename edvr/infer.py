"""Restore a clip: PNG frames in, one restored PNG per frame out (same names).

    python -m edvr.infer --config CFG --checkpoint CKPT_OR_DIR --input DIR --output DIR
        [--padding reflection_circle|replicate|reflection] [--tile N --tile_overlap M]
        [--intra_op_threads N] [--inter_op_threads N]

- Frames are the ``*.png`` files of ``--input``, sorted by name; hidden files and folders
  are skipped, any other file is an error. All frames must have one size.
- Each frame is restored from the ``num_frame`` window centred on it; at clip ends the
  window is padded in time (``--padding``; default ``reflection_circle`` as in BasicSR's
  REDS test). A clip shorter than the padding needs is an error that names the minimum
  (``reflection_circle``: num_frame frames; ``reflection``: num_frame // 2 + 1;
  ``replicate``: any length, even one frame).
- Frames whose height or width is not a multiple of 4 (16 with ``hr_in``) are padded at
  the bottom/right (mirror, or edge when too small) and the output cropped back.
- ``--tile N`` restores N x N input tiles with ``--tile_overlap`` pixels of context on every
  side (default: ``receptive_radius(cfg)``) and keeps each tile's centre, so the result
  equals the untiled one (to float rounding) as long as the DCN offsets stay within the
  overlap's slack.
- ``--checkpoint`` takes a checkpoint prefix or a directory (its latest checkpoint); one
  written for another config is an error listing the variables that do not fit.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image
from tqdm import tqdm

PADDINGS = ('reflection_circle', 'replicate', 'reflection')
IMAGE_MODES = ('RGB', 'RGBA', 'L', 'LA', 'P')


class InferenceError(ValueError):
    """Bad input to edvr.infer."""


# --- input --------------------------------------------------------------------------------

def list_frames(input_dir):
    """Sorted paths of the PNG frames in ``input_dir``; errors on other files or none."""
    if not os.path.isdir(input_dir):
        raise InferenceError(f'--input {input_dir}: not a directory')
    names = sorted(n for n in os.listdir(input_dir)
                   if not n.startswith('.') and os.path.isfile(os.path.join(input_dir, n)))
    others = [n for n in names if not n.lower().endswith('.png')]
    if others:
        raise InferenceError(f'--input {input_dir}: expected only PNG frames, found other files: '
                             f'{", ".join(others[:5])}{" ..." if len(others) > 5 else ""}')
    if not names:
        raise InferenceError(f'--input {input_dir}: no PNG frames found (the folder is empty)')
    return [os.path.join(input_dir, n) for n in names]


def read_frame(path):
    """An 8-bit PNG as float32 (h, w, 3) in [0, 1]."""
    try:
        with Image.open(path) as image:
            if image.format != 'PNG' or image.mode not in IMAGE_MODES:
                raise InferenceError(f'{path}: expected an 8-bit PNG ({"/".join(IMAGE_MODES)}), '
                                     f'got {image.format} in mode {image.mode}')
            rgb = np.asarray(image.convert('RGB'), dtype=np.float32) / 255.0
    except (OSError, SyntaxError) as e:
        raise InferenceError(f'{path}: cannot read as PNG: {e}') from None
    return rgb


def read_clip(paths):
    """(t, h, w, 3) float32 frames; every frame must have the first frame's size."""
    frames = []
    for path in paths:
        frame = read_frame(path)
        if frames and frame.shape != frames[0].shape:
            raise InferenceError(f'{path}: frame size {frame.shape[1]}x{frame.shape[0]} differs from '
                                 f'{os.path.basename(paths[0])} ({frames[0].shape[1]}x{frames[0].shape[0]}); '
                                 f'all frames of a clip must have one size')
        frames.append(frame)
    return np.stack(frames)


def write_frame(path, frame):
    """Float (h, w, 3) in [0, 1] -> 8-bit PNG (clipped, rounded)."""
    Image.fromarray(np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8)).save(path)


# --- temporal windows and spatial padding -------------------------------------------------

def clip_windows(num_frames_in_clip, num_frame, padding):
    """For each frame of the clip, the indices of its model window (list of lists)."""
    from edvr.data.frame_indices import window_indices
    if padding not in PADDINGS:
        raise InferenceError(f'--padding must be one of {", ".join(PADDINGS)}, got {padding!r}')
    minimum = {'replicate': 1, 'reflection': num_frame // 2 + 1, 'reflection_circle': num_frame}[padding]
    if num_frames_in_clip < minimum:
        raise InferenceError(f'the clip has {num_frames_in_clip} frames; --padding {padding} with a '
                             f'{num_frame}-frame model needs at least {minimum} '
                             f'(--padding replicate works with any number)')
    try:
        return [window_indices(center, num_frames_in_clip, num_frame, padding)
                for center in range(num_frames_in_clip)]
    except ValueError as e:
        raise InferenceError(f'--padding {padding}: {e}') from None


def pad_to_multiple(frames, multiple):
    """Pad (..., h, w, c) at the bottom/right to multiples of ``multiple``; returns (padded, (h, w))."""
    h, w = frames.shape[-3], frames.shape[-2]
    pad_h, pad_w = -h % multiple, -w % multiple
    if not pad_h and not pad_w:
        return frames, (h, w)
    widths = [(0, 0)] * (frames.ndim - 3) + [(0, pad_h), (0, pad_w), (0, 0)]
    mode = 'reflect' if pad_h < h and pad_w < w else 'edge'
    return np.pad(frames, widths, mode=mode), (h, w)


def receptive_radius(cfg):
    """Input pixels on each side that can affect an output pixel, ignoring DCN offsets.

    A conservative count of the 3x3 convs, stride-2 convs, pools and resizes on the longest
    path (in input pixels), rounded up to the size multiple.
    """
    from edvr.model import size_multiple
    radius = 1 + 2 * cfg['num_extract_block']       # conv_first, extraction blocks
    if cfg['with_predeblur']:
        radius += 64 if cfg['hr_in'] else 40        # its L3 blocks run at 1/4 (1/16) scale
    radius += 48                                    # pyramid + PCD (L3 convs count x4)
    radius += 24 if cfg['with_tsa'] else 0          # TSA pyramid at 1/2 and 1/4
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
        from edvr.model import build_edvr, output_scale, size_multiple
        from edvr.session import session_config
        self.cfg = cfg
        self.compute_dtype = compute_dtype or tf.float32
        self.scale, self.multiple = output_scale(cfg), size_multiple(cfg)
        self.graph = tf.Graph()
        self._towers = {}
        with self.graph.as_default():
            self.frames = tf.compat.v1.placeholder(
                tf.float32, [1, cfg['num_frame'], None, None, cfg['num_in_ch']], name='frames')
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
                    tf.float32, [1, self.cfg['num_frame'], key[0], key[1], self.cfg['num_in_ch']],
                    name=f'frames_{key[0]}x{key[1]}')
                output, _ = build_edvr(frames, self.cfg, reuse=True,
                                       compute_dtype=self.compute_dtype)
            self._towers[key] = (frames, output)
        return self._towers[key]

    def _run(self, window):
        frames, output = self.tower(window.shape[1], window.shape[2])
        return self.sess.run(output, {frames: window[None]})[0]

    def __call__(self, window, tile=None, overlap=0):
        """window: (t, h, w, c) float32 -> (h * s, w * s, c), s = 4 (1 with hr_in)."""
        padded, (h, w) = pad_to_multiple(window, self.multiple)
        if tile is None:
            out = self._run(padded)
        else:
            s = self.scale
            out = np.zeros((padded.shape[1] * s, padded.shape[2] * s, padded.shape[3]), np.float32)
            for r0, r1, c0, c1 in tile_spans(padded.shape[1], tile, overlap, self.multiple):
                for q0, q1, d0, d1 in tile_spans(padded.shape[2], tile, overlap, self.multiple):
                    part = self._run(padded[:, r0:r1, q0:q1])
                    out[c0 * s:c1 * s, d0 * s:d1 * s] = \
                        part[(c0 - r0) * s:(c1 - r0) * s, (d0 - q0) * s:(d1 - q0) * s]
        return out[:h * self.scale, :w * self.scale]


def restore_clip(cfg, checkpoint, input_dir, output_dir, padding='reflection_circle', tile=None,
                 overlap=None, progress=True, threads=None, compute_dtype=None):
    """Restore every frame of ``input_dir`` into ``output_dir``; returns the written paths.

    ``threads``: the config's threads section (thread pools, see ``edvr.session``);
    ``compute_dtype``: the model's (edvr.precision.compute_dtype; None: float32)."""
    from edvr.model import size_multiple
    paths = list_frames(input_dir)
    multiple = size_multiple(cfg)
    if tile is not None:
        if tile <= 0 or tile % multiple:
            raise InferenceError(f'--tile must be a positive multiple of {multiple}, got {tile}')
        overlap = receptive_radius(cfg) if overlap is None else overlap
        if overlap < 0:
            raise InferenceError(f'--tile_overlap must be >= 0, got {overlap}')
    windows = clip_windows(len(paths), cfg['num_frame'], padding)
    clip = read_clip(paths)
    os.makedirs(output_dir, exist_ok=True)
    restorer = Restorer(cfg, checkpoint, threads, compute_dtype)
    written = []
    try:
        for path, window in tqdm(list(zip(paths, windows)), desc='edvr.infer', unit='frame',
                                 disable=not progress):
            out = restorer(clip[window], tile=tile, overlap=overlap or 0)
            target = os.path.join(output_dir, os.path.basename(path))
            write_frame(target, out)
            written.append(target)
    finally:
        restorer.close()
    return written


def main(argv=None):
    from edvr.checkpoint import CheckpointError
    from edvr.config import ConfigError, load_config
    from edvr import precision
    from edvr.session import add_thread_flags, threads_from_flags
    parser = argparse.ArgumentParser(prog='python -m edvr.infer',
                                     description='Restore a clip of PNG frames with EDVR.')
    parser.add_argument('--config', required=True, help='YAML config of the model')
    parser.add_argument('--checkpoint', required=True, help='checkpoint prefix or directory')
    parser.add_argument('--input', required=True, help='folder of PNG frames (sorted by name)')
    parser.add_argument('--output', required=True, help='folder for the restored frames')
    parser.add_argument('--padding', default='reflection_circle', choices=PADDINGS,
                        help='temporal padding at clip ends (default: reflection_circle)')
    parser.add_argument('--tile', type=int, default=None, help='tile size in input pixels')
    parser.add_argument('--tile_overlap', type=int, default=None,
                        help='context pixels around each tile (default: the receptive radius)')
    add_thread_flags(parser)
    precision.add_precision_flag(parser)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        threads = threads_from_flags(args, config['threads'])
        compute_dtype = precision.compute_dtype(precision.mixed_from_flags(args, config['train']))
        written = restore_clip(config['model'], args.checkpoint, args.input, args.output,
                               args.padding, args.tile, args.tile_overlap, threads=threads,
                               compute_dtype=compute_dtype)
    except (ConfigError, CheckpointError, InferenceError) as e:
        print(f'edvr.infer: {e}', file=sys.stderr)
        return 1
    print(f'edvr.infer: wrote {len(written)} frames to {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
