"""Property tests: hypothesis draws geometries and offsets (tiny to huge, NaN, +-inf) and both
backends must match the float64 NumPy oracle (ops/numpy_reference.py), forward and backward.

Settings: the "edvr-ci" profile of tests/ops/conftest.py (derandomized, no example database)
with the per-test example counts below. Arrays are drawn as a seed plus a few hypothesis
choices (scale, rounding, which elements get special values), so an example stays small
enough for hypothesis to shrink while the arrays hold hundreds of values.
"""

import numpy as np
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st

import ops
from ops import numpy_reference

from .cases import offsets_shape
from .conftest import BACKENDS, backend_selected, require_native, tolerance

# Values an offset (or coordinate) may take besides the drawn ones: outside by far, at the
# edge of float32, not a number. The oracle says: NaN gives NaN, the others give 0.
SPECIAL_OFFSETS = (np.nan, np.inf, -np.inf, 1e30, -1e30, 3e38, -3e38, 1e6, -1e6)
# Scales of the drawn offsets: sub-pixel, around the kernel, across the image, far outside.
OFFSET_SCALES = (1e-6, 0.5, 2.0, 8.0, 1e3)
# Seeds of the NumPy generators that fill the arrays.
SEEDS = st.integers(0, 2**32 - 1)
DTYPES = st.sampled_from((np.float32, np.float64))


@st.composite
def sampling_geometries(draw, max_size=9, max_kernel=3, max_groups=3, max_group_width=3):
    """(x shape [N, H, W, C], geometry kwargs of deformable_offsets) with H, W in 1..max_size,
    a kernel that fits the padded input, and deformable groups dividing C."""
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h = draw(st.integers(max(1, span_h - pads[0] - pads[1]), max(max_size, span_h)))
    w = draw(st.integers(max(1, span_w - pads[2] - pads[3]), max(max_size, span_w)))
    groups = draw(st.integers(1, max_groups))
    channels = groups * draw(st.integers(1, max_group_width))
    batch = draw(st.integers(0, 2))
    geo = dict(
        ksize=(kh, kw),
        strides=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        pads=pads,
        dilations=(dh, dw),
        deformable_groups=groups,
    )
    return (batch, h, w, channels), geo


@st.composite
def offset_arrays(draw, shape, specials=True):
    """Offsets [N, Ho, Wo, 3*G*K] (or any [..., 3*G*K]): dx, dy drawn at one scale, optionally
    rounded to whole or half pixels (cell edges and image borders), some replaced by
    SPECIAL_OFFSETS; a mask in [-2, 2), some of it NaN. Returns float64."""
    rng = np.random.default_rng(draw(SEEDS))
    lead, gk = shape[:-1], shape[-1] // 3
    dxy = rng.normal(0, draw(st.sampled_from(OFFSET_SCALES)), lead + (2 * gk,))
    rounding = draw(st.sampled_from((None, 1.0, 0.5)))
    if rounding is not None:
        dxy = np.round(dxy / rounding) * rounding
    mask = rng.uniform(-2, 2, lead + (gk,))
    offsets = np.concatenate([dxy, mask], axis=-1)
    if specials and offsets.size:
        for _ in range(draw(st.integers(0, 4))):
            index = tuple(rng.integers(0, n) for n in lead)
            channel = draw(st.integers(0, shape[-1] - 1))
            if channel < 2 * gk:
                offsets[index + (channel,)] = draw(st.sampled_from(SPECIAL_OFFSETS))
            else:  # the mask is a sigmoid's output: finite, or NaN when something upstream is
                offsets[index + (channel,)] = np.nan
    return offsets


def assert_matches_oracle(actual, expected, dtype, scale=1.0, what=""):
    """actual (of dtype) equals the float64 oracle: NaN exactly where the oracle has NaN,
    elsewhere to the rounding of dtype for values of magnitude `scale`."""
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    np.testing.assert_array_equal(
        np.isnan(actual), np.isnan(expected), err_msg=f"NaN positions {what}"
    )
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


@st.composite
def deformable_inputs(draw, specials=True, **limits):
    """(x [N, H, W, C], offsets, geometry kwargs) for deformable_offsets, float64."""
    x_shape, geo = draw(sampling_geometries(**limits))
    x = np.random.default_rng(draw(SEEDS)).normal(size=x_shape)
    return x, draw(offset_arrays(offsets_shape(x_shape, **geo), specials)), geo


