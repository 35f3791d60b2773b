"""The performance tooling of bench/: the FLOP counter against hand-derived counts, the
floor and headroom arithmetic, the profile aggregation, and `python -m bench.report --quick`
end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bench import flops, floor, profile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def conv(x, cin, cout, k=3, stride=1, padding='SAME'):
    w = tf.compat.v1.get_variable(f'w{len(tf.compat.v1.global_variables())}', [k, k, cin, cout])
    return tf.nn.conv2d(x, w, [1, stride, stride, 1], padding)


def test_one_conv_counts_2_kh_kw_cin_cout_ho_wo_n():
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 8, 10, 4])
        y = conv(x, 4, 5)
        assert flops.graph_conv_flops([y])['total'] == 2 * 3 * 3 * 4 * 5 * 8 * 10 * 2


def test_strided_valid_and_1x1_convs_use_their_output_size():
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 9, 9, 3])
        y = conv(x, 3, 6, k=3, stride=2, padding='VALID')  # -> (1, 4, 4, 6)
        z = conv(y, 6, 2, k=1)  # -> (1, 4, 4, 2)
        counted = flops.graph_conv_flops([z])
    assert counted['Conv2D'] == 2 * 9 * 3 * 6 * 16 + 2 * 1 * 6 * 2 * 16
    assert counted['backward'] == 0


def test_depthwise_conv_counts_one_input_channel_per_output():
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 6, 6, 4])
        y = tf.nn.depthwise_conv2d(x, tf.ones([3, 3, 4, 2]), [1, 1, 1, 1], 'SAME')
        assert flops.graph_conv_flops([y])['DepthwiseConv2dNative'] == 2 * 9 * 8 * 36


def test_backward_ops_each_count_as_much_as_the_forward_conv():
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 8, 8, 4])
        y = conv(x, 4, 5)
        w = tf.compat.v1.global_variables()[0]
        grads = tf.compat.v1.gradients(tf.reduce_sum(y), [x, w])
        counted = flops.graph_conv_flops([y] + grads)
    forward = 2 * 9 * 4 * 5 * 64 * 2
    assert counted['Conv2DBackpropInput'] == forward
    assert counted['Conv2DBackpropFilter'] == forward
    assert counted['forward'] == forward and counted['total'] == 3 * forward


def test_fused_deformable_conv_counts_as_the_conv_over_its_columns():
    import ops
    from tests.ops.conftest import backend_selected, require_native

    require_native()
    with backend_selected('native'), tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 6, 5, 8])
        offsets = tf.compat.v1.placeholder(tf.float32, [2, 6, 5, 3 * 2 * 9])
        filters = tf.compat.v1.placeholder(tf.float32, [3, 3, 8, 4])
        y = ops.deform_conv2d(x, offsets, filters, pads=(1, 1, 1, 1), deformable_groups=2)
        grads = tf.compat.v1.gradients(tf.reduce_sum(y), [x, offsets, filters])
        counted = flops.graph_conv_flops([y] + grads)
    forward = 2 * 2 * 6 * 5 * 4 * 3 * 3 * 8
    assert counted['EdvrDeformConv2D'] == forward
    assert counted['EdvrDeformConv2DGrad'] == 2 * forward  # columns' and filters' gradients
    assert counted['total'] == 3 * forward


def test_only_ops_the_fetches_need_are_counted():
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 4, 4, 2])
        needed = conv(x, 2, 2)
        conv(x, 2, 8)  # built, never run for `needed`
        assert flops.graph_conv_flops([needed])['total'] == 2 * 9 * 2 * 2 * 16


def test_dynamic_shapes_are_an_error_naming_the_op():
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, None, None, 2])
        y = conv(x, 2, 2)
        with pytest.raises(ValueError, match=r'Conv2D .*static shapes'):
            flops.graph_conv_flops([y])


def test_op_ratios_divide_each_op_by_the_conv2d_rounds_beside_it():
    from bench.conftest import ratios

    results = {
        'L1': {
            'native fwd': 2.0,
            'conv2d beside native fwd': 1.0,
            'reference fwd': 30.0,
            'conv2d beside reference fwd': 1.5,
            'native fwd+bwd': 6.0,
            'conv2d fwd+bwd': 3.0,
        }
    }
    rows = {phase: values for _, phase, *values in ratios(results)}
    # reference/native is 20 / 2, not 30 / 2: the reference ran while conv2d was 1.5x slower.
    assert rows['fwd'] == pytest.approx([2.0, 20.0, 10.0])
    # Without rounds beside it, an op is divided by the conv2d benchmark; unmeasured is None.
    assert rows['fwd+bwd'][0] == pytest.approx(2.0) and rows['fwd+bwd'][1:] == [None, None]


def test_floor_and_headroom_arithmetic():
    results = {
        floor.CONV_RATE: {'seconds': 0.5, 'flops': 100e9, 'shape': [20, 64, 64, 64]},
        floor.TRAIN_STEP: {'seconds': 9.0, 'samples': 4, 'flops': {'total': 600e9}},
        floor.INFER_FRAME: {'seconds': 4.0, 'samples': 1, 'flops': {'total': 400e9}},
        floor.INPUT_PIPELINE: {'seconds': 2.0, 'samples': 40},
    }
    summary = floor.model_summary(results)
    assert summary['conv_rate'] == pytest.approx(200e9)
    assert summary['train_step']['floor_seconds'] == pytest.approx(3.0)
    assert summary['train_step']['floor_ratio'] == pytest.approx(3.0)
    assert summary['infer_frame']['floor_ratio'] == pytest.approx(2.0)
    pipeline = summary['input_pipeline']
    assert pipeline['samples_per_second'] == pytest.approx(20.0)
    assert pipeline['consumed_per_second'] == pytest.approx(4 / 9.0)
    assert pipeline['headroom'] == pytest.approx(20.0 * 9.0 / 4)
    assert floor.format_model_table(summary)  # formats without error
    # A rate timed between the rounds of the work itself takes precedence.
    results[floor.TRAIN_STEP]['conv_rate'] = 100e9
    assert floor.model_summary(results)['train_step']['floor_ratio'] == pytest.approx(1.5)
    assert 'feature_cache' not in summary  # no cached frame measured


def test_feature_cache_ratios():
    results = {
        floor.INFER_FRAME: {
            'seconds': 4.0,
            'samples': 1,
            'flops': {'total': 400e9},
            'conv_rate': 100e9,
        },
        floor.INFER_FRAME_CACHED: {
            'seconds': 1.0,
            'samples': 1,
            'flops': {'total': 300e9},
            'conv_rate': 200e9,
        },
    }
    summary = floor.model_summary(results)
    # the cached frame ran while conv2d was 2x faster: at equal rate it would take 2 s, not 1
    assert summary['feature_cache'] == {
        'time_ratio': pytest.approx(0.25),
        'flops_ratio': pytest.approx(0.75),
        'time_ratio_at_equal_conv_rate': pytest.approx(0.5),
    }
    lines = floor.format_model_table(summary)
    assert any(
        line.startswith('feature cache: a streamed frame takes 0.25x the time and 0.75x')
        for line in lines
    )
    assert any(line.endswith('cancelled): 0.50x') for line in lines)


def test_profile_aggregates_a_traced_run_by_op_type():
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 16, 16, 8])
        y = tf.nn.relu(conv(x, 8, 8))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            feed = {x: np.ones([2, 16, 16, 8], np.float32)}
            metadata = profile.traced_run(lambda **kw: sess.run(y, feed, **kw))
    result = profile.time_by_op_type(metadata)
    types = {row['op_type']: row for row in result['rows']}
    assert any(profile.op_group(t) == 'convolution' for t in types)
    assert sum(row['share'] for row in result['rows']) == pytest.approx(1.0)
    assert result['busy'] == pytest.approx(sum(result['groups'].values()))
    assert 'convolution' in profile.format_profile(result)
    assert profile.chrome_trace(metadata)['traceEvents']


def test_quick_report_writes_the_expected_keys(tmp_path):
    out, plot = tmp_path / 'report.json', tmp_path / 'ops.png'
    result = subprocess.run(
        [sys.executable, '-m', 'bench.report', '--quick', '--json', str(out), '--plot', str(plot)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {
        'quick',
        'machine',
        'ops',
        'op_times',
        'conv_rate_gflops',
        'train_step',
        'infer_frame',
        'input_pipeline',
        'targets',
    } <= set(report)
    assert report['quick'] is True and report['conv_rate_gflops'] > 0
    for key in ('train_step', 'infer_frame', 'infer_frame_cached'):
        assert {'seconds', 'flops', 'floor_seconds', 'floor_ratio'} <= set(report[key])
        assert report[key]['flops']['total'] > 0
    # a streamed frame computes the features of 1 frame, not num_frame: fewer FLOPs
    assert 0 < report['feature_cache']['flops_ratio'] < 1
    assert report['feature_cache']['time_ratio'] > 0
    assert report['train_step']['flops']['backward'] > report['train_step']['flops']['forward']
    assert report['input_pipeline']['headroom'] > 0
    assert {
        'shape',
        'pass',
        'native_vs_conv2d',
        'reference_vs_conv2d',
        'reference_vs_native',
    } <= set(report['ops'][0])
    assert plot.stat().st_size > 0
    assert 'time/floor' in result.stdout
    # The OpenVINO peer is measured at full size only: the quick report says why it is not.
    assert report['openvino']['skipped'].startswith('measured at full size only')
    assert 'OpenVINO peer: not measured (measured at full size only' in result.stdout
