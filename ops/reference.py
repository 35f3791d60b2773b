"""Pure-TF reference backend: plain gathers, differentiated by TF's autodiff.

The fallback when the native library is not built, and an oracle for it; its
convolve_columns is also the convolution half of deform_conv2d wherever the fused native
op does not serve (grouped convolutions, the npu backend).
Semantics: docs/ops.md (NHWC, zero-outside bilinear rule, NaN gives NaN).
bfloat16 inputs are sampled in float32 and the result rounded once, as the native kernels do:
positions in bfloat16 would be off by up to a pixel at a few hundred pixels.
"""

import numpy as np
import tensorflow as tf

from . import _checks


def _dim(tensor, axis):
    """Static size of an axis when known, else a scalar tensor."""
    static = tensor.shape[axis]
    static = static if static is None else int(static)
    return tf.shape(tensor)[axis] if static is None else static


def _bilinear(image, py, px, scale=None):
    """Zero-outside bilinear samples of grouped images, times `scale` when given.

    image: [N, H, W, G, Cg]; py, px, scale: [N, P, G] (float, same dtype).
    Returns [N, P, G, Cg]. A NaN in py, px or scale makes the point's samples NaN and their
    gradients with respect to py and px NaN, as in the native kernels; with respect to scale the
    gradient is the unscaled sample (NaN when py or px is).
    """
    dtype = image.dtype
    n, h, w, g, cg = (_dim(image, a) for a in range(5))
    p = _dim(py, 1)
    h_f, w_f = tf.cast(h, dtype), tf.cast(w, dtype)
    inside = tf.logical_and(tf.logical_and(py > -1, py < h_f), tf.logical_and(px > -1, px < w_f))
    zeros = tf.zeros_like(py)
    # Out-of-range points are moved to 0 before floor(), so no huge or NaN value is cast to int.
    py_safe = tf.compat.v1.where(inside, py, zeros)
    px_safe = tf.compat.v1.where(inside, px, zeros)
    y0, x0 = tf.floor(py_safe), tf.floor(px_safe)
    ly, lx = py_safe - y0, px_safe - x0
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    # One extra all-zero pixel at flat index H*W stands in for corners outside the image.
    flat = tf.reshape(image, [n, h * w, g, cg])
    flat = tf.concat([flat, tf.zeros_like(flat[:, :1])], axis=1)
    batch_index = tf.broadcast_to(tf.reshape(tf.range(n), [n, 1, 1]), [n, p, g])
    group_index = tf.broadcast_to(tf.reshape(tf.range(g), [1, 1, g]), [n, p, g])
    corners = (
        (0, 0, (1 - ly) * (1 - lx)),
        (0, 1, (1 - ly) * lx),
        (1, 0, ly * (1 - lx)),
        (1, 1, ly * lx),
    )
    value = 0
    for dy, dx, weight in corners:
        yi, xi = y0 + dy, x0 + dx
        valid = tf.logical_and(tf.logical_and(yi >= 0, yi < h), tf.logical_and(xi >= 0, xi < w))
        valid = tf.logical_and(valid, inside)
        index = tf.compat.v1.where(valid, yi * w + xi, tf.fill(tf.shape(yi), h * w))
        gathered = tf.gather_nd(flat, tf.stack([batch_index, index, group_index], axis=-1))
        value += tf.expand_dims(weight * tf.cast(valid, dtype), -1) * gathered
    value += tf.expand_dims(_nan_poison(py, px), -1)
    if scale is not None:
        value = value * tf.expand_dims(scale, -1) + tf.expand_dims(_nan_poison(py, px, scale), -1)
    return value


