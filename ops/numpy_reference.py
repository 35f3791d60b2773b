"""Float64 NumPy loop references of the ops, written straight from docs/ops.md.

Slow and plain on purpose: an oracle for both backends in tests/ops. Loops over
every sampling point; vectorised only over the channels of one group.
"""

import math

import numpy as np

from ._checks import out_size


def bilinear(image, py, px):
    """Zero-outside bilinear sample of image [H, W, C] at (py, px); returns [C] float64."""
    height, width = image.shape[:2]
    if math.isnan(py) or math.isnan(px):
        return np.full(image.shape[2], np.nan)
    value = np.zeros(image.shape[2])
    if py <= -1 or py >= height or px <= -1 or px >= width:
        return value
    y0, x0 = math.floor(py), math.floor(px)
    ly, lx = py - y0, px - x0
    for y, x, weight in (
        (y0, x0, (1 - ly) * (1 - lx)),
        (y0, x0 + 1, (1 - ly) * lx),
        (y0 + 1, x0, ly * (1 - lx)),
        (y0 + 1, x0 + 1, ly * lx),
    ):
        if 0 <= y < height and 0 <= x < width:
            value += weight * image[y, x].astype(np.float64)
    return value


def deformable_offsets(
    x,
    offsets,
    ksize,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    deformable_groups=1,
    modulated=True,
):
    """x [N, H, W, C], offsets [N, Ho, Wo, 3*G*K] -> y [N, Ho*kh, Wo*kw, C], float64."""
    n, height, width, channels = x.shape
    kh, kw = ksize
    sh, sw = strides
    top, bottom, left, right = pads
    dh, dw = dilations
    k_points = kh * kw
    ho_size = out_size(height, top + bottom, kh, dh, sh)
    wo_size = out_size(width, left + right, kw, dw, sw)
    assert offsets.shape == (n, ho_size, wo_size, 3 * deformable_groups * k_points), offsets.shape
    cg = channels // deformable_groups
    y = np.zeros((n, ho_size * kh, wo_size * kw, channels))
    gk = deformable_groups * k_points
    for b in range(n):
        for ho in range(ho_size):
            for wo in range(wo_size):
                for i in range(kh):
                    for j in range(kw):
                        k = i * kw + j
                        for g in range(deformable_groups):
                            dx = float(offsets[b, ho, wo, g * k_points + k])
                            dy = float(offsets[b, ho, wo, gk + g * k_points + k])
                            m = (
                                float(offsets[b, ho, wo, 2 * gk + g * k_points + k])
                                if modulated
                                else 1.0
                            )
                            py = ho * sh - top + i * dh + dy
                            px = wo * sw - left + j * dw + dx
                            channel = slice(g * cg, (g + 1) * cg)
                            y[b, ho * kh + i, wo * kw + j, channel] = m * bilinear(
                                x[b, :, :, channel], py, px
                            )
    return y


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
):
    """Deformable convolution from the sampled columns: [N, Ho, Wo, F], float64."""
    kh, kw, c_per_group, f = filters.shape
    columns = deformable_offsets(x, offsets, (kh, kw), strides, pads, dilations, deformable_groups)
    n, rows, cols, channels = columns.shape
    patches = columns.reshape(n, rows // kh, kh, cols // kw, kw, channels)
    f_per_group = f // groups
    out = np.zeros((n, rows // kh, cols // kw, f))
    for g in range(groups):
        patch = patches[..., g * c_per_group : (g + 1) * c_per_group]
        weight = filters[..., g * f_per_group : (g + 1) * f_per_group].astype(np.float64)
        out[..., g * f_per_group : (g + 1) * f_per_group] = np.einsum(
            "nhiwjc,ijcf->nhwf", patch, weight
        )
    if bias is not None:
        out += bias
    return out


def bilinear_sample(x, coords):
    """x [N, H, W, C], coords [N, ..., 2] as (x, y) -> [N, ..., C], float64."""
    n = x.shape[0]
    points = coords.reshape(n, int(np.prod(coords.shape[1:-1])), 2)
    out = np.zeros((n, points.shape[1], x.shape[3]))
    for b in range(n):
        for p in range(points.shape[1]):
            out[b, p] = bilinear(x[b], float(points[b, p, 1]), float(points[b, p, 0]))
    return out.reshape(coords.shape[:-1] + (x.shape[3],))
