"""edvr.convert: BasicSR / original EDVR state dicts (built with NumPy) to TF and back."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from edvr import cli, convert
from edvr.config import parse_config
from edvr.checkpoint import model_variable_shapes, write_weights
from edvr.convert import ConversionError, layer_table, to_basicsr, to_tf

REPO = os.path.join(os.path.dirname(__file__), '..', '..')
CFG = parse_config(
    {
        'model': dict(
            num_feat=8,
            num_frame=3,
            deformable_groups=2,
            num_extract_block=2,
            num_reconstruct_block=1,
            num_upsample_feat=4,
            with_predeblur=True,
        )
    }
)['model']


_SHAPES = {}


def shapes_of(cfg):
    """model_variable_shapes, built once per config (graph building is the slow part)."""
    key = tuple(sorted(cfg.items()))
    if key not in _SHAPES:
        _SHAPES[key] = model_variable_shapes(cfg)
    return _SHAPES[key]


def basicsr_state_dict(cfg, seed=0):
    """A state dict with BasicSR's names and shapes (out, in, kh, kw), random values."""
    rng = np.random.default_rng(seed)
    shapes = shapes_of(cfg)
    state = {}
    for tf_scope, module, _ in layer_table(cfg):
        kh, kw, cin, cout = shapes[f'{tf_scope}/kernel']
        state[f'{module}.weight'] = rng.normal(size=(cout, cin, kh, kw)).astype(np.float32)
        state[f'{module}.bias'] = rng.normal(size=(cout,)).astype(np.float32)
    return state


def test_basicsr_names_cover_the_architecture():
    names = set(basicsr_state_dict(CFG))
    # spot checks against BasicSR 1.4.2's module names
    for name in [
        'predeblur.resblock_l1.4.conv2.weight',
        'predeblur.stride_conv_l3.bias',
        'conv_1x1.weight',
        'feature_extraction.1.conv1.weight',
        'conv_l3_2.weight',
        'pcd_align.offset_conv3.l1.weight',
        'pcd_align.dcn_pack.l3.conv_offset.weight',
        'pcd_align.dcn_pack.l2.weight',
        'pcd_align.feat_conv.l2.bias',
        'pcd_align.cas_dcnpack.conv_offset.bias',
        'fusion.spatial_attn_add2.weight',
        'fusion.spatial_attn_l3.weight',
        'reconstruction.0.conv2.bias',
        'conv_hr.weight',
        'conv_last.bias',
    ]:
        assert name in names, name
    assert 'pcd_align.offset_conv3.l3.weight' not in names  # L3 has two offset convs


def test_round_trip_through_a_checkpoint(tmp_path):
    state = basicsr_state_dict(CFG)
    values = to_tf({'params': state}, CFG, shapes_of(CFG))
    prefix = write_weights(values, CFG, str(tmp_path / 'ckpt'))
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    restored = {name: reader.get_tensor(name) for name in values}
    back = to_basicsr(restored, CFG)
    assert set(back) == set(state)
    for name in state:
        np.testing.assert_array_equal(back[name], state[name], err_msg=name)


def test_plain_conv_layout():
    state = basicsr_state_dict(CFG)
    values = to_tf(state, CFG, shapes_of(CFG))
    w = state['conv_l2_1.weight']  # (out, in, kh, kw)
    kernel = values['edvr/feature_extraction/pyramid/l2_conv1/kernel']  # (kh, kw, in, out)
    assert kernel[2, 0, 5, 3] == w[3, 5, 2, 0]


def test_dcn_offset_channels_become_dx_dy_mask_blocks():
    # torchvision: offset channel 2*(g*9 + k) is dy, 2*(g*9 + k) + 1 is dx, then 18 mask channels
    # per group in the third chunk. ops: [dx block | dy block | mask block], channel g*9 + k.
    state = basicsr_state_dict(CFG)
    values = to_tf(state, CFG, shapes_of(CFG))
    torch_bias = state['pcd_align.dcn_pack.l1.conv_offset.bias']
    tf_bias = values['edvr/pcd_alignment/l1/dcn/offset_mask_conv/bias']
    gk = 2 * 9
    expected = {
        0: 1,
        5: 11,
        9: 19,
        17: 35,  # dx of (g0,k0), (g0,k5), (g1,k0), (g1,k8)
        gk + 0: 0,
        gk + 5: 10,
        gk + 9: 18,  # dy of the same points
        2 * gk + 0: 2 * gk,
        2 * gk + 13: 2 * gk + 13,
    }  # mask keeps its order
    for tf_channel, torch_channel in expected.items():
        assert tf_bias[tf_channel] == torch_bias[torch_channel], tf_channel


def test_pixel_shuffle_weights_feed_depth_to_space():
    # A conv's output in PyTorch order, pixel-shuffled as torch does (oracle), must equal TF's
    # depth_to_space of the same output in the converted channel order.
    state = basicsr_state_dict(CFG)
    values = to_tf(state, CFG, shapes_of(CFG))
    torch_bias = state['upconv1.bias']  # use the bias as a per-channel "feature map" of 1x1
    c = CFG['num_feat']
    torch_out = np.empty((c, 2, 2), np.float32)  # out[ch, i, j] = in[ch*4 + i*2 + j]
    for ch in range(c):
        for i in range(2):
            for j in range(2):
                torch_out[ch, i, j] = torch_bias[ch * 4 + i * 2 + j]
    tf_bias = values['edvr/reconstruction/upconv1/bias']
    got = tf.nn.depth_to_space(tf_bias.reshape(1, 1, 1, -1), 2).numpy()[0]
    np.testing.assert_array_equal(got, torch_out.transpose(1, 2, 0))


