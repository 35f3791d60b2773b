"""Plan tests of the Ascend kernels, run without CANN: the kernel program replayed on NumPy.

Checks: outputs equal the float64 oracle (and ops.reference), every output element written
(once, except the ragged tail block re-stored by its own core), no two cores touch the same
output or accumulator element, UB budget, 32-byte aligned DMAs, at most 32 cores.
"""

import numpy as np
import pytest

from kernels.tbe.tbe.impl import edvr_sampling_plan as plan_lib
from tests.tbe.numpy_machine import MachineError
from tests.tbe.replay import ASCEND_910A, Case, run_backward, run_forward

CASES = [
    Case("g1_3x3_pad1", "deformable", (2, 5, 7, 16), dict(ksize=(3, 3), pads=(1, 1, 1, 1))),
    Case(
        "g2_3x2_stride_dilation_unmodulated",
        "deformable",
        (1, 7, 5, 16),
        dict(
            ksize=(3, 2),
            strides=(2, 1),
            pads=(1, 0, 0, 1),
            dilations=(1, 2),
            deformable_groups=2,
            modulated=False,
        ),
    ),
    Case(
        "g8_3x3_odd",
        "deformable",
        (1, 5, 5, 16),
        dict(ksize=(3, 3), pads=(1, 1, 1, 1), deformable_groups=8),
    ),
    Case("flow_warp", "bilinear", (2, 5, 7, 16), coords_shape=(2, 3, 5, 2)),
    Case("points_ragged_tail", "bilinear", (1, 3, 5, 16), coords_shape=(1, 21, 2)),
]
DTYPES = ("float32", "float16")
# None: the plan's own (UB-filling) tiles; 3: small tiles, so many tasks, cores, runs and tails.
TILE_LIMITS = (None, 3)
EXACT = dict(rtol=1e-12, atol=1e-12)


def _ids(case):
    return case.name


# The forward kernel loads each point's parameter rows straight into its sample-plane slots (aligned
# in UB), from wherever they start in GM: data_move requires a 32-byte aligned UB address, not GM
# (TIK data_move reference, cited in tests/tbe/tik_double/tbe/tik.py).
PLANE_ROWS = {"py", "px", "mask", "py_raw", "px_raw", "mask_raw"}


def _check_dmas(machine, sizes):
    """Every DMA moves whole 32-byte blocks from/to a 32-byte aligned UB address; GM addresses are
    block-aligned too, except a store of one block ending exactly at the end of its tensor, and the
    forward kernel's loads of parameter rows into its sample planes (inside the tensor's last block)."""
    assert machine.dmas
    for d in machine.dmas:
        assert d["ub_start"] % d["lanes"] == 0 and d["elements"] % d["lanes"] == 0, d
        if d["gm_start"] % d["lanes"]:
            if d["kind"] == "load" and d["gm"] == "params" and d["ub"] in PLANE_ROWS:
                continue  # bounds: the machine checks loads against the tensor's last block
            assert d["kind"] == "store" and d["elements"] == d["lanes"], d
            assert d["gm_start"] + d["elements"] == sizes[d["gm"]], d


def _check_forward_machine(machine, plan):
    y = machine.gm_buffers["y"]
    assert np.all(y.writes[: y.size] == 1), "every output element is stored exactly once"
    assert not machine.races
    assert machine.max_ub_bytes <= ASCEND_910A.ub_budget
    assert machine.cores_used <= ASCEND_910A.cores
    _check_dmas(machine, {"y": y.size})


