"""Deformable sampling ops for EDVR: deformable_offsets, deform_conv2d, bilinear_sample.

All tensors are NHWC; semantics are those of docs/ops.md. Two backends give
the same results to float32 rounding:

- ``native``: C++ CPU kernels (ops/_edvr_ops.so, built by
  ``python setup.py build_ext --inplace``), float32, float64 and bfloat16 (bfloat16 is
  located, weighted and summed in float32 and rounded once; kernels/cpu/bfloat16.h);
- ``reference``: pure TF gathers, differentiated by autodiff.

``EDVR_OPS_BACKEND`` = ``auto`` (default: native if it loads, else reference with
one warning), ``native`` (fails loudly if the library is missing), ``reference``, or
``npu``: the same op types as native, which CANN's TF adapter (``npu_bridge``) runs
with our TBE kernels on Ascend (kernels/tbe); it needs npu_bridge and the op library.
With ``npu``, ``EDVR_OPS_NPU_DEFORMABLE=builtin`` (default ``custom``) makes
deformable_offsets use CANN's built-in ``DeformableOffsets`` instead where it can (one
deformable group, float16/float32, modulated) and keep our op, with a warning, elsewhere
(ops/_npu_builtin.py).
"""
import importlib
import os
import warnings

import tensorflow as tf

from . import _checks
from . import reference

__all__ = ["backend", "deformable_offsets", "deform_conv2d", "bilinear_sample"]

BACKENDS = ("auto", "native", "reference", "npu")
_fallback_warned = False


def backend():
    """Name of the active backend: 'native', 'reference' or 'npu'."""
    global _fallback_warned
    choice = os.environ.get("EDVR_OPS_BACKEND", "auto").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(f"EDVR_OPS_BACKEND must be one of {BACKENDS}, got {choice!r}")
    if choice == "reference":
        return "reference"
    if choice == "npu":
        try:
            importlib.import_module("npu_bridge")
        except ImportError as error:
            raise RuntimeError(f"EDVR_OPS_BACKEND=npu needs CANN's TensorFlow adapter "
                               f"(npu_bridge), which cannot be imported: {error}") from error
    from . import _native
    try:
        _native.load()
        return "npu" if choice == "npu" else "native"
    except (OSError, tf.errors.NotFoundError) as error:
        if choice in ("native", "npu"):
            raise RuntimeError(f"EDVR_OPS_BACKEND={choice} but the native op library cannot be "
                               f"loaded: {error}") from error
        if not _fallback_warned:
            warnings.warn(f"edvr ops: using the slow pure-TF reference backend because the native "
                          f"library cannot be loaded ({error}). Build it with "
                          f"`python setup.py build_ext --inplace`.", RuntimeWarning, stacklevel=2)
            _fallback_warned = True
        return "reference"


def deformable_offsets(x, offsets, ksize, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
                       deformable_groups=1, modulated=True, name=None):
    """Samples x at deformed kernel positions (the sampling half of DCNv2).

    Args:
      x: [N, H, W, C], C % deformable_groups == 0.
      offsets: [N, Ho, Wo, 3*G*K]: dx block, dy block, mask block; channel g*K + k,
        k = i*kw + j. The mask is used as given (apply the sigmoid before).
      ksize: (kh, kw). strides: (sh, sw). pads: (top, bottom, left, right).
      dilations: (dh, dw). deformable_groups: G. modulated: multiply by the mask.
    Returns:
      [N, Ho*kh, Wo*kw, C]; Ho = (H + top + bottom - (dh*(kh-1) + 1)) // sh + 1, likewise Wo.
    """
    geo = _checks.geometry("deformable_offsets", ksize, strides, pads, dilations,
                           deformable_groups, modulated)
    active = backend()
    if active == "reference":
        return reference.deformable_offsets(x, offsets, ksize, strides, pads, dilations,
                                            deformable_groups, modulated, name)
    from . import _native, _npu_builtin
    with tf.compat.v1.name_scope(name, "DeformableOffsets", [x, offsets]) as scope:
        x = tf.convert_to_tensor(x)
        offsets = tf.convert_to_tensor(offsets, dtype=x.dtype)
        _checks.deformable_offsets_shapes("deformable_offsets", x, offsets, geo)
        if active == "npu" and _npu_builtin.selected():
            adapter = _npu_builtin.usable_for(x.dtype, geo)
            if adapter is not None:
                return _npu_builtin.deformable_offsets(adapter, x, offsets, geo, name=scope)
        return _native.deformable_offsets(x, offsets, geo, name=scope)


