"""Ascend 910 training set-up through CANN's TensorFlow adapter (npu_bridge), imported lazily.

What `python -m edvr.train --device npu` needs, as Huawei's modelzoo EDVR port does it:
the session config with the `NpuOptimizer` custom optimizer (precision_mode
`allow_mix_precision` under mixed precision), loss scaling (dynamic or fixed) through
`NPULossScaleOptimizer`, and for 8 devices HCCL data parallelism: `NPUDistributedOptimizer`,
the rank table from RANK_TABLE_FILE, RANK_ID/DEVICE_ID/RANK_SIZE per process, and a broadcast
of every variable from rank 0 at start.

    npu = NpuTraining.from_env(mixed_precision=True, loss_scale="dynamic")
    optimizer = npu.wrap_optimizer(GroupedOptimizer([(adam_a, vars_a), (adam_b, vars_b)]))
    train_op = optimizer.minimize(loss, global_step=step, var_list=vars_a + vars_b)
    broadcast = npu.broadcast_variables()  # built before the graph is finalized
    sess = tf.compat.v1.Session(config=npu.session_config())
    sess.run(init); sess.run(broadcast)  # after init (or restore)

(``GroupedOptimizer``: edvr.training.optimizer.)

Without npu_bridge every entry point raises NpuUnavailableError saying what is missing.
"""

import importlib
import os
from dataclasses import dataclass

import tensorflow as tf

NPU_BRIDGE_MODULES = {
    "bridge": "npu_bridge",  # importing it registers the NPU ops and the NpuOptimizer pass
    "optimizer": "npu_bridge.estimator.npu.npu_optimizer",
    "loss_scale_optimizer": "npu_bridge.estimator.npu.npu_loss_scale_optimizer",
    "loss_scale_manager": "npu_bridge.estimator.npu.npu_loss_scale_manager",
    "hccl": "npu_bridge.hccl.hccl_ops",
}
# precision_mode of the NpuOptimizer pass. Without mixed precision the adapter's default keeps
# float32 wherever the AI core has a float32 kernel and uses float16 only where it has none.
MIXED_PRECISION_MODE = "allow_mix_precision"
DEFAULT_PRECISION_MODE = "allow_fp32_to_fp16"


class NpuUnavailableError(RuntimeError):
    """--device npu was asked for, but CANN's TF adapter cannot be used here."""

    exit_code = 2  # edvr.cli.EXIT_USAGE


def load_npu_bridge():
    """The npu_bridge modules this file uses, by role; NpuUnavailableError if any is missing."""
    modules = {}
    for role, name in NPU_BRIDGE_MODULES.items():
        try:
            modules[role] = importlib.import_module(name)
        except ImportError as error:
            raise NpuUnavailableError(
                "--device npu needs CANN's TensorFlow adapter (npu_bridge for TF 1.15, from the "
                "Ascend toolkit; run `source <toolkit>/set_env.sh` in a TF 1.15 environment). "
                "Importing %s failed: %s" % (name, error)
            ) from error
    return modules


@dataclass(frozen=True)
class ClusterInfo:
    """This process's place in an HCCL job (one process per NPU), from the modelzoo variables."""

    rank_size: int = 1
    rank_id: int = 0
    device_id: int = 0
    rank_table_file: str = ""

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env

        def integer(name, default):
            value = env.get(name, str(default))
            try:
                return int(value)
            except ValueError:
                raise ValueError("%s: expected an integer, got %r" % (name, value)) from None

        info = cls(
            integer("RANK_SIZE", 1),
            integer("RANK_ID", 0),
            integer("DEVICE_ID", 0),
            env.get("RANK_TABLE_FILE", ""),
        )
        if info.rank_size < 1 or not 0 <= info.rank_id < info.rank_size:
            raise ValueError(
                "RANK_ID: expected 0 <= RANK_ID < RANK_SIZE=%d, got %d"
                % (info.rank_size, info.rank_id)
            )
        if not 0 <= info.device_id < 8:
            raise ValueError(
                "DEVICE_ID: expected 0..7 (NPUs of one Ascend 910 server), got %d" % info.device_id
            )
        if info.distributed and not os.path.isfile(info.rank_table_file):
            raise ValueError(
                "RANK_TABLE_FILE: RANK_SIZE=%d needs the HCCL rank table json, got %r"
                % (info.rank_size, info.rank_table_file)
            )
        return info

    @property
    def distributed(self):
        return self.rank_size > 1


