"""The arithmetic of the all-reduce share (bench/multiworker.py): gradient bytes from the
variable shapes, collective time and share from a trace, against hand-made values."""

import collections

import pytest
import tensorflow as tf

from bench import multiworker


def add_node(device, name, op_type, start_us, micros):
    stats = device.node_stats.add(
        node_name=name, all_start_nanos=start_us * 1000, all_end_rel_nanos=micros * 1000
    )
    stats.timeline_label = f'{name} = {op_type}(x)'


def test_collective_time_and_share_of_a_step():
    metadata = tf.compat.v1.RunMetadata()
    device = metadata.step_stats.dev_stats.add(device='/job:worker/replica:0/task:0/cpu:0')
    for args in (
        ('conv', 'Conv2D', 0, 60000),
        ('grads', 'CollectiveReduce', 60000, 25000),
        ('vote', 'CollectiveReduce', 85000, 5000),
        ('adam', 'ResourceApplyAdam', 90000, 10000),
    ):
        add_node(device, *args)
    result = multiworker.collective_share(metadata, wall=0.2)
    assert result['collective_seconds'] == pytest.approx(0.030)
    assert result['share'] == pytest.approx(0.030 / 0.2)
    assert result['step_seconds'] == 0.2


def test_gradient_bytes_sum_the_variable_sizes_of_all_groups():
    with tf.Graph().as_default():
        a = tf.compat.v1.get_variable('a', [3, 3, 4, 8])
        b = tf.compat.v1.get_variable('b', [8])
        c = tf.compat.v1.get_variable('c', [2, 5], dtype=tf.float64)
        ops = collections.namedtuple('TrainOps', 'groups')(
            collections.OrderedDict(fusion=[a], dcn=[], other=[b, c])
        )
        assert multiworker.gradient_bytes(ops) == (3 * 3 * 4 * 8 + 8) * 4 + 2 * 5 * 8
