"""deform_conv2d forward and forward+backward on both backends next to tf.nn.conv2d
of the same shape, at EDVR's shapes (3x3, 64 -> 64 channels, 8 deformable groups).

Run with `pytest bench/`; the ratios are printed at the end. Graph mode, inputs in
variables (so nothing is constant-folded), outputs run but not fetched.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import _native

from .conftest import record

SHAPES = {  # name: [N, H, W, C]
    "train L1 [20,64,64,64]": (20, 64, 64, 64),
    "train L2 [20,32,32,64]": (20, 32, 32, 64),
    "train L3 [20,16,16,64]": (20, 16, 16, 64),
    "infer [5,180,320,64]": (5, 180, 320, 64),
}
GROUPS = 8
ROUNDS = {"conv2d": 10, "native": 5, "reference": 2}


def build(variant, shape):
    """Graph with the forward op and its gradients w.r.t. every input; returns (fwd, fwd+bwd) targets."""
    n, h, w, c = shape
    rng = np.random.default_rng(0)
    variable = lambda a: tf.compat.v1.Variable(a.astype(np.float32))
    x = variable(rng.normal(size=shape))
    filters = variable(rng.normal(size=(3, 3, c, c)) * 0.05)
    grad_y = variable(rng.normal(size=(n, h, w, c)))
    if variant == "conv2d":
        y = tf.compat.v1.nn.conv2d(x, filter=filters, strides=[1, 1, 1, 1], padding="SAME")
        inputs = [x, filters]
    else:
        offsets = variable(np.concatenate([rng.normal(0, 2, (n, h, w, 2 * GROUPS * 9)),
                                           rng.uniform(0, 1, (n, h, w, GROUPS * 9))], axis=-1))
        os.environ["EDVR_OPS_BACKEND"] = variant
        try:
            y = ops.deform_conv2d(x, offsets, filters, pads=(1, 1, 1, 1), deformable_groups=GROUPS)
        finally:
            os.environ.pop("EDVR_OPS_BACKEND")
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
    with tf.Graph().as_default():
        forward, forward_backward = build(variant, SHAPES[shape_name])
        target = forward if phase == "fwd" else forward_backward
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            benchmark.pedantic(sess.run, args=(target,), rounds=ROUNDS[variant], warmup_rounds=1)
    record(benchmark, shape_name, f"{variant} {phase}")
