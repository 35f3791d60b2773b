"""deformable_offsets on both backends against the float64 NumPy loop reference."""

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import numpy_reference

from .cases import (
    GEOMETRIES,
    GRADIENT_GEOMETRIES,
    far_offsets,
    gradient_inputs,
    integer_offsets,
    offsets_shape,
    random_offsets,
)
from .conftest import assert_backends_agree, tolerance

OFFSET_KINDS = ("random", "far", "integer")


def make_inputs(name, kind, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x_shape, geo = GEOMETRIES[name]
    x = rng.normal(0, 1, x_shape)
    shape = offsets_shape(x_shape, **geo)
    if kind == "random":
        offsets = random_offsets(rng, shape)
    elif kind == "far":
        offsets = far_offsets(rng, shape)
    else:
        offsets = integer_offsets(rng, shape, x_shape, **geo)
    return x.astype(dtype), offsets.astype(dtype), geo


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", OFFSET_KINDS)
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_matches_numpy_reference(backend, name, kind, dtype):
    x, offsets, geo = make_inputs(name, kind, dtype)
    expected = numpy_reference.deformable_offsets(x, offsets, **geo)
    actual = ops.deformable_offsets(x, offsets, **geo).numpy()
    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def test_integer_offsets_on_border_are_exactly_zero(backend):
    """Points on row -1 or H (or column -1 or W) give exactly 0; on pixels, the pixel."""
    x = np.arange(1, 1 + 3 * 4, dtype=np.float32).reshape(1, 3, 4, 1)  # x[0, y, x, 0] = 4y + x + 1
    cases = {(-1, 0): 0, (3, 2): 0, (1, -1): 0, (0, 4): 0, (2, 3): 12, (0, 0): 1, (1, 2): 7}
    for (py, px), expected in cases.items():
        # A 1x1 kernel over the 3x4 grid; every output pixel (ho, wo) samples (py, px).
        offsets = np.zeros((1, 3, 4, 3), np.float32)
        offsets[..., 0] = px - np.arange(4)[None, :]
        offsets[..., 1] = py - np.arange(3)[:, None]
        offsets[..., 2] = 1.0
        y = ops.deformable_offsets(x, offsets, (1, 1)).numpy()
        assert (y == expected).all(), ((py, px), y[0, :, :, 0])


def test_zero_offsets_unit_mask_is_im2col(backend):
    """With no offsets and a mask of ones, the output is the zero-padded input patches."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 4, 5, 2)).astype(np.float32)
    offsets = np.zeros((1, 4, 5, 27), np.float32)
    offsets[..., 18:] = 1.0
    y = ops.deformable_offsets(x, offsets, (3, 3), pads=(1, 1, 1, 1)).numpy()
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for ho in range(4):
        for wo in range(5):
            np.testing.assert_array_equal(
                y[0, 3 * ho : 3 * ho + 3, 3 * wo : 3 * wo + 3], padded[0, ho : ho + 3, wo : wo + 3]
            )


def test_unmodulated_ignores_mask(backend):
    x, offsets, geo = make_inputs("groups2_2x3_stride2_asym", "random", np.float64)
    other = offsets.copy()
    gk = offsets.shape[-1] // 3
    other[..., 2 * gk :] = 123.0
    a = ops.deformable_offsets(x, offsets, modulated=False, **geo).numpy()
    b = ops.deformable_offsets(x, other, modulated=False, **geo).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(
        a,
        numpy_reference.deformable_offsets(x, offsets, modulated=False, **geo),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("name", sorted(GRADIENT_GEOMETRIES))
def test_gradients_match_numerical(backend, name):
    _, x, offsets, geo = gradient_inputs(name, seed=1)
    function = tf.function(lambda a, b: ops.deformable_offsets(a, b, **geo))
    theoretical, numerical = tf.test.compute_gradient(function, [x, offsets])
    for got, want, what in zip(theoretical, numerical, ("x", "offsets")):
        assert np.abs(want).max() > 0, what
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"d/d{what}")


def test_gradient_unmodulated_mask_is_zero(backend):
    x, offsets, geo = make_inputs("3x3_pad1", "random", np.float64)
    offsets = tf.constant(offsets)
    with tf.GradientTape() as tape:
        tape.watch(offsets)
        y = ops.deformable_offsets(x, offsets, modulated=False, **geo)
    grad = tape.gradient(y, offsets, output_gradients=tf.ones_like(y)).numpy()
    gk = grad.shape[-1] // 3
    assert np.all(grad[..., 2 * gk :] == 0)
    assert np.abs(grad[..., : 2 * gk]).max() > 0


def test_backends_agree_float32(select_backend):
    """native and reference agree to float32 rounding, forward and backward."""
    x, offsets, geo = make_inputs("groups8_dilation2", "random", np.float32, seed=7)
    assert_backends_agree(
        select_backend, lambda a, b: ops.deformable_offsets(a, b, **geo), [x, offsets]
    )


def test_graph_mode_with_unknown_shapes(backend):
    x, offsets, geo = make_inputs("stride21_dilation12_3x2", "random", np.float32)
    with tf.Graph().as_default():
        xp = tf.compat.v1.placeholder(tf.float32, [None, None, None, x.shape[3]])
        op = tf.compat.v1.placeholder(tf.float32, [None, None, None, offsets.shape[3]])
        y = ops.deformable_offsets(xp, op, **geo)
        grads = tf.compat.v1.gradients(tf.reduce_sum(y), [xp, op])
        assert y.shape.as_list()[3] == x.shape[3]
        with tf.compat.v1.Session() as sess:
            value, gx, go = sess.run([y] + grads, {xp: x, op: offsets})
    np.testing.assert_allclose(
        value, numpy_reference.deformable_offsets(x, offsets, **geo), rtol=1e-5, atol=2e-6
    )
    assert gx.shape == x.shape and go.shape == offsets.shape


def test_graph_mode_static_shape_is_exact(backend):
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 7, 6, 4])
        offsets = tf.compat.v1.placeholder(tf.float32, [2, 4, 3, 36])
        y = ops.deformable_offsets(
            x, offsets, (2, 3), strides=(2, 2), pads=(0, 2, 1, 0), deformable_groups=2
        )
        assert y.shape.as_list() == [2, 8, 9, 4]


def test_tf_function(backend):
    x, offsets, geo = make_inputs("3x3_pad1", "random", np.float32)
    fn = tf.function(lambda a, b: ops.deformable_offsets(a, b, **geo))
    np.testing.assert_allclose(
        fn(x, offsets).numpy(),
        numpy_reference.deformable_offsets(x, offsets, **geo),
        rtol=1e-5,
        atol=2e-6,
    )


def test_nan_and_huge_offsets(backend):
    """NaN offsets give NaN where they are used; huge and infinite ones give 0; no crash."""
    x, offsets, geo = make_inputs("3x3_pad1", "random", np.float32)
    gk = offsets.shape[-1] // 3
    offsets[0, 0, 0, 4] = np.nan  # dx of kernel point 4 at (0, 0, 0)
    offsets[0, 1, 1, gk + 2] = 1e6  # dy far below
    offsets[1, 2, 3, 5] = -1e6
    offsets[1, 3, 3, gk + 1] = np.inf
    offsets[1, 4, 5, 3] = -np.inf
    y = ops.deformable_offsets(x, offsets, **geo).numpy()
    expected = numpy_reference.deformable_offsets(x, offsets, **geo)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    assert np.isnan(y[0, 1, 1]).all() and np.isnan(y).sum() == 4
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=2e-6)
    assert y[0, 3 + 0, 3 + 2].tolist() == [0, 0, 0, 0]  # the 1e6 point: (ho=1, wo=1, i=0, j=2)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        total = tf.reduce_sum(ops.deformable_offsets(xt, offsets, **geo))
    assert np.isfinite(tape.gradient(total, xt).numpy()).all()


def test_nan_input_propagates(backend):
    x, offsets, geo = make_inputs("3x3_pad1", "integer", np.float32)
    x[0, 2, 2, 1] = np.nan
    y = ops.deformable_offsets(x, offsets, **geo).numpy()
    expected = numpy_reference.deformable_offsets(x, offsets, **geo)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    assert np.isnan(y).any()
