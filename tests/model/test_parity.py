"""Parity with BasicSR 1.4.2's EDVR: same weights (through edvr.convert), outputs within 1e-4."""

import numpy as np
import pytest
import tensorflow as tf

from edvr.config import parse_config
from edvr.checkpoint import assign_weights, model_variable_shapes
from edvr.convert import to_tf
from edvr.model import build_edvr
from tests.model.basicsr_oracle import BASICSR_ARGS
from tests.model.model_testing import run_oracle

TOLERANCE = 1e-4
RESIDUAL_GAIN = 5.0  # residual std ~0.1-0.15, as in a trained model

M_WIDTHS = dict(
    num_feat=64, num_frame=5, deformable_groups=8, num_extract_block=5, num_reconstruct_block=10
)
VARIANTS = {
    # LR input of 20 x 28: the L3 level and the TSA pyramid have odd sizes (5 x 7), where
    # TF's 'SAME' padding would differ from PyTorch's.
    'm_tsa': (dict(M_WIDTHS, with_tsa=True), (20, 28)),
    'predeblur': (dict(M_WIDTHS, with_predeblur=True), (20, 28)),
    'hr_in': (dict(M_WIDTHS, with_predeblur=True, hr_in=True), (80, 112)),
    'no_tsa_3frames': (
        dict(
            num_feat=32,
            num_frame=3,
            deformable_groups=4,
            num_extract_block=2,
            num_reconstruct_block=2,
            with_tsa=False,
            center_frame_idx=0,
        ),
        (16, 12),
    ),
}


def _frames(cfg, h, w, seed=2):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (1, cfg['num_frame'], h, w, 3)).astype(np.float32)  # (b, t, h, w, c)


@pytest.fixture(scope='module')
def basicsr_outputs(basicsr_source, tmp_path_factory):
    """BasicSR's outputs and weights for every variant, from one oracle process."""
    folder = str(tmp_path_factory.mktemp('oracle'))
    requests = {}
    for variant, (overrides, (h, w)) in VARIANTS.items():
        cfg = parse_config({'model': overrides})['model']
        requests[variant] = dict(
            edvr_kwargs={k: cfg[k] for k in BASICSR_ARGS},
            frames=_frames(cfg, h, w),
            seed=1,
            residual_gain=RESIDUAL_GAIN,
        )
    cfg = parse_config({'model': VARIANTS['no_tsa_3frames'][0]})['model']
    requests['pth'] = dict(
        edvr_kwargs={k: cfg[k] for k in BASICSR_ARGS},
        frames=_frames(cfg, 12, 16, 3),
        seed=5,
        residual_gain=RESIDUAL_GAIN,
        pth_path=f'{folder}/edvr.pth',
    )
    results = run_oracle(basicsr_source, folder, requests)
    results['pth_path'] = f'{folder}/edvr.pth'
    return results


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_matches_basicsr(basicsr_outputs, variant):
    overrides, (h, w) = VARIANTS[variant]
    cfg = parse_config({'model': overrides})['model']
    frames = _frames(cfg, h, w)
    oracle, state_dict = basicsr_outputs[variant]

    values = to_tf(state_dict, cfg, model_variable_shapes(cfg))
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, frames.shape)
        output, endpoints = build_edvr(inputs, cfg)
        with tf.compat.v1.Session(graph=graph) as sess:
            assign_weights(sess, values)
            got, residual, offsets, aligned, fused = sess.run(
                [
                    output,
                    endpoints['residual'],
                    endpoints['dcn_offsets'],
                    endpoints['aligned'],
                    endpoints['fused'],
                ],
                {inputs: frames},
            )
    expected = oracle['output']

    assert got.shape == expected.shape
    error = np.abs(got - expected).max()
    offset_size = min(np.abs(o).mean() for o in offsets.values())
    print(
        f'parity {variant}: max abs error {error:.3g}, residual std {residual.std():.3g}, '
        f'smallest mean |offset| {offset_size:.2f}'
    )
    assert error < TOLERANCE
    # The contract is the output bound above; the features before reconstruction are
    # compared relative to their size too, so a small error upstream (a border pixel of the
    # TSA pooling, say) cannot hide under the output's scale.
    for name, value in (('aligned', aligned), ('fused', fused)):
        relative = np.abs(value - oracle[name]).max() / np.abs(oracle[name]).max()
        print(f'  {name}: max abs error relative to max abs value {relative:.3g}')
        assert relative < 1e-5, name
    # Offsets must move samples across pixels, or the layout of the offsets goes untested.
    assert offset_size > 0.8
    assert residual.std() > 0.05


def test_convert_cli_then_infer_on_a_basicsr_pth(basicsr_outputs, tmp_path):
    """A .pth saved by torch as BasicSR saves it -> python -m edvr.convert -> edvr.infer."""
    from edvr import convert, inference

    overrides = VARIANTS['no_tsa_3frames'][0]
    cfg = parse_config({'model': overrides})['model']
    config = tmp_path / 'cfg.yaml'
    config.write_text(
        'model:\n'
        + ''.join(f'  {k}: {"null" if v is None else str(v).lower()}\n' for k, v in cfg.items())
    )
    frames = _frames(cfg, 12, 16, 3)
    oracle, _ = basicsr_outputs['pth']
    assert (
        convert.main(
            [
                '--from_torch',
                basicsr_outputs['pth_path'],
                '--config',
                str(config),
                '--output',
                str(tmp_path / 'ckpt' / 'edvr'),
            ]
        )
        == 0
    )
    restorer = inference.Restorer(cfg, str(tmp_path / 'ckpt'))
    try:
        got = restorer(frames[0])
    finally:
        restorer.close()
    assert np.abs(got - oracle['output'][0]).max() < TOLERANCE
