"""Shared test cases for deformable_offsets and deform_conv2d: a grid of geometries
and generators of offsets (random, far outside, exactly on pixels and borders).

TensorFlow-free (tests/kernels uses it): ops._checks and ops.numpy_reference do not import it.
"""

import numpy as np

from ops._checks import out_size

# name: (x shape [N, H, W, C], geometry kwargs)
GEOMETRIES = {
    "3x3_pad1": ((2, 5, 6, 4), dict(ksize=(3, 3), pads=(1, 1, 1, 1))),
    "groups2_2x3_stride2_asym": (
        (2, 7, 6, 4),
        dict(ksize=(2, 3), strides=(2, 2), pads=(0, 2, 1, 0), deformable_groups=2),
    ),
    "groups8_dilation2": (
        (1, 6, 5, 8),
        dict(ksize=(3, 3), pads=(2, 2, 2, 2), dilations=(2, 2), deformable_groups=8),
    ),
    "stride21_dilation12_3x2": (
        (2, 6, 7, 6),
        dict(
            ksize=(3, 2), strides=(2, 1), dilations=(1, 2), pads=(1, 0, 0, 2), deformable_groups=2
        ),
    ),
    "1x1_no_pad": ((1, 4, 4, 3), dict(ksize=(1, 1))),
    # 8 and 16 channels per group: the widths the kernels unroll into whole vectors.
    "group_width8": ((2, 5, 6, 16), dict(ksize=(3, 3), pads=(1, 1, 1, 1), deformable_groups=2)),
    "group_width16": ((1, 4, 5, 32), dict(ksize=(3, 3), pads=(1, 1, 1, 1), deformable_groups=2)),
    "empty_batch": ((0, 5, 5, 4), dict(ksize=(3, 3), pads=(1, 1, 1, 1))),
    # More output pixels than one tile (64) of the fused deform_conv2d, per item and across
    # the batch (90 and 270), and one item per image with groups split into blocks (99).
    "tiles_width8": ((3, 9, 10, 16), dict(ksize=(3, 3), pads=(1, 1, 1, 1), deformable_groups=2)),
    "tiles_width16_batch1": (
        (1, 11, 9, 48),
        dict(ksize=(3, 3), pads=(1, 1, 1, 1), deformable_groups=3),
    ),
}


# Smaller geometries for numerical gradient checks, whose cost grows with the
# product of input and output sizes: the geometry of GEOMETRIES[name] on a smaller x, with
# a smaller kernel (and pads) where given.
def _smaller(name, x_shape, **changes):
    return x_shape, dict(GEOMETRIES[name][1], **changes)


GRADIENT_GEOMETRIES = {
    "3x3_pad1": _smaller("3x3_pad1", (1, 3, 4, 2)),
    "groups2_2x3_stride2_asym": _smaller("groups2_2x3_stride2_asym", (1, 5, 4, 4)),
    "groups8_dilation2": _smaller(
        "groups8_dilation2", (1, 3, 3, 8), ksize=(2, 2), pads=(1, 1, 1, 1)
    ),
    "stride21_dilation12_3x2": _smaller("stride21_dilation12_3x2", (1, 4, 5, 2)),
    "group_width8": _smaller("group_width8", (1, 3, 3, 16), ksize=(2, 2), pads=(0, 1, 0, 1)),
}

# deform_conv2d cases, name: (name in GEOMETRIES, convolution groups, F)
CONV_CASES = {
    "3x3_pad1": ("3x3_pad1", 1, 5),
    "groups2": ("groups2_2x3_stride2_asym", 2, 6),
    "groups8_dilation2": ("groups8_dilation2", 1, 3),
    "stride21_groups2": ("stride21_dilation12_3x2", 2, 4),
    "empty_batch": ("empty_batch", 1, 3),
    # F = 17 and 70: whole vector panels of the fused op's matrix products and a remainder
    # (in bfloat16: whole 64-lane panels, 16-lane panels and a partial one; K*C = 144 and 432
    # pairs of the reduction).
    "tiles_width8": ("tiles_width8", 1, 17),
    "tiles_width16_batch1": ("tiles_width16_batch1", 1, 70),
}


