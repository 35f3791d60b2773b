"""EdvrDeformableOffsets on Ascend 910 (TIK): the sampling half of DCNv2, NHWC, float16/float32.

Semantics: docs/ops.md `deformable_offsets`. Plan: edvr_sampling_plan.plan_forward.
"""

try:
    from . import edvr_sampling_entry as entry
except ImportError:  # loaded as a top-level module by the op compiler
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import edvr_sampling_entry as entry


def edvr_deformable_offsets(
    x,
    offsets,
    y,
    ksize,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    deformable_groups=1,
    modulated=True,
    kernel_name="edvr_deformable_offsets",
):
    """x [N, H, W, C], offsets [N, Ho, Wo, 3*G*K] -> y [N, Ho*kh, Wo*kw, C]."""
    dtype = entry.tensor_dtype(x, "x")
    geo = entry.plan_lib.deformable_offsets_geometry(
        x["shape"], offsets["shape"], ksize, strides, pads, dilations, deformable_groups, modulated
    )
    return entry.build_forward(geo, dtype, kernel_name, ("x", "offsets", "y"))
