"""Mixed precision (edvr.precision): the setting, CPU detection, where the mixed graph computes in
bfloat16 and where it casts, and how far its output is from float32."""

import argparse
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf

from edvr import precision
from edvr.config import load_config
from edvr.inference import Restorer
from edvr.model import build_edvr

from tests.model.model_testing import random_checkpoint

TINY = os.path.join(os.path.dirname(__file__), '..', '..', 'configs', 'edvr_tiny.yaml')


def cpuinfo(tmp_path, flags):
    path = tmp_path / 'cpuinfo'
    path.write_text(
        'processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx2 %s\n\n'
        'processor\t: 1\n' % ' '.join(flags)
    )
    return str(path)


@pytest.mark.parametrize(
    'flags,native',
    [
        (['avx512f', 'avx512_bf16'], True),
        (['amx_bf16', 'amx_tile'], True),
        (['avx512f', 'avx512_vnni'], False),
    ],
)
def test_native_bfloat16_detection(tmp_path, flags, native):
    path = cpuinfo(tmp_path, flags)
    assert precision.cpu_has_native_bfloat16(path) is native
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        saved = precision._warned
        precision._warned = False
        try:
            dtype = precision.compute_dtype(True, 'cpu', path)
            again = precision.compute_dtype(True, 'cpu', path)
        finally:
            precision._warned = saved
    assert dtype == again == (tf.bfloat16 if native else tf.float32)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == (0 if native else 1), messages
    if not native:
        assert 'no native bfloat16' in messages[0] and path in messages[0]


def test_fp32_and_npu_stay_float32(tmp_path):
    path = cpuinfo(tmp_path, ['avx512_bf16'])
    assert precision.compute_dtype(False, 'cpu', path) == tf.float32
    # On the NPU the graph stays float32: CANN's allow_mix_precision lowers it to float16.
    assert precision.compute_dtype(True, 'npu', path) == tf.float32


def test_flag_overrides_config():
    parser = argparse.ArgumentParser()
    precision.add_precision_flag(parser)
    for argv, config_value, expected in (
        ([], True, True),
        ([], False, False),
        (['--precision', 'fp32'], True, False),
        (['--precision', 'mixed'], False, True),
    ):
        args = parser.parse_args(argv)
        assert precision.mixed_from_flags(args, {'mixed_precision': config_value}) is expected
    with pytest.raises(SystemExit):
        parser.parse_args(['--precision', 'fp16'])


def test_mixed_graph_placement():
    """The mixed training graph: every convolution and deformable op (forward and gradient) in
    bfloat16, float32 variables, output and loss; Casts only at the frames, the variable
    reads, ResizeBilinear's float32 output, the residual and around the Sigmoids (computed in
    float32, edvr.model.layers.sigmoid), and never a Cast of a Cast (a bfloat16 -> float32 ->
    bfloat16 round trip around an op)."""
    cfg = load_config(TINY)['model']
    graph = tf.Graph()
    with graph.as_default():
        frames = tf.compat.v1.placeholder(tf.float32, [1, cfg['num_frame'], 16, 24, 3])
        output, _ = build_edvr(frames, cfg, compute_dtype=tf.bfloat16)
        loss = tf.reduce_mean(tf.abs(output))
        variables = tf.compat.v1.trainable_variables()
        grads = tf.compat.v1.gradients(loss, variables)
    assert output.dtype == tf.float32 and loss.dtype == tf.float32
    assert variables and all(v.dtype.base_dtype == tf.float32 for v in variables)
    assert all(g.dtype == tf.float32 for g in grads)
    operations = graph.get_operations()
    types = {op.type for op in operations}
    assert {'EdvrDeformConv2D', 'EdvrDeformConv2DGrad', 'Conv2D'} <= types
    for op in operations:
        if op.type in (
            'Conv2D',
            'Conv2DBackpropInput',
            'Conv2DBackpropFilter',
            'EdvrDeformConv2D',
            'EdvrDeformConv2DGrad',
            'EdvrDeformableOffsets',
            'BiasAdd',
            'LeakyRelu',
        ):
            assert op.get_attr('T') == tf.bfloat16, (op.name, op.type, op.get_attr('T'))
    casts = [op for op in operations if op.type == 'Cast']
    assert not [op.name for op in casts if op.inputs[0].op.type == 'Cast'], 'Cast pairs'
    for op in casts:
        source = op.inputs[0].op
        to_bfloat16 = op.outputs[0].dtype == tf.bfloat16
        if op.name.startswith('gradients/'):
            continue  # the gradients of the casts below, in the other direction
        if to_bfloat16:
            assert source.type in (
                'Placeholder',
                'VariableV2',
                'ReadVariableOp',
                'Identity',
                'ResizeBilinear',
                'Sigmoid',
            ), (op.name, source.type)
        elif [c.type for c in op.outputs[0].consumers()] != ['Sigmoid']:
            assert source.type == 'BiasAdd' and op.name == 'edvr/Cast_1', (op.name, source.type)
    sigmoids = [op for op in operations if op.type == 'Sigmoid']
    assert sigmoids and all(op.get_attr('T') == tf.float32 for op in sigmoids)
    for op in operations:  # our ops read bfloat16 straight from convolutions, not from Casts
        if op.type.startswith('Edvr'):
            assert all(t.op.type != 'Cast' for t in op.inputs[:2]), op.name


