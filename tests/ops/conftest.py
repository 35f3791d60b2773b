"""Fixtures for the op tests: every test runs on both backends."""
import os

import numpy as np
import pytest
import tensorflow as tf

from ops import _native

from .cases import tolerance  # noqa: F401 (the op tests import it from here)

BACKENDS = ("native", "reference")


def require_native():
    """Skips the calling test when the native op library is not built."""
    if not os.path.exists(_native.LIBRARY_PATH):
        pytest.skip("native op library not built: run `python setup.py build_ext --inplace`")


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Selects a backend through EDVR_OPS_BACKEND for the duration of a test."""
    if request.param == "native":
        require_native()
    monkeypatch.setenv("EDVR_OPS_BACKEND", request.param)
    return request.param


def assert_backends_agree(monkeypatch, op, inputs):
    """op(*inputs) and the gradients of sum(op(...)**2) agree between native and
    reference to float32 rounding."""
    require_native()
    results = {}
    for name in ("native", "reference"):
        monkeypatch.setenv("EDVR_OPS_BACKEND", name)
        tensors = [tf.constant(a) for a in inputs]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            y = op(*tensors)
            loss = tf.reduce_sum(y * y)
        results[name] = [y.numpy()] + [g.numpy() for g in tape.gradient(loss, tensors)]
    for native, reference in zip(results["native"], results["reference"]):
        np.testing.assert_allclose(native, reference, rtol=1e-5, atol=1e-5)


