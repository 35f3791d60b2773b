"""The CPU kernels through edvr_kernels (pybind11), without TensorFlow, against the
float64 NumPy loop reference (ops/numpy_reference.py): values, and gradients against
central differences of the reference in float64.

This module must not import TensorFlow (test_module_does_not_import_tensorflow); `import ops`
does not, and neither do ops.numpy_reference and tests/ops/cases.py.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from ops import numpy_reference as reference

from ..ops.cases import (
    GEOMETRIES,
    GRADIENT_GEOMETRIES,
    far_offsets,
    gradient_inputs,
    integer_offsets,
    offsets_shape,
    random_offsets,
    tolerance,
)

kernels = pytest.importorskip("edvr_kernels", reason="edvr_kernels is not built: run `make build`")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DTYPES = (np.float32, np.float64)
# Largest number of elements of one input whose derivatives are checked one by one; above
# it, a fixed random sample of this many (the reference is a slow Python loop).
GRADIENT_ELEMENTS = 48


def make_offsets(rng, kind, x_shape, geo):
    shape = offsets_shape(x_shape, **geo)
    if kind == "random":
        return random_offsets(rng, shape)
    if kind == "far":
        return far_offsets(rng, shape)
    return integer_offsets(rng, shape, x_shape, **geo)


def numerical_gradients(function, inputs, grad, seed=0, step=1e-6):
    """Central differences of sum(grad * function(*inputs)) in float64, for each input:
    a list of (flat indices checked, derivatives at them)."""
    rng = np.random.default_rng(seed)
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    results = []
    for a in inputs:
        flat = a.reshape(-1)  # a view: changing flat changes the input
        if flat.size <= GRADIENT_ELEMENTS:
            indices = np.arange(flat.size)
        else:
            indices = rng.choice(flat.size, GRADIENT_ELEMENTS, replace=False)
        derivatives = []
        for i in indices:
            saved = flat[i]
            flat[i] = saved + step
            plus = np.sum(grad * function(*inputs))
            flat[i] = saved - step
            minus = np.sum(grad * function(*inputs))
            flat[i] = saved
            derivatives.append((plus - minus) / (2 * step))
        results.append((indices, np.array(derivatives)))
    return results


def assert_gradients_match(analytic, numerical, names):
    for got, (indices, want), name in zip(analytic, numerical, names):
        assert np.abs(want).max() > 0, f"d/d{name} is zero everywhere checked: a useless check"
        np.testing.assert_allclose(
            got.reshape(-1)[indices], want, rtol=1e-6, atol=1e-7, err_msg=f"d/d{name}"
        )


# ---- deformable_offsets ----


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ("random", "far", "integer"))
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_deformable_offsets_matches_reference(name, kind, dtype):
    rng = np.random.default_rng(0)
    x_shape, geo = GEOMETRIES[name]
    x = rng.normal(0, 1, x_shape).astype(dtype)
    offsets = make_offsets(rng, kind, x_shape, geo).astype(dtype)
    actual = kernels.deformable_offsets(x, offsets, **geo)
    expected = reference.deformable_offsets(x, offsets, **geo)
    assert actual.dtype == dtype and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, *tolerance(dtype))


def test_deformable_offsets_unmodulated_ignores_mask():
    rng = np.random.default_rng(1)
    x_shape, geo = GEOMETRIES["groups2_2x3_stride2_asym"]
    x = rng.normal(0, 1, x_shape)
    offsets = make_offsets(rng, "random", x_shape, geo)
    y = kernels.deformable_offsets(x, offsets, modulated=False, **geo)
    offsets[..., 2 * offsets.shape[-1] // 3 :] = 123.0
    np.testing.assert_array_equal(kernels.deformable_offsets(x, offsets, modulated=False, **geo), y)
    np.testing.assert_allclose(
        y, reference.deformable_offsets(x, offsets, modulated=False, **geo), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("modulated", (True, False))
@pytest.mark.parametrize("name", sorted(GRADIENT_GEOMETRIES))
def test_deformable_offsets_gradients_match_numerical(name, modulated):
    rng, x, offsets, geo = gradient_inputs(name, seed=2)
    grad = rng.normal(0, 1, kernels.deformable_offsets(x, offsets, **geo).shape)
    grad_x, grad_offsets = kernels.deformable_offsets_grad(
        grad, x, offsets, modulated=modulated, **geo
    )
    if not modulated:
        gk = offsets.shape[-1] // 3
        assert np.all(grad_offsets[..., 2 * gk :] == 0)
        grad_offsets = grad_offsets[..., : 2 * gk]
        offsets_dxy, mask = offsets[..., : 2 * gk], offsets[..., 2 * gk :]
        function = lambda a, dxy: reference.deformable_offsets(  # noqa: E731
            a, np.concatenate([dxy, mask], -1), modulated=False, **geo
        )
        numerical = numerical_gradients(function, [x, offsets_dxy], grad)
    else:
        function = lambda a, b: reference.deformable_offsets(a, b, **geo)  # noqa: E731
        numerical = numerical_gradients(function, [x, offsets], grad)
    assert_gradients_match([grad_x, grad_offsets], numerical, ("x", "offsets"))


# ---- deform_conv2d ----


def make_conv_inputs(rng, x_shape, geo, features, dtype=np.float64):
    x = rng.normal(0, 1, x_shape)
    offsets = random_offsets(rng, offsets_shape(x_shape, **geo), away_from_integers=True)
    filters = rng.normal(0, 0.3, tuple(geo["ksize"]) + (x_shape[3], features))
    conv_geo = {k: v for k, v in geo.items() if k != "ksize"}
    return x.astype(dtype), offsets.astype(dtype), filters.astype(dtype), conv_geo


# 5 features: not a whole vector; 32: whole AVX-512 panels.
@pytest.mark.parametrize("features", (5, 32))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_deform_conv2d_matches_reference(name, dtype, features):
    rng = np.random.default_rng(3)
    x_shape, geo = GEOMETRIES[name]
    x, offsets, filters, conv_geo = make_conv_inputs(rng, x_shape, geo, features, dtype)
    actual = kernels.deform_conv2d(x, offsets, filters, **conv_geo)
    expected = reference.deform_conv2d(x, offsets, filters, **conv_geo)
    assert actual.dtype == dtype and actual.shape == expected.shape
    rtol, atol = tolerance(dtype)
    # A sum of K*C products of values ~1: float32 rounding grows with the length.
    scale = np.sqrt(filters.shape[0] * filters.shape[1] * filters.shape[2])
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("name", sorted(GRADIENT_GEOMETRIES))
def test_deform_conv2d_gradients_match_numerical(name):
    rng = np.random.default_rng(4)
    x_shape, geo = GRADIENT_GEOMETRIES[name]
    x, offsets, filters, conv_geo = make_conv_inputs(rng, x_shape, geo, features=3)
    grad = rng.normal(0, 1, kernels.deform_conv2d(x, offsets, filters, **conv_geo).shape)
    analytic = kernels.deform_conv2d_grad(grad, x, offsets, filters, **conv_geo)
    function = lambda a, b, f: reference.deform_conv2d(a, b, f, **conv_geo)  # noqa: E731
    numerical = numerical_gradients(function, [x, offsets, filters], grad)
    assert_gradients_match(analytic, numerical, ("x", "offsets", "filters"))


# ---- bilinear_sample ----


def make_sample_inputs(rng, dtype=np.float64, points=(3, 5), away_from_integers=False):
    x = rng.normal(0, 1, (2, 4, 5, 3))
    n, h, w = x.shape[:3]
    coords = np.stack(
        [rng.uniform(-2, w + 1, (n,) + points), rng.uniform(-2, h + 1, (n,) + points)], axis=-1
    )
    if away_from_integers:
        coords = np.floor(coords) + rng.uniform(0.1, 0.9, coords.shape)
    return x.astype(dtype), coords.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bilinear_sample_matches_reference(dtype):
    rng = np.random.default_rng(5)
    x, coords = make_sample_inputs(rng, dtype)
    # Exactly on pixels and on the rows and columns just outside; and a NaN position.
    coords[0, 0, :4] = [[0, 0], [4, 3], [-1, 2], [5, 1]]
    coords[1, 2, 3] = [np.nan, 1.0]
    actual = kernels.bilinear_sample(x, coords)
    expected = reference.bilinear_sample(x, coords)
    assert actual.dtype == dtype and actual.shape == expected.shape == (2, 3, 5, 3)
    np.testing.assert_array_equal(actual[0, 0, 0], x[0, 0, 0])
    np.testing.assert_array_equal(actual[0, 0, 1], x[0, 3, 4])
    assert np.all(actual[0, 0, 2:4] == 0)
    assert np.all(np.isnan(actual[1, 2, 3]))
    np.testing.assert_allclose(actual, expected, *tolerance(dtype))


def test_bilinear_sample_gradients_match_numerical():
    rng = np.random.default_rng(6)
    x, coords = make_sample_inputs(rng, away_from_integers=True)
    grad = rng.normal(0, 1, kernels.bilinear_sample(x, coords).shape)
    analytic = kernels.bilinear_sample_grad(grad, x, coords)
    numerical = numerical_gradients(reference.bilinear_sample, [x, coords], grad)
    assert_gradients_match(analytic, numerical, ("x", "coords"))


# ---- float32, threads, layouts, empty inputs ----


def _all_ops(rng, dtype):
    """(name, forward, gradient) of each op on fixed inputs of `dtype`."""
    x_shape, geo = GEOMETRIES["tiles_width16_batch1"]
    x, offsets, filters, conv_geo = make_conv_inputs(rng, x_shape, geo, 16, dtype)
    sx, coords = make_sample_inputs(rng, dtype, points=(40, 7))
    g_def = rng.normal(0, 1, kernels.deformable_offsets(x, offsets, **geo).shape).astype(dtype)
    g_conv = rng.normal(0, 1, kernels.deform_conv2d(x, offsets, filters, **conv_geo).shape).astype(
        dtype
    )
    g_sample = rng.normal(0, 1, coords.shape[:-1] + (sx.shape[3],)).astype(dtype)
    return [
        (
            "deformable_offsets",
            lambda t: kernels.deformable_offsets(x, offsets, threads=t, **geo),
            lambda t: kernels.deformable_offsets_grad(g_def, x, offsets, threads=t, **geo),
        ),
        (
            "deform_conv2d",
            lambda t: kernels.deform_conv2d(x, offsets, filters, threads=t, **conv_geo),
            lambda t: kernels.deform_conv2d_grad(
                g_conv, x, offsets, filters, threads=t, **conv_geo
            ),
        ),
        (
            "bilinear_sample",
            lambda t: kernels.bilinear_sample(sx, coords, threads=t),
            lambda t: kernels.bilinear_sample_grad(g_sample, sx, coords, threads=t),
        ),
    ]


def test_float32_gradients_match_float64():
    ops64 = _all_ops(np.random.default_rng(7), np.float64)
    ops32 = _all_ops(np.random.default_rng(7), np.float32)
    for (name, _, grad64), (_, _, grad32) in zip(ops64, ops32):
        for got, want in zip(grad32(0), grad64(0)):
            assert got.dtype == np.float32
            scale = np.abs(want).max()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=name)


def test_threads_agree_and_repeat_exactly():
    """One thread and several give the same results (to rounding: the ranges' partial sums
    are added in a different grouping); the same thread count repeats bit for bit."""
    for name, forward, gradient in _all_ops(np.random.default_rng(8), np.float64):
        np.testing.assert_array_equal(forward(1), forward(3), err_msg=name)
        for one, many, again in zip(gradient(1), gradient(3), gradient(3)):
            np.testing.assert_allclose(many, one, rtol=1e-12, atol=1e-12, err_msg=name)
            np.testing.assert_array_equal(again, many, err_msg=name)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(9)
    x_shape, geo = GEOMETRIES["3x3_pad1"]
    wide = rng.normal(0, 1, x_shape[:3] + (2 * x_shape[3],))
    x = wide[..., ::2]
    assert not x.flags.c_contiguous
    offsets = make_offsets(rng, "random", x_shape, geo)
    np.testing.assert_array_equal(
        kernels.deformable_offsets(x, offsets, **geo),
        kernels.deformable_offsets(np.ascontiguousarray(x), offsets, **geo),
    )


def test_empty_batch():
    x_shape, geo = GEOMETRIES["empty_batch"]
    x = np.zeros(x_shape, np.float32)
    offsets = np.zeros(offsets_shape(x_shape, **geo), np.float32)
    y = kernels.deformable_offsets(x, offsets, **geo)
    assert y.shape == (0, 15, 15, 4)
    grad_x, grad_offsets = kernels.deformable_offsets_grad(y, x, offsets, **geo)
    assert grad_x.shape == x.shape and grad_offsets.shape == offsets.shape
    filters = np.ones((3, 3, 4, 2), np.float32)
    conv_geo = {k: v for k, v in geo.items() if k != "ksize"}
    assert kernels.deform_conv2d(x, offsets, filters, **conv_geo).shape == (0, 5, 5, 2)


def test_empty_grad_gives_zero_gradients():
    """No output elements (no points): the gradients are zeros of the inputs' shapes."""
    x = np.ones((1, 3, 3, 2))
    coords = np.zeros((1, 0, 2))
    grad_x, grad_coords = kernels.bilinear_sample_grad(np.zeros((1, 0, 2)), x, coords)
    assert grad_x.shape == x.shape and not grad_x.any() and grad_coords.shape == (1, 0, 2)