@pytest.mark.parametrize("tile_limit", TILE_LIMITS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_forward_replay_equals_float64_oracle(case, dtype, tile_limit):
    x, params, _ = case.inputs()
    y, machine, plan = run_forward(case, x, params, dtype, "exact", tile_limit)
    np.testing.assert_allclose(y, case.oracle_forward(x, params), **EXACT)
    _check_forward_machine(machine, plan)


def _check_backward_machine(machine, plan):
    assert not machine.races, machine.races[:3]
    gx, gp = machine.gm_buffers["grad_x"], machine.gm_buffers["grad_params"]
    if plan.accumulates_in_workspace:
        assert np.all(gx.writes[: gx.size] == 1), (
            "float16 grad_x: converted and stored exactly once"
        )
    else:
        assert np.all(gx.writes[: gx.size] >= 1), (
            "float32 grad_x: zeroed, then accumulated in place"
        )
    lanes = plan_lib.block_lanes(plan.dtype)
    counts = gp.writes[: gp.size]
    assert np.all(counts >= 1)
    # Written twice only inside the final back-off block (same core: races is empty).
    assert np.all(counts[: max(0, gp.size - lanes)] == 1)
    assert np.all(counts <= 2)
    assert machine.max_ub_bytes <= ASCEND_910A.ub_budget
    assert machine.cores_used <= ASCEND_910A.cores
    sizes = {name: b.size for name, b in machine.gm_buffers.items()}
    _check_dmas(machine, sizes)


@pytest.mark.parametrize("tile_limit", TILE_LIMITS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_backward_replay_equals_float64_oracle(case, dtype, tile_limit):
    x, params, grad = case.inputs()
    gx, gp, machine, plan = run_backward(case, grad, x, params, dtype, "exact", tile_limit)
    want_gx, want_gp = case.oracle_backward(grad, x, params)
    np.testing.assert_allclose(gx, want_gx, **EXACT)
    np.testing.assert_allclose(gp, want_gp, **EXACT)
    _check_backward_machine(machine, plan)


def test_small_tiles_exercise_cores_tails_and_runs():
    """The constrained plans above really split work: several cores, a ragged tail, strided runs."""
    case = CASES[-1]
    x, params, grad = case.inputs()
    _, _, machine, plan = run_backward(case, grad, x, params, "float16", "exact", tile_limit=3)
    assert plan.split_b.cores > 1 and plan.param_tiles > 1
    assert (plan.last_param_tile * 2) % plan_lib.block_lanes("float16")  # ragged: tail block used
    assert any(d["gm_start"] % d["lanes"] for d in machine.dmas)
    assert len(plan.strided_runs()) > 1
    geo = CASES[0].geometry()
    assert plan_lib.plan_forward(geo, "float32", ASCEND_910A, 3).split.cores > 1


@pytest.mark.parametrize("dtype,rtol", [("float32", 2e-5), ("float16", 4e-3)])
@pytest.mark.parametrize("case", [CASES[2], CASES[3]], ids=_ids)
def test_device_precision_replay(case, dtype, rtol):
    """Rounding as on the AI core (float32 maths, one rounding to the output dtype) stays within
    the dtype's tolerance of the float64 oracle evaluated on the same rounded inputs."""
    x, params, grad = (a.astype(dtype).astype(np.float64) for a in case.inputs(seed=3))
    y, _, _ = run_forward(case, x, params, dtype, "device")
    want = case.oracle_forward(x, params)
    assert np.max(np.abs(y - want)) <= rtol * max(1.0, np.max(np.abs(want)))
    gx, gp, _, _ = run_backward(case, grad, x, params, dtype, "device")
    for got, want in zip((gx, gp), case.oracle_backward(grad, x, params)):
        assert np.max(np.abs(got - want)) <= rtol * 4 * max(1.0, np.max(np.abs(want)))


def test_units_must_fill_whole_blocks(monkeypatch):
    """Giving each group of Cg=2 float32 channels its own unit (8 bytes, not a 32-byte block) is
    rejected: such a unit cannot be moved by whole-block DMAs without touching its neighbours."""
    case = Case(
        "g8_unaligned_units",
        "deformable",
        (2, 4, 4, 16),
        dict(ksize=(2, 2), pads=(0, 1, 0, 1), deformable_groups=8),
    )
    per_group = [plan_lib.ChannelUnit(g, g + 1, 2 * g, 2 * g + 2) for g in range(8)]
    monkeypatch.setattr(plan_lib, "channel_units", lambda geo, dtype: per_group)
    x, params, grad = case.inputs()
    with pytest.raises(MachineError, match="burst 0"):
        run_backward(case, grad, x, params, "float32", "exact")


def test_race_checker_catches_two_cores_on_one_image(monkeypatch):
    """Independent check of the race argument: if two cores accumulated the same (n, unit), the
    machine reports the cross-core read-modify-writes."""
    case = CASES[0]
    monkeypatch.setattr(plan_lib.BackwardPlan, "split_task_a", lambda self, task: (0, 0))
    x, params, grad = case.inputs()
    _, _, machine, _ = run_backward(case, grad, x, params, "float32", "exact")
    assert any(kind == "write" and tensor == "grad_x" for kind, tensor, *_ in machine.races)


def test_poisoned_output_shows_unwritten_elements(monkeypatch):
    """If a plan skipped a tile, the NaN poison would reach the result (the checks above are live)."""
    case = CASES[0]
    x, params, _ = case.inputs()
    original = plan_lib.ForwardPlan.store_blocks
    monkeypatch.setattr(
        plan_lib.ForwardPlan, "store_blocks", lambda self, width: original(self, width) - 1
    )
    y, machine, _ = run_forward(case, x, params, "float32", "exact", 3)
    assert np.isnan(y).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,deformable_groups", [((16, 64, 64, 64), 8), ((4, 64, 64, 128), 8), ((16, 16, 16, 64), 1)]
)
def test_edvr_sized_plans_fit(shape, deformable_groups, dtype):
    """Plans for EDVR-M/L PCD shapes (batch x frames, 64x64 LR crops): UB and core limits hold."""
    n, h, w, c = shape
    geo = plan_lib.deformable_offsets_geometry(
        shape,
        (n, h, w, 27 * deformable_groups),
        (3, 3),
        pads=(1, 1, 1, 1),
        deformable_groups=deformable_groups,
    )
    fwd, bwd = (
        plan_lib.plan_forward(geo, dtype, ASCEND_910A),
        plan_lib.plan_backward(geo, dtype, ASCEND_910A),
    )
    for plan in (fwd, bwd):
        assert plan_lib.ub_bytes(plan.layout) <= ASCEND_910A.ub_budget
        assert all(b.offset_bytes % plan_lib.BLOCK_BYTES == 0 for b in plan.layout)
    assert fwd.split.cores == ASCEND_910A.cores  # enough rows to fill every core
    tasks = [t for core in range(fwd.split.cores) for t in fwd.split.task_range(core)]
    assert tasks == list(range(fwd.split.tasks))
    assert (
        bwd.param_tile
        % (plan_lib.block_lanes(dtype) // np.gcd(geo.param_stride, plan_lib.block_lanes(dtype)))
        == 0
    )


def test_channel_units_and_lane_masks():
    geo = plan_lib.deformable_offsets_geometry(
        (1, 4, 4, 24), (1, 4, 4, 27 * 8), (3, 3), pads=(1, 1, 1, 1), deformable_groups=8
    )  # Cg = 3
    units = plan_lib.channel_units(geo, "float32")
    assert [(u.first_group, u.end_group, u.lane_lo, u.lane_hi) for u in units] == [(0, 8, 0, 24)]
    for g in range(8):
        lanes = [
            lane for s in plan_lib.lane_segments(*plan_lib.group_lanes(geo, g)) for lane in s.lanes
        ]
        assert lanes == list(range(3 * g, 3 * g + 3))
    assert [s.offset for s in plan_lib.lane_segments(60, 70)] == [0, 64, 128]


def test_rejects_channels_that_do_not_fill_blocks():
    geo = plan_lib.deformable_offsets_geometry(
        (1, 4, 4, 8), (1, 4, 4, 27), (3, 3), pads=(1, 1, 1, 1)
    )
    plan_lib.plan_forward(geo, "float32", ASCEND_910A)
    with pytest.raises(ValueError, match=r"C % 16 == 0 for float16, got C=8"):
        plan_lib.plan_forward(geo, "float16", ASCEND_910A)
    with pytest.raises(
        ValueError, match=r"offsets: expected shape \(1, 4, 4, 27\), got \(1, 4, 4, 26\)"
    ):
        plan_lib.deformable_offsets_geometry((1, 4, 4, 8), (1, 4, 4, 26), (3, 3), pads=(1, 1, 1, 1))


@pytest.mark.parametrize(
    "make,message",
    [
        (
            lambda: plan_lib.deformable_offsets_geometry(
                (1, 4, 4, 8), (1, 4, 4, 27), (3, 3), pads=(1, 1, 1)
            ),
            r"pads: expected 4 non-negative ints \(top, bottom, left, right\), got \(1, 1, 1\)",
        ),
        (
            lambda: plan_lib.deformable_offsets_geometry(
                (1, 4, 4, 8), (1, 4, 4, 81), (3, 3), pads=(1, 1, 1, 1), deformable_groups=3
            ),
            r"deformable_groups: expected a divisor of C=8, got 3",
        ),
        (
            lambda: plan_lib.deformable_offsets_geometry((1, 2, 4, 8), (1, 0, 2, 27), (3, 3)),
            r"ksize: kernel 3x3 \(dilated\) larger than the padded input 2x4",
        ),
        (
            lambda: plan_lib.bilinear_sample_geometry((1, 4, 4, 8), (2, 5, 2)),
            r"coords: expected shape \[1, ..., 2\], got \(2, 5, 2\)",
        ),
        (
            lambda: plan_lib.bilinear_sample_geometry((1, 0, 4, 8), (1, 5, 2)),
            r"x: expected a non-empty \[N, H, W, C\] shape, got \(1, 0, 4, 8\)",
        ),
        (
            lambda: plan_lib.deformable_offsets_geometry((1, 4, 4, 8), (1, 4, 4, 27), (3, 0)),
            r"ksize: expected 2 ints >= 1, got \(3, 0\)",
        ),
        (
            lambda: plan_lib.plan_forward(
                plan_lib.bilinear_sample_geometry((1, 4, 4, 8), (1, 5, 2)), "int8", ASCEND_910A
            ),
            r"dtype: expected float16 or float32, got 'int8'",
        ),
        (
            lambda: plan_lib.plan_forward(
                plan_lib.bilinear_sample_geometry((1, 4, 4, 8), (1, 5, 2)),
                "float32",
                plan_lib.Device(32, 16 * 1024 + 512),
            ),
            r"unified buffer: even one point needs \d+ bytes, budget 512",
        ),
        (
            lambda: plan_lib.plan_forward(
                plan_lib.bilinear_sample_geometry((1, 4097, 4096, 8), (1, 5, 2)),
                "float32",
                ASCEND_910A,
            ),
            r"x: the kernels compute pixel indices .* exact up to H \* W = 2\*\*24; got H=4097, W=4096",
        ),
        (
            lambda: plan_lib.plan_backward(
                plan_lib.bilinear_sample_geometry((1, 4, 4, 8), (1, 3, 2)), "float32", ASCEND_910A
            ),
            r"offsets: the TBE gradient needs at least 32 bytes of offsets/coords, got 6 values",
        ),
    ],
)
def test_plan_errors_name_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_oracle_gradients_match_finite_differences():
    """The float64 oracle's analytic gradients agree with central differences (away from kinks)."""
    case = Case(
        "fd", "deformable", (1, 4, 5, 4), dict(ksize=(2, 2), pads=(1, 0, 0, 1), deformable_groups=2)
    )
    x, params, grad = case.inputs(seed=7)
    params[..., :16] = np.round(params[..., :16]) + 0.37  # keep positions off integer kinks
    gx, gp = case.oracle_backward(grad, x, params)
    loss = lambda a, b: float(np.sum(grad * case.oracle_forward(a, b)))
    eps = 1e-6
    for arr, g in ((x, gx), (params, gp)):
        for idx in list(np.ndindex(arr.shape))[::7]:
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args = (plus, params) if arr is x else (x, plus)
            args_m = (minus, params) if arr is x else (x, minus)
            assert abs((loss(*args) - loss(*args_m)) / (2 * eps) - g[idx]) < 1e-6


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[2], CASES[3]], ids=_ids)
def test_replay_equals_ops_reference(case):
    """The replayed kernels equal the project's pure-TF reference (forward and autodiff gradients)."""
    tf = pytest.importorskip("tensorflow")
    reference = pytest.importorskip("ops.reference")
    x, params, grad = case.inputs(seed=11)
    x_t, p_t = tf.constant(x), tf.constant(params)
    with tf.GradientTape() as tape:
        tape.watch([x_t, p_t])
        if case.op == "bilinear":
            y = reference.bilinear_sample(x_t, p_t)
        else:
            y = reference.deformable_offsets(x_t, p_t, **case.attrs)
        loss = tf.reduce_sum(y * tf.constant(grad))
    ref_gx, ref_gp = tape.gradient(loss, [x_t, p_t])
    got_y, _, _ = run_forward(case, x, params)
    got_gx, got_gp, _, _ = run_backward(case, grad, x, params, tile_limit=3)
    np.testing.assert_allclose(got_y, y.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_gx, ref_gx.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_gp, ref_gp.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [CASES[2], CASES[3]], ids=_ids)
def test_nan_positions_give_nan_samples(case):
    """docs/ops.md: NaN in gives NaN out, and no out-of-bounds access (the machine checks every access)."""
    tf = pytest.importorskip("tensorflow")
    reference = pytest.importorskip("ops.reference")
    x, params, _ = case.inputs(seed=5)
    flat = params.reshape(-1)
    flat[[0, 7, 31]] = np.nan  # x and y positions of a few points/taps
    x[0, 1, 2, 3] = np.nan
    got, machine, _ = run_forward(case, x, params, tile_limit=3)
    want = case.oracle_forward(x, params)
    np.testing.assert_allclose(got, want, **EXACT)  # NaN where the oracle has NaN
    assert np.isnan(got).any() and not np.isnan(got).all()
    if case.op == "bilinear":
        ref = reference.bilinear_sample(tf.constant(x), tf.constant(params)).numpy()
    else:
        ref = reference.deformable_offsets(
            tf.constant(x), tf.constant(params), **case.attrs
        ).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
