"""Test cases of the TBE kernels and their NumPy replay (the kernel program run on NumpyMachine)."""

from dataclasses import dataclass, field

import numpy as np

from tests.tbe import sampling_oracle as oracle
from kernels.tbe.tbe.impl import edvr_sampling_plan as plan_lib
from kernels.tbe.tbe.impl import edvr_sampling_program as program
from tests.tbe.numpy_machine import NumpyMachine


@dataclass(frozen=True)
class Case:
    """One op configuration: 'deformable' (attrs of deformable_offsets) or 'bilinear' (coords shape)."""

    name: str
    op: str
    x_shape: tuple
    attrs: dict = field(default_factory=dict)
    coords_shape: tuple = ()

    def geometry(self):
        if self.op == "bilinear":
            return plan_lib.bilinear_sample_geometry(self.x_shape, self.coords_shape)
        n, h, w, _ = self.x_shape
        a = dict(
            strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), deformable_groups=1, modulated=True
        )
        a.update(self.attrs)
        kh, kw = a["ksize"]
        ho = plan_lib.out_size(
            h, a["pads"][0] + a["pads"][1], kh, a["dilations"][0], a["strides"][0]
        )
        wo = plan_lib.out_size(
            w, a["pads"][2] + a["pads"][3], kw, a["dilations"][1], a["strides"][1]
        )
        return plan_lib.deformable_offsets_geometry(
            self.x_shape, (n, ho, wo, 3 * a["deformable_groups"] * kh * kw), **a
        )

    def params_shape(self):
        geo = self.geometry()
        if self.op == "bilinear":
            return tuple(self.coords_shape)
        return (geo.batch, geo.out_h, geo.out_w, geo.param_stride)

    def output_shape(self):
        geo = self.geometry()
        if self.op == "bilinear":
            return tuple(self.coords_shape[:-1]) + (geo.channels,)
        return (geo.batch, geo.out_h * geo.kernel_h, geo.out_w * geo.kernel_w, geo.channels)

    def inputs(self, seed=0):
        """x, params, upstream grad (float64). Positions reach past every border; a few land
        exactly on integers, -1 and H/W (the edges of docs/ops.md's range rule)."""
        rng = np.random.default_rng(seed)
        geo = self.geometry()
        x = rng.uniform(-1, 1, self.x_shape)
        shape = self.params_shape()
        if self.op == "bilinear":
            params = np.stack(
                [
                    rng.uniform(-2, geo.width + 1, shape[:-1]),
                    rng.uniform(-2, geo.height + 1, shape[:-1]),
                ],
                axis=-1,
            )
            flat = params.reshape(-1, 2)
            flat[:4] = [[-1.0, 0.5], [geo.width, 1.0], [2.0, 3.0], [0.25, geo.height - 1]]
        else:
            gk = geo.deformable_groups * geo.taps
            params = np.concatenate(
                [
                    rng.uniform(-2.5, 2.5, shape[:-1] + (2 * gk,)),
                    rng.uniform(0, 1, shape[:-1] + (gk,)),
                ],
                axis=-1,
            )
            params.reshape(-1)[: 2 * gk : 3] = np.round(
                params.reshape(-1)[: 2 * gk : 3]
            )  # integer shifts
        grad = rng.uniform(-1, 1, self.output_shape())
        return x, params, grad

    def oracle_forward(self, x, params):
        if self.op == "bilinear":
            return oracle.bilinear_sample(x, params)
        return oracle.deformable_offsets(x, params, **self.attrs)

    def oracle_backward(self, grad, x, params):
        if self.op == "bilinear":
            return oracle.bilinear_sample_grad(grad, x, params)
        return oracle.deformable_offsets_grad(grad, x, params, **self.attrs)


# The replay's device: Ascend 910A's 32 AI cores and 256 KiB of UB per core (the TIK kernels read
# theirs from CANN's profile at compile time; tests/tbe/test_tik_double.py runs 30 and 32 cores).
ASCEND_910A = plan_lib.Device(cores=32, ub_bytes=256 * 1024)


def run_forward(
    case, x, params, dtype="float32", precision="exact", tile_limit=None, device=ASCEND_910A
):
    """(y, machine, plan) of the forward program replayed on NumPy."""
    geo = case.geometry()
    plan = plan_lib.plan_forward(geo, dtype, device, tile_limit)
    m = NumpyMachine(device, precision)
    program.forward(
        m,
        plan,
        m.gm("x", dtype, geo.x_size, x),
        m.gm("params", dtype, geo.params_size, params),
        m.gm("y", dtype, geo.output_size),
    )
    return m.result("y", case.output_shape()), m, plan


def run_backward(
    case, grad, x, params, dtype="float32", precision="exact", tile_limit=None, device=ASCEND_910A
):
    """(grad_x, grad_params, machine, plan) of the gradient program replayed on NumPy."""
    geo = case.geometry()
    plan = plan_lib.plan_backward(geo, dtype, device, tile_limit)
    m = NumpyMachine(device, precision)
    grad_x = m.gm("grad_x", dtype, geo.x_size)
    accumulator = (
        m.gm("accumulator", "float32", geo.x_size) if plan.accumulates_in_workspace else grad_x
    )
    program.backward(
        m,
        plan,
        m.gm("grad", dtype, geo.output_size, grad),
        m.gm("x", dtype, geo.x_size, x),
        m.gm("params", dtype, geo.params_size, params),
        grad_x,
        m.gm("grad_params", dtype, geo.params_size),
        accumulator,
    )
    return m.result("grad_x", case.x_shape), m.result("grad_params", case.params_shape()), m, plan
