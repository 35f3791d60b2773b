"""bilinear_sample on both backends against the float64 NumPy loop reference."""

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import numpy_reference

from .conftest import assert_backends_agree, tolerance


def make_inputs(dtype, coords_shape=(2, 3, 5, 2), x_shape=(2, 4, 6, 3), seed=0, away=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=x_shape)
    h, w = x_shape[1:3]
    # (x, y) from 2 pixels before the image to 1 past it, so some points fall outside.
    coords = np.stack(
        [rng.uniform(-2, w + 1, coords_shape[:-1]), rng.uniform(-2, h + 1, coords_shape[:-1])], -1
    )
    if away:
        coords = np.floor(coords) + rng.uniform(0.1, 0.9, coords.shape)
    return x.astype(dtype), coords.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("coords_shape", [(2, 7, 2), (2, 3, 5, 2), (2, 2, 2, 3, 2), (0, 4, 2)])
def test_matches_numpy_reference(backend, coords_shape, dtype):
    x_shape = (coords_shape[0], 4, 6, 3)
    x, coords = make_inputs(dtype, coords_shape, x_shape)
    actual = ops.bilinear_sample(x, coords).numpy()
    expected = numpy_reference.bilinear_sample(x, coords)
    assert actual.shape == coords_shape[:-1] + (3,) and actual.dtype == dtype
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def test_many_channels_and_exact_pixels(backend):
    """40 channels (more than one 16-channel block) and integer coordinates on and off the image."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 3, 4, 40)).astype(np.float32)
    coords = np.array([[[0, 0], [3, 2], [-1, 0], [4, 1], [1, 3], [2, -1], [1.5, 0.5]]], np.float32)
    actual = ops.bilinear_sample(x, coords).numpy()
    np.testing.assert_array_equal(actual[0, 0], x[0, 0, 0])
    np.testing.assert_array_equal(actual[0, 1], x[0, 2, 3])
    assert not actual[0, 2:6].any()
    np.testing.assert_allclose(actual[0, 6], x[0, :2, 1:3].mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)


def test_gradients_match_numerical(backend):
    x, coords = make_inputs(np.float64, (2, 3, 4, 2), (2, 4, 5, 20), seed=1, away=True)
    function = tf.function(ops.bilinear_sample)
    theoretical, numerical = tf.test.compute_gradient(function, [x, coords])
    for got, want, what in zip(theoretical, numerical, ("x", "coords")):
        assert np.abs(want).max() > 0, what
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"d/d{what}")


def test_graph_mode_unknown_shapes(backend):
    x, coords = make_inputs(np.float32)
    with tf.Graph().as_default():
        xp = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        cp = tf.compat.v1.placeholder(tf.float32, [None, None, None, 2])
        y = ops.bilinear_sample(xp, cp)
        assert y.shape.as_list() == [None, None, None, 3]
        grads = tf.compat.v1.gradients(tf.reduce_sum(y), [xp, cp])
        with tf.compat.v1.Session() as sess:
            value, gx, gc = sess.run([y] + grads, {xp: x, cp: coords})
    np.testing.assert_allclose(
        value, numpy_reference.bilinear_sample(x, coords), rtol=1e-5, atol=2e-6
    )
    assert gx.shape == x.shape and gc.shape == coords.shape


def test_nan_and_huge_coords(backend):
    x, coords = make_inputs(np.float32, (2, 6, 2))
    coords[0, 0, 0] = np.nan
    coords[0, 1, 1] = 1e6
    coords[1, 2, 0] = -1e30
    coords[1, 3, 1] = np.inf
    actual = ops.bilinear_sample(x, coords).numpy()
    assert np.isnan(actual[0, 0]).all() and np.isnan(actual).sum() == 3
    assert not actual[0, 1].any() and not actual[1, 2].any() and not actual[1, 3].any()
    np.testing.assert_allclose(
        actual, numpy_reference.bilinear_sample(x, coords), rtol=1e-5, atol=2e-6
    )


def test_backends_agree(select_backend):
    x, coords = make_inputs(np.float32, (2, 8, 9, 2), (2, 6, 7, 33), seed=9)
    assert_backends_agree(select_backend, ops.bilinear_sample, [x, coords])
