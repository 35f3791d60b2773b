"""Restore a clip: PNG frames or a video file in, PNG frames or a video file out.

    python -m edvr.infer --checkpoint RUN_DIR --input clip.mp4 --output restored.mp4
        [--config CFG] [--codec libx264] [--crf N] [--fps F] [--no_feature_cache]
        [--padding reflection_circle|replicate|reflection|circle] [--tile N --tile_overlap M]
        [--intra_op_threads N] [--inter_op_threads N]

- ``--input``: a folder of ``*.png`` frames (sorted by name; hidden files and folders are
  skipped, any other file is an error; one size for all) or a video file FFmpeg reads.
- ``--output``: a video file when it has an extension (container from the extension, H.264
  by default, ``--codec``, ``--crf``; frame rate, time base, timestamps and audio streams of
  the input kept; ``--fps`` for PNG input), else a folder of PNGs (the input's names, or
  ``%08d.png`` from a video). Written under a temporary name and renamed at the end.
  edvr.video does the reading and writing; frames stream through (memory does not grow
  with the clip).
- ``--config`` defaults to ``config.yaml`` in the checkpoint's run directory (edvr.train
  writes it there).
- Each frame is restored from the ``num_frame`` window centred on it; at clip ends the
  window is padded in time (``--padding``; default ``reflection_circle`` as in BasicSR's
  REDS test). A clip shorter than the padding needs is an error that names the minimum
  (``reflection_circle``, ``circle``: num_frame frames; ``reflection``: num_frame // 2 + 1;
  ``replicate``: any length, even one frame).
- Each frame's features are computed once and reused by the windows that contain it
  (edvr.model.feature_cache); ``--no_feature_cache`` runs the whole model per window.
- Frames whose height or width is not a multiple of 4 (16 with ``hr_in``) are padded at
  the bottom/right (mirror, or edge when too small; as edvr.evaluate) and the output cropped
  back.
- ``--tile N`` restores N x N input tiles with ``--tile_overlap`` pixels of context on every
  side (default: ``receptive_radius(cfg)``) and keeps each tile's centre, so the result
  equals the untiled one (to float rounding) as long as the DCN offsets stay within the
  overlap's slack.
- ``--checkpoint`` takes a checkpoint prefix or a directory (its latest checkpoint); one
  written for another config is an error listing the variables that do not fit.

The library: ``edvr.inference``; exit codes: ``edvr.cli``.
"""

import sys

from edvr import cli
from edvr.data.frame_indices import PADDINGS


def make_parser():
    parser = cli.tool_parser(
        'infer', 'Restore a clip (PNG frames or a video) with EDVR.', checkpoint=True
    )
    parser.add_argument(
        '--input', required=True, help='folder of PNG frames (sorted by name) or a video file'
    )
    parser.add_argument(
        '--output',
        required=True,
        help='video file (with an extension: .mp4, .mkv, ...) or folder for PNGs',
    )
    parser.add_argument('--codec', help='video codec of a video output (default: libx264)')
    parser.add_argument(
        '--crf',
        type=int,
        help='constant rate factor of libx264/libx265/libvpx '
        '(default: the codec\'s; 0: lossless with libx264)',
    )
    parser.add_argument(
        '--fps',
        type=float,
        help='frame rate of a video made from PNG frames (default for a video '
        'input: its own rate and timestamps)',
    )
    parser.add_argument(
        '--padding',
        default=PADDINGS[0],
        choices=PADDINGS,
        help=f'temporal padding at clip ends (default: {PADDINGS[0]})',
    )
    parser.add_argument('--tile', type=int, default=None, help='tile size in input pixels')
    parser.add_argument(
        '--tile_overlap',
        type=int,
        default=None,
        help='context pixels around each tile (default: the receptive radius)',
    )
    parser.add_argument(
        '--no_feature_cache',
        action='store_true',
        help='run the whole model on every window (each frame\'s features '
        'are otherwise computed once)',
    )
    from edvr import precision

    precision.add_precision_flag(parser)
    return parser


def run(args):
    from edvr import precision
    from edvr.config import load_run_config
    from edvr.inference import restore_clip
    from edvr.session import threads_from_flags

    config = load_run_config(args.config, args.checkpoint)
    threads = threads_from_flags(args, config['threads'])
    compute_dtype = precision.compute_dtype(precision.mixed_from_flags(args, config['train']))
    try:
        written = restore_clip(
            config['model'],
            args.checkpoint,
            args.input,
            args.output,
            args.padding,
            args.tile,
            args.tile_overlap,
            threads=threads,
            feature_cache=not args.no_feature_cache,
            codec=args.codec,
            crf=args.crf,
            fps=args.fps,
            compute_dtype=compute_dtype,
        )
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f'nothing written to {args.output}') from None
    if len(written) == 1 and written[0] == args.output:
        print(f'edvr.infer: wrote {args.output}')
    else:
        print(f'edvr.infer: wrote {len(written)} frames to {args.output}')


def main(argv=None):
    return cli.main('infer', make_parser(), run, argv)


if __name__ == '__main__':
    sys.exit(main())
