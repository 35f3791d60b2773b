"""Bad input raises an error naming the argument, what it got and what it expected."""

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import _native

from .conftest import require_native

X = np.zeros((2, 6, 6, 4), np.float32)
OFFSETS = np.zeros((2, 6, 6, 27), np.float32)  # 3x3 kernel, pads 1, G = 1
FILTERS = np.zeros((3, 3, 4, 5), np.float32)
PADS = (1, 1, 1, 1)

DEFORMABLE_OFFSETS_ERRORS = [
    (dict(x=X[0]), r"x must be rank 4 \[N, H, W, C\], got shape \[6, 6, 4\]"),
    (
        dict(offsets=OFFSETS[..., :26]),
        r"offsets must have shape \[N, Ho, Wo, 3\*G\*K\] = \[2, 6, 6, 27\] .*got \[2, 6, 6, 26\]",
    ),
    (
        dict(offsets=OFFSETS[:, :5]),
        r"offsets must have shape .*= \[2, 6, 6, 27\].*got \[2, 5, 6, 27\]",
    ),
    (dict(offsets=OFFSETS[0]), r"offsets must be rank 4"),
    (
        dict(deformable_groups=3, offsets=np.zeros((2, 6, 6, 81), np.float32)),
        r"x channels \(4\) must be divisible by deformable_groups \(3\)",
    ),
    (dict(deformable_groups=0), r"deformable_groups must be >= 1, got 0"),
    (dict(strides=(0, 1)), r"strides must be 2 positive integers, got \(0, 1\)"),
    (dict(strides=(1, -2)), r"strides must be 2 positive integers"),
    (dict(dilations=(1, 0)), r"dilations must be 2 positive integers, got \(1, 0\)"),
    (
        dict(pads=(1, 1, -1, 1)),
        r"pads \(top, bottom, left, right\) must be 4 non-negative integers",
    ),
    (dict(pads=(1, 1)), r"pads .* must be 4 non-negative integers, got \(1, 1\)"),
    (dict(ksize=(3,)), r"ksize must be 2 positive integers"),
    (
        dict(ksize=(9, 3), pads=(0, 0, 1, 1)),
        r"kernel \(9x3 with dilation 1x1\) is larger than the padded input",
    ),
]


def call_deformable_offsets(overrides):
    args = dict(x=X, offsets=OFFSETS, ksize=(3, 3), pads=PADS)
    args.update(overrides)
    return ops.deformable_offsets(**args)


@pytest.mark.parametrize("overrides,message", DEFORMABLE_OFFSETS_ERRORS)
def test_deformable_offsets_errors(backend, overrides, message):
    with pytest.raises(ValueError, match=r"^deformable_offsets: " + message):
        call_deformable_offsets(overrides)


DEFORM_CONV2D_ERRORS = [
    (
        dict(filters=np.zeros((3, 3, 3, 5), np.float32)),
        r"filters must have shape \[kh, kw, C/groups, F\] with C/groups = 4, got \[3, 3, 3, 5\]",
    ),
    (dict(filters=np.zeros((3, 3, 4), np.float32)), r"filters must be rank 4"),
    (
        dict(groups=3, filters=np.zeros((3, 3, 1, 6), np.float32)),
        r"x channels \(4\) must be divisible by groups \(3\)",
    ),
    (
        dict(groups=2, filters=np.zeros((3, 3, 2, 5), np.float32)),
        r"filters output channels \(5\) must be divisible by groups \(2\)",
    ),
    (dict(bias=np.zeros(4, np.float32)), r"bias must have shape \[F\] = \[5\], got \[4\]"),
    (dict(offsets=OFFSETS[..., :18]), r"^deform_conv2d: offsets must have shape"),
]


@pytest.mark.parametrize("overrides,message", DEFORM_CONV2D_ERRORS)
def test_deform_conv2d_errors(backend, overrides, message):
    args = dict(x=X, offsets=OFFSETS, filters=FILTERS, pads=PADS)
    args.update(overrides)
    with pytest.raises(ValueError, match=message):
        ops.deform_conv2d(**args)


BILINEAR_SAMPLE_ERRORS = [
    (dict(x=X[0]), r"x must be rank 4 \[N, H, W, C\], got shape \[6, 6, 4\]"),
    (
        dict(coords=np.zeros((2, 5, 3), np.float32)),
        r"coords must have shape \[N, \.\.\., 2\] holding \(x, y\), got shape \[2, 5, 3\]",
    ),
    (dict(coords=np.zeros((2,), np.float32)), r"coords must have shape \[N, \.\.\., 2\]"),
    (dict(coords=np.zeros((3, 5, 2), np.float32)), r"coords batch \(3\) must equal x batch \(2\)"),
]