def tolerance(dtype):
    """(rtol, atol) for comparing a result of `dtype` with a float64 reference of magnitude ~1."""
    return (1e-5, 2e-6) if np.dtype(dtype) == np.float32 else (1e-12, 1e-12)


def offsets_shape(
    x_shape, ksize, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), deformable_groups=1, **_
):
    n, h, w, _c = x_shape
    ho = out_size(h, pads[0] + pads[1], ksize[0], dilations[0], strides[0])
    wo = out_size(w, pads[2] + pads[3], ksize[1], dilations[1], strides[1])
    return (n, ho, wo, 3 * deformable_groups * ksize[0] * ksize[1])


def gradient_inputs(name, seed):
    """For GRADIENT_GEOMETRIES[name]: (rng, x ~ N(0, 1), offsets of random_offsets away from
    integers, geometry kwargs), float64; rng, seeded with `seed`, to draw more."""
    rng = np.random.default_rng(seed)
    x_shape, geo = GRADIENT_GEOMETRIES[name]
    x = rng.normal(0, 1, x_shape)
    offsets = random_offsets(rng, offsets_shape(x_shape, **geo), away_from_integers=True)
    return rng, x, offsets, geo


def random_offsets(rng, shape, scale=1.5, away_from_integers=False):
    """dx, dy ~ N(0, scale) and a mask in (0, 1). With away_from_integers, the
    fractional part of every offset lies in [0.1, 0.9], so no sampling point sits
    within 0.1 of a cell edge (where the derivative jumps)."""
    n, ho, wo, c3 = shape
    gk = c3 // 3
    dxy = rng.normal(0, scale, (n, ho, wo, 2 * gk))
    if away_from_integers:
        dxy = np.floor(dxy) + rng.uniform(0.1, 0.9, dxy.shape)
    mask = rng.uniform(0.05, 1.0, (n, ho, wo, gk))
    return np.concatenate([dxy, mask], axis=-1)


def far_offsets(rng, shape):
    """Offsets that send most points far outside the image, some just across its edges."""
    offsets = random_offsets(rng, shape)
    gk = shape[3] // 3
    offsets[..., : 2 * gk] *= rng.choice([1.0, 10.0, 1e3], shape[:3] + (2 * gk,))
    return offsets


def integer_offsets(
    rng,
    shape,
    x_shape,
    ksize,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    deformable_groups=1,
    **_,
):
    """Integer offsets whose sampling points land exactly on pixels, and on the rows
    and columns -1, H and W just outside (where the value must be exactly 0)."""
    _n, h, w, _c = x_shape
    n, ho, wo, c3 = shape
    k = ksize[0] * ksize[1]
    gk = c3 // 3
    i = np.repeat(np.arange(ksize[0]), ksize[1])
    j = np.tile(np.arange(ksize[1]), ksize[0])
    base_y = np.arange(ho)[:, None] * strides[0] - pads[0] + i[None] * dilations[0]  # [Ho, K]
    base_x = np.arange(wo)[:, None] * strides[1] - pads[2] + j[None] * dilations[1]  # [Wo, K]
    target_y = rng.integers(-1, h + 1, (n, ho, wo, deformable_groups, k))
    target_x = rng.integers(-1, w + 1, (n, ho, wo, deformable_groups, k))
    dy = target_y - base_y[None, :, None, None, :]
    dx = target_x - base_x[None, None, :, None, :]
    mask = rng.uniform(0.05, 1.0, (n, ho, wo, gk))
    return np.concatenate([dx.reshape(n, ho, wo, gk), dy.reshape(n, ho, wo, gk), mask], axis=-1)
