"""The TBE plan's output-size formula (its own copy: the Ascend op compiler cannot import `ops`)
agrees with the ops package's, and both with a count of the kernel windows that fit."""
import itertools

from kernels.tbe.tbe.impl.edvr_sampling_plan import out_size as tbe_out_size
from ops._checks import out_size as ops_out_size

SIZES = range(1, 10)
PADS = range(0, 5)  # top + bottom (or left + right)
KERNELS = range(1, 5)
DILATIONS = range(1, 4)
STRIDES = range(1, 4)


def windows_that_fit(size, pad, kernel, dilation, stride):
    """Output positions counted one by one: window o covers padded rows o*stride + i*dilation,
    i < kernel, and must end inside the size + pad padded rows. None when there is none."""
    last_row = size + pad - 1
    count = sum(1 for o in range(size + pad) if o * stride + (kernel - 1) * dilation <= last_row)
    return count or None


def test_tbe_and_ops_out_size_agree_with_counted_windows():
    grid = list(itertools.product(SIZES, PADS, KERNELS, DILATIONS, STRIDES))
    fits = 0
    for args in grid:
        expected = windows_that_fit(*args)
        assert tbe_out_size(*args) == expected, args
        assert ops_out_size(*args) == expected, args
        fits += expected is not None
    assert 0 < fits < len(grid), "the grid has kernels that fit and kernels that do not"


def test_out_size_edges():
    assert tbe_out_size(5, 2, 3, 1, 1) == 5  # 3x3, pad 1 each side: same size
    assert tbe_out_size(5, 0, 3, 2, 1) == 1  # dilated span 5 fits exactly once
    assert tbe_out_size(4, 0, 3, 2, 1) is None  # span 5 > 4
    assert tbe_out_size(1, 0, 2, 1, 3) is None  # does not fit even at stride 3 (no rounding up to 1)