class NpuTraining:
    """Session config, optimizer wrapping and start-up broadcast for training on Ascend NPUs."""

    def __init__(
        self,
        cluster,
        mixed_precision=True,
        loss_scale="dynamic",
        bridge=None,
        init_loss_scale=2.0**32,
        incr_every_n_steps=1000,
        decr_every_n_nan_or_inf=2,
        decr_ratio=0.5,
    ):
        """loss_scale: "dynamic", a positive number (fixed scale) or None (no scaling)."""
        if not (
            loss_scale in ("dynamic", None)
            or (isinstance(loss_scale, (int, float)) and loss_scale > 0)
        ):
            raise ValueError(
                "loss_scale: expected 'dynamic', a positive number or None, got %r" % (loss_scale,)
            )
        self.bridge = bridge if bridge is not None else load_npu_bridge()
        self.cluster = cluster
        self.mixed_precision = mixed_precision
        self.loss_scale = loss_scale
        self.dynamic_scale = dict(
            init_loss_scale=init_loss_scale,
            incr_every_n_steps=incr_every_n_steps,
            decr_every_n_nan_or_inf=decr_every_n_nan_or_inf,
            decr_ratio=decr_ratio,
        )

    @classmethod
    def from_env(cls, env=None, **kwargs):
        """Cluster from RANK_SIZE/RANK_ID/DEVICE_ID/RANK_TABLE_FILE; npu_bridge checked first."""
        bridge = kwargs.pop("bridge", None) or load_npu_bridge()
        return cls(ClusterInfo.from_env(env), bridge=bridge, **kwargs)

    @property
    def precision_mode(self):
        return MIXED_PRECISION_MODE if self.mixed_precision else DEFAULT_PRECISION_MODE

    def session_config(self, config=None):
        """A ConfigProto whose graph is compiled for the NPU by the NpuOptimizer pass."""
        config = (
            config if config is not None else tf.compat.v1.ConfigProto(allow_soft_placement=True)
        )
        rewrite = config.graph_options.rewrite_options
        npu_pass = rewrite.custom_optimizers.add()
        npu_pass.name = "NpuOptimizer"
        npu_pass.parameter_map["use_off_line"].b = True  # run the graph on the Ascend device
        npu_pass.parameter_map["precision_mode"].s = tf.compat.as_bytes(self.precision_mode)
        if self.cluster.distributed:
            npu_pass.parameter_map["hcom_parallel"].b = True  # overlap all-reduce with backward
        # Grappler's remapping and memory passes rewrite nodes the NPU compiler must see intact.
        toggle = type(rewrite)
        rewrite.remapping = toggle.OFF
        rewrite.memory_optimization = toggle.OFF
        return config

    def loss_scale_manager(self):
        managers = self.bridge["loss_scale_manager"]
        if self.loss_scale == "dynamic":
            return managers.ExponentialUpdateLossScaleManager(**self.dynamic_scale)
        return managers.FixedLossScaleManager(loss_scale=float(self.loss_scale))

    def wrap_optimizer(self, optimizer):
        """NPULossScaleOptimizer(NPUDistributedOptimizer(optimizer)), each layer only when used."""
        if self.cluster.distributed:
            optimizer = self.bridge["optimizer"].NPUDistributedOptimizer(optimizer)
        if self.loss_scale is not None:
            optimizer = self.bridge["loss_scale_optimizer"].NPULossScaleOptimizer(
                optimizer, self.loss_scale_manager(), is_distributed=self.cluster.distributed
            )
        return optimizer

    def broadcast_variables(self, variables=None, root_rank=0):
        """An op copying rank 0's value of every float variable to all ranks (run once, after
        initialisation or restore); a no-op on a single device."""
        variables = tf.compat.v1.global_variables() if variables is None else variables
        if not self.cluster.distributed:
            return tf.no_op(name="broadcast_variables")
        assigns = []
        for variable in variables:
            if not variable.dtype.base_dtype.is_floating:
                continue  # e.g. the int64 global step: equal on every rank anyway
            received = self.bridge["hccl"].broadcast(tensor=[variable], root_rank=root_rank)
            assigns.append(tf.compat.v1.assign(variable, received[0]))
        return tf.group(*assigns, name="broadcast_variables")
