"""The in-graph lr schedule against BasicSR's CosineAnnealingRestartLR, written out here."""

import math

import numpy as np
import pytest
import tensorflow as tf

from edvr.training.lr_schedule import check_schedule, cosine_annealing_restart_lr


def basicsr_lr(last_epoch, base_lr, periods, restart_weights, eta_min):
    """BasicSR 1.4.2 ``CosineAnnealingRestartLR.get_lr`` for one param group."""
    cumulative = [sum(periods[: i + 1]) for i in range(len(periods))]
    idx = next(i for i, c in enumerate(cumulative) if last_epoch <= c)
    nearest_restart = 0 if idx == 0 else cumulative[idx - 1]
    return eta_min + restart_weights[idx] * 0.5 * (base_lr - eta_min) * (
        1 + math.cos(math.pi * ((last_epoch - nearest_restart) / periods[idx]))
    )


@pytest.mark.parametrize(
    'base_lr, periods, weights, eta_min',
    [
        (4e-4, [50000, 100000, 150000, 150000, 150000], [1, 0.5, 0.5, 0.5, 0.5], 1e-7),
        (2e-4, [10, 20, 5], [1, 1, 0.25], 0.0),
        (1e-3, [7], [1], 1e-6),
    ],
)
def test_matches_basicsr(base_lr, periods, weights, eta_min):
    total = sum(periods)
    cumulative = np.cumsum(periods)
    steps = sorted(
        set(
            np.linspace(0, total, 200).astype(int).tolist()
            + [c + d for c in cumulative for d in (-1, 0, 1) if 0 <= c + d <= total]
        )
    )
    got = [
        float(
            cosine_annealing_restart_lr(
                tf.constant(s, tf.int64), base_lr, periods, weights, eta_min
            )
        )
        for s in steps
    ]
    expected = [basicsr_lr(s, base_lr, periods, weights, eta_min) for s in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


def test_restart_jumps_up_to_the_weighted_lr():
    lr = [
        float(cosine_annealing_restart_lr(tf.constant(s), 1.0, [10, 10], [1, 0.5], 0.0))
        for s in (0, 10, 11)
    ]
    assert lr[0] == 1.0 and lr[1] == pytest.approx(0.0, abs=1e-7)
    assert lr[2] == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi / 10)), rel=1e-6)


def test_schedule_errors():
    with pytest.raises(ValueError, match='equal length'):
        check_schedule([10, 20], [1], 0.0)
    with pytest.raises(ValueError, match=r'max_steps \(31\) is past the end of the lr schedule'):
        check_schedule([10, 20], [1, 1], 0.0, max_steps=31)
