"""CANN's built-in DeformableOffsets as an opt-in of the npu backend:
EDVR_OPS_BACKEND=npu with EDVR_OPS_NPU_DEFORMABLE=builtin (default ``custom``: our
EdvrDeformableOffsets, whose TBE kernels are in kernels/tbe).

The built-in is a TIK kernel that CANN's TF adapter exposes as the TF op ``DeformableOffsets``
of its op library ``_tf_adapter.so``, reached through ``npu_bridge.helper.helper.get_gen_ops()``.
Its offsets layout, pads and sampling rule are docs/ops.md's; only ``strides`` and ``dilations`` are
4-long, in NHWC order. It takes one deformable group, float16 or float32, and modulated=True
only; other calls keep our op, with one warning per reason.

Its gradient op is the adapter's ``DeformableOffsetsGrad``, attached here with
tf.custom_gradient: the adapter registers the TF gradient of ``DeformableOffsets`` only in
``npu_bridge.tbe.npu_cube_ops``, which ``import npu_bridge`` does not load. Second derivatives
are not supported.
"""

import importlib
import os
import warnings

import tensorflow as tf

SELECT_ENV = "EDVR_OPS_NPU_DEFORMABLE"
CHOICES = ("custom", "builtin")
ADAPTER_OPS_MODULE = "npu_bridge.helper.helper"
BUILTIN_DTYPES = (tf.float16, tf.float32)
_warned_reasons = set()


def selected():
    """True when EDVR_OPS_NPU_DEFORMABLE asks for the built-in; raises on an unknown value."""
    choice = os.environ.get(SELECT_ENV, "custom").strip().lower() or "custom"
    if choice not in CHOICES:
        raise ValueError(f"{SELECT_ENV} must be one of {CHOICES}, got {choice!r}")
    return choice == "builtin"


def adapter_ops():
    """npu_bridge's op library: the generated Python wrappers of _tf_adapter.so."""
    try:
        helper = importlib.import_module(ADAPTER_OPS_MODULE)
    except ImportError as error:
        raise RuntimeError(
            f"{SELECT_ENV}=builtin needs {ADAPTER_OPS_MODULE} of CANN's "
            f"TensorFlow adapter, which cannot be imported: {error}"
        ) from error
    return helper.get_gen_ops()


def unsupported(adapter, dtype, geo):
    """Why the built-in cannot take this call (a phrase naming the limit), or None."""
    if not (hasattr(adapter, "deformable_offsets") and hasattr(adapter, "deformable_offsets_grad")):
        return "this npu_bridge has no DeformableOffsets op (it needs a recent CANN)"
    if geo.deformable_groups != 1:
        return f"deformable_groups={geo.deformable_groups} (it supports 1 only)"
    if tf.as_dtype(dtype).base_dtype not in BUILTIN_DTYPES:
        return f"dtype {tf.as_dtype(dtype).name} (it supports float16 and float32 only)"
    if not geo.modulated:
        return "modulated=False (it supports modulated=True only)"
    return None


def usable_for(dtype, geo):
    """The adapter's op library when the built-in can take this call; else None, after one
    warning per reason."""
    adapter = adapter_ops()
    reason = unsupported(adapter, dtype, geo)
    if reason is None:
        return adapter
    if reason not in _warned_reasons:
        _warned_reasons.add(reason)
        warnings.warn(
            f"edvr ops: {SELECT_ENV}=builtin, but CANN's DeformableOffsets cannot take "
            f"{reason}; using our EdvrDeformableOffsets for such calls",
            RuntimeWarning,
            stacklevel=3,
        )
    return None


def builtin_attrs(geo):
    """The built-in's attributes for docs/ops.md's geometry (ksize (kh, kw), pads (top, bottom, left,
    right) as ours; strides and dilations 4-long in NHWC order)."""
    return dict(
        strides=[1, geo.stride_h, geo.stride_w, 1],
        pads=[geo.pad_top, geo.pad_bottom, geo.pad_left, geo.pad_right],
        ksize=[geo.kernel_h, geo.kernel_w],
        dilations=[1, geo.dilation_h, geo.dilation_w, 1],
        data_format="NHWC",
        deformable_groups=geo.deformable_groups,
        modulated=geo.modulated,
    )


def deformable_offsets(adapter, x, offsets, geo, name=None):
    """y = DeformableOffsets(x, offsets), differentiated by DeformableOffsetsGrad."""
    attrs = builtin_attrs(geo)

    @tf.custom_gradient
    def sample(x, offsets):
        y = adapter.deformable_offsets(x, offsets, name=name, **attrs)

        def grad(dy):
            grad_x, grad_offsets = adapter.deformable_offsets_grad(dy, x, offsets, **attrs)
            return grad_x, grad_offsets

        return y, grad

    return sample(x, offsets)