# ---- errors name the bad argument ----

X = np.zeros((1, 5, 5, 4))
OFFSETS = np.zeros((1, 5, 5, 27))
FILTERS = np.zeros((3, 3, 4, 2))
PADS = dict(pads=(1, 1, 1, 1))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda: kernels.deformable_offsets(X, OFFSETS.astype(np.float32), (3, 3), **PADS),
            ValueError,
            "deformable_offsets: offsets must have x's dtype float64, got float32",
        ),
        (
            lambda: kernels.deformable_offsets(X.astype(np.int64), OFFSETS, (3, 3), **PADS),
            TypeError,
            "deformable_offsets: x must be float32 or float64, got int64",
        ),
        (
            lambda: kernels.deformable_offsets(X, OFFSETS, (3, 0), **PADS),
            ValueError,
            "deformable_offsets: ksize must be 2 positive integers, got [3, 0]",
        ),
        (
            lambda: kernels.deformable_offsets(X, OFFSETS, (3, 3), pads=(1, 1, 1)),
            ValueError,
            "pads (top, bottom, left, right) must be 4 non-negative integers, got [1, 1, 1]",
        ),
        (
            lambda: kernels.deformable_offsets(X, OFFSETS, (3, 3)),
            ValueError,
            "offsets must have shape [N, Ho, Wo, 3*G*K] = [1, 3, 3, 27] for x of shape "
            "[1, 5, 5, 4], got [1, 5, 5, 27]",
        ),
        (
            lambda: kernels.deformable_offsets(
                X, np.zeros((1, 5, 5, 81)), (3, 3), deformable_groups=3, **PADS
            ),
            ValueError,
            "x channels (4) must be divisible by deformable_groups (3)",
        ),
        (
            lambda: kernels.deformable_offsets(X, OFFSETS, (7, 7)),
            ValueError,
            "kernel (7x7 with dilation 1x1) is larger than the padded input of x",
        ),
        (
            lambda: kernels.deformable_offsets(X[0], OFFSETS, (3, 3), **PADS),
            ValueError,
            "x must be rank 4 [N, H, W, C], got shape [5, 5, 4]",
        ),
        (
            lambda: kernels.deformable_offsets(X, OFFSETS, (3, 3), threads=-1, **PADS),
            ValueError,
            "threads must be >= 0",
        ),
        (
            lambda: kernels.deformable_offsets_grad(
                np.zeros((1, 5, 5, 4)), X, OFFSETS, (3, 3), **PADS
            ),
            ValueError,
            "deformable_offsets_grad: grad must have the shape of the forward output "
            "[1, 15, 15, 4], got [1, 5, 5, 4]",
        ),
        (
            lambda: kernels.deform_conv2d(X, OFFSETS, np.zeros((3, 3, 2, 2)), **PADS),
            ValueError,
            "deform_conv2d: filters must have shape [kh, kw, C, F] with C = 4",
        ),
        (
            lambda: kernels.deform_conv2d(X, OFFSETS, FILTERS[0], **PADS),
            ValueError,
            "deform_conv2d: filters must be rank 4 [kh, kw, C, F], got shape [3, 4, 2]",
        ),
        (
            lambda: kernels.deform_conv2d(X, OFFSETS, FILTERS.astype(np.float32), **PADS),
            ValueError,
            "deform_conv2d: filters must have x's dtype float64, got float32",
        ),
        (
            lambda: kernels.bilinear_sample(X, np.zeros((1, 4, 3))),
            ValueError,
            "bilinear_sample: coords must have shape [N, ..., 2] holding (x, y), got shape [1, 4, 3]",
        ),
        (
            lambda: kernels.bilinear_sample(X, np.zeros((2, 4, 2))),
            ValueError,
            "bilinear_sample: coords batch (2) must equal x batch (1)",
        ),
        (
            lambda: kernels.bilinear_sample_grad(np.zeros((1, 4, 2)), X, np.zeros((1, 4, 2))),
            ValueError,
            "bilinear_sample_grad: grad must have the shape of the forward output [1, 4, 4]",
        ),
    ],
)
def test_errors_name_the_argument(call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value)


def test_module_does_not_import_tensorflow():
    """In a fresh interpreter (the rest of the suite imports TF), importing this module
    and running one test of each op leaves TensorFlow unimported."""
    script = (
        "import sys\n"
        "import tests.kernels.test_numpy_kernels as t\n"
        "t.test_deformable_offsets_unmodulated_ignores_mask()\n"
        "t.test_threads_agree_and_repeat_exactly()\n"
        "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
