"""Which backend runs the ops: EDVR_OPS_BACKEND, read and resolved once, at the first op call.

``auto`` (default: native if the op library loads, else reference with one warning that says
why and how to build), ``native`` (fails loudly if the library does not load), ``reference``,
or ``npu`` (native op types for CANN's TF adapter; needs npu_bridge and the op library).
Tests that switch backends set the variable and call ``reresolve()``
(tests/ops/conftest.backend_selected).
"""

import importlib
import os
import warnings

ENV_VAR = "EDVR_OPS_BACKEND"
CHOICES = ("auto", "native", "reference", "npu")
_resolved = None  # the active backend's name, once resolved


def backend():
    """Name of the active backend: 'native', 'reference' or 'npu'."""
    global _resolved
    if _resolved is None:
        _resolved = _resolve(os.environ.get(ENV_VAR, "auto").strip().lower() or "auto")
    return _resolved


def reresolve():
    """Test hook: forgets the resolved backend, so that the next op call reads EDVR_OPS_BACKEND
    again (and, for ``auto`` without the library, warns again)."""
    global _resolved
    _resolved = None


def _resolve(choice):
    if choice not in CHOICES:
        raise ValueError(f"{ENV_VAR} must be one of {CHOICES}, got {choice!r}")
    if choice == "reference":
        return "reference"
    if choice == "npu":
        try:
            importlib.import_module("npu_bridge")
        except ImportError as error:
            raise RuntimeError(
                f"{ENV_VAR}=npu needs CANN's TensorFlow adapter "
                f"(npu_bridge), which cannot be imported: {error}"
            ) from error
    import tensorflow as tf  # here, so that `import ops` does not import TensorFlow

    from . import _native

    try:
        _native.load()
        return "npu" if choice == "npu" else "native"
    except (OSError, tf.errors.NotFoundError) as error:
        if choice in ("native", "npu"):
            raise RuntimeError(
                f"{ENV_VAR}={choice} but the native op library cannot be loaded: {error}"
            ) from error
        # stacklevel 3: the caller of backend(), as when backend() warned itself.
        warnings.warn(
            f"edvr ops: using the slow pure-TF reference backend because the native "
            f"library cannot be loaded ({error}). Build it with "
            f"`python setup.py build_ext --inplace`.",
            RuntimeWarning,
            stacklevel=3,
        )
        return "reference"
