"""EdvrBilinearSample on Ascend 910 (TIK): zero-outside bilinear warping, NHWC, float16/float32.

Semantics: docs/ops.md `bilinear_sample`; coords [N, ..., 2] hold (x, y) pixel positions.
"""

try:
    from . import edvr_sampling_entry as entry
except ImportError:  # loaded as a top-level module by the op compiler
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import edvr_sampling_entry as entry


def edvr_bilinear_sample(x, coords, y, kernel_name="edvr_bilinear_sample"):
    """x [N, H, W, C], coords [N, ..., 2] -> y [N, ..., C]."""
    dtype = entry.tensor_dtype(x, "x")
    geo = entry.plan_lib.bilinear_sample_geometry(x["shape"], coords["shape"])
    return entry.build_forward(geo, dtype, kernel_name, ("x", "coords", "y"))
