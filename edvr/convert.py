"""Convert BasicSR / original EDVR PyTorch weights into a TF checkpoint of ``build_edvr``.

    python -m edvr.convert --from_torch FILE.pth --config CFG --output CKPT

FILE may hold a raw state dict or one under ``params`` (or ``params_ema``), with BasicSR
1.4.2 names (``pcd_align.dcn_pack.l1.conv_offset.weight``) or the original xinntao/EDVR
names (``pcd_align.L1_dcnpack.conv_offset_mask.weight``), optionally prefixed ``module.``.
A ``.npz`` of the same names is also accepted (no torch needed). torch is needed only for
``.pth`` files: install it with ``pip install -r requirements-torch.txt``.

Layouts: conv weights (out, in, kh, kw) become (kh, kw, in, out). Two outputs are permuted
so the TF graph can use its native ops: convs feeding a PixelShuffle (TF's depth_to_space
orders channels (i * r + j) * c + ch, PyTorch ch * r^2 + i * r + j), and the DCN offset
convs (torchvision/mmcv interleave (dy, dx) per group and kernel point; ``ops`` takes a dx
block, a dy block, then the mask).
"""

import os
import re
import sys

import numpy as np

from edvr import cli
from edvr.checkpoint import mismatch_report, model_variable_shapes, write_weights

KERNEL_POINTS = 9


class ConversionError(ValueError):
    """The state dict does not match the config."""


# --- the layer table: TF variable scope <-> BasicSR module, and the output permutation -----


def _pixel_shuffle_permutation(channels_out, factor=2):
    """perm[q] = PyTorch channel feeding TF channel q for a conv followed by a pixel shuffle."""
    perm = np.empty(channels_out * factor * factor, dtype=np.int64)
    for q in range(perm.size):
        sub_pixel, channel = divmod(q, channels_out)
        perm[q] = channel * factor * factor + sub_pixel
    return perm


def _dcn_offset_permutation(deformable_groups):
    """perm[q] = PyTorch channel of conv_offset feeding TF channel q (dx, dy, mask blocks)."""
    gk = deformable_groups * KERNEL_POINTS
    index = np.arange(gk)
    return np.concatenate(
        [
            2 * index + 1,  # dx of point g*K + k: odd channels of cat(o1, o2)
            2 * index,  # dy: even channels
            2 * gk + index,
        ]
    )  # the mask chunk keeps its order


def layer_table(cfg, scope='edvr'):
    """Rows (tf_scope, basicsr_module, output_permutation or None) for the ``model`` config."""
    rows = []

    def conv(tf_scope, module, perm=None):
        rows.append((f'{scope}/{tf_scope}', module, perm))

    def resblock(tf_scope, module):
        conv(f'{tf_scope}/conv1', f'{module}.conv1')
        conv(f'{tf_scope}/conv2', f'{module}.conv2')

    def dcn(tf_scope, module):
        conv(tf_scope, module)
        conv(
            f'{tf_scope}/offset_mask_conv',
            f'{module}.conv_offset',
            _dcn_offset_permutation(cfg['deformable_groups']),
        )

    if cfg['with_predeblur']:
        conv('predeblur/conv_first', 'predeblur.conv_first')
        if cfg['hr_in']:
            conv('predeblur/hr_stride_conv1', 'predeblur.stride_conv_hr1')
            conv('predeblur/hr_stride_conv2', 'predeblur.stride_conv_hr2')
        conv('predeblur/l2_stride_conv', 'predeblur.stride_conv_l2')
        conv('predeblur/l3_stride_conv', 'predeblur.stride_conv_l3')
        resblock('predeblur/l3_resblock', 'predeblur.resblock_l3')
        resblock('predeblur/l2_resblock_0', 'predeblur.resblock_l2_1')
        resblock('predeblur/l2_resblock_1', 'predeblur.resblock_l2_2')
        for i in range(5):
            resblock(f'predeblur/l1_resblock_{i}', f'predeblur.resblock_l1.{i}')
        conv('feature_extraction/conv_1x1', 'conv_1x1')
    else:
        conv('feature_extraction/conv_first', 'conv_first')
    for i in range(cfg['num_extract_block']):
        resblock(f'feature_extraction/resblock_{i}', f'feature_extraction.{i}')
    for level in (2, 3):
        for j in (1, 2):
            conv(f'feature_extraction/pyramid/l{level}_conv{j}', f'conv_l{level}_{j}')

    for level in (3, 2, 1):
        tf_level, module = f'pcd_alignment/l{level}', 'pcd_align'
        for j in (1, 2) if level == 3 else (1, 2, 3):
            conv(f'{tf_level}/offset_conv{j}', f'{module}.offset_conv{j}.l{level}')
        dcn(f'{tf_level}/dcn', f'{module}.dcn_pack.l{level}')
        if level < 3:
            conv(f'{tf_level}/feat_conv', f'{module}.feat_conv.l{level}')
    conv('pcd_alignment/cascading/offset_conv1', 'pcd_align.cas_offset_conv1')
    conv('pcd_alignment/cascading/offset_conv2', 'pcd_align.cas_offset_conv2')
    dcn('pcd_alignment/cascading/dcn', 'pcd_align.cas_dcnpack')

    if cfg['with_tsa']:
        conv('tsa_fusion/temporal_attention/reference_embedding', 'fusion.temporal_attn1')
        conv('tsa_fusion/temporal_attention/neighbor_embedding', 'fusion.temporal_attn2')
        conv('tsa_fusion/fusion_conv', 'fusion.feat_fusion')
        for j in range(1, 6):
            conv(f'tsa_fusion/spatial_attention/conv{j}', f'fusion.spatial_attn{j}')
        for j in range(1, 4):
            conv(f'tsa_fusion/spatial_attention/pyramid_conv{j}', f'fusion.spatial_attn_l{j}')
        for j in (1, 2):
            conv(f'tsa_fusion/spatial_attention/add_conv{j}', f'fusion.spatial_attn_add{j}')
    else:
        conv('fusion/conv_1x1', 'fusion')

    for i in range(cfg['num_reconstruct_block']):
        resblock(f'reconstruction/resblock_{i}', f'reconstruction.{i}')
    conv('reconstruction/upconv1', 'upconv1', _pixel_shuffle_permutation(cfg['num_feat']))
    conv('reconstruction/upconv2', 'upconv2', _pixel_shuffle_permutation(cfg['num_upsample_feat']))
    conv('reconstruction/hr_conv', 'conv_hr')
    conv('reconstruction/conv_last', 'conv_last')
    return rows


