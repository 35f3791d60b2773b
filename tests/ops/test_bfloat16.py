"""bfloat16 on both backends: values against the float64 NumPy oracle, gradients against the
float64 gradients (themselves checked numerically in the other test files), at the same
bfloat16-rounded inputs.

Tolerances, derived from bfloat16's 8-bit significand (unit roundoff u = 2^-8 = 3.9e-3):
the ops locate, weight and sum in float32 (unit roundoff e = 2^-24) and round once to bfloat16.
Products of two bfloat16 values are exact in float32. For a result r = sum of n terms t_i:

- float32 sum of n terms: |error| <= n * e * A, with A = sum |t_i| (first order);
- positions: py and px (|.| < H + W inside the image) carry e * (H + W); through the bilinear
  weights that is at most 2 * e * (H + W) * max|x| per sample;
- the one rounding to bfloat16: u * |r|.

So |got - exact| <= u * |exact| + (1 + u) * (n + 8 + 2 * (H + W)) * e * A, where A is computed
by the oracle itself on absolute values (bilinear weights are non-negative, so sampling |x|
bounds the samples' magnitudes). deform_conv2d also rounds its columns to bfloat16 before the
product (a bfloat16 convolution's input is bfloat16): one more u * A. Truncation instead of
rounding to nearest would give errors up to 2u * |exact|, which these bounds reject.
"""

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import numpy_reference

from . import cases
from .cases import GEOMETRIES, far_offsets, integer_offsets, offsets_shape, random_offsets
from .conftest import backend_selected, require_native

U = 2.0**-8  # bfloat16 unit roundoff
E = 2.0**-24  # float32 unit roundoff


def bf16(array):
    """array rounded to bfloat16 (a tf tensor) and the same values as float64 NumPy."""
    tensor = tf.cast(tf.constant(array, tf.float32), tf.bfloat16)
    return tensor, tensor.numpy().astype(np.float64)


def assert_within(got, exact, bound, what):
    got = np.asarray(got).astype(np.float64)
    assert got.shape == exact.shape, (what, got.shape, exact.shape)
    excess = np.abs(got - exact) - bound
    worst = np.unravel_index(np.argmax(excess), excess.shape) if excess.size else None
    assert excess.size == 0 or excess.max() <= 0, (
        f"{what}: |got - exact| exceeds the bound at {worst}: got {got[worst]}, exact "
        f"{exact[worst]}, bound {bound[worst] if np.ndim(bound) else bound}"
    )


def sampling_inputs(name, kind, seed=0):
    rng = np.random.default_rng(seed)
    x_shape, geo = GEOMETRIES[name]
    shape = offsets_shape(x_shape, **geo)
    offsets = {
        "random": lambda: random_offsets(rng, shape),
        "far": lambda: far_offsets(rng, shape),
        "integer": lambda: integer_offsets(rng, shape, x_shape, **geo),
    }[kind]()
    return bf16(rng.normal(size=x_shape)), bf16(offsets), geo


def sampling_bound(exact, x64, n_terms):
    """u * |exact| + (1 + u) * (n + 8 + 2(H + W)) * e * max|x| for samples of x (|weights| <= 1)."""
    h, w = x64.shape[1:3]
    slack = (1 + U) * (n_terms + 8 + 2 * (h + w)) * E
    return U * np.abs(exact) + slack * np.abs(x64).max(initial=0)


@pytest.mark.parametrize("kind", ["random", "far", "integer"])
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_deformable_offsets(backend, name, kind):
    (x, x64), (offsets, offsets64), geo = sampling_inputs(name, kind)
    y = ops.deformable_offsets(x, offsets, **geo)
    assert y.dtype == tf.bfloat16
    exact = numpy_reference.deformable_offsets(x64, offsets64, **geo)
    assert_within(y.numpy(), exact, sampling_bound(exact, x64, 4), "y")


@pytest.mark.parametrize("coords_shape", [(2, 7, 2), (2, 3, 5, 2), (0, 4, 2)])
def test_bilinear_sample(backend, coords_shape):
    rng = np.random.default_rng(1)
    x, x64 = bf16(rng.normal(size=(coords_shape[0], 4, 6, 19)))
    coords, coords64 = bf16(
        np.stack([rng.uniform(-2, 7, coords_shape[:-1]), rng.uniform(-2, 5, coords_shape[:-1])], -1)
    )
    y = ops.bilinear_sample(x, coords)
    assert y.dtype == tf.bfloat16
    exact = numpy_reference.bilinear_sample(x64, coords64)
    assert_within(y.numpy(), exact, sampling_bound(exact, x64, 4), "y")


# cases.CONV_CASES but stride21_groups2, and 9*3 = 27 pairs of the reduction (odd: a padded pair).
CONV_CASES = dict(
    {name: case for name, case in cases.CONV_CASES.items() if name != "stride21_groups2"},
    odd_width=("1x1_no_pad", 1, 33),
)


