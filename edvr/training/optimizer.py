"""Adam with BasicSR's EDVR options: a DCN learning-rate multiplier and the TSA warm-up.

Variables fall in three groups, each with its own Adam (so each keeps its own step count for
bias correction, as PyTorch's per-parameter Adam state does):

- ``fusion``: variables whose name has a component containing ``fusion`` (TSA or plain fusion);
- ``dcn``: other variables whose name has a component containing ``dcn`` (BasicSR's ``dcn``
  parameter group: the deformable convs with their offset convs), lr x ``dcn_lr_mul``;
- ``other``: the rest.

Two train ops share those optimisers: ``full`` updates every group; ``fusion_only`` updates
only the fusion variables, for BasicSR's warm-up (iterations 1 .. tsa_iter - 1, i.e. while
fewer than ``tsa_iter - 1`` steps are done; from iteration ``tsa_iter`` on, everything trains).

With ``wrap_optimizer`` (e.g. ``edvr.npu.NpuTraining.wrap_optimizer`` for loss scaling and
HCCL all-reduce), each train op is ``wrap_optimizer(GroupedOptimizer(...)).minimize(...)`` over
the same groups and optimisers, so the wrapper sees one backward pass for all of them.
"""

import collections

import tensorflow as tf

from edvr.training.lr_schedule import cosine_annealing_restart_lr

TrainOps = collections.namedtuple('TrainOps', 'full fusion_only lr groups')


class GroupedOptimizer(tf.compat.v1.train.Optimizer):
    """One optimizer over several (optimizer, variables) groups, e.g. the per-group Adams of
    ``build_train_ops``, so that one wrapper (NPULossScaleOptimizer, NPUDistributedOptimizer,
    the collective all-reduce of edvr.training.distributed) wraps them all: one loss scale,
    one all-reduce, one backward pass."""

    def __init__(self, groups, name='GroupedOptimizer'):
        super().__init__(use_locking=False, name=name)
        self._groups = [(optimizer, list(variables)) for optimizer, variables in groups]

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
        updates = []
        for optimizer, variables in self._groups:
            members = {id(v) for v in variables}
            pairs = [(g, v) for g, v in grads_and_vars if id(v) in members]
            if pairs:
                updates.append(optimizer.apply_gradients(pairs))
        if global_step is None:
            return tf.group(*updates, name=name or self.get_name())
        with tf.control_dependencies(updates):
            return tf.compat.v1.assign_add(global_step, 1, name=name or self.get_name()).op


def _has_component(variable, word):
    return any(word in part for part in variable.op.name.split('/'))


def variable_groups(variables):
    """Splits ``variables`` into an OrderedDict fusion / dcn / other (lists, order kept)."""
    groups = collections.OrderedDict((k, []) for k in ('fusion', 'dcn', 'other'))
    for v in variables:
        if _has_component(v, 'fusion'):
            groups['fusion'].append(v)
        elif _has_component(v, 'dcn'):
            groups['dcn'].append(v)
        else:
            groups['other'].append(v)
    return groups


def fusion_warmup_active(steps_done, tsa_iter):
    """True while BasicSR trains only the fusion module (its iteration ``steps_done + 1`` is
    below ``tsa_iter``)."""
    return tsa_iter > 0 and steps_done + 1 < tsa_iter


def build_train_ops(loss, global_step, train_cfg, variables=None, wrap_optimizer=None):
    """Builds the ``full`` and ``fusion_only`` train ops and the lr tensor.

    Args:
      loss: scalar loss tensor.
      global_step: the int64 step variable (steps done); both ops increment it once.
      train_cfg: the ``train`` config section (lr, beta1, beta2, scheduler_periods,
        restart_weights, eta_min, dcn_lr_mul, tsa_iter).
      variables: the variables to train (default: all trainable).
      wrap_optimizer: None (plain per-group ``apply_gradients``), or a function from an
        optimizer to an optimizer whose ``minimize`` builds the update.
    Returns:
      TrainOps(full, fusion_only (None when tsa_iter is 0), lr (float32 scalar, the base
      group's), groups (the variable groups)).
    """
    variables = variables if variables is not None else tf.compat.v1.trainable_variables()
    groups = variable_groups(variables)
    lr = cosine_annealing_restart_lr(
        global_step,
        train_cfg['lr'],
        train_cfg['scheduler_periods'],
        train_cfg['restart_weights'],
        train_cfg['eta_min'],
    )
    # BasicSR scales the dcn group's initial lr; the schedule then anneals it to eta_min.
    dcn_lr = cosine_annealing_restart_lr(
        global_step,
        train_cfg['lr'] * train_cfg['dcn_lr_mul'],
        train_cfg['scheduler_periods'],
        train_cfg['restart_weights'],
        train_cfg['eta_min'],
    )
    optimizers = {
        name: tf.compat.v1.train.AdamOptimizer(
            dcn_lr if name == 'dcn' else lr,
            beta1=train_cfg['beta1'],
            beta2=train_cfg['beta2'],
            epsilon=1e-8,
            name=f'adam_{name}',
        )
        for name in groups
    }

    def apply(names):
        var_list = [v for name in names for v in groups[name]]
        if wrap_optimizer is not None:
            grouped = GroupedOptimizer([(optimizers[name], groups[name]) for name in names])
            # global_step is not passed to minimize: a loss-scale wrapper may skip
            # apply_gradients on overflow (TF's LossScaleOptimizer does, in a tf.cond), and
            # with it the increment; the step must advance exactly once per run, as below.
            update = wrap_optimizer(grouped).minimize(loss, var_list=var_list)
            with tf.control_dependencies([update]):
                return tf.compat.v1.assign_add(global_step, 1).op
        grads = tf.gradients(loss, var_list)
        updates, start = [], 0
        for name in names:
            count = len(groups[name])
            pairs = [
                (g, v) for g, v in zip(grads[start : start + count], groups[name]) if g is not None
            ]
            start += count
            if pairs:
                updates.append(optimizers[name].apply_gradients(pairs))
        with tf.control_dependencies(updates):
            return tf.compat.v1.assign_add(global_step, 1).op

    full = apply([name for name in groups if groups[name]])
    fusion_only = None
    if train_cfg['tsa_iter'] > 0:
        if not groups['fusion']:
            raise ValueError(
                f'train.tsa_iter is {train_cfg["tsa_iter"]} but the model has no '
                f'fusion variables to warm up; set train.tsa_iter: 0'
            )
        fusion_only = apply(['fusion'])
    return TrainOps(full, fusion_only, lr, groups)