# --- original xinntao/EDVR names -> BasicSR names ------------------------------------------

# Original parameter name (a regular expression) -> BasicSR name (its re.sub replacement),
# one rule a line, the first that matches wins; ``#`` lines are comments.
_ORIGINAL_RENAME_TABLE = r"""
^pre_deblur\.conv_first_1\.                    predeblur.conv_first.
^pre_deblur\.conv_first_2\.                    predeblur.stride_conv_hr1.
^pre_deblur\.conv_first_3\.                    predeblur.stride_conv_hr2.
^pre_deblur\.conv_first\.                      predeblur.conv_first.
^pre_deblur\.deblur_L(\d)_conv\.               predeblur.stride_conv_l\1.
^pre_deblur\.RB_L3_1\.                         predeblur.resblock_l3.
^pre_deblur\.RB_L2_(\d)\.                      predeblur.resblock_l2_\1.
^fea_L(\d)_conv(\d)\.                          conv_l\1_\2.
^pcd_align\.L(\d)_offset_conv(\d)\.            pcd_align.offset_conv\2.l\1.
^pcd_align\.L(\d)_dcnpack\.conv_offset_mask\.  pcd_align.dcn_pack.l\1.conv_offset.
^pcd_align\.L(\d)_dcnpack\.                    pcd_align.dcn_pack.l\1.
^pcd_align\.L(\d)_fea_conv\.                   pcd_align.feat_conv.l\1.
^pcd_align\.cas_dcnpack\.conv_offset_mask\.    pcd_align.cas_dcnpack.conv_offset.
# The original embeds the reference with tAtt_2 and the neighbours with tAtt_1;
# BasicSR uses temporal_attn1 for the reference.
^tsa_fusion\.tAtt_1\.                          fusion.temporal_attn2.
^tsa_fusion\.tAtt_2\.                          fusion.temporal_attn1.
^tsa_fusion\.fea_fusion\.                      fusion.feat_fusion.
^tsa_fusion\.sAtt_L(\d)\.                      fusion.spatial_attn_l\1.
^tsa_fusion\.sAtt_add_(\d)\.                   fusion.spatial_attn_add\1.
^tsa_fusion\.sAtt_(\d)\.                       fusion.spatial_attn\1.
^tsa_fusion\.(weight|bias)$                    fusion.\1
^recon_trunk\.                                 reconstruction.
^HRconv\.                                      conv_hr.
"""
_ORIGINAL_RENAMES = [
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        line.split()
        for line in _ORIGINAL_RENAME_TABLE.strip().splitlines()
        if not line.startswith('#')
    )
]
# The original numbers the pre-deblur's L1 residual blocks from 1, BasicSR from 0.
_ORIGINAL_L1_RESBLOCK = re.compile(r'^pre_deblur\.RB_L1_(\d)\.')

_ORIGINAL_MARKERS = ('pcd_align.L1_', 'tsa_fusion.', 'recon_trunk.', 'fea_L2_conv1', 'pre_deblur.')


def is_original_layout(names):
    """True when the names are those of xinntao/EDVR rather than BasicSR."""
    return any(name.startswith(_ORIGINAL_MARKERS) for name in names)


def original_to_basicsr(name):
    """Rename one original-EDVR parameter name to its BasicSR name."""
    match = _ORIGINAL_L1_RESBLOCK.match(name)
    if match:
        return f'predeblur.resblock_l1.{int(match.group(1)) - 1}.{name[match.end() :]}'
    for pattern, replacement in _ORIGINAL_RENAMES:
        new, count = pattern.subn(replacement, name)
        if count:
            return new
    return name


