"""EdvrDeformableOffsetsGrad on Ascend 910 (TIK): gradients for x and for the offsets/mask.

grad_x is a scatter-add, accumulated race-free per (n, channel unit): see edvr_sampling_plan.
"""

try:
    from . import edvr_sampling_entry as entry
except ImportError:  # loaded as a top-level module by the op compiler
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import edvr_sampling_entry as entry


def edvr_deformable_offsets_grad(
    grad,
    x,
    offsets,
    grad_x,
    grad_offsets,
    ksize,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    deformable_groups=1,
    modulated=True,
    kernel_name="edvr_deformable_offsets_grad",
):
    """grad [N, Ho*kh, Wo*kw, C], x, offsets -> grad_x [N, H, W, C], grad_offsets [N, Ho, Wo, 3*G*K]."""
    dtype = entry.tensor_dtype(x, "x")
    geo = entry.plan_lib.deformable_offsets_geometry(
        x["shape"], offsets["shape"], ksize, strides, pads, dilations, deformable_groups, modulated
    )
    return entry.build_backward(
        geo, dtype, kernel_name, ("grad", "x", "offsets", "grad_x", "grad_offsets")
    )