def conv_inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    geo_name, groups, f = CONV_CASES[case]
    x_shape, geo = GEOMETRIES[geo_name]
    geo = dict(geo, groups=groups)
    kh, kw = geo.pop("ksize")
    offsets = random_offsets(rng, offsets_shape(x_shape, (kh, kw), **geo))
    filters = rng.normal(size=(kh, kw, x_shape[3] // groups, f)) / np.sqrt(kh * kw * x_shape[3])
    return (bf16(rng.normal(size=x_shape)), bf16(offsets), bf16(filters)), geo


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_deform_conv2d(backend, case):
    ((x, x64), (offsets, offsets64), (filters, filters64)), geo = conv_inputs(case)
    y = ops.deform_conv2d(x, offsets, filters, **geo)
    assert y.dtype == tf.bfloat16
    exact = numpy_reference.deform_conv2d(x64, offsets64, filters64, **geo)
    # A = sum |column| * |filter|: the oracle on |x| and |filters| (the mask is positive).
    magnitude = numpy_reference.deform_conv2d(np.abs(x64), offsets64, np.abs(filters64), **geo)
    kh, kw, c, _ = filters64.shape
    h, w = x64.shape[1:3]
    bound = U * np.abs(exact) + (1 + U) ** 2 * (U + (kh * kw * c + 8 + 2 * (h + w)) * E) * magnitude
    assert_within(y.numpy(), exact, bound, "y")


def test_rounds_to_nearest_even_once():
    """One 1x1 tap with mask m: y = bf16(m * x) from the float32 product. (1 + 2^-4)(1 + 3 * 2^-4)
    = 1.25 + 2^-7 + 2^-8 lies halfway between 1.25 + 2^-7 (odd last bit) and 1.25 + 2^-6 (even):
    nearest-even gives 1.265625, truncation 1.2578125. (1 + 2^-4)^2 = 1.125 + 2^-8 ties to the
    even 1.125."""
    for name in ("native", "reference"):
        with backend_selected(name):
            if name == "native":
                require_native()
            x = tf.constant([[[[1.0625]], [[1.0625]]]], tf.bfloat16)  # [1, 2, 1, 1]
            offsets = tf.constant([[[[0.0, 0.0, 1.1875]], [[0.0, 0.0, 1.0625]]]], tf.bfloat16)
            y = ops.deformable_offsets(x, offsets, (1, 1)).numpy().astype(np.float64)
            np.testing.assert_array_equal(y.ravel(), [1.265625, 1.125], err_msg=name)


def test_nan_stays_nan(backend):
    """NaN positions give NaN (never an infinity from rounding a NaN's bits up), and NaN in x
    reaches only the samples that read it."""
    rng = np.random.default_rng(3)
    (x, _), (offsets, offsets64), geo = sampling_inputs("3x3_pad1", "random")
    offsets64 = offsets64.copy()
    offsets64[0, 0, 0, 0] = np.nan
    y = ops.deformable_offsets(x, tf.constant(offsets64, tf.bfloat16), **geo).numpy()
    y = y.astype(np.float32)
    assert np.isnan(y[0, 0, 0]).all() and not np.isinf(y).any()
    assert np.isnan(y).sum() == y.shape[3]
    coords = tf.constant(rng.uniform(0, 3, (1, 4, 2)), tf.bfloat16)
    image = tf.constant(np.full((1, 4, 4, 2), np.nan), tf.bfloat16)
    assert np.isnan(ops.bilinear_sample(image, coords).numpy().astype(np.float32)).all()


def gradients(op, inputs, grad_y):
    """Gradients of sum(grad_y * op(*inputs)) with respect to every input, as float64."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = op(*inputs)
    grads = tape.gradient(y, inputs, output_gradients=tf.cast(grad_y, y.dtype))
    for g, x in zip(grads, inputs):
        assert g.dtype == x.dtype, (g.dtype, x.dtype)
    return [g.numpy().astype(np.float64) for g in grads]


def as64(*arrays):
    return [tf.constant(a, tf.float64) for a in arrays]


@pytest.mark.parametrize("name", ["3x3_pad1", "groups2_2x3_stride2_asym", "group_width8"])
def test_deformable_offsets_gradients(backend, name):
    """grad_x[pixel] = sum of m * w * grad_y over the taps that read it, at most 4 per tap (all
    factors but grad_y non-negative, so the float64 gradient at |grad_y| is A); grad_offsets of
    one tap sums Cg terms, each at most 2 * max|x| * |grad_y| (dx, dy) or max|x| * |grad_y|
    (the mask)."""
    (x, x64), (offsets, offsets64), geo = sampling_inputs(name, "random", seed=4)
    rng = np.random.default_rng(5)
    y_shape = ops.deformable_offsets(x, offsets, **geo).shape
    grad_y, grad_y64 = bf16(rng.normal(size=y_shape))
    op = lambda a, b: ops.deformable_offsets(a, b, **geo)
    got = gradients(op, [x, offsets], grad_y)
    exact = gradients(op, as64(x64, offsets64), grad_y64)
    magnitude_x = gradients(op, as64(x64, offsets64), np.abs(grad_y64))[0]
    h, w, c = x64.shape[1:]
    cg = c // geo.get("deformable_groups", 1)
    k = geo["ksize"][0] * geo["ksize"][1]
    taps = y_shape[1] // geo["ksize"][0] * y_shape[2] // geo["ksize"][1] * k
    slack = (1 + U) * (4 * taps + 8 + 2 * (h + w)) * E
    assert_within(got[0], exact[0], U * np.abs(exact[0]) + slack * magnitude_x, "grad_x")
    magnitude_offsets = 2 * cg * np.abs(x64).max() * np.abs(grad_y64).max()
    slack = (1 + U) * (cg + 8 + 2 * (h + w)) * E
    assert_within(
        got[1], exact[1], U * np.abs(exact[1]) + slack * magnitude_offsets, "grad_offsets"
    )


@pytest.mark.parametrize("case", ["3x3_pad1", "groups2", "tiles_width8"])
def test_deform_conv2d_gradients(backend, case):
    """A bounds from the float64 gradients on absolute values: grad_filters at |x| and |grad_y|
    is sum |column| * |grad_y|; grad_x at |x|, |filters| and |grad_y| is sum m * w * |grad
    column|. The pure-TF path also rounds the columns and their gradient to bfloat16 inside its
    bfloat16 conv2d: 2u * A on top."""
    ((x, x64), (offsets, offsets64), (filters, filters64)), geo = conv_inputs(case, seed=6)
    rng = np.random.default_rng(7)
    y_shape = ops.deform_conv2d(x, offsets, filters, **geo).shape
    grad_y, grad_y64 = bf16(rng.normal(size=y_shape))
    op = lambda a, b, c: ops.deform_conv2d(a, b, c, **geo)
    got = gradients(op, [x, offsets, filters], grad_y)
    exact = gradients(op, as64(x64, offsets64, filters64), grad_y64)
    magnitude = gradients(op, as64(np.abs(x64), offsets64, np.abs(filters64)), np.abs(grad_y64))
    kh, kw, c, f = filters64.shape
    h, w = x64.shape[1:3]
    pixels = y_shape[0] * y_shape[1] * y_shape[2]
    n = kh * kw * c + f + 4 * kh * kw * pixels  # the longest sum: grad_x's taps or the filters'

    slack = (1 + U) ** 2 * (2 * U + (n + 8 + 2 * (h + w)) * E)
    assert_within(got[0], exact[0], U * np.abs(exact[0]) + slack * magnitude[0], "grad_x")
    assert_within(got[2], exact[2], U * np.abs(exact[2]) + slack * magnitude[2], "grad_filters")
    # One tap's offset gradient: sum over its channels of |grad column| * 2 * max|x|.
    grad_columns = c * np.abs(grad_y64).sum(axis=-1).max() * np.abs(filters64).max()
    magnitude_offsets = 2 * np.abs(x64).max() * grad_columns
    assert_within(
        got[1], exact[1], U * np.abs(exact[1]) + slack * magnitude_offsets, "grad_offsets"
    )


def test_bilinear_sample_gradients(backend):
    """grad_x[pixel] = sum of w * grad_y over the points that read it (w >= 0: A is the float64
    gradient at |grad_y|); grad_coords of a point sums C terms, each at most
    2 * max|x| * |grad_y|."""
    rng = np.random.default_rng(8)
    x, x64 = bf16(rng.normal(size=(2, 5, 6, 19)))
    coords, coords64 = bf16(
        np.stack([rng.uniform(-2, 7, (2, 4, 7)), rng.uniform(-2, 6, (2, 4, 7))], -1)
    )
    grad_y, grad_y64 = bf16(rng.normal(size=(2, 4, 7, 19)))
    got = gradients(ops.bilinear_sample, [x, coords], grad_y)
    exact = gradients(ops.bilinear_sample, as64(x64, coords64), grad_y64)
    magnitude_x = gradients(ops.bilinear_sample, as64(x64, coords64), np.abs(grad_y64))[0]
    h, w, c = x64.shape[1:]
    slack = (1 + U) * (4 * 7 + 8 + 2 * (h + w)) * E  # a pixel: at most one term per point
    assert_within(got[0], exact[0], U * np.abs(exact[0]) + slack * magnitude_x, "grad_x")
    magnitude_coords = 2 * c * np.abs(x64).max() * np.abs(grad_y64).max()
    slack = (1 + U) * (c + 8 + 2 * (h + w)) * E
    assert_within(got[1], exact[1], U * np.abs(exact[1]) + slack * magnitude_coords, "grad_coords")
