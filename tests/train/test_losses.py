"""Pixel losses against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from edvr.training.losses import pixel_loss

RNG = np.random.default_rng(0)
PRED = RNG.random((2, 8, 8, 3)).astype(np.float32)
TARGET = RNG.random((2, 8, 8, 3)).astype(np.float32)
DIFF = PRED.astype(np.float64) - TARGET


@pytest.mark.parametrize(
    'kind, per_element',
    [
        ('charbonnier', np.sqrt(DIFF**2 + 1e-6)),
        ('l1', np.abs(DIFF)),
        ('l2', DIFF**2),
    ],
)
@pytest.mark.parametrize('reduction', ['sum', 'mean'])
def test_losses_match_numpy(kind, per_element, reduction):
    expected = per_element.sum() if reduction == 'sum' else per_element.mean()
    got = float(pixel_loss(tf.constant(PRED), tf.constant(TARGET), kind, reduction, eps=1e-6))
    assert got == pytest.approx(expected, rel=1e-5)


def test_charbonnier_at_zero_is_sqrt_eps():
    zero = tf.zeros([1, 4, 4, 3])
    assert float(pixel_loss(zero, zero, 'charbonnier', 'mean', eps=1e-6)) == pytest.approx(1e-3)


def test_bad_names():
    with pytest.raises(ValueError, match="train.loss must be one of .* got 'l3'"):
        pixel_loss(tf.zeros([1]), tf.zeros([1]), 'l3')
    with pytest.raises(ValueError, match="train.loss_reduction must be one of .* got 'max'"):
        pixel_loss(tf.zeros([1]), tf.zeros([1]), 'l1', 'max')
