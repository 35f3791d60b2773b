"""Evaluates a checkpoint on a split: PSNR/SSIM per clip and on average (RGB and Y), next
to bicubic upsampling of the same frames.

    python -m edvr.evaluate [--config configs/edvr_tiny.yaml] --checkpoint runs/demo \\
        --data_dir data/synthetic --split val [--json FILE] [--save_images DIR] \\
        [--crop_border N] [--comparison FILE.png] [--intra_op_threads N] [--inter_op_threads N]

``--config`` defaults to ``config.yaml`` of the checkpoint's run folder (edvr.train writes it).
"""

import json
import os
import sys

import tensorflow as tf

from edvr import cli, precision
from edvr.checkpoint import checkpoint_step, model_variables, resolve_checkpoint, restore
from edvr.comparison import save_comparison
from edvr.config import load_run_config
from edvr.data import reds
from edvr.session import session_config, threads_from_flags
from edvr.validation import Evaluator, format_table


def evaluate(
    config,
    checkpoint,
    data_dir,
    split='val',
    crop_border=0,
    save_images=None,
    comparison=None,
    verify_pixels=False,
):
    """Restores ``checkpoint`` (prefix or folder) and evaluates ``split`` of ``data_dir``,
    with the thread pools of ``config['threads']``, in the precision of
    ``config['train']['mixed_precision']`` (edvr.precision).

    Returns the results dict of ``Evaluator.run`` plus 'checkpoint' and 'step'. With
    ``comparison`` writes the bicubic / EDVR / GT figure of the middle frame of the first clip.
    """
    checkpoint = resolve_checkpoint(checkpoint)
    spec = reds.check_dataset(data_dir, split, verify_pixels=verify_pixels)
    graph = tf.Graph()
    with graph.as_default():
        evaluator = Evaluator(
            data_dir,
            spec,
            config,
            crop_border=crop_border,
            compute_dtype=precision.compute_dtype(config['train']['mixed_precision']),
        )
        kept = {}
        first = spec.videos[0]

        def keep(frame):
            if frame['clip'] == first.name and frame['frame'] == first.nframes // 2:
                kept.update(frame)

        with tf.compat.v1.Session(
            graph=graph, config=session_config(config.get('threads'))
        ) as sess:
            restore(sess, checkpoint, model_variables())
            results = evaluator.run(sess, save_images=save_images, on_frame=keep)
    if comparison and kept:
        gain = (
            results['clips'][first.name]['edvr']['psnr']
            - results['clips'][first.name]['bicubic']['psnr']
        )
        save_comparison(
            comparison,
            kept['bicubic'],
            kept['edvr'],
            kept['gt'],
            caption=f'clip {first.name} frame {kept["frame"]}: EDVR {gain:+.2f} dB '
            f'PSNR over bicubic (clip average)',
        )
    try:
        step = checkpoint_step(checkpoint)
    except ValueError:
        step = None
    results.update(checkpoint=checkpoint, step=step, split=split, data_dir=data_dir)
    return results


def make_parser():
    parser = cli.tool_parser('evaluate', __doc__.split('\n\n')[0], checkpoint=True)
    parser.add_argument('--data_dir', required=True, help='dataset in the seed layout')
    parser.add_argument('--split', default='val', choices=reds.SPLITS)
    parser.add_argument('--json', help='write the results here as JSON')
    parser.add_argument('--save_images', help='write EDVR output frames here (CLIP/%%08d.png)')
    parser.add_argument(
        '--crop_border',
        type=int,
        default=None,
        help='pixels dropped at each border before the metrics '
        '(default: train.val_crop_border of the config)',
    )
    parser.add_argument('--comparison', help='write a bicubic / EDVR / GT crop figure here')
    parser.add_argument(
        '--verify_pixels',
        action='store_true',
        help='check every PNG fully before starting, not only its header',
    )
    precision.add_precision_flag(parser)
    return parser


def run(args):
    config = load_run_config(args.config, args.checkpoint)
    config['threads'] = threads_from_flags(args, config['threads'])
    config['train']['mixed_precision'] = precision.mixed_from_flags(args, config['train'])
    crop_border = (
        config['train']['val_crop_border'] if args.crop_border is None else args.crop_border
    )
    results = evaluate(
        config,
        args.checkpoint,
        args.data_dir,
        args.split,
        crop_border,
        args.save_images,
        args.comparison,
        args.verify_pixels,
    )
    print(
        f'{args.split} of {args.data_dir}, checkpoint {results["checkpoint"]}, '
        f'crop_border {crop_border}'
    )
    print(format_table(results))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    if args.comparison:
        print(f'wrote {args.comparison}')


def main(argv=None):
    return cli.main('evaluate', make_parser(), run, argv)


if __name__ == '__main__':
    sys.exit(main())