@st.composite
def conv_inputs(draw, specials=True, **limits):
    """(x, offsets, filters [kh, kw, C/groups, F], bias [F], geometry kwargs with `groups`)
    for deform_conv2d, float64; groups divides C and F."""
    x, offsets, geo = draw(deformable_inputs(specials, **limits))
    geo = dict(geo)
    ksize = geo.pop("ksize")
    channels = x.shape[3]
    geo["groups"] = draw(st.sampled_from([g for g in range(1, channels + 1) if channels % g == 0]))
    features = geo["groups"] * draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(SEEDS))
    fan_in = ksize[0] * ksize[1] * channels // geo["groups"]
    filters = rng.normal(size=ksize + (channels // geo["groups"], features)) / np.sqrt(fan_in)
    return x, offsets, filters, rng.normal(size=features), geo


@st.composite
def bilinear_inputs(draw, specials=True, max_size=9):
    """(x [N, H, W, C], coords [N, ..., 2]) for bilinear_sample, float64; coordinates drawn
    like the offsets, around the image's centre."""
    batch, h, w = (
        draw(st.integers(0, 2)),
        draw(st.integers(1, max_size)),
        draw(st.integers(1, max_size)),
    )
    channels = draw(st.integers(1, 20))
    points = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=2)))
    x = np.random.default_rng(draw(SEEDS)).normal(size=(batch, h, w, channels))
    coords = draw(offset_arrays((batch,) + points + (3,), specials))[..., :2]
    return x, coords + [(w - 1) / 2, (h - 1) / 2]


def cast(arrays, dtype):
    """The arrays converted to dtype."""
    return [a.astype(dtype) for a in arrays]


@settings(max_examples=150)
@given(inputs=deformable_inputs(), dtype=DTYPES, modulated=st.booleans())
def test_deformable_offsets_matches_oracle(inputs, dtype, modulated):
    require_native()
    x, offsets, geo = inputs
    x, offsets = cast((x, offsets), dtype)
    expected = numpy_reference.deformable_offsets(x, offsets, modulated=modulated, **geo)
    for name in BACKENDS:
        with backend_selected(name):
            actual = ops.deformable_offsets(x, offsets, modulated=modulated, **geo).numpy()
        assert_matches_oracle(actual, expected, dtype, what=name)


@settings(max_examples=100)
@given(inputs=conv_inputs(), dtype=DTYPES)
def test_deform_conv2d_matches_oracle(inputs, dtype):
    require_native()
    *arrays, geo = inputs
    x, offsets, filters, bias = cast(arrays, dtype)
    expected = numpy_reference.deform_conv2d(x, offsets, filters, bias, **geo)
    # A sum of fan_in products of magnitude ~1/sqrt(fan_in), masks up to 2.
    scale = 2 * np.sqrt(filters[..., 0].size)
    for name in BACKENDS:
        with backend_selected(name):
            actual = ops.deform_conv2d(x, offsets, filters, bias, **geo).numpy()
        assert_matches_oracle(actual, expected, dtype, scale=scale, what=name)


@settings(max_examples=150)
@given(inputs=bilinear_inputs(), dtype=DTYPES)
def test_bilinear_sample_matches_oracle(inputs, dtype):
    require_native()
    x, coords = cast(inputs, dtype)
    expected = numpy_reference.bilinear_sample(x, coords)
    for name in BACKENDS:
        with backend_selected(name):
            actual = ops.bilinear_sample(x, coords).numpy()
        assert_matches_oracle(actual, expected, dtype, what=name)


def assert_numerical_gradients(op, inputs, names):
    """Both backends' gradients equal float64 central differences of the op (whose values the
    tests above hold to the oracle)."""
    for name in BACKENDS:
        with backend_selected(name):
            theoretical, numerical = tf.test.compute_gradient(tf.function(op), inputs)
        for got, want, what in zip(theoretical, numerical, names):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"{name} d/d{what}")


def away_from_cell_edges(offsets):
    """The offsets with each dx, dy moved into [floor + 0.1, floor + 0.9]: the derivative jumps at
    cell edges, where central differences are wrong."""
    gk = offsets.shape[-1] // 3
    dxy = offsets[..., : 2 * gk]
    fraction = np.random.default_rng(0).uniform(0.1, 0.9, dxy.shape)
    return np.concatenate([np.floor(dxy) + fraction, offsets[..., 2 * gk :]], axis=-1)


# Small draws for central differences (one evaluation per input element), without special values.
SMALL = dict(specials=False, max_size=4, max_kernel=2, max_groups=2, max_group_width=2)


@settings(max_examples=12)
@given(inputs=deformable_inputs(**SMALL), modulated=st.booleans())
def test_deformable_offsets_numerical_gradients(inputs, modulated):
    require_native()
    x, offsets, geo = inputs
    assert_numerical_gradients(
        lambda a, b: ops.deformable_offsets(a, b, modulated=modulated, **geo),
        [x[:1], away_from_cell_edges(offsets[:1])],
        ("x", "offsets"),
    )


