"""edvr.train --device npu against the fake npu_bridge of tests/tbe/test_npu_training.py (the
real adapter needs CANN + TF 1.15): a clear stop without it, and a short run with it."""

import os
import sys

import pytest
import tensorflow as tf

from tests.train.tiny_runs import tiny_config, train_argv, write_config
from edvr import cli
from edvr import train as train_module
from edvr.config import parse_config
from edvr.training import loop as training_loop
from edvr.training.optimizer import GroupedOptimizer
from edvr.training.options import check_train_config
from tests.tbe.test_npu_training import _eight_devices, _fake_bridge


def run_main(config_path, data_dir, output):
    return train_module.main(train_argv(config_path, data_dir, output, '--device', 'npu'))


def record_sessions(monkeypatch):
    """Records the config of every tf.compat.v1.Session created."""
    configs = []
    real_session = tf.compat.v1.Session

    class RecordingSession(real_session):
        def __init__(self, *args, config=None, **kwargs):
            configs.append(config)
            super().__init__(*args, config=config, **kwargs)

    monkeypatch.setattr(tf.compat.v1, 'Session', RecordingSession)
    return configs


def test_without_npu_bridge_stops_before_the_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'npu_bridge', None)

    def no_data(*args, **kwargs):
        raise AssertionError('the data was touched before the npu_bridge check')

    monkeypatch.setattr(training_loop, 'check_data', no_data)
    config = write_config(tmp_path / 'tiny.yaml', tiny_config())
    assert run_main(config, str(tmp_path / 'no_data'), tmp_path / 'run') == cli.EXIT_USAGE
    assert "error: --device npu needs CANN's TensorFlow adapter" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'run')


def test_single_device_run_uses_the_npu_setup(tiny_data, tmp_path, monkeypatch):
    log = _fake_bridge(monkeypatch)
    for name in ('RANK_SIZE', 'RANK_ID', 'DEVICE_ID', 'RANK_TABLE_FILE'):
        monkeypatch.delenv(name, raising=False)
    configs = record_sessions(monkeypatch)
    # Step 1 trains only the fusion module (tsa_iter 2), step 2 everything: both train ops.
    config = write_config(
        tmp_path / 'tiny.yaml',
        tiny_config(max_steps=2, tsa_iter=2, checkpoint_every=1, loss_scale=512),
    )
    assert run_main(config, tiny_data, tmp_path / 'run') == 0
    (session_config,) = configs
    (npu_pass,) = session_config.graph_options.rewrite_options.custom_optimizers
    assert npu_pass.name == 'NpuOptimizer'
    assert npu_pass.parameter_map['precision_mode'].s == b'allow_mix_precision'
    wrapped = [c for c in log.calls if c[0] == 'loss_scale']
    assert len(wrapped) == 2  # the full and the fusion-only train ops
    assert all(isinstance(c[1], GroupedOptimizer) for c in wrapped)
    assert ('fixed', {'loss_scale': 512.0}) in log.calls
    for step in (1, 2):  # the step counter advanced by exactly one per step
        reader = tf.compat.v1.train.NewCheckpointReader(
            str(tmp_path / 'run' / f'model.ckpt-{step}')
        )
        assert reader.get_tensor('global_step') == step


def test_other_ranks_write_nothing(tiny_data, tmp_path, monkeypatch):
    log = _fake_bridge(monkeypatch)
    # Broadcast as an identity: the fake's 7s would make Adam's state meaningless.
    monkeypatch.setattr(
        sys.modules['npu_bridge.hccl.hccl_ops'],
        'broadcast',
        lambda tensor, root_rank: (
            log.calls.append(('broadcast', root_rank)) or [tf.identity(tensor[0])]
        ),
    )
    for name, value in _eight_devices(tmp_path, rank=1).items():
        monkeypatch.setenv(name, value)
    config = write_config(tmp_path / 'tiny.yaml', tiny_config(max_steps=2, validate_every=1))
    assert run_main(config, tiny_data, tmp_path / 'run') == 0
    assert not (tmp_path / 'run').exists()  # not even the folder: the chief creates it
    assert ('broadcast', 0) in log.calls
    assert [c[0] for c in log.calls if c[0] in ('distributed', 'loss_scale')] == [
        'distributed',
        'loss_scale',
    ]


def test_bad_loss_scale_is_a_config_error():
    with pytest.raises(
        ValueError,
        match=r"train.loss_scale must be 'dynamic', a positive number "
        r"or null, got 'static'",
    ):
        check_train_config(parse_config(tiny_config(loss_scale='static')))
