"""Export a trained EDVR as a frozen inference graph (.pb) and a SavedModel.

    python -m edvr.freeze [--config CFG] --checkpoint CKPT --output DIR [--height H --width W]
        [--intra_op_threads N] [--inter_op_threads N]

``--config`` defaults to ``config.yaml`` of the checkpoint's run directory (edvr.train writes it).

Writes ``DIR/edvr_frozen.pb`` (variables folded into constants, the input Ascend's offline
model converter consumes) and ``DIR/saved_model`` (signature ``serving_default``). Both
take ``frames:0``, float32 (1, num_frame, H, W, num_in_ch) in [0, 1] (H, W dynamic unless
given; multiples of 4, or 16 with hr_in) and give ``output:0`` (1, 4H, 4W, num_out_ch).
Deformable convolutions appear as the ``ops`` backend built them: pure TF ops with
EDVR_OPS_BACKEND=reference, custom ops (which need the op library loaded) with the native one.
"""

import os
import sys

from edvr import cli

INPUT_NAME = 'frames'
OUTPUT_NAME = 'output'
FROZEN_NAME = 'edvr_frozen.pb'
SAVED_MODEL_DIR = 'saved_model'


def export(cfg, checkpoint, output_dir, height=None, width=None, threads=None):
    """Write the frozen graph and the SavedModel; returns (frozen_path, saved_model_dir).
    ``threads``: the config's threads section (edvr.session)."""
    import tensorflow as tf

    from edvr.checkpoint import resolve_checkpoint, restore
    from edvr.model import build_edvr
    from edvr.model import size_multiple
    from edvr.session import session_config

    multiple = size_multiple(cfg)
    for flag, value in (('--height', height), ('--width', width)):
        if value is not None and (value <= 0 or value % multiple):
            raise ValueError(
                f'{flag} must be a positive multiple of {multiple} for this config, got {value}'
            )
    checkpoint = resolve_checkpoint(checkpoint)
    os.makedirs(output_dir, exist_ok=True)
    frozen_path = os.path.join(output_dir, FROZEN_NAME)
    saved_model_dir = os.path.join(output_dir, SAVED_MODEL_DIR)
    if os.path.exists(saved_model_dir):
        raise FileExistsError(
            f'--output {output_dir}: {saved_model_dir} exists; choose an empty folder'
        )
    graph = tf.Graph()
    with graph.as_default():
        frames = tf.compat.v1.placeholder(
            tf.float32, [1, cfg['num_frame'], height, width, cfg['num_in_ch']], name=INPUT_NAME
        )
        output, _ = build_edvr(frames, cfg)
        output = tf.identity(output, name=OUTPUT_NAME)
        with tf.compat.v1.Session(graph=graph, config=session_config(threads)) as sess:
            restore(sess, checkpoint, tf.compat.v1.global_variables())
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [OUTPUT_NAME]
            )
            with tf.io.gfile.GFile(frozen_path, 'wb') as f:
                f.write(frozen.SerializeToString())
            builder = tf.compat.v1.saved_model.Builder(saved_model_dir)
            signature = tf.compat.v1.saved_model.predict_signature_def(
                inputs={INPUT_NAME: frames}, outputs={OUTPUT_NAME: output}
            )
            builder.add_meta_graph_and_variables(
                sess,
                [tf.compat.v1.saved_model.SERVING],
                signature_def_map={
                    tf.compat.v1.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: signature
                },
            )
            builder.save()
    return frozen_path, saved_model_dir


def make_parser():
    parser = cli.tool_parser('freeze', __doc__.split('\n')[0], checkpoint=True)
    parser.add_argument('--output', required=True, help='folder for the .pb and the SavedModel')
    parser.add_argument(
        '--height', type=int, default=None, help='fixed input height (default: dynamic)'
    )
    parser.add_argument(
        '--width', type=int, default=None, help='fixed input width (default: dynamic)'
    )
    return parser


def run(args):
    from edvr.config import load_run_config
    from edvr.session import threads_from_flags

    config = load_run_config(args.config, args.checkpoint)
    frozen, saved = export(
        config['model'],
        args.checkpoint,
        args.output,
        args.height,
        args.width,
        threads_from_flags(args, config['threads']),
    )
    print(f'edvr.freeze: wrote {frozen} and {saved}')


def main(argv=None):
    return cli.main('freeze', make_parser(), run, argv)


if __name__ == '__main__':
    sys.exit(main())