def test_mixed_output_close_to_fp32(tmp_path):
    """Inference of the tiny model (random weights, offsets of ~2 pixels) in mixed precision
    against float32. The issue allows 0.05 dB of PSNR against the ground truth; at a model's
    30 dB (RMS error E = 0.0316) an independent difference of RMS e changes PSNR by
    10 log10(1 + e^2 / E^2), at most 0.05 dB when e <= 0.108 E = 0.0034: PSNR(mixed, fp32)
    >= 49.4 dB. The largest difference must stay within one bfloat16 rounding (2^-8) of the
    output's range."""
    cfg = load_config(TINY)['model']
    random_checkpoint(cfg, tmp_path / 'random', offset_scale=2.0)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:48] / 8.0
    window = np.stack(
        [
            np.stack(
                [0.5 + 0.3 * np.sin(xx + t * 0.3 + c) * np.cos(0.7 * yy - c) for c in range(3)], -1
            )
            for t in range(cfg['num_frame'])
        ]
    )
    window = (window + rng.normal(0, 0.02, window.shape)).astype(np.float32)
    outputs = {}
    for dtype in (tf.float32, tf.bfloat16):
        restorer = Restorer(cfg, str(tmp_path / 'random'), compute_dtype=dtype)
        try:
            outputs[dtype] = restorer(window)
        finally:
            restorer.close()
    difference = outputs[tf.bfloat16].astype(np.float64) - outputs[tf.float32]
    assert np.abs(difference).max() > 0, 'mixed precision changed nothing'
    psnr = 10 * np.log10(1.0 / np.mean(difference**2))
    assert psnr >= 49.4, psnr
    assert np.abs(difference).max() <= 2.0**-8 * np.abs(outputs[tf.float32]).max()


def test_tools_pass_the_precision_on(monkeypatch, tmp_path):
    """--precision reaches the model of edvr.infer, edvr.evaluate and edvr.train; without it the
    config's train.mixed_precision decides."""
    from edvr import evaluate, infer, inference, train

    native = precision.cpu_has_native_bfloat16()
    seen = {}
    monkeypatch.setattr(
        inference,
        'restore_clip',
        lambda *a, **kw: seen.__setitem__('infer', kw['compute_dtype']) or [],
    )
    monkeypatch.setattr(
        evaluate,
        'evaluate',
        lambda config, *a, **kw: (
            seen.__setitem__('evaluate', config['train']['mixed_precision']) or {'checkpoint': ''}
        ),
    )
    monkeypatch.setattr(evaluate, 'format_table', lambda results: '')
    common = ['--config', TINY, '--checkpoint', str(tmp_path)]
    for flag, mixed in (
        (['--precision', 'fp32'], False),
        (['--precision', 'mixed'], True),
        ([], False),
    ):  # edvr_tiny.yaml sets train.mixed_precision: false
        infer.main(common + ['--input', str(tmp_path), '--output', str(tmp_path)] + flag)
        assert seen['infer'] == (tf.bfloat16 if mixed and native else tf.float32), flag
        evaluate.main(common + ['--data_dir', str(tmp_path)] + flag)
        assert seen['evaluate'] is mixed, flag
        config = train.prepare_config(train.parse_args(['--config', TINY] + flag))
        assert config['train']['mixed_precision'] is mixed, flag
