"""Fixtures for the op tests: every test runs on both backends."""
import os

import numpy as np
import pytest

from ops import _native

BACKENDS = ("native", "reference")


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Selects a backend through EDVR_OPS_BACKEND for the duration of a test."""
    if request.param == "native" and not os.path.exists(_native.LIBRARY_PATH):
        pytest.skip("native op library not built: run `python setup.py build_ext --inplace`")
    monkeypatch.setenv("EDVR_OPS_BACKEND", request.param)
    return request.param


def tolerance(dtype):
    """(rtol, atol) for comparing a result of `dtype` with a float64 reference of magnitude ~1."""
    return (1e-5, 2e-6) if np.dtype(dtype) == np.float32 else (1e-12, 1e-12)