def _nan_poison(py, px, scale=None):
    """0 where none of py, px, scale ([N, P, G]) is NaN, else NaN, with a NaN gradient with
    respect to py and px there and none with respect to scale. Added to the samples, it gives
    the native kernels' gradients at a NaN point: the gathers alone give 0 with respect to py and
    px there (the point counts as outside), the kernels give scale times the derivative of a
    sample that has no value. With respect to scale, the gradient stays the (unscaled) sample."""
    any_nan = tf.logical_or(tf.math.is_nan(py), tf.math.is_nan(px))
    if scale is not None:
        any_nan = tf.logical_or(any_nan, tf.math.is_nan(scale))
    only_nan = lambda t: tf.compat.v1.where(any_nan, t, tf.zeros_like(t))
    total = only_nan(py) + only_nan(px)
    if scale is not None:
        total += tf.stop_gradient(only_nan(scale))
    # Only NaN points enter the sum, so no huge value is squared elsewhere; the square's
    # derivative, 2 * total, is NaN exactly at them.
    return total * total


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
    """Reference deformable_offsets: x [N, H, W, C], offsets [N, Ho, Wo, 3*G*K] -> [N, Ho*kh, Wo*kw, C]."""
    op = "deformable_offsets"
    geo = _checks.geometry(op, ksize, strides, pads, dilations, deformable_groups, modulated)
    with tf.compat.v1.name_scope(name, "DeformableOffsetsReference", [x, offsets]):
        x = tf.convert_to_tensor(x)
        offsets = tf.convert_to_tensor(offsets, dtype=x.dtype)
        _checks.deformable_offsets_shapes(op, x, offsets, geo)
        if x.dtype == tf.bfloat16:
            y = deformable_offsets(
                tf.cast(x, tf.float32),
                tf.cast(offsets, tf.float32),
                ksize,
                strides,
                pads,
                dilations,
                deformable_groups,
                modulated,
            )
            return tf.cast(y, tf.bfloat16)
        n, h, w, c = (_dim(x, a) for a in range(4))
        ho, wo = _dim(offsets, 1), _dim(offsets, 2)
        kh, kw, g = geo.kernel_h, geo.kernel_w, geo.deformable_groups
        k = kh * kw
        blocks = tf.reshape(offsets, [n, ho, wo, 3, g, k])
        dx, dy, mask = (
            blocks[:, :, :, 0],
            blocks[:, :, :, 1],
            blocks[:, :, :, 2],
        )  # [N, Ho, Wo, G, K]
        kernel_i = np.repeat(np.arange(kh), kw)
        kernel_j = np.tile(np.arange(kw), kh)
        # Base positions: py = ho*sh - top + i*dh, px = wo*sw - left + j*dw.
        base_y = tf.reshape(tf.range(ho) * geo.stride_h - geo.pad_top, [1, ho, 1, 1, 1]) + (
            kernel_i * geo.dilation_h
        ).reshape([1, 1, 1, 1, k])
        base_x = tf.reshape(tf.range(wo) * geo.stride_w - geo.pad_left, [1, 1, wo, 1, 1]) + (
            kernel_j * geo.dilation_w
        ).reshape([1, 1, 1, 1, k])
        py = tf.cast(base_y, x.dtype) + dy
        px = tf.cast(base_x, x.dtype) + dx
        # Sample points ordered (ho, wo, k) per group: [N, Ho*Wo*K, G].
        to_points = lambda t: tf.reshape(tf.transpose(t, [0, 1, 2, 4, 3]), [n, ho * wo * k, g])
        image = tf.reshape(x, [n, h, w, g, c // g])
        scale = to_points(mask) if modulated else None
        samples = _bilinear(image, to_points(py), to_points(px), scale)  # [N, Ho*Wo*K, G, Cg]
        samples = tf.reshape(samples, [n, ho, wo, kh, kw, c])
        samples = tf.transpose(samples, [0, 1, 3, 2, 4, 5])  # [N, Ho, kh, Wo, kw, C]
        return tf.reshape(samples, [n, ho * kh, wo * kw, c])


def bilinear_sample(x, coords, name=None):
    """Reference bilinear_sample: x [N, H, W, C], coords [N, ..., 2] as (x, y) -> [N, ..., C]."""
    op = "bilinear_sample"
    with tf.compat.v1.name_scope(name, "BilinearSampleReference", [x, coords]):
        x = tf.convert_to_tensor(x)
        coords = tf.convert_to_tensor(coords, dtype=x.dtype)
        _checks.bilinear_sample_shapes(op, x, coords)
        if x.dtype == tf.bfloat16:
            y = bilinear_sample(tf.cast(x, tf.float32), tf.cast(coords, tf.float32))
            return tf.cast(y, tf.bfloat16)
        n, h, w, c = (_dim(x, a) for a in range(4))
        points = tf.reshape(coords, [n, -1, 2])
        px, py = points[:, :, 0:1], points[:, :, 1:2]  # [N, P, 1]
        samples = _bilinear(tf.reshape(x, [n, h, w, 1, c]), py, px)  # [N, P, 1, C]
        out_shape = tf.concat([tf.shape(coords)[:-1], tf.shape(x)[3:]], axis=0)
        samples = tf.reshape(samples, out_shape)
        if coords.shape.ndims is not None:
            samples.set_shape(coords.shape[:-1].concatenate(x.shape[3:]))
        return samples


def convolve_columns(columns, offsets, filters, bias=None, groups=1):
    """The convolution half of deform_conv2d, in stock TF ops: conv2d(columns, filters,
    strides=(kh, kw), padding='VALID', groups) + bias.

    columns: [N, Ho*kh, Wo*kw, C], from deformable_offsets(x, offsets, (kh, kw), ...).
    offsets: [N, Ho, Wo, 3*G*K], read for Ho and Wo only. filters: [kh, kw, C/groups, F].
    bias: [F] or None. Returns [N, Ho, Wo, F].
    """
    kernel_h, kernel_w = (int(d) for d in filters.shape[:2])
    if groups == 1:
        y = _conv_kernel_rows(columns, filters, kernel_h, kernel_w, tf.shape(offsets)[2])
    else:
        y = tf.concat(
            [
                tf.compat.v1.nn.conv2d(
                    c, filter=f, strides=[1, kernel_h, kernel_w, 1], padding="VALID"
                )
                for c, f in zip(
                    tf.split(columns, groups, axis=3), tf.split(filters, groups, axis=3)
                )
            ],
            axis=3,
        )
    # TF's CPU conv2d returns its input's shape for an empty batch; restate the true one.
    out_shape = tf.concat([tf.shape(columns)[:1], tf.shape(offsets)[1:3], tf.shape(filters)[3:]], 0)
    y = tf.reshape(y, out_shape)
    return y if bias is None else tf.nn.bias_add(y, bias)


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
