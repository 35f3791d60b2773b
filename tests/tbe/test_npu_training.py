"""edvr.npu against a fake npu_bridge that records calls (the real adapter needs CANN + TF 1.15)."""

import sys
import types

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from edvr import npu  # noqa: E402
from edvr.training.optimizer import GroupedOptimizer  # noqa: E402


class Recorder:
    def __init__(self):
        self.calls = []


def _fake_bridge(monkeypatch):
    """Install fake npu_bridge modules in sys.modules; returns the call log."""
    log = Recorder()

    class Wrapper:
        def __init__(self, kind, inner, *args, **kwargs):
            self.kind, self.inner, self.args, self.kwargs = kind, inner, args, kwargs
            log.calls.append((kind, inner, args, kwargs))

        def minimize(self, loss, global_step=None, var_list=None):
            return self.inner.minimize(loss, global_step=global_step, var_list=var_list)

    def manager(kind):
        return lambda **kwargs: log.calls.append((kind, kwargs)) or (kind, kwargs)

    def broadcast(tensor, root_rank):
        log.calls.append(("broadcast", tensor[0].op.name, root_rank))
        return [tf.identity(tensor[0]) * 0 + 7]  # visible in the assigned value

    fakes = {
        "npu_bridge": {},
        "npu_bridge.estimator": {},
        "npu_bridge.estimator.npu": {},
        "npu_bridge.estimator.npu.npu_optimizer": {
            "NPUDistributedOptimizer": lambda opt: Wrapper("distributed", opt)
        },
        "npu_bridge.estimator.npu.npu_loss_scale_optimizer": {
            "NPULossScaleOptimizer": lambda opt, mgr, is_distributed=False: Wrapper(
                "loss_scale", opt, mgr, is_distributed=is_distributed
            )
        },
        "npu_bridge.estimator.npu.npu_loss_scale_manager": {
            "ExponentialUpdateLossScaleManager": manager("dynamic"),
            "FixedLossScaleManager": manager("fixed"),
        },
        "npu_bridge.hccl": {},
        "npu_bridge.hccl.hccl_ops": {"broadcast": broadcast},
    }
    for name, attrs in fakes.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    return log


def _eight_devices(tmp_path, rank=3):
    table = tmp_path / "rank_table_8p.json"
    table.write_text("{}")
    return {
        "RANK_SIZE": "8",
        "RANK_ID": str(rank),
        "DEVICE_ID": str(rank),
        "RANK_TABLE_FILE": str(table),
    }


def test_missing_npu_bridge_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "npu_bridge", None)
    with pytest.raises(
        npu.NpuUnavailableError, match=r"--device npu needs CANN's TensorFlow adapter"
    ):
        npu.NpuTraining.from_env({})


def test_session_config_mixed_precision(monkeypatch):
    _fake_bridge(monkeypatch)
    config = npu.NpuTraining.from_env({}, mixed_precision=True).session_config()
    rewrite = config.graph_options.rewrite_options
    (npu_pass,) = rewrite.custom_optimizers
    assert npu_pass.name == "NpuOptimizer"
    assert npu_pass.parameter_map["use_off_line"].b
    assert npu_pass.parameter_map["precision_mode"].s == b"allow_mix_precision"
    assert "hcom_parallel" not in npu_pass.parameter_map
    assert (
        rewrite.remapping == type(rewrite).OFF and rewrite.memory_optimization == type(rewrite).OFF
    )
    plain = npu.NpuTraining.from_env({}, mixed_precision=False).session_config()
    assert (
        plain.graph_options.rewrite_options.custom_optimizers[0].parameter_map["precision_mode"].s
        == b"allow_fp32_to_fp16"
    )


