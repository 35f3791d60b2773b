"""Pixel losses of EDVR training: Charbonnier (the paper's), L1 and L2, sum or mean."""

import tensorflow as tf

LOSSES = ('charbonnier', 'l1', 'l2')
REDUCTIONS = ('sum', 'mean')


def pixel_loss(prediction, target, kind='charbonnier', reduction='sum', eps=1e-6):
    """Loss between ``prediction`` and ``target`` (same shape, e.g. (b, h, w, c)).

    charbonnier: ``sqrt((p - t)^2 + eps)`` per element (eps 1e-6, as the original EDVR code);
    l1: ``|p - t|``; l2: ``(p - t)^2``. Reduced by ``sum`` or ``mean`` over all elements.
    """
    if kind not in LOSSES:
        raise ValueError(f'train.loss must be one of {LOSSES}, got {kind!r}')
    if reduction not in REDUCTIONS:
        raise ValueError(f'train.loss_reduction must be one of {REDUCTIONS}, got {reduction!r}')
    diff = prediction - target
    if kind == 'charbonnier':
        per_element = tf.sqrt(diff * diff + eps)
    elif kind == 'l1':
        per_element = tf.abs(diff)
    else:
        per_element = diff * diff
    return tf.reduce_sum(per_element) if reduction == 'sum' else tf.reduce_mean(per_element)
