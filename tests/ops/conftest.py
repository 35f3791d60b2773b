"""Fixtures for the op tests: every test runs on both backends."""

import contextlib
import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, settings

from ops import _backend, _native

from .cases import tolerance  # noqa: F401 (the op tests import it from here)

# The one hypothesis profile of the property tests (test_properties.py), loaded here so every
# run draws the same examples: derandomize (examples follow from the test's source, not from
# a random seed), no example database (a local .hypothesis/ folder cannot change what CI runs),
# no deadline (TF's first call of an op traces it and the machine is shared), and the examples
# printed so a failure can be pasted into an @example. Each test sets its own max_examples.
settings.register_profile(
    "edvr-ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("edvr-ci")

BACKENDS = ("native", "reference")


def require_native():
    """Skips the calling test when the native op library is not built."""
    if not os.path.exists(_native.LIBRARY_PATH):
        pytest.skip("native op library not built: run `python setup.py build_ext --inplace`")


@contextlib.contextmanager
def backend_selected(name):
    """EDVR_OPS_BACKEND=name inside the block, resolved afresh (the ops read the variable once);
    after it, the previous value, resolved afresh at the next op call."""
    try:
        with mock.patch.dict(os.environ, {_backend.ENV_VAR: name}):
            _backend.reresolve()
            yield
    finally:
        _backend.reresolve()


@pytest.fixture
def select_backend():
    """select_backend(name) selects a backend for the rest of the test (backend_selected)."""
    with contextlib.ExitStack() as selections:
        yield lambda name: selections.enter_context(backend_selected(name))


@pytest.fixture(params=BACKENDS)
def backend(request, select_backend):
    """Selects a backend through EDVR_OPS_BACKEND for the duration of a test."""
    if request.param == "native":
        require_native()
    select_backend(request.param)
    return request.param


def assert_backends_agree(select_backend, op, inputs):
    """op(*inputs) and the gradients of sum(op(...)**2) agree between native and
    reference to float32 rounding."""
    require_native()
    results = {}
    for name in ("native", "reference"):
        select_backend(name)
        tensors = [tf.constant(a) for a in inputs]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            y = op(*tensors)
            loss = tf.reduce_sum(y * y)
        results[name] = [y.numpy()] + [g.numpy() for g in tape.gradient(loss, tensors)]
    for native, reference in zip(results["native"], results["reference"]):
        np.testing.assert_allclose(native, reference, rtol=1e-5, atol=1e-5)