def test_single_device_dynamic_loss_scale(monkeypatch):
    log = _fake_bridge(monkeypatch)
    training = npu.NpuTraining.from_env({"DEVICE_ID": "5"}, loss_scale="dynamic")
    assert training.cluster == npu.ClusterInfo(1, 0, 5, "")
    base = object()
    wrapped = training.wrap_optimizer(base)
    assert (
        wrapped.kind == "loss_scale"
        and wrapped.inner is base
        and wrapped.kwargs == {"is_distributed": False}
    )
    assert (
        "dynamic",
        {
            "init_loss_scale": 2.0**32,
            "incr_every_n_steps": 1000,
            "decr_every_n_nan_or_inf": 2,
            "decr_ratio": 0.5,
        },
    ) in log.calls
    assert not any(c[0] == "distributed" for c in log.calls)


def test_eight_devices_fixed_loss_scale_and_broadcast(monkeypatch, tmp_path):
    log = _fake_bridge(monkeypatch)
    training = npu.NpuTraining.from_env(_eight_devices(tmp_path), loss_scale=1024)
    assert training.cluster.distributed and training.cluster.rank_id == 3
    config = training.session_config()
    assert (
        config.graph_options.rewrite_options.custom_optimizers[0].parameter_map["hcom_parallel"].b
    )
    base = object()
    wrapped = training.wrap_optimizer(base)
    assert (
        wrapped.kind == "loss_scale"
        and wrapped.inner.kind == "distributed"
        and wrapped.inner.inner is base
    )
    assert wrapped.kwargs == {"is_distributed": True} and wrapped.args == (
        ("fixed", {"loss_scale": 1024.0}),
    )
    graph = tf.Graph()
    with graph.as_default():
        weights = tf.compat.v1.get_variable("w", initializer=np.ones(3, np.float32))
        step = tf.compat.v1.train.get_or_create_global_step()
        sync = training.broadcast_variables()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(sync)
            np.testing.assert_array_equal(sess.run(weights), [7, 7, 7])
            assert sess.run(step) == 0
    assert [c for c in log.calls if c[0] == "broadcast"] == [("broadcast", "w", 0)]


def test_no_loss_scale_single_device_is_the_plain_optimizer(monkeypatch):
    _fake_bridge(monkeypatch)
    base = object()
    assert npu.NpuTraining.from_env({}, loss_scale=None).wrap_optimizer(base) is base
    with pytest.raises(
        ValueError, match="loss_scale: expected 'dynamic', a positive number or None, got -1"
    ):
        npu.NpuTraining.from_env({}, loss_scale=-1)


@pytest.mark.parametrize(
    "env,message",
    [
        (
            {"RANK_SIZE": "8", "RANK_ID": "8"},
            r"RANK_ID: expected 0 <= RANK_ID < RANK_SIZE=8, got 8",
        ),
        (
            {"RANK_SIZE": "8", "RANK_ID": "1", "DEVICE_ID": "1"},
            r"RANK_TABLE_FILE: RANK_SIZE=8 needs the HCCL rank table",
        ),
        ({"DEVICE_ID": "x"}, r"DEVICE_ID: expected an integer, got 'x'"),
    ],
)
def test_cluster_errors(env, message):
    with pytest.raises(ValueError, match=message):
        npu.ClusterInfo.from_env(env)


def test_grouped_optimizer_applies_each_group_once():
    """One wrapped optimizer over the per-group Adams: each group keeps its own optimizer and lr."""
    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.get_variable("a", initializer=np.float32(1.0))
        b = tf.compat.v1.get_variable("b", initializer=np.float32(1.0))
        step = tf.compat.v1.train.get_or_create_global_step()
        loss = a * 2.0 + b * 3.0
        fast = tf.compat.v1.train.GradientDescentOptimizer(0.5)
        slow = tf.compat.v1.train.GradientDescentOptimizer(0.1)
        train = GroupedOptimizer([(fast, [a]), (slow, [b])]).minimize(loss, global_step=step)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(train)
            assert sess.run([a, b, step]) == pytest.approx([1 - 0.5 * 2, 1 - 0.1 * 3, 1])
