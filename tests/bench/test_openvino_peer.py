"""The OpenVINO peer of the benchmarks (bench/openvino_peer.py): BasicSR's EDVR on our weights,
converted by OpenVINO, restores the same frame as our Restorer.

A small EDVR (TSA, 3 frames, 4 deformable groups) on a 16x24 window with offsets of about 1.5
pixels, so the deformable sampling's layout matters. Tolerances:
- f32: 1e-4, the parity tests' bound between BasicSR and our model (tests/model/test_model_parity.py);
- bf16: the max error within 0.03, mean error within 2^-8 (bfloat16's unit roundoff at 1, the
  output's scale), and on a CPU with native bfloat16 the output must differ from float32's by more
  than float32 rounding (1e-5), or the precision hint did nothing.
Skips without openvino, torch or torchvision (``pip install -r requirements-torch.txt``).
"""

import numpy as np
import pytest

from bench import openvino_peer
from edvr import precision
from edvr.config import parse_config
from tests.model.model_testing import random_checkpoint

F32_TOLERANCE = 1e-4
BF16_MAX_ERROR, BF16_MEAN_ERROR = 0.03, 2.0**-8
CFG = dict(
    num_feat=32,
    num_frame=3,
    deformable_groups=4,
    num_extract_block=2,
    num_reconstruct_block=2,
    with_tsa=True,
)


@pytest.fixture(scope='module')
def outputs(tmp_path_factory):
    """(our float32 output, {precision: the peer's output}, the peer's version)."""
    reason = openvino_peer.missing_requirement()
    if reason:
        pytest.skip(reason)
    from edvr.inference import Restorer

    cfg = parse_config({'model': CFG})['model']
    folder = tmp_path_factory.mktemp('openvino_peer')
    values = random_checkpoint(cfg, folder / 'edvr', offset_scale=1.5)
    window = np.random.default_rng(0).uniform(size=(3, 16, 24, 3)).astype(np.float32)
    restorer = Restorer(cfg, str(folder))
    try:
        ours = restorer(window)
    finally:
        restorer.close()
    try:
        peer = openvino_peer.OpenVinoPeer(cfg, values, window)
    except openvino_peer.PeerError as error:
        if 'cannot download basicsr' in str(error):
            pytest.skip(str(error).splitlines()[-1])
        raise
    try:
        theirs = {p: peer.output(p) for p in openvino_peer.PRECISIONS}
        seconds = peer.run('f32')
    finally:
        peer.close()
    assert seconds > 0
    return ours, theirs, peer.version


def test_f32_matches_our_model(outputs):
    ours, theirs, version = outputs
    assert theirs['f32'].shape == ours.shape == (64, 96, 3)
    error = np.abs(theirs['f32'] - ours).max()
    print(f'OpenVINO {version} f32: max abs error {error:.3g}')
    assert error < F32_TOLERANCE


def test_bf16_is_close_and_is_bfloat16(outputs):
    ours, theirs, _ = outputs
    error = np.abs(theirs['bf16'] - ours)
    print(f'bf16: max abs error {error.max():.3g}, mean {error.mean():.3g}')
    assert theirs['bf16'].shape == ours.shape
    assert error.max() < BF16_MAX_ERROR and error.mean() < BF16_MEAN_ERROR
    if precision.cpu_has_native_bfloat16():
        assert np.abs(theirs['bf16'] - theirs['f32']).max() > 1e-5


def test_a_config_basicsr_cannot_express_is_refused():
    cfg = parse_config({'model': dict(CFG, num_upsample_feat=32)})['model']
    with pytest.raises(ValueError, match='num_upsample_feat 64, the config has 32'):
        openvino_peer.basicsr_kwargs(cfg)


def test_summary_and_table_from_rounds_side_by_side():
    from bench import floor

    results = {
        floor.INFER_FRAME_OPENVINO: {
            'seconds': 3.0,
            'openvino': '2026.4.1',
            'openvino_setup_seconds': {'convert': 9.0},
            'frame': [180, 320],
            'beside_seconds_by_label': {
                'ours fp32': 5.0,
                'openvino f32': 6.0,
                'openvino bf16': 4.0,
            },
        }
    }
    summary = floor.openvino_summary(results)
    assert summary['ratios'] == {
        'ours mixed / openvino bf16': 0.75,
        'ours fp32 / openvino f32': 5.0 / 6.0,
        'ours mixed / ours fp32': 0.6,
        'openvino bf16 / openvino f32': 4.0 / 6.0,
    }
    lines = floor.format_openvino_table(summary)
    assert 'OpenVINO 2026.4.1' in lines[0] and '180x320' in lines[0]
    assert any(
        line.startswith('ours mixed / openvino bf16') and line.endswith('0.75x') for line in lines
    )
    assert floor.openvino_summary({}) == {}


def test_a_skip_is_reported_with_its_reason():
    from bench import conftest, floor

    conftest.record_skip(floor.INFER_FRAME_OPENVINO, 'no openvino')
    try:
        summary = floor.openvino_summary(conftest.MODEL_RESULTS)
    finally:
        del conftest.MODEL_RESULTS[floor.INFER_FRAME_OPENVINO]
    assert floor.format_openvino_table(summary) == ['OpenVINO peer: not measured (no openvino)']
