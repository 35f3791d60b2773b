"""Shared build steps of the four EDVR TBE kernels: plan, TIK machine, program, BuildCCE."""

import os
import sys

try:
    from . import edvr_sampling_plan as plan_lib
    from . import edvr_sampling_program as program
    from . import edvr_tik_machine as tik_machine
except ImportError:  # the op compiler may import kernel files as top-level modules
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import edvr_sampling_plan as plan_lib
    import edvr_sampling_program as program
    import edvr_tik_machine as tik_machine

SUPPORTED_DTYPES = {"float16": "float16", "float32": "float32", "float": "float32"}


def tensor_dtype(desc, name):
    """Kernel dtype of a CANN tensor description ({"shape", "dtype", "format"})."""
    dtype = str(desc.get("dtype", "")).lower()
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError("%s: expected dtype float16 or float32, got %r" % (name, dtype))
    if desc.get("format", "NHWC") not in ("NHWC", "ND"):  # coords and y of bilinear sample are ND
        raise ValueError("%s: expected format NHWC, got %r" % (name, desc.get("format")))
    return SUPPORTED_DTYPES[dtype]


def _gm_tensors(m, dtype, gm_names, sizes):
    """One global-memory tensor of `dtype` per (name, element count)."""
    return [m.gm(name, dtype, size) for name, size in zip(gm_names, sizes)]


def build_forward(geo, dtype, kernel_name, gm_names):
    """Compile the forward kernel; gm_names = (x, params, y) tensor names."""
    m = tik_machine.TikMachine()
    plan = plan_lib.plan_forward(geo, dtype, m.device)
    x, params, y = _gm_tensors(m, dtype, gm_names, (geo.x_size, geo.params_size, geo.output_size))
    program.forward(m, plan, x, params, y)
    return m.build(kernel_name, [x, params], [y])


def build_backward(geo, dtype, kernel_name, gm_names):
    """Compile the gradient kernel; gm_names = (grad, x, params, grad_x, grad_params)."""
    m = tik_machine.TikMachine()
    plan = plan_lib.plan_backward(geo, dtype, m.device)
    grad, x, params, grad_x, grad_params = _gm_tensors(
        m,
        dtype,
        gm_names,
        (geo.output_size, geo.x_size, geo.params_size, geo.x_size, geo.params_size),
    )
    accumulator = grad_x
    if plan.accumulates_in_workspace:
        accumulator = m.gm("grad_x_f32_workspace", "float32", geo.x_size, workspace=True)
    program.backward(m, plan, grad, x, params, grad_x, grad_params, accumulator)
    return m.build(kernel_name, [grad, x, params], [grad_x, grad_params])
