"""The bfloat16 matrix product of the fused deform_conv2d (kernels/cpu/gemm_bf16.h), both of its
paths: vdpbf16ps (built where the compiler targets AVX512_BF16) and the portable one (built with
-mno-avx512bf16), each compiled into a small checker (tests/ops/cc/gemm_bf16_check.cc) that
compares it with a double-precision product within the float32 summation bound."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKER = os.path.join(ROOT, "tests", "ops", "cc", "gemm_bf16_check.cc")


def compiler():
    found = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    if found is None:
        pytest.skip("no C++ compiler (c++ or $CXX) to build the GEMM checker")
    return found


def targets_avx512bf16(cxx):
    """Whether -march=native makes the compiler define __AVX512BF16__ on this machine."""
    macros = subprocess.run(
        [cxx, "-march=native", "-dM", "-E", "-x", "c++", os.devnull],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return "__AVX512BF16__" in macros


@pytest.mark.parametrize("portable", [False, True], ids=["native_flags", "portable"])
def test_gemm_bf16_within_float32_bound(tmp_path, portable):
    cxx = compiler()
    flags = ["-march=native"] + (["-mno-avx512bf16"] if portable else [])
    binary = str(tmp_path / "gemm_bf16_check")
    subprocess.run(
        [cxx, "-std=c++17", "-O2", *flags, "-I", ROOT, CHECKER, "-o", binary], check=True
    )
    result = subprocess.run([binary], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = "portable" if portable or not targets_avx512bf16(cxx) else "vdpbf16ps"
    assert result.stdout.strip() == f"{expected} ok"
