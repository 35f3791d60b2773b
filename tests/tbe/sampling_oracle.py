"""Float64 NumPy loops of docs/ops.md: the forward ops (those of ops/numpy_reference.py, the
oracle of tests/ops) and their analytic gradients.

Written straight from the formulas of docs/ops.md, independent of the kernel plans; the test oracle.
"""

import math

import numpy as np

from ops.numpy_reference import bilinear, bilinear_sample, deformable_offsets  # noqa: F401

_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _weights(ly, lx):
    """Corner weights and their derivatives by ly and lx, in _CORNERS order."""
    w = ((1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx)
    d_ly = (-(1 - lx), -lx, 1 - lx, lx)
    d_lx = (-(1 - ly), 1 - ly, -ly, ly)
    return w, d_ly, d_lx


def _inside(h, w, py, px):
    return -1 < py < h and -1 < px < w


def bilinear_grads(img, py, px, g_out):
    """(grad img [H, W, Cg], d/dpy, d/dpx) of sum(g_out * bilinear(img, py, px))."""
    h, w = img.shape[:2]
    g_img = np.zeros_like(img)
    if not _inside(h, w, py, px):
        return g_img, 0.0, 0.0
    y0, x0 = math.floor(py), math.floor(px)
    weights, d_ly, d_lx = _weights(py - y0, px - x0)
    gy = gx = 0.0
    for (dy, dx), wt, a, b in zip(_CORNERS, weights, d_ly, d_lx):
        y, x = y0 + dy, x0 + dx
        if 0 <= y < h and 0 <= x < w:
            g_img[y, x] += wt * g_out
            dot = float(np.dot(g_out, img[y, x]))
            gy += a * dot
            gx += b * dot
    return g_img, gy, gx


def _taps(kh, kw):
    return [(k, k // kw, k % kw) for k in range(kh * kw)]


def deformable_offsets_grad(
    grad,
    x,
    offsets,
    ksize,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    deformable_groups=1,
    modulated=True,
):
    grad, x, offsets = (np.asarray(a, np.float64) for a in (grad, x, offsets))
    n_, h, w, c = x.shape
    kh, kw = ksize
    g_, k_ = deformable_groups, kh * kw
    _, ho_, wo_, _ = offsets.shape
    cg = c // g_
    grad_x, grad_off = np.zeros_like(x), np.zeros_like(offsets)
    for n in range(n_):
        for ho in range(ho_):
            for wo in range(wo_):
                for k, i, j in _taps(kh, kw):
                    for g in range(g_):
                        ch = g * k_ + k
                        lanes = slice(g * cg, (g + 1) * cg)
                        py = (
                            ho * strides[0]
                            - pads[0]
                            + i * dilations[0]
                            + offsets[n, ho, wo, g_ * k_ + ch]
                        )
                        px = wo * strides[1] - pads[2] + j * dilations[1] + offsets[n, ho, wo, ch]
                        m = offsets[n, ho, wo, 2 * g_ * k_ + ch] if modulated else 1.0
                        g_out = grad[n, ho * kh + i, wo * kw + j, lanes]
                        g_img, gpy, gpx = bilinear_grads(x[n, :, :, lanes], py, px, g_out)
                        grad_x[n, :, :, lanes] += m * g_img
                        grad_off[n, ho, wo, ch] = m * gpx
                        grad_off[n, ho, wo, g_ * k_ + ch] = m * gpy
                        if modulated:
                            grad_off[n, ho, wo, 2 * g_ * k_ + ch] = float(
                                np.dot(g_out, bilinear(x[n, :, :, lanes], py, px))
                            )
    return grad_x, grad_off


def bilinear_sample_grad(grad, x, coords):
    grad, x, coords = (np.asarray(a, np.float64) for a in (grad, x, coords))
    n_ = x.shape[0]
    pts = coords.reshape(n_, -1, 2)
    g_pts = grad.reshape(n_, -1, x.shape[3])
    grad_x, grad_c = np.zeros_like(x), np.zeros_like(pts)
    for n in range(n_):
        for p, (px, py) in enumerate(pts[n]):
            g_img, gpy, gpx = bilinear_grads(x[n], py, px, g_pts[n, p])
            grad_x[n] += g_img
            grad_c[n, p] = (gpx, gpy)
    return grad_x, grad_c.reshape(coords.shape)
