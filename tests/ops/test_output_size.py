"""The one output-size formula: ops._checks.out_size (Python) against hand-derived values, and
kernels/cpu/output_size.h through the native shape function."""

import pytest
import tensorflow as tf

from ops import _checks, _native

from .conftest import require_native


@pytest.mark.parametrize(
    "size, pad, kernel, dilation, stride, expected",
    [
        (5, 2, 3, 1, 1, 5),  # 3x3 with pads 1+1: same size
        (7, 2, 2, 1, 2, 4),  # (7 + 2 - 2) // 2 + 1
        (6, 4, 3, 2, 1, 6),  # dilation 2: span 5, (10 - 5) + 1
        (3, 0, 3, 1, 1, 1),  # the kernel fits exactly once
        (8, 0, 3, 1, 3, 2),  # (8 - 3) // 3 + 1: the last, partial window is dropped
        (2, 0, 3, 1, 1, None),  # the kernel does not fit
        (1, 1, 2, 2, 1, None),  # span 3 > 2
        (None, 2, 3, 1, 1, None),  # unknown size
    ],
)
def test_out_size(size, pad, kernel, dilation, stride, expected):
    assert _checks.out_size(size, pad, kernel, dilation, stride) == expected


def test_shape_function_rejects_a_kernel_larger_than_the_input():
    """The native op's shape function knows the formula too: with x's static shape it rejects a
    kernel that does not fit before anything runs (ops.deformable_offsets checks this in Python
    first; the raw op is called here)."""
    require_native()
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 2, 8, 4])
        offsets = tf.compat.v1.placeholder(tf.float32, [1, None, None, 27])
        with pytest.raises(
            ValueError,
            match=r"kernel is larger than the padded input along "
            r"axis 1 of x",
        ):
            _native.load().edvr_deformable_offsets(x, offsets, ksize=[3, 3], pads=[0, 0, 1, 1])
        y = _native.load().edvr_deformable_offsets(x, offsets, ksize=[3, 3], pads=[1, 1, 1, 1])
        assert y.shape.as_list() == [1, 2 * 3, 8 * 3, 4]