ORIGINAL_NAMES = {
    'pre_deblur.conv_first.weight': 'predeblur.conv_first.weight',
    'pre_deblur.RB_L1_1.conv1.weight': 'predeblur.resblock_l1.0.conv1.weight',
    'pre_deblur.RB_L1_5.conv2.bias': 'predeblur.resblock_l1.4.conv2.bias',
    'pre_deblur.RB_L2_2.conv1.weight': 'predeblur.resblock_l2_2.conv1.weight',
    'pre_deblur.RB_L3_1.conv1.weight': 'predeblur.resblock_l3.conv1.weight',
    'pre_deblur.deblur_L3_conv.weight': 'predeblur.stride_conv_l3.weight',
    'pre_deblur.conv_first_2.weight': 'predeblur.stride_conv_hr1.weight',
    'fea_L2_conv1.weight': 'conv_l2_1.weight',
    'pcd_align.L3_offset_conv2.bias': 'pcd_align.offset_conv2.l3.bias',
    'pcd_align.L1_dcnpack.conv_offset_mask.weight': 'pcd_align.dcn_pack.l1.conv_offset.weight',
    'pcd_align.L2_dcnpack.weight': 'pcd_align.dcn_pack.l2.weight',
    'pcd_align.L2_fea_conv.weight': 'pcd_align.feat_conv.l2.weight',
    'pcd_align.cas_dcnpack.conv_offset_mask.bias': 'pcd_align.cas_dcnpack.conv_offset.bias',
    'tsa_fusion.tAtt_1.weight': 'fusion.temporal_attn2.weight',  # embeds the neighbours
    'tsa_fusion.tAtt_2.weight': 'fusion.temporal_attn1.weight',  # embeds the reference
    'tsa_fusion.fea_fusion.bias': 'fusion.feat_fusion.bias',
    'tsa_fusion.sAtt_3.weight': 'fusion.spatial_attn3.weight',
    'tsa_fusion.sAtt_L2.weight': 'fusion.spatial_attn_l2.weight',
    'tsa_fusion.sAtt_add_1.weight': 'fusion.spatial_attn_add1.weight',
    'recon_trunk.0.conv1.weight': 'reconstruction.0.conv1.weight',
    'HRconv.weight': 'conv_hr.weight',
}


@pytest.mark.parametrize('original, basicsr', sorted(ORIGINAL_NAMES.items()))
def test_original_edvr_names(original, basicsr):
    assert convert.original_to_basicsr(original) == basicsr


def test_original_state_dict_converts_like_basicsr():
    state = basicsr_state_dict(CFG)
    inverse = {}
    for name, value in state.items():
        original = name
        for o, b in ORIGINAL_NAMES.items():
            if b == name:
                original = o
        inverse['module.' + original] = value
    assert convert.is_original_layout(inverse.keys()) or convert.is_original_layout(
        [k[len('module.') :] for k in inverse]
    )
    shapes = shapes_of(CFG)
    a, b = to_tf(state, CFG, shapes), to_tf(inverse, CFG, shapes)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_errors_name_missing_unexpected_and_mismatched_keys():
    state = basicsr_state_dict(CFG)
    del state['conv_hr.weight']
    state['extra.weight'] = np.zeros(3, np.float32)
    state['conv_last.bias'] = np.zeros(7, np.float32)
    with pytest.raises(ConversionError) as error:
        to_tf(state, CFG, shapes_of(CFG))
    message = str(error.value)
    assert 'missing keys (1): conv_hr.weight' in message
    assert 'unexpected keys (1): extra.weight' in message
    assert 'conv_last.bias: got (7,), expected (3,)' in message


def test_state_dict_of_another_config_is_rejected():
    other = parse_config({'model': dict(CFG, num_feat=16)})['model']
    with pytest.raises(ConversionError, match='shape mismatches'):
        to_tf(basicsr_state_dict(other), CFG, shapes_of(CFG))


def test_missing_torch_is_reported_plainly(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'torch', None)  # import torch -> ImportError
    with pytest.raises(
        ConversionError,
        match=r'needs PyTorch, which is not installed. Install it with '
        r'`pip install -r requirements-torch.txt`',
    ):
        convert.load_state_dict(str(tmp_path / 'weights.pth'))


def test_cli_converts_an_npz(tmp_path, capsys):
    config = tmp_path / 'cfg.yaml'
    config.write_text(
        'model:\n'
        + ''.join(
            f'  {k}: {str(v).lower() if isinstance(v, bool) else ("null" if v is None else v)}\n'
            for k, v in CFG.items()
        )
    )
    np.savez(tmp_path / 'weights.npz', **basicsr_state_dict(CFG))
    assert (
        convert.main(
            [
                '--from_torch',
                str(tmp_path / 'weights.npz'),
                '--config',
                str(config),
                '--output',
                str(tmp_path / 'out' / 'edvr'),
            ]
        )
        == 0
    )
    assert (tmp_path / 'out' / 'edvr.index').is_file()
    assert (
        convert.main(
            [
                '--from_torch',
                str(tmp_path / 'weights.npz'),
                '--config',
                os.path.join(REPO, 'configs', 'edvr_tiny.yaml'),
                '--output',
                str(tmp_path / 'bad'),
            ]
        )
        == cli.EXIT_USAGE
    )
    assert 'does not match the config' in capsys.readouterr().err
