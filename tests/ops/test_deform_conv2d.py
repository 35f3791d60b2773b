"""deform_conv2d on both backends against the float64 NumPy reference and tf.nn.conv2d."""
import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import numpy_reference

from .cases import GEOMETRIES, GRADIENT_GEOMETRIES, offsets_shape, random_offsets
from .conftest import tolerance

CONV_CASES = {  # name: (geometry name, groups, F)
    "3x3_pad1": ("3x3_pad1", 1, 5),
    "groups2": ("groups2_2x3_stride2_asym", 2, 6),
    "groups8_dilation2": ("groups8_dilation2", 1, 3),
    "stride21_groups2": ("stride21_dilation12_3x2", 2, 4),
    "empty_batch": ("empty_batch", 1, 3),
}


def make_inputs(case, dtype, seed=0, away_from_integers=False, geometries=GEOMETRIES):
    rng = np.random.default_rng(seed)
    geo_name, groups, f = CONV_CASES[case]
    x_shape, geo = geometries[geo_name]
    geo = dict(geo)
    kh, kw = geo.pop("ksize")
    x = rng.normal(size=x_shape)
    offsets = random_offsets(rng, offsets_shape(x_shape, (kh, kw), **geo),
                             away_from_integers=away_from_integers)
    filters = rng.normal(size=(kh, kw, x_shape[3] // groups, f)) / np.sqrt(kh * kw * x_shape[3])
    bias = rng.normal(size=f)
    geo["groups"] = groups
    return [a.astype(dtype) for a in (x, offsets, filters, bias)], geo


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_matches_numpy_reference(backend, case, dtype):
    (x, offsets, filters, bias), geo = make_inputs(case, dtype)
    expected = numpy_reference.deform_conv2d(x, offsets, filters, bias, **geo)
    actual = ops.deform_conv2d(x, offsets, filters, bias, **geo).numpy()
    assert actual.shape == expected.shape and actual.dtype == dtype
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * 4)


@pytest.mark.parametrize("pads,padding", [((1, 1, 1, 1), "SAME"), ((0, 0, 0, 0), "VALID")])
def test_zero_offsets_equal_conv2d(backend, pads, padding):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 9, 7, 8)).astype(np.float32)
    filters = rng.normal(size=(3, 3, 8, 6)).astype(np.float32)
    ho, wo = (9, 7) if padding == "SAME" else (7, 5)
    offsets = np.zeros((2, ho, wo, 3 * 2 * 9), np.float32)
    offsets[..., 2 * 2 * 9:] = 1.0
    actual = ops.deform_conv2d(x, offsets, filters, pads=pads, deformable_groups=2).numpy()
    expected = tf.nn.conv2d(x, filters, strides=1, padding=padding).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["3x3_pad1", "groups2", "stride21_groups2"])
def test_gradients_match_numerical(backend, case):
    (x, offsets, filters, bias), geo = make_inputs(case, np.float64, seed=4, away_from_integers=True,
                                                   geometries=GRADIENT_GEOMETRIES)
    function = tf.function(lambda *args: ops.deform_conv2d(*args, **geo))
    theoretical, numerical = tf.test.compute_gradient(function, [x, offsets, filters, bias])
    for got, want, what in zip(theoretical, numerical, ("x", "offsets", "filters", "bias")):
        assert np.abs(want).max() > 0, what
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"d/d{what}")


def test_graph_mode_session(backend):
    (x, offsets, filters, bias), geo = make_inputs("groups2", np.float32)
    with tf.Graph().as_default():
        y = ops.deform_conv2d(tf.constant(x), tf.constant(offsets), tf.constant(filters),
                              tf.constant(bias), **geo)
        with tf.compat.v1.Session() as sess:
            value = sess.run(y)
    np.testing.assert_allclose(value, numpy_reference.deform_conv2d(x, offsets, filters, bias, **geo),
                               rtol=1e-5, atol=1e-5)
