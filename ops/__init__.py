"""Deformable sampling ops for EDVR: deformable_offsets, deform_conv2d, bilinear_sample.

All tensors are NHWC; semantics are those of docs/ops.md. Two backends give
the same results to float32 rounding:

- ``native``: C++ CPU kernels (ops/_edvr_ops.so, built by
  ``python setup.py build_ext --inplace``), float32, float64 and bfloat16 (bfloat16 is
  located, weighted and summed in float32 and rounded once; kernels/cpu/bfloat16.h);
- ``reference``: pure TF gathers, differentiated by autodiff (ops/reference.py).

``EDVR_OPS_BACKEND`` picks one (ops/_backend.py): ``auto`` (default: native if it loads,
else reference with one warning), ``native`` (fails loudly if the library is missing),
``reference``, or ``npu``: the same op types as native, which CANN's TF adapter
(``npu_bridge``) runs with our TBE kernels on Ascend (kernels/tbe); it needs npu_bridge and
the op library. With ``npu``, ``EDVR_OPS_NPU_DEFORMABLE=builtin`` (default ``custom``) makes
deformable_offsets use CANN's built-in ``DeformableOffsets`` instead where it can (one
deformable group, float16/float32, modulated) and keep our op, with a warning, elsewhere
(ops/_npu_builtin.py).

``import ops`` does not import TensorFlow (the ops import it when called), so the TF-free
parts, the checks and output size of ops/_checks.py and the float64 oracle
ops/numpy_reference.py, serve tools and tests without it (tests/kernels).
"""

from . import _checks
from ._backend import backend

__all__ = ["backend", "deformable_offsets", "deform_conv2d", "bilinear_sample"]


def deformable_offsets(
    x,
    offsets,
    ksize,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    deformable_groups=1,
    modulated=True,
    name=None,
):
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
    import tensorflow as tf

    from . import _native, _npu_builtin, reference

    op = "deformable_offsets"
    geo = _checks.geometry(op, ksize, strides, pads, dilations, deformable_groups, modulated)
    active = backend()
    if active == "reference":
        return reference.deformable_offsets(
            x, offsets, ksize, strides, pads, dilations, deformable_groups, modulated, name
        )
    with tf.compat.v1.name_scope(name, "DeformableOffsets", [x, offsets]) as scope:
        x = tf.convert_to_tensor(x)
        offsets = tf.convert_to_tensor(offsets, dtype=x.dtype)
        _checks.deformable_offsets_shapes(op, x, offsets, geo)
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
    import tensorflow as tf

    from . import _native, reference

    op = "bilinear_sample"
    if backend() == "reference":
        return reference.bilinear_sample(x, coords, name)
    with tf.compat.v1.name_scope(name, "BilinearSample", [x, coords]) as scope:
        x = tf.convert_to_tensor(x)
        coords = tf.convert_to_tensor(coords, dtype=x.dtype)
        _checks.bilinear_sample_shapes(op, x, coords)
        return _native.bilinear_sample(x, coords, name=scope)


def deform_conv2d(
    x,
    offsets,
    filters,
    bias=None,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    deformable_groups=1,
    groups=1,
    name=None,
):
    """Modulated deformable convolution (DCNv2).

    conv2d(deformable_offsets(x, offsets, (kh, kw), ...), filters, strides=(kh, kw),
    padding='VALID', groups) + bias.

    Args:
      x: [N, H, W, C]. offsets: [N, Ho, Wo, 3*G*K] as in deformable_offsets.
      filters: [kh, kw, C/groups, F]. bias: [F] or None.
    Returns:
      [N, Ho, Wo, F].
    """
    import tensorflow as tf

    from . import _native, reference

    op = "deform_conv2d"
    with tf.compat.v1.name_scope(name, "DeformConv2D", [x, offsets, filters]):
        x = tf.convert_to_tensor(x)
        filters = tf.convert_to_tensor(filters, dtype=x.dtype)
        if bias is not None:
            bias = tf.convert_to_tensor(bias, dtype=x.dtype)
        kernel_h, kernel_w = _checks.deform_conv2d_filters(op, x, filters, groups, bias)
        offsets = tf.convert_to_tensor(offsets, dtype=x.dtype)
        geo = _checks.geometry(
            op, (kernel_h, kernel_w), strides, pads, dilations, deformable_groups
        )
        _checks.deformable_offsets_shapes(op, x, offsets, geo)
        if groups == 1 and backend() == "native":
            # Fused: each tile of output pixels is sampled and multiplied by the filters while
            # it is in cache, so the columns (and their gradient) are never stored.
            y = _native.deform_conv2d(x, offsets, filters, geo)
            return y if bias is None else tf.nn.bias_add(y, bias)
        columns = deformable_offsets(
            x,
            offsets,
            (kernel_h, kernel_w),
            strides,
            pads,
            dilations,
            deformable_groups,
            modulated=True,
        )
        return reference.convolve_columns(columns, offsets, filters, bias, groups)
