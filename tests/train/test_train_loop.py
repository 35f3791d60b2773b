"""edvr.train end to end on a very small model: learning, exact resume, NaN stop, pruning,
the optimiser groups and the offset monitor."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.train.tiny_runs import run_train, tiny_config, write_config
from edvr.training import graph as training_graph
from edvr.config import parse_config
from edvr.training import optimizer
from edvr.checkpoint import CheckpointManager, read_values


def test_steps_on_a_fixed_batch_reduce_the_loss(tiny_data):
    config = parse_config(tiny_config(lr=1e-2))
    colours = np.random.default_rng(0).uniform(0.2, 0.6, size=(2, 1, 1, 1, 3))
    frames = np.broadcast_to(colours, (2, 3, 16, 16, 3)).astype(np.float32)
    gt = (frames[:, 0] + 0.25).repeat(4, axis=1).repeat(4, axis=2)  # brighter, learnable
    with tf.Graph().as_default():
        graph = training_graph.TrainingGraph(config, tiny_data, val_spec=None)
        with tf.compat.v1.Session() as sess:
            sess.run(graph.init)
            feed = {graph.lr_frames: frames, graph.gt: gt}
            losses = [sess.run([graph.train_ops.full, graph.loss], feed)[1] for _ in range(20)]
            assert sess.run(graph.global_step) == 20
    assert losses[-1] < 0.5 * losses[0], losses


def test_kill_and_resume_continues_exactly(tiny_data, tmp_path, monkeypatch):
    config = write_config(tmp_path / 'tiny.yaml', tiny_config(max_steps=6, tsa_iter=3))
    step, _ = run_train(config, tiny_data, tmp_path / 'straight')
    assert step == 6

    real_save = CheckpointManager.save

    def save_then_die(self, sess, step):
        prefix = real_save(self, sess, step)
        if step == 2:
            raise RuntimeError('simulated kill after the step-2 checkpoint')
        return prefix

    monkeypatch.setattr(CheckpointManager, 'save', save_then_die)
    with pytest.raises(RuntimeError, match='simulated kill'):
        run_train(config, tiny_data, tmp_path / 'killed')
    monkeypatch.setattr(CheckpointManager, 'save', real_save)
    assert tf.compat.v1.train.latest_checkpoint(str(tmp_path / 'killed')).endswith('-2')
    with pytest.raises(FileExistsError, match='pass --resume'):
        run_train(config, tiny_data, tmp_path / 'killed')
    messages = []
    step, _ = run_train(config, tiny_data, tmp_path / 'killed', '--resume', log=messages.append)
    assert step == 6
    assert any('resumed from' in m and 'at step 2' in m for m in messages)

    straight = read_values(str(tmp_path / 'straight' / 'model.ckpt-6'))
    resumed = read_values(str(tmp_path / 'killed' / 'model.ckpt-6'))
    assert straight.keys() == resumed.keys()
    assert int(resumed['global_step']) == 6
    assert any('adam' in name for name in resumed)  # optimiser state is checkpointed too
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    real_loss = training_graph.pixel_loss

    def loss_turning_nan(*args, **kwargs):
        step = tf.compat.v1.train.get_global_step()
        poison = tf.where(step >= 3, tf.constant(np.nan, tf.float32), tf.constant(1.0))
        return real_loss(*args, **kwargs) * poison

    monkeypatch.setattr(training_graph, 'pixel_loss', loss_turning_nan)
    output = tmp_path / 'nan'
    config = write_config(tmp_path / 'tiny.yaml', tiny_config())
    with pytest.raises(
        FloatingPointError,
        match=f'loss is nan at step 4; stopped without saving. The last good '
        f'checkpoint is {output}/model.ckpt-2',
    ):
        run_train(config, tiny_data, output)
    assert tf.compat.v1.train.latest_checkpoint(str(output)).endswith('model.ckpt-2')
    assert not os.path.exists(str(output / 'model.ckpt-4.index'))


def test_checkpoints_pruned_offsets_monitored(tiny_data, tmp_path, capsys, monkeypatch):
    config = write_config(
        tmp_path / 'tiny.yaml',
        tiny_config(max_to_keep=2, offset_warning_threshold=-1.0, validate_every=4),
    )
    messages = []
    monkeypatch.chdir(tmp_path)  # a relative --output must give a usable checkpoint state
    step, results = run_train(config, tiny_data, 'run', log=messages.append)
    assert tf.compat.v1.train.latest_checkpoint('run') == os.path.join('run', 'model.ckpt-6')
    assert list(results['clips']) == ['002'] and results['clips']['002']['frames'] == 4
    printed = capsys.readouterr().out
    assert 'validation at step 4' in printed  # periodic validation, written through the bar
    assert any(m.startswith('validation at step 6') and 'average' in m for m in messages)
    # Offsets start at zero (zero-initialised offset convs); any value is above -1.
    assert (
        'step 2: mean |DCN offset| is 0.0, above train.offset_warning_threshold (-1.0)' in printed
    )
    assert sorted(f for f in os.listdir(tmp_path / 'run') if f.endswith('.index')) == [
        'model.ckpt-4.index',
        'model.ckpt-6.index',
    ]
    state = tf.compat.v1.train.get_checkpoint_state(str(tmp_path / 'run'))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        'model.ckpt-4',
        'model.ckpt-6',
    ]
    assert any('input took' in m for m in messages)
    events = os.listdir(tmp_path / 'run' / 'logs')
    assert events and events[0].startswith('events.out.tfevents')


def make_variables():
    names = [
        'edvr/pcd_alignment/l1/dcn/kernel',
        'edvr/pcd_alignment/l1/offset_conv1/kernel',
        'edvr/tsa_fusion/temporal_attention/conv/kernel',
        'edvr/reconstruction/conv/kernel',
    ]
    return [
        tf.compat.v1.get_variable(n, [3], initializer=tf.compat.v1.zeros_initializer())
        for n in names
    ]


def test_groups_dcn_lr_multiplier_and_fusion_warmup():
    with tf.Graph().as_default():
        dcn, offset_conv, fusion, other = make_variables()
        groups = optimizer.variable_groups([dcn, offset_conv, fusion, other])
        assert groups == {'fusion': [fusion], 'dcn': [dcn], 'other': [offset_conv, other]}
        step = tf.compat.v1.train.get_or_create_global_step()
        target = tf.constant([1.0, -2.0, 3.0])
        loss = sum(tf.reduce_sum(tf.square(v - target)) for v in (dcn, offset_conv, fusion, other))
        cfg = parse_config(tiny_config(lr=0.01, dcn_lr_mul=0.25, tsa_iter=3))['train']
        ops = optimizer.build_train_ops(loss, step, cfg, [dcn, offset_conv, fusion, other])
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(ops.fusion_only)
            d, o, f, r = sess.run([dcn, offset_conv, fusion, other])
            # Adam's first step moves each weight by lr in the gradient's direction.
            np.testing.assert_allclose(f, 0.01 * np.sign([1, -2, 3]), rtol=1e-4)
            assert not d.any() and not o.any() and not r.any()
            lr = sess.run(ops.lr)  # at step 1 of a 100-step cosine, before the full step
            sess.run(ops.full)
            d, o, r = sess.run([dcn, offset_conv, other])
            assert sess.run(step) == 2 and lr < 0.01
            np.testing.assert_allclose(o, lr * np.sign([1, -2, 3]), rtol=1e-4)
            np.testing.assert_allclose(r, lr * np.sign([1, -2, 3]), rtol=1e-4)
            np.testing.assert_allclose(d, 0.25 * lr * np.sign([1, -2, 3]), rtol=1e-3)
    assert [optimizer.fusion_warmup_active(s, 3) for s in range(4)] == [True, True, False, False]
    assert not optimizer.fusion_warmup_active(0, 0)
