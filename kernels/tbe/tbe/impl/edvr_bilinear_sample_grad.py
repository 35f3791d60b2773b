"""EdvrBilinearSampleGrad on Ascend 910 (TIK): gradients for x (scatter-add) and for coords."""

try:
    from . import edvr_sampling_entry as entry
except ImportError:  # loaded as a top-level module by the op compiler
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import edvr_sampling_entry as entry


def edvr_bilinear_sample_grad(
    grad, x, coords, grad_x, grad_coords, kernel_name="edvr_bilinear_sample_grad"
):
    """grad [N, ..., C], x [N, H, W, C], coords [N, ..., 2] -> grad_x, grad_coords."""
    dtype = entry.tensor_dtype(x, "x")
    geo = entry.plan_lib.bilinear_sample_geometry(x["shape"], coords["shape"])
    return entry.build_backward(
        geo, dtype, kernel_name, ("grad", "x", "coords", "grad_x", "grad_coords")
    )
