"""The output-size formulas of the Ascend package agree with the ops package's and with a count of
the kernel windows that fit: the plan's out_size (its own copy: the Ascend op compiler cannot import
`ops`) and the op proto's C++ edvr::OutSize (GE's verifier)."""

import itertools
import os
import shutil
import subprocess

import pytest

from kernels.tbe.tbe.impl.edvr_sampling_plan import out_size as tbe_out_size
from ops._checks import out_size as ops_out_size
from tests.tbe.test_tbe_consistency import TBE

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
    assert (
        tbe_out_size(1, 0, 2, 1, 3) is None
    )  # does not fit even at stride 3 (no rounding up to 1)


DRIVER = """
#include <cstdio>
#include "edvr_out_size.h"
int main() {
  long long in, pad, kernel, dilation, stride;
  while (std::scanf("%lld %lld %lld %lld %lld", &in, &pad, &kernel, &dilation, &stride) == 5) {
    std::printf("%lld\\n", static_cast<long long>(edvr::OutSize(in, pad, kernel, dilation, stride)));
  }
  return 0;
}
"""


def test_op_proto_out_size_agrees(tmp_path):
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the op proto's edvr_out_size.h")
    source, program = tmp_path / "out_size.cc", tmp_path / "out_size"
    source.write_text(DRIVER)
    subprocess.run(
        [
            compiler,
            "-std=c++11",
            "-I",
            os.path.join(TBE, "op_proto"),
            str(source),
            "-o",
            str(program),
        ],
        check=True,
    )
    grid = list(itertools.product(SIZES, PADS, KERNELS, DILATIONS, STRIDES))
    stdin = "\n".join(" ".join(map(str, args)) for args in grid)
    got = subprocess.run(
        [str(program)], input=stdin, capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(got) == len(grid)
    for args, value in zip(grid, got):
        expected = windows_that_fit(*args)
        assert int(value) == (-1 if expected is None else expected), args
