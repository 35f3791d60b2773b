"""edvr.freeze: the frozen .pb and the SavedModel reload and give the checkpoint's output."""

import numpy as np
import pytest
import tensorflow as tf

from edvr import cli, freeze
from edvr.checkpoint import assign_weights
from edvr.config import parse_config
from edvr.model import build_edvr
from tests.model.model_testing import random_checkpoint

CFG = parse_config(
    {
        'model': dict(
            num_feat=8,
            num_frame=3,
            deformable_groups=1,
            num_extract_block=1,
            num_reconstruct_block=1,
            num_upsample_feat=8,
            with_predeblur=True,
        )
    }
)['model']


def test_frozen_graph_and_saved_model_match_the_checkpoint(tmp_path, capsys):
    values = random_checkpoint(CFG, tmp_path / 'ckpt' / 'model', seed=4, offset_scale=2.0)
    config = tmp_path / 'cfg.yaml'
    config.write_text(
        'model:\n'
        + ''.join(f'  {k}: {"null" if v is None else str(v).lower()}\n' for k, v in CFG.items())
    )
    args = [
        '--config',
        str(config),
        '--checkpoint',
        str(tmp_path / 'ckpt'),
        '--output',
        str(tmp_path / 'export'),
    ]
    assert freeze.main(args) == 0
    frozen_path = tmp_path / 'export' / 'edvr_frozen.pb'
    saved_model_dir = str(tmp_path / 'export' / 'saved_model')
    frames = np.random.default_rng(0).uniform(0, 1, (1, 3, 8, 12, 3)).astype(np.float32)

    with tf.Graph().as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, frames.shape)
        output, _ = build_edvr(inputs, CFG)
        with tf.compat.v1.Session() as sess:
            assign_weights(sess, values)
            expected = sess.run(output, {inputs: frames})

    graph_def = tf.compat.v1.GraphDef()
    with open(frozen_path, 'rb') as f:
        graph_def.ParseFromString(f.read())
    assert not [n.name for n in graph_def.node if n.op in ('VariableV2', 'VarHandleOp')]
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name='')
        with tf.compat.v1.Session(graph=graph) as sess:
            from_pb = sess.run('output:0', {'frames:0': frames})

    with tf.Graph().as_default() as graph:
        with tf.compat.v1.Session(graph=graph) as sess:
            meta = tf.compat.v1.saved_model.loader.load(
                sess, [tf.compat.v1.saved_model.SERVING], saved_model_dir
            )
            signature = meta.signature_def['serving_default']
            from_saved = sess.run(
                signature.outputs['output'].name, {signature.inputs['frames'].name: frames}
            )

    assert expected.shape == (1, 32, 48, 3)
    np.testing.assert_allclose(from_pb, expected, atol=1e-6)
    np.testing.assert_allclose(from_saved, expected, atol=1e-6)

    # a second export into the same folder is refused
    assert freeze.main(args) == cli.EXIT_USAGE
    assert 'saved_model exists; choose an empty folder' in capsys.readouterr().err


def test_fixed_sizes_must_fit_the_model(tmp_path):
    with pytest.raises(
        ValueError, match='--height must be a positive multiple of 4 for this config, got 10'
    ):
        freeze.export(CFG, str(tmp_path), str(tmp_path / 'export'), height=10)
