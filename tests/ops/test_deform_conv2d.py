"""deform_conv2d on both backends against the float64 NumPy reference and tf.nn.conv2d."""

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import numpy_reference

from .cases import CONV_CASES, GEOMETRIES, GRADIENT_GEOMETRIES, offsets_shape, random_offsets
from .conftest import assert_backends_agree, require_native, tolerance


def make_inputs(case, dtype, seed=0, away_from_integers=False, geometries=GEOMETRIES):
    rng = np.random.default_rng(seed)
    geo_name, groups, f = CONV_CASES[case]
    x_shape, geo = geometries[geo_name]
    geo = dict(geo)
    kh, kw = geo.pop("ksize")
    x = rng.normal(size=x_shape)
    offsets = random_offsets(
        rng, offsets_shape(x_shape, (kh, kw), **geo), away_from_integers=away_from_integers
    )
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
    offsets[..., 2 * 2 * 9 :] = 1.0
    actual = ops.deform_conv2d(x, offsets, filters, pads=pads, deformable_groups=2).numpy()
    expected = tf.nn.conv2d(x, filters, strides=1, padding=padding).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["3x3_pad1", "groups2", "stride21_groups2"])
def test_gradients_match_numerical(backend, case):
    (x, offsets, filters, bias), geo = make_inputs(
        case, np.float64, seed=4, away_from_integers=True, geometries=GRADIENT_GEOMETRIES
    )
    function = tf.function(lambda *args: ops.deform_conv2d(*args, **geo))
    theoretical, numerical = tf.test.compute_gradient(function, [x, offsets, filters, bias])
    for got, want, what in zip(theoretical, numerical, ("x", "offsets", "filters", "bias")):
        assert np.abs(want).max() > 0, what
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"d/d{what}")


def test_graph_mode_session(backend):
    (x, offsets, filters, bias), geo = make_inputs("groups2", np.float32)
    with tf.Graph().as_default():
        y = ops.deform_conv2d(
            tf.constant(x), tf.constant(offsets), tf.constant(filters), tf.constant(bias), **geo
        )
        with tf.compat.v1.Session() as sess:
            value = sess.run(y)
    np.testing.assert_allclose(
        value, numpy_reference.deform_conv2d(x, offsets, filters, bias, **geo), rtol=1e-5, atol=1e-5
    )


def test_native_fuses_one_group_only(select_backend):
    """The native backend runs deform_conv2d with one group as the fused op, and with groups > 1
    as deformable_offsets followed by conv2d."""
    require_native()
    select_backend("native")
    op_types = {}
    for groups, case in ((1, "3x3_pad1"), (2, "groups2")):
        (x, offsets, filters, bias), geo = make_inputs(case, np.float32)
        assert geo["groups"] == groups
        graph = tf.Graph()
        with graph.as_default():
            ops.deform_conv2d(x, offsets, filters, bias, **geo)
        op_types[groups] = {op.type for op in graph.get_operations()}
    assert "EdvrDeformConv2D" in op_types[1] and "EdvrDeformableOffsets" not in op_types[1]
    assert "EdvrDeformableOffsets" in op_types[2] and "EdvrDeformConv2D" not in op_types[2]


def test_fused_gradients_across_tiles(select_backend):
    """The fused op works in tiles of 64 output pixels; with 72 of them its backward crosses a
    tile boundary. Numerical gradients in float64."""
    require_native()
    select_backend("native")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 9, 8, 2))
    offsets = random_offsets(rng, (1, 9, 8, 27), away_from_integers=True)
    filters = rng.normal(size=(3, 3, 2, 17)) / np.sqrt(18)
    function = tf.function(lambda *args: ops.deform_conv2d(*args, pads=(1, 1, 1, 1)))
    theoretical, numerical = tf.test.compute_gradient(function, [x, offsets, filters])
    for got, want, what in zip(theoretical, numerical, ("x", "offsets", "filters")):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"d/d{what}")


@pytest.mark.parametrize("case", ["tiles_width8", "tiles_width16_batch1"])
def test_fused_agrees_with_reference(select_backend, case):
    """Values and gradients across tiles, across batch items within a tile (3 items of 90
    pixels), and with grad_x split into blocks of groups (one item, 3 groups)."""
    (x, offsets, filters, _), geo = make_inputs(case, np.float32)
    geo.pop("groups")
    assert_backends_agree(
        select_backend, lambda a, b, c: ops.deform_conv2d(a, b, c, **geo), [x, offsets, filters]
    )


def test_fused_filter_gradient_is_the_same_every_run(select_backend):
    """Each work range sums its own filter gradient and the sums are added in range order, so
    repeated runs on the thread pool give the same bits."""
    require_native()
    select_backend("native")
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(size=(8, 12, 12, 16)).astype(np.float32))
    offsets = tf.constant(random_offsets(rng, (8, 12, 12, 54)).astype(np.float32))
    filters = tf.constant(rng.normal(size=(3, 3, 16, 16)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(filters)
        y = ops.deform_conv2d(x, offsets, filters, pads=(1, 1, 1, 1), deformable_groups=2)
    first = tape.gradient(y, filters).numpy()
    for _ in range(20):
        with tf.GradientTape() as tape:
            tape.watch(filters)
            y = ops.deform_conv2d(x, offsets, filters, pads=(1, 1, 1, 1), deformable_groups=2)
        np.testing.assert_array_equal(tape.gradient(y, filters).numpy(), first)