def normalize_state_dict(state_dict):
    """Unwrap ``params``/``params_ema``, strip ``module.``, rename original-EDVR names."""
    if not isinstance(state_dict, dict):
        raise ConversionError(
            f'expected a state dict (a mapping of names to arrays), got {type(state_dict).__name__}'
        )
    for key in ('params', 'params_ema'):
        if key in state_dict and isinstance(state_dict[key], dict):
            state_dict = state_dict[key]
            break
    state_dict = {
        (k[len('module.') :] if k.startswith('module.') else k): v for k, v in state_dict.items()
    }
    if is_original_layout(state_dict):
        state_dict = {original_to_basicsr(k): v for k, v in state_dict.items()}
    return {k: np.asarray(v) for k, v in state_dict.items()}


# --- conversion ---------------------------------------------------------------------------


def to_tf(state_dict, cfg, variable_shapes, scope='edvr'):
    """BasicSR state dict -> {TF variable name: array}.

    ``variable_shapes`` maps every TF variable name (without ':0') of the graph to its
    shape; every one must be filled and every tensor consumed. Raises ConversionError
    naming missing keys, unexpected keys and shape mismatches.
    """
    state_dict = normalize_state_dict(state_dict)
    values, consumed, mismatches, missing = {}, set(), [], []
    for tf_scope, module, perm in layer_table(cfg, scope):
        for tf_leaf, torch_leaf in (('kernel', 'weight'), ('bias', 'bias')):
            tf_name, torch_name = f'{tf_scope}/{tf_leaf}', f'{module}.{torch_leaf}'
            if tf_name not in variable_shapes:
                raise AssertionError(f'layer table names {tf_name}, which the graph lacks')
            expected = tuple(variable_shapes[tf_name])
            if torch_name not in state_dict:
                missing.append(torch_name)
                continue
            consumed.add(torch_name)
            array = state_dict[torch_name]
            torch_expected = (
                (expected[3], expected[2], expected[0], expected[1])
                if tf_leaf == 'kernel'
                else expected
            )
            if array.shape != torch_expected:
                mismatches.append(
                    f'{torch_name}: got {tuple(array.shape)}, expected {torch_expected}'
                )
                continue
            array = array.astype(np.float32)
            if perm is not None:
                array = array[perm]
            values[tf_name] = np.transpose(array, (2, 3, 1, 0)) if tf_leaf == 'kernel' else array
    unexpected = set(state_dict) - consumed - set(missing)
    report = mismatch_report(missing, unexpected, mismatches, noun='keys')
    if report:
        raise ConversionError(
            f'state dict does not match the config: {report} (is the config '
            f'the one the weights were trained with?)'
        )
    unfilled = set(variable_shapes) - set(values)
    if unfilled:
        raise AssertionError(
            f'graph variables not covered by the layer table: {mismatch_report(missing=unfilled)}'
        )
    return values


def to_basicsr(tf_values, cfg, scope='edvr'):
    """Inverse of ``to_tf``: {TF variable name: array} -> BasicSR state dict (NumPy)."""
    state_dict = {}
    for tf_scope, module, perm in layer_table(cfg, scope):
        kernel = np.transpose(tf_values[f'{tf_scope}/kernel'], (3, 2, 0, 1))
        bias = tf_values[f'{tf_scope}/bias']
        if perm is not None:
            inverse = np.argsort(perm)
            kernel, bias = kernel[inverse], bias[inverse]
        state_dict[f'{module}.weight'] = kernel
        state_dict[f'{module}.bias'] = bias
    return state_dict


def load_state_dict(path):
    """Read a ``.pth`` (needs torch) or ``.npz`` file of named arrays."""
    path = str(path)
    if path.endswith('.npz'):
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    try:
        import torch
    except ImportError:
        raise ConversionError(
            f'reading {path} needs PyTorch, which is not installed. '
            f'Install it with `pip install -r requirements-torch.txt` '
            f'(or pass a .npz of the same names).'
        ) from None
    state = torch.load(path, map_location='cpu', weights_only=True)

    def to_numpy(obj):
        if isinstance(obj, dict):
            return {k: to_numpy(v) for k, v in obj.items()}
        return obj.detach().cpu().numpy() if hasattr(obj, 'detach') else obj

    return to_numpy(state)


def make_parser():
    parser = cli.tool_parser(
        'convert',
        __doc__.split('\n')[0],
        'YAML config the weights belong to',
        config_required=True,
        threads=False,
    )
    parser.add_argument(
        '--from_torch', required=True, help='BasicSR/EDVR .pth (or .npz) state dict'
    )
    parser.add_argument(
        '--output', required=True, help='checkpoint prefix to write, e.g. ckpt/edvr_m'
    )
    return parser


def run(args):
    from edvr.config import load_config

    cfg = load_config(args.config)['model']
    values = to_tf(load_state_dict(args.from_torch), cfg, model_variable_shapes(cfg))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    saved = write_weights(values, cfg, args.output)
    print(f'edvr.convert: wrote {len(values)} variables to {saved}')


def main(argv=None):
    return cli.main('convert', make_parser(), run, argv)


if __name__ == '__main__':
    sys.exit(main())