@settings(max_examples=10)
@given(inputs=conv_inputs(**SMALL))
def test_deform_conv2d_numerical_gradients(inputs):
    require_native()
    x, offsets, filters, bias, geo = inputs
    assert_numerical_gradients(
        lambda *a: ops.deform_conv2d(*a, **geo),
        [x[:1], away_from_cell_edges(offsets[:1]), filters, bias],
        ("x", "offsets", "filters", "bias"),
    )


@settings(max_examples=15)
@given(inputs=bilinear_inputs(specials=False, max_size=5))
def test_bilinear_sample_numerical_gradients(inputs):
    require_native()
    x, coords = inputs
    coords = np.floor(coords[:1]) + np.random.default_rng(0).uniform(0.1, 0.9, coords[:1].shape)
    assert_numerical_gradients(ops.bilinear_sample, [x[:1], coords], ("x", "coords"))


def assert_gradients_agree(op, inputs, names, dtype, scale):
    """On draws with huge, infinite and NaN offsets, where central differences mean nothing, the
    native gradients of sum(op(...) * w) equal the reference backend's (TF autodiff of gathers),
    NaN where it has NaN."""
    results = {}
    for name in BACKENDS:
        with backend_selected(name):
            tensors = [tf.constant(a) for a in cast(inputs, dtype)]
            with tf.GradientTape() as tape:
                tape.watch(tensors)
                y = op(*tensors)
                weights = np.random.default_rng(0).normal(size=y.shape.as_list()).astype(dtype)
                loss = tf.reduce_sum(y * weights)
            results[name] = [g.numpy() for g in tape.gradient(loss, tensors)]
    for native, reference, what in zip(results["native"], results["reference"], names):
        assert_matches_oracle(
            native,
            reference.astype(np.float64),
            dtype,
            scale=scale,
            what=f"native vs reference d/d{what}",
        )


# What the property tests found (hypothesis 6.170.15, profile "edvr-ci"): at a NaN sampling
# point the reference backend gave 0 for d/ddx and d/ddy (the gathers treat NaN as outside) where
# the native kernels give NaN; and at a point outside the image with a NaN mask, 0 where native
# gives NaN (mask times the derivative). The shrunk examples, and the same with a NaN mask:
ONE_PIXEL = dict(
    ksize=(1, 1), strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), deformable_groups=1
)
ONE_PIXEL_CONV = dict(
    strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), deformable_groups=1, groups=1
)
NAN_DX = np.array([[[[np.nan, -1.32104863e-07, -1.83610590e00]]]])
NAN_MASK_OUTSIDE = np.array([[[[5.0, 0.0, np.nan]]]])


@example(inputs=(np.array([[[[0.12573022]]]]), NAN_DX, ONE_PIXEL), dtype=np.float32)
@example(inputs=(np.array([[[[0.12573022]]]]), NAN_MASK_OUTSIDE, ONE_PIXEL), dtype=np.float64)
@settings(max_examples=40)
@given(inputs=deformable_inputs(max_size=6), dtype=DTYPES)
def test_deformable_offsets_gradients_agree(inputs, dtype):
    require_native()
    x, offsets, geo = inputs
    assert_gradients_agree(
        lambda a, b: ops.deformable_offsets(a, b, **geo),
        [x, offsets],
        ("x", "offsets"),
        dtype,
        scale=4.0,
    )


@example(
    inputs=(
        np.array([[[[0.12573022]]]]),
        NAN_MASK_OUTSIDE,
        np.array([[[[0.5]]]]),
        np.array([0.1]),
        ONE_PIXEL_CONV,
    ),
    dtype=np.float32,
)
@settings(max_examples=40)
@given(inputs=conv_inputs(max_size=6), dtype=DTYPES)
def test_deform_conv2d_gradients_agree(inputs, dtype):
    require_native()
    *arrays, geo = inputs
    assert_gradients_agree(
        lambda *a: ops.deform_conv2d(*a, **geo),
        arrays,
        ("x", "offsets", "filters", "bias"),
        dtype,
        scale=8.0,
    )


@example(
    inputs=(np.array([[[[0.12573022]]]]), np.array([[[np.nan, -1.32104863e-07]]])), dtype=np.float32
)
@settings(max_examples=40)
@given(inputs=bilinear_inputs(max_size=6), dtype=DTYPES)
def test_bilinear_sample_gradients_agree(inputs, dtype):
    require_native()
    assert_gradients_agree(ops.bilinear_sample, inputs, ("x", "coords"), dtype, scale=4.0)
