"""Graph structure: output and endpoint shapes for every preset and variant, scope names,
and the PyTorch-compatible building blocks against NumPy oracles."""

import os

import numpy as np
import pytest
import tensorflow as tf

from edvr.config import load_config, parse_config
from edvr.model import build_edvr
from edvr.model import layers

CONFIGS = os.path.join(os.path.dirname(__file__), '..', '..', 'configs')
SMALL = dict(
    num_feat=8,
    num_frame=3,
    deformable_groups=2,
    num_extract_block=1,
    num_reconstruct_block=1,
    num_upsample_feat=8,
)


def _variable(name):
    return next(v for v in tf.compat.v1.global_variables() if v.op.name == name)


def _run(cfg, b, h, w, static=True):
    graph = tf.Graph()
    with graph.as_default():
        shape = (
            [b, cfg['num_frame'], h, w, 3] if static else [None, cfg['num_frame'], None, None, 3]
        )
        frames = tf.compat.v1.placeholder(tf.float32, shape)
        output, endpoints = build_edvr(frames, cfg)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            feed = {frames: np.random.default_rng(0).uniform(0, 1, (b, cfg['num_frame'], h, w, 3))}
            got = sess.run(
                {
                    'output': output,
                    'aligned': endpoints['aligned'],
                    'fused': endpoints['fused'],
                    'offsets': endpoints['dcn_offsets'],
                },
                feed,
            )
            got['variables'] = {v.op.name for v in tf.compat.v1.global_variables()}
    return got


@pytest.mark.parametrize('preset', ['edvr', 'edvr_m', 'edvr_l', 'edvr_tiny'])
def test_preset_shapes(preset):
    cfg = load_config(os.path.join(CONFIGS, f'{preset}.yaml'))['model']
    got = _run(cfg, 1, 8, 12)
    assert got['output'].shape == (1, 32, 48, 3)
    f, g = cfg['num_feat'], cfg['deformable_groups']
    assert got['aligned'].shape == (1, cfg['num_frame'], 8, 12, f)
    assert got['fused'].shape == (1, 8, 12, f)
    sizes = {'l3': (2, 3), 'l2': (4, 6), 'l1': (8, 12), 'cascading': (8, 12)}
    assert list(got['offsets']) == ['l3', 'l2', 'l1', 'cascading']
    for level, (h, w) in sizes.items():
        assert got['offsets'][level].shape == (cfg['num_frame'], h, w, 2 * g * 9)


@pytest.mark.parametrize(
    'overrides, size, out',
    [
        (dict(with_tsa=False), (8, 4), (32, 16)),
        (dict(with_predeblur=True), (8, 4), (32, 16)),
        (dict(with_predeblur=True, hr_in=True), (32, 16), (32, 16)),
        (dict(num_frame=5, center_frame_idx=0), (4, 8), (16, 32)),
    ],
)
def test_variant_shapes_with_dynamic_sizes(overrides, size, out):
    cfg = parse_config({'model': dict(SMALL, **overrides)})['model']
    got = _run(cfg, 2, *size, static=False)
    assert got['output'].shape == (2, *out, 3)


def test_scopes_read_like_the_paper():
    cfg = parse_config({'model': dict(SMALL, with_predeblur=True)})['model']
    names = _run(cfg, 1, 4, 4)['variables']
    for name in [
        'edvr/predeblur/l1_resblock_4/conv2/kernel',
        'edvr/feature_extraction/conv_1x1/kernel',
        'edvr/feature_extraction/pyramid/l3_conv2/bias',
        'edvr/pcd_alignment/l3/dcn/offset_mask_conv/kernel',
        'edvr/pcd_alignment/cascading/dcn/kernel',
        'edvr/tsa_fusion/temporal_attention/reference_embedding/kernel',
        'edvr/tsa_fusion/spatial_attention/pyramid_conv3/kernel',
        'edvr/reconstruction/upconv2/kernel',
    ]:
        assert name in names, name


def test_offsets_of_every_dcn_are_returned():
    got = _run(parse_config({'model': SMALL})['model'], 1, 4, 4)
    assert len(got['offsets']) == 4


def test_zero_offsets_make_the_dcn_a_plain_conv():
    # The offset convs start at zero: mask sigmoid(0) = 0.5, so DCN = 0.5 * conv.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 6, 5, 4)).astype(np.float32)
    with tf.Graph().as_default():
        y, offsets = layers.dcn_pack(tf.constant(x), tf.constant(x), 3, deformable_groups=2)
        kernel = _variable('dcn/kernel')
        plain = tf.nn.conv2d(x, kernel, [1, 1, 1, 1], 'SAME') * 0.5
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            y, plain, offsets = sess.run([y, plain, offsets])
    np.testing.assert_allclose(y, plain, atol=1e-5)
    assert offsets.shape == (1, 6, 5, 36) and not offsets.any()


def _torch_style_pool(x, reducer, pad_value):
    """NumPy 3x3, stride 2, padding 1 pooling over (n, h, w, c), as torch.nn.*Pool2d."""
    n, h, w, c = x.shape
    padded = np.full((n, h + 2, w + 2, c), pad_value, x.dtype)
    padded[:, 1:-1, 1:-1] = x
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    out = np.empty((n, ho, wo, c), x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, i, j] = reducer(padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3], axis=(1, 2))
    return out


def _torch_style_upsample2(x):
    """NumPy bilinear x2, align_corners=False: source = (dst + 0.5) / 2 - 0.5 clamped at 0."""
    n, h, w, c = x.shape

    def axis_weights(size):
        src = np.maximum((np.arange(2 * size) + 0.5) / 2 - 0.5, 0)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, size - 1)
        return lo, hi, src - lo

    y0, y1, ly = axis_weights(h)
    x0, x1, lx = axis_weights(w)
    rows = x[:, y0] * (1 - ly)[None, :, None, None] + x[:, y1] * ly[None, :, None, None]
    return rows[:, :, x0] * (1 - lx)[None, None, :, None] + rows[:, :, x1] * lx[None, None, :, None]


@pytest.mark.parametrize('h, w', [(5, 7), (6, 4)])
def test_pooling_and_upsampling_follow_pytorch(h, w):
    x = np.random.default_rng(2).normal(size=(2, h, w, 3)).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        got_max, got_avg, got_up = sess.run(
            [
                layers.max_pool_3x3_s2(tf.constant(x)),
                layers.avg_pool_3x3_s2(tf.constant(x)),
                layers.upsample_bilinear(tf.constant(x)),
            ]
        )
    np.testing.assert_allclose(got_max, _torch_style_pool(x, np.max, -np.inf), atol=1e-6)
    np.testing.assert_allclose(got_avg, _torch_style_pool(x, np.sum, 0) / 9, atol=1e-6)
    np.testing.assert_allclose(got_up, _torch_style_upsample2(x), atol=1e-6)


def test_stride2_conv_pads_like_pytorch():
    # PyTorch pads 1 on every side; TF 'SAME' would pad (0, 1) for even sizes.
    x = np.random.default_rng(3).normal(size=(1, 6, 6, 2)).astype(np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        y = layers.conv2d(tf.constant(x), 1, stride=2, name='c')
        sess.run(tf.compat.v1.global_variables_initializer())
        kernel = _variable('c/kernel')
        got, k = sess.run([y, kernel])
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.array(
        [
            [np.sum(padded[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] * k[..., 0]) for j in range(3)]
            for i in range(3)
        ]
    )
    np.testing.assert_allclose(got[0, ..., 0], expected, atol=1e-5)