@pytest.mark.parametrize("overrides,message", BILINEAR_SAMPLE_ERRORS)
def test_bilinear_sample_errors(backend, overrides, message):
    args = dict(x=X, coords=np.zeros((2, 5, 2), np.float32))
    args.update(overrides)
    with pytest.raises(ValueError, match=r"^bilinear_sample: " + message):
        ops.bilinear_sample(**args)


def test_unknown_backend_is_named(select_backend):
    select_backend("cuda")
    with pytest.raises(ValueError, match=r"EDVR_OPS_BACKEND must be one of .*got 'cuda'"):
        ops.backend()


@pytest.fixture
def missing_library(monkeypatch, tmp_path):
    """The native op library, not loaded yet, at a path where there is none."""
    monkeypatch.setattr(_native, "LIBRARY_PATH", str(tmp_path / "missing.so"))
    monkeypatch.setattr(_native, "_library", None)


def test_forced_native_without_library_fails_loudly(missing_library, select_backend):
    select_backend("native")
    with pytest.raises(
        RuntimeError,
        match=r"EDVR_OPS_BACKEND=native but the native op library "
        r"cannot be loaded: .*missing.so is not built; run "
        r"`python setup.py build_ext --inplace`",
    ):
        ops.backend()


def test_auto_falls_back_with_one_warning(missing_library, select_backend):
    select_backend("auto")
    with pytest.warns(
        RuntimeWarning,
        match=r"reference backend because the native library cannot "
        r"be loaded .*Build it with",
    ):
        assert ops.backend() == "reference"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ops.backend() == "reference"


# Run-time checks of the native kernels, for shapes unknown when the graph is built.
NATIVE_RUNTIME_ERRORS = [
    (
        "deformable_offsets",
        dict(offsets=OFFSETS[..., :26]),
        r"offsets must have shape \[N, Ho, Wo, 3\*G\*K\] = \[2, 6, 6, 27\] for x of shape \[2,6,6,4\], got \[2,6,6,26\]",
    ),
    (
        "deformable_offsets",
        dict(
            x=np.zeros((2, 6, 6, 3), np.float32),
            deformable_groups=2,
            offsets=np.zeros((2, 6, 6, 54), np.float32),
        ),
        r"x channels \(3\) must be divisible by deformable_groups \(2\)",
    ),
    (
        "deformable_offsets",
        dict(x=np.zeros((2, 1, 6, 4), np.float32), pads=(0, 0, 1, 1)),
        r"kernel \(3x3 with dilation 1x1\) is larger than the padded input of x \(1x8\)",
    ),
    (
        "bilinear_sample",
        dict(coords=np.zeros((3, 5, 2), np.float32)),
        r"coords batch \(3\) must equal x batch \(2\)",
    ),
    # The fused op (one convolution group) checks its inputs itself.
    (
        "deform_conv2d",
        dict(offsets=OFFSETS[..., :26]),
        r"offsets must have shape \[N, Ho, Wo, 3\*G\*K\] = \[2, 6, 6, 27\] for x of shape \[2,6,6,4\], got \[2,6,6,26\]",
    ),
    (
        "deform_conv2d",
        dict(filters=np.zeros((3, 3, 3, 5), np.float32)),
        r"filters must have shape \[kh, kw, C, F\] = \[3, 3, 4, F\] for x of shape \[2,6,6,4\], got \[3,3,3,5\]",
    ),
]


@pytest.mark.parametrize("op,overrides,message", NATIVE_RUNTIME_ERRORS)
def test_native_runtime_errors(select_backend, op, overrides, message):
    require_native()
    select_backend("native")
    if op == "deformable_offsets":
        values = dict(x=X, offsets=OFFSETS, ksize=(3, 3), pads=PADS)
    elif op == "deform_conv2d":
        values = dict(x=X, offsets=OFFSETS, filters=FILTERS, pads=PADS)
    else:
        values = dict(x=X, coords=np.zeros((2, 5, 2), np.float32))
    values.update(overrides)
    with tf.Graph().as_default():
        feeds, args = {}, {}
        for key, value in values.items():
            if isinstance(value, np.ndarray):
                # Only the filters' kernel size must be known when the graph is built.
                known = value.shape[:2] if key == "filters" else ()
                shape = list(known) + [None] * (value.ndim - len(known))
                args[key] = tf.compat.v1.placeholder(tf.float32, shape)
                feeds[args[key]] = value
            else:
                args[key] = value
        y = getattr(ops, op)(**args)
        with tf.compat.v1.Session() as sess:
            with pytest.raises(tf.errors.InvalidArgumentError, match=message):
                sess.run(y, feeds)
