"""Cosine annealing with restarts, as BasicSR's ``CosineAnnealingRestartLR``, in the graph.

With cumulative periods ``C_i = periods[0] + ... + periods[i]`` and ``i`` the first index with
``step <= C_i``::

    lr(step) = eta_min + restart_weights[i] * 0.5 * (base_lr - eta_min)
                         * (1 + cos(pi * (step - C_{i-1}) / periods[i]))      (C_{-1} = 0)

``step`` counts the optimisation steps already done (BasicSR's scheduler ``last_epoch``: its
iteration ``k``, counted from 1, trains with ``lr(k - 1)``).
"""

import math

import numpy as np
import tensorflow as tf


def check_schedule(periods, restart_weights, eta_min, max_steps=None):
    """Raises ValueError unless the schedule is well formed (and covers ``max_steps``)."""
    if not periods or len(periods) != len(restart_weights):
        raise ValueError(
            f'train.scheduler_periods and train.restart_weights must be non-empty '
            f'and of equal length, got {periods} and {restart_weights}'
        )
    if any(not isinstance(p, int) or p <= 0 for p in periods):
        raise ValueError(f'train.scheduler_periods must be positive integers, got {periods}')
    if any(not isinstance(w, (int, float)) or w < 0 for w in restart_weights):
        raise ValueError(f'train.restart_weights must be numbers >= 0, got {restart_weights}')
    if eta_min < 0:
        raise ValueError(f'train.eta_min must be >= 0, got {eta_min}')
    if max_steps is not None and max_steps > sum(periods):
        raise ValueError(
            f'train.max_steps ({max_steps}) is past the end of the lr schedule '
            f'(sum of train.scheduler_periods = {sum(periods)}); BasicSR has no lr '
            f'there either: lengthen the periods'
        )


def cosine_annealing_restart_lr(step, base_lr, periods, restart_weights, eta_min):
    """Learning rate at ``step`` (int scalar tensor), a float32 scalar tensor.

    Steps past the last period stay in the last period's formula (``check_schedule`` refuses
    such runs).
    """
    cumulative = np.cumsum(periods).astype(np.float64)
    starts = np.concatenate([[0.0], cumulative[:-1]])
    step = tf.cast(step, tf.float64)
    index = tf.reduce_sum(tf.cast(step > cumulative, tf.int32))
    index = tf.minimum(index, len(periods) - 1)
    weight = tf.gather(tf.constant(restart_weights, tf.float64), index)
    start = tf.gather(tf.constant(starts), index)
    period = tf.gather(tf.constant(periods, tf.float64), index)
    lr = eta_min + weight * 0.5 * (base_lr - eta_min) * (
        1.0 + tf.cos(math.pi * (step - start) / period)
    )
    return tf.cast(lr, tf.float32)