def bilinear_sample(x, coords, name=None):
    """Zero-outside bilinear sampling (warping).

    Args:
      x: [N, H, W, C]. coords: [N, ..., 2] holding (x, y) pixel positions, x first.
    Returns:
      [N, ..., C].
    """
    if backend() == "reference":
        return reference.bilinear_sample(x, coords, name)
    from . import _native
    with tf.compat.v1.name_scope(name, "BilinearSample", [x, coords]) as scope:
        x = tf.convert_to_tensor(x)
        coords = tf.convert_to_tensor(coords, dtype=x.dtype)
        _checks.bilinear_sample_shapes("bilinear_sample", x, coords)
        return _native.bilinear_sample(x, coords, name=scope)


def deform_conv2d(x, offsets, filters, bias=None, strides=(1, 1), pads=(0, 0, 0, 0),
                  dilations=(1, 1), deformable_groups=1, groups=1, name=None):
    """Modulated deformable convolution (DCNv2).

    conv2d(deformable_offsets(x, offsets, (kh, kw), ...), filters, strides=(kh, kw),
    padding='VALID', groups) + bias.

    Args:
      x: [N, H, W, C]. offsets: [N, Ho, Wo, 3*G*K] as in deformable_offsets.
      filters: [kh, kw, C/groups, F]. bias: [F] or None.
    Returns:
      [N, Ho, Wo, F].
    """
    op = "deform_conv2d"
    with tf.compat.v1.name_scope(name, "DeformConv2D", [x, offsets, filters]):
        x = tf.convert_to_tensor(x)
        filters = tf.convert_to_tensor(filters, dtype=x.dtype)
        if bias is not None:
            bias = tf.convert_to_tensor(bias, dtype=x.dtype)
        kernel_h, kernel_w = _checks.deform_conv2d_filters(op, x, filters, groups, bias)
        offsets = tf.convert_to_tensor(offsets, dtype=x.dtype)
        geo = _checks.geometry(op, (kernel_h, kernel_w), strides, pads, dilations,
                               deformable_groups)
        _checks.deformable_offsets_shapes(op, x, offsets, geo)
        if groups == 1 and backend() == "native":
            # Fused: each tile of output pixels is sampled and multiplied by the filters while
            # it is in cache, so the columns (and their gradient) are never stored.
            from . import _native
            y = _native.deform_conv2d(x, offsets, filters, geo)
            return y if bias is None else tf.nn.bias_add(y, bias)
        columns = deformable_offsets(x, offsets, (kernel_h, kernel_w), strides, pads, dilations,
                                     deformable_groups, modulated=True)
        conv = lambda inp, fil: tf.compat.v1.nn.conv2d(
            inp, filter=fil, strides=[1, kernel_h, kernel_w, 1], padding="VALID")
        if groups == 1:
            y = _conv_kernel_rows(columns, filters, kernel_h, kernel_w, tf.shape(offsets)[2])
        else:
            y = tf.concat([conv(c, f) for c, f in zip(tf.split(columns, groups, axis=3),
                                                      tf.split(filters, groups, axis=3))], axis=3)
        # TF's CPU conv2d returns its input's shape for an empty batch; restate the true one.
        out_shape = tf.concat([tf.shape(columns)[:1], tf.shape(offsets)[1:3], tf.shape(filters)[3:]], 0)
        y = tf.reshape(y, out_shape)
        if bias is not None:
            y = tf.nn.bias_add(y, bias)
        return y


def _conv_kernel_rows(columns, filters, kernel_h, kernel_w, out_width):
    """conv2d(columns, filters, strides=(kh, kw), padding='VALID') for one group, computed as a
    stride-1 (kh, 1) convolution: output pixel (ho, wo) reads rows [ho*kh, ho*kh + kh) of the
    columns, so [N, Ho*kh, Wo*kw, C] reshapes for free to [N*Ho, kh, Wo, kw*C] and the filters
    to [kh, 1, kw*C, F]. oneDNN runs this form faster than the strided one, forward and backward.

    columns: [N, Ho*kh, Wo*kw, C]. filters: [kh, kw, C, F]. Returns [N*Ho, 1, Wo, F].
    """
    channels, features = tf.shape(filters)[2], tf.shape(filters)[3]
    rows = tf.reshape(columns, tf.stack([-1, kernel_h, out_width, kernel_w * channels]))
    row_filters = tf.reshape(filters, tf.stack([kernel_h, 1, kernel_w * channels, features]))
    return tf.compat.v1.nn.conv2d(rows, filter=row_filters, strides=[1, 1, 1, 1], padding="VALID")
