"""deform_conv2d forward and forward+backward on both backends next to tf.nn.conv2d
of the same shape, at EDVR's shapes (3x3, 64 -> 64 channels, 8 deformable groups).

Run with `pytest bench/`; the ratios are printed at the end. Graph mode, inputs in
variables (so nothing is constant-folded), outputs run but not fetched. The native and
reference benchmarks also run tf.nn.conv2d once before each of their rounds (untimed by
pytest-benchmark, timed here), so that their ratios compare rounds taken side by side: load
from outside the process then moves both sides of a ratio, not one.
"""

import os
import time

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import _native
from tests.ops.conftest import backend_selected

from .conftest import record, record_beside

SHAPES = {  # name: [N, H, W, C]
    "train L1 [20,64,64,64]": (20, 64, 64, 64),
    "train L2 [20,32,32,64]": (20, 32, 32, 64),
    "train L3 [20,16,16,64]": (20, 16, 16, 64),
    "infer [5,180,320,64]": (5, 180, 320, 64),
}
GROUPS = 8
ROUNDS = {"conv2d": 10, "native": 5, "reference": 2, "native bf16": 5}


def build(variant, shape, dtype=tf.float32):
    """Graph with the forward op and its gradients w.r.t. every input, inputs of ``dtype``;
    returns (fwd, fwd+bwd) targets."""
    n, h, w, c = shape
    rng = np.random.default_rng(0)
    variable = lambda a: tf.compat.v1.Variable(tf.cast(a.astype(np.float32), dtype))
    x = variable(rng.normal(size=shape))
    filters = variable(rng.normal(size=(3, 3, c, c)) * 0.05)
    grad_y = variable(rng.normal(size=(n, h, w, c)))
    if variant == "conv2d":
        y = tf.compat.v1.nn.conv2d(x, filter=filters, strides=[1, 1, 1, 1], padding="SAME")
        inputs = [x, filters]
    else:
        offsets = variable(
            np.concatenate(
                [
                    rng.normal(0, 2, (n, h, w, 2 * GROUPS * 9)),
                    rng.uniform(0, 1, (n, h, w, GROUPS * 9)),
                ],
                axis=-1,
            )
        )
        with backend_selected(variant.split()[0]):
            y = ops.deform_conv2d(x, offsets, filters, pads=(1, 1, 1, 1), deformable_groups=GROUPS)
        inputs = [x, offsets, filters]
    grads = tf.compat.v1.gradients(y, inputs, grad_ys=grad_y)
    return [y.op], [y.op] + [g.op for g in grads]


@pytest.mark.parametrize("phase", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("variant", ["conv2d", "native", "reference"])
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_deform_conv2d(benchmark, shape_name, variant, phase):
    if variant == "native" and not os.path.exists(_native.LIBRARY_PATH):
        pytest.skip("native op library not built: run `python setup.py build_ext --inplace`")
    benchmark.group = f"{shape_name} {phase}"
    pick = lambda targets: targets[0] if phase == "fwd" else targets[1]
    with tf.Graph().as_default():
        target = pick(build(variant, SHAPES[shape_name]))
        baseline = None if variant == "conv2d" else pick(build("conv2d", SHAPES[shape_name]))
        baseline_times = run_beside(benchmark, target, baseline, ROUNDS[variant])
    record(benchmark, shape_name, f"{variant} {phase}")
    if baseline_times:
        record_beside(shape_name, f"{variant} {phase}", min(baseline_times))


def run_beside(benchmark, target, baseline, rounds):
    """Times ``target`` for ``rounds`` rounds, running ``baseline`` (if any) once before each
    as untimed set-up; returns the baseline's times, so load on the shared machine falls on
    both sides of their ratio."""
    baseline_times = []

    def run_baseline():
        start = time.perf_counter()
        sess.run(baseline)
        baseline_times.append(time.perf_counter() - start)

    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        benchmark.pedantic(
            sess.run,
            args=(target,),
            rounds=rounds,
            warmup_rounds=1,
            setup=run_baseline if baseline is not None else None,
        )
    return baseline_times


@pytest.mark.parametrize("phase", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_deform_conv2d_bfloat16(benchmark, shape_name, phase):
    """The native op in bfloat16 against bfloat16 tf.nn.conv2d (oneDNN) run beside it."""
    if not os.path.exists(_native.LIBRARY_PATH):
        pytest.skip("native op library not built: run `python setup.py build_ext --inplace`")
    benchmark.group = f"{shape_name} {phase} bfloat16"
    pick = lambda targets: targets[0] if phase == "fwd" else targets[1]
    with tf.Graph().as_default():
        target = pick(build("native", SHAPES[shape_name], tf.bfloat16))
        baseline = pick(build("conv2d", SHAPES[shape_name], tf.bfloat16))
        baseline_times = run_beside(benchmark, target, baseline, ROUNDS["native bf16"])
    record(benchmark, shape_name, f"native bf16 {phase}")
    record_beside(shape_name, f"native bf16 {phase}", min(baseline_times))
