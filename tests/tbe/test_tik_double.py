"""The four TBE entry files, built and run through TIK's debugger, against the float64 oracle.

Every geometry of tests/tbe (test_tbe_plans.CASES and the msopst golden cases of
kernels/tbe/golden.py), float16 and float32, with 30 and 32 AI cores, at the golden tolerances.

The kernel tests call only what CANN's TIK has: the entry files (which call BuildCCE) and
`tik_instance.tikdb.start_debug(feed_dict=..., interactive=False)`, so where CANN's toolkit is
installed (`tbe.tik` importable) they run unchanged against it, with or without an NPU. Elsewhere
they run on our TIK double, tests/tbe/tik_double (written from CANN's documents; it is not CANN),
which also reports GM elements written by more than one block and the instruction trace; the
tests that need those, or that test the double itself, run only on the double.
"""

import importlib.util
import os
import sys

import numpy as np
import pytest

try:
    from tbe import tik
except ImportError:  # no CANN toolkit: our double, as PYTHONPATH=tests/tbe/tik_double would give
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "tik_double"))
    from tbe import tik

from kernels.tbe import golden
from kernels.tbe.tbe.impl import edvr_bilinear_sample, edvr_bilinear_sample_grad
from kernels.tbe.tbe.impl import edvr_deformable_offsets, edvr_deformable_offsets_grad
from kernels.tbe.tbe.impl import (
    edvr_sampling_entry,
    edvr_sampling_plan as plan_lib,
    edvr_tik_machine,
)
from tests.tbe.replay import Case
from tests.tbe.test_tbe_plans import CASES as PLAN_CASES

USING_DOUBLE = hasattr(tik, "configure_profile")
double_only = pytest.mark.skipif(not USING_DOUBLE, reason="checks of our TIK double itself")
IMPL_DIR = os.path.dirname(edvr_tik_machine.__file__)

GOLDEN_CASES = [
    Case(
        "golden_" + name,
        "deformable",
        x_shape,
        dict(
            ksize=ksize,
            strides=strides,
            pads=pads,
            dilations=dilations,
            deformable_groups=deformable_groups,
        ),
    )
    for name, x_shape, ksize, strides, pads, dilations, deformable_groups in golden.DEFORMABLE_CASES
]
GOLDEN_CASES += [
    Case("golden_" + name, "bilinear", x_shape, coords_shape=coords_shape)
    for name, x_shape, coords_shape in golden.BILINEAR_CASES
]
CASES = list(PLAN_CASES) + GOLDEN_CASES
DTYPES = ("float32", "float16")


@pytest.fixture(params=(30, 32), ids=lambda c: "%dcores" % c)
def cores(request):
    """The AI core count the kernels are compiled for (the double's profile, or the toolkit's)."""
    if not USING_DOUBLE:
        if tik.Dprofile().get_aicore_num() != request.param:
            pytest.skip("the installed toolkit's profile has another core count")
        yield request.param
        return
    tik.configure_profile(aicore_num=request.param)
    yield request.param
    tik.configure_profile()


def _desc(array, dtype, fmt="NHWC"):
    return {"shape": tuple(array.shape), "dtype": dtype, "format": fmt}


def build(case, dtype, backward, module=None):
    """The op's TIK instance, built by its entry file (module: the kernel file loaded some other way)."""
    geo = case.geometry()
    x = np.zeros(case.x_shape)
    params, y = np.zeros(case.params_shape()), np.zeros(case.output_shape())
    if case.op == "bilinear":
        if backward:
            entry = module or edvr_bilinear_sample_grad
            return entry.edvr_bilinear_sample_grad(
                _desc(y, dtype, "ND"),
                _desc(x, dtype),
                _desc(params, dtype, "ND"),
                _desc(x, dtype),
                _desc(params, dtype, "ND"),
            )
        entry = module or edvr_bilinear_sample
        return entry.edvr_bilinear_sample(
            _desc(x, dtype), _desc(params, dtype, "ND"), _desc(y, dtype, "ND")
        )
    assert geo.param_stride == params.shape[-1]
    if backward:
        entry = module or edvr_deformable_offsets_grad
        return entry.edvr_deformable_offsets_grad(
            _desc(y, dtype),
            _desc(x, dtype),
            _desc(params, dtype),
            _desc(x, dtype),
            _desc(params, dtype),
            **case.attrs,
        )
    entry = module or edvr_deformable_offsets
    return entry.edvr_deformable_offsets(
        _desc(x, dtype), _desc(params, dtype), _desc(y, dtype), **case.attrs
    )


def run(case, dtype, inputs, backward, module=None):
    """(outputs reshaped, tik instance) of one op run by tikdb.start_debug on `inputs` (x, params, grad)."""
    with np.errstate(over="ignore"):  # huge positions become inf in float16, on purpose
        x, params, grad = (a.astype(dtype) for a in inputs)
    params_name = "coords" if case.op == "bilinear" else "offsets"
    feed = {"x": x, params_name: params}
    shapes = [case.output_shape()]
    if backward:
        feed["grad"] = grad
        shapes = [case.x_shape, case.params_shape()]
    tik_instance = build(case, dtype, backward, module)
    outputs = tik_instance.tikdb.start_debug(feed_dict=feed, interactive=False)
    return [np.asarray(o, np.float64).reshape(s) for o, s in zip(outputs, shapes)], tik_instance


def oracle(case, dtype, inputs, backward):
    """Float64 reference on the inputs as rounded to the op's dtype."""
    with np.errstate(over="ignore"):
        x, params, grad = (a.astype(dtype).astype(np.float64) for a in inputs)
    if backward:
        return list(case.oracle_backward(grad, x, params))
    return [case.oracle_forward(x, params)]


def check_blocks(tik_instance, cores):
    """At most `cores` blocks ran; no GM element was written by two blocks except by atomic add,
    and no block read what another wrote (the double records both)."""
    if not USING_DOUBLE:
        return
    assert max(r.core for r in tik_instance.trace) < cores
    assert all(count == 0 for count in tik_instance.gm_conflicts().values()), (
        tik_instance.gm_conflicts()
    )
    assert not tik_instance.cross_core_reads, tik_instance.cross_core_reads[:3]


@pytest.mark.parametrize("backward", (False, True), ids=("forward", "backward"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_entry_files_match_float64_oracle(case, dtype, backward, cores):
    inputs = case.inputs(seed=2)
    got, tik_instance = run(case, dtype, inputs, backward)
    for value, want in zip(got, oracle(case, dtype, inputs, backward)):
        np.testing.assert_allclose(value, want, **golden.TOLERANCE[dtype])
    check_blocks(tik_instance, cores)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [PLAN_CASES[2], PLAN_CASES[3]], ids=lambda c: c.name)
def test_nan_and_huge_positions(case, dtype, cores):
    """docs/ops.md: NaN in x or in a position gives NaN out (x, y positions of a few taps; both kinds of
    NaN check run); a huge position (inf in float16) samples zero. NaN lands where the oracle's does."""
    x, params, grad = case.inputs(seed=5)
    flat = params.reshape(-1)
    flat[[0, 7, 31]] = np.nan
    flat[[3, 12]] = 1e30
    x[0, 1, 2, 3] = np.nan
    (got,), tik_instance = run(case, dtype, (x, params, grad), backward=False)
    (want,) = oracle(case, dtype, (x, params, grad), backward=False)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got).any() and not np.isnan(got).all()
    np.testing.assert_allclose(got, want, **golden.TOLERANCE[dtype])
    check_blocks(tik_instance, cores)


@pytest.mark.parametrize("backward,ub_kib", [(False, 26), (True, 64)], ids=("forward", "backward"))
def test_small_unified_buffer_gives_tiles_and_tails(backward, ub_kib):
    """With a small UB (a profile value read at compile time) the same entry files split rows into
    several tiles (forward) or the offsets gradient into a ragged last tile, and stay correct."""
    if not USING_DOUBLE:
        pytest.skip("needs a profile with a small unified buffer")
    case = PLAN_CASES[4]  # points_ragged_tail
    geo, device = case.geometry(), plan_lib.Device(30, ub_kib * 1024)
    if backward:
        plan = plan_lib.plan_backward(geo, "float16", device)
        assert plan.param_tiles > 1 and (plan.last_param_tile * geo.param_stride) % 16
    else:
        assert plan_lib.plan_forward(geo, "float16", device).tiles_per_row > 1
    tik.configure_profile(aicore_num=30, ub_size=ub_kib * 1024)
    try:
        inputs = case.inputs(seed=9)
        got, tik_instance = run(case, "float16", inputs, backward)
        for value, want in zip(got, oracle(case, "float16", inputs, backward)):
            np.testing.assert_allclose(value, want, **golden.TOLERANCE["float16"])
        check_blocks(tik_instance, 30)
    finally:
        tik.configure_profile()


@double_only
def test_block_checker_reports_two_blocks_on_one_image(monkeypatch):
    """The per-block write check is live: if every phase-A task took image 0's unit 0, the blocks
    would zero (plainly write) the same grad_x elements."""
    monkeypatch.setattr(
        plan_lib.BackwardPlan, "split_task_a", lambda self, task: (task * 0, task * 0)
    )
    case = PLAN_CASES[0]
    _, tik_instance = run(case, "float32", case.inputs(), backward=True)
    assert tik_instance.gm_conflicts()["grad_x"] > 0


@double_only
def test_trace_counts_what_the_kernel_moves():
    """The trace's stores of the forward kernel are exactly the output bytes (each element is stored
    once); its vector records carry masks within the float32 lane count."""
    case = GOLDEN_CASES[0]
    tik.configure_profile(aicore_num=32)
    _, tik_instance = run(case, "float16", case.inputs(), backward=False)
    stores = [r for r in tik_instance.trace if r.unit == "dma" and r.direction == "ub->gm"]
    assert sum(r.nbytes for r in stores) == int(np.prod(case.output_shape())) * 2
    vector = [r for r in tik_instance.trace if r.unit == "vector"]
    assert vector and all(1 <= r.mask <= 64 and r.elements == r.mask * r.repeat for r in vector)
    assert {r.op for r in tik_instance.trace} >= {
        "data_move",
        "vec_axpy",
        "vec_conv",
        "vec_dup",
        "set_as",
        "scalar_conv",
        "for_range",
        "if_scope",
    }


def _load_top_level(name):
    """A kernel file loaded as a top-level module, as the op compiler may load it."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(IMPL_DIR, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name,case,backward",
    [
        ("edvr_deformable_offsets", PLAN_CASES[1], False),
        ("edvr_deformable_offsets_grad", PLAN_CASES[1], True),
        ("edvr_bilinear_sample", PLAN_CASES[3], False),
        ("edvr_bilinear_sample_grad", PLAN_CASES[3], True),
    ],
)
def test_entry_files_loaded_as_top_level_modules(name, case, backward, monkeypatch):
    """The kernel files also work when the op compiler imports them outside their package."""
    monkeypatch.syspath_prepend(IMPL_DIR)
    for module in (
        "edvr_sampling_entry",
        "edvr_sampling_plan",
        "edvr_sampling_program",
        "edvr_tik_machine",
    ):
        monkeypatch.delitem(sys.modules, module, raising=False)
    inputs = case.inputs(seed=4)
    got, _ = run(case, "float32", inputs, backward, module=_load_top_level(name))
    for value, want in zip(got, oracle(case, "float32", inputs, backward)):
        np.testing.assert_allclose(value, want, **golden.TOLERANCE["float32"])


def test_entry_rejects_bad_dtype_and_format():
    x = {"shape": (1, 4, 4, 16), "dtype": "int8", "format": "NHWC"}
    with pytest.raises(ValueError, match=r"x: expected dtype float16 or float32, got 'int8'"):
        edvr_sampling_entry.tensor_dtype(x, "x")
    with pytest.raises(ValueError, match=r"x: expected format NHWC, got 'NCHW'"):
        edvr_sampling_entry.tensor_dtype(dict(x, dtype="float", format="NCHW"), "x")


def test_missing_toolkit_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "tbe", None)
    monkeypatch.setitem(sys.modules, "te", None)
    with pytest.raises(RuntimeError, match="source set_env.sh of the toolkit first"):
        edvr_tik_machine.import_tik()


# ---- the double itself: its instructions against hand-computed values, its limits enforced ----
def _kernel(body, inputs, outputs):
    """Build body(tik_instance, tensors) over float32 GM tensors {name: size} and run it."""
    tik_instance = tik.Tik()
    tensors = {
        name: tik_instance.Tensor("float32", (size,), name=name, scope=tik.scope_gm)
        for name, size in list(inputs.items()) + list(outputs.items())
    }
    body(tik_instance, tensors)
    tik_instance.BuildCCE(
        kernel_name="k", inputs=[tensors[n] for n in inputs], outputs=[tensors[n] for n in outputs]
    )
    return tik_instance


@double_only
def test_double_instructions_on_hand_computed_values():
    def body(ti, t):
        ub = ti.Tensor("float32", (128,), name="ub", scope=tik.scope_ubuf)
        work = ti.Tensor("float32", (64,), name="work", scope=tik.scope_ubuf)
        total = ti.Tensor("float32", (8,), name="total", scope=tik.scope_ubuf)
        # two bursts of one block, skipping one block in GM: elements 0-7 and 16-23
        ti.data_move(ub, t["a"], 0, 2, 1, 1, 0)
        w = ti.Scalar("float32", name="w", init_value=0.5)
        ti.vec_axpy(16, ub[64], ub, w, 1, 8, 8)  # lanes 64..79 += 0.5 * lanes 0..15
        ti.vec_reduce_add(16, total, ub, work, 1, 8)  # sum of lanes 0..15
        ti.vec_muls([0, 0b101], ub[8], ub, 2.0, 1, 8, 8)  # lanes 8 and 10 = 2 * lanes 0 and 2
        ti.data_move(t["out"], ub, 0, 1, 3, 0, 0)
        ti.data_move(t["sum"], total, 0, 1, 1, 0, 0)
        ti.data_move(t["axpy"], ub[64], 0, 1, 2, 0, 0)

    ti = _kernel(body, {"a": 32}, {"out": 24, "sum": 8, "axpy": 16})
    a = np.arange(32, dtype=np.float32)
    out, total, axpy = ti.tikdb.start_debug(feed_dict={"a": a}, interactive=False)
    loaded = np.concatenate([a[:8], a[16:24]])
    np.testing.assert_array_equal(out[:8], a[:8])
    np.testing.assert_array_equal(out[8:16], [0, 17, 4, 19, 20, 21, 22, 23])  # lanes 8, 10 scaled
    assert np.isnan(out[16:24]).all()  # never loaded: the fresh-UB poison
    assert total[0] == loaded.sum()
    assert np.isnan(axpy).all()  # NaN poison + 0.5 * x: the destination was never initialised
    assert [r.op for r in ti.trace if r.unit != "scalar"] == [
        "data_move",
        "vec_axpy",
        "vec_reduce_add",
        "vec_muls",
        "data_move",
        "data_move",
        "data_move",
    ]


@double_only
def test_double_vector_sampling_instructions_on_hand_computed_values():
    """vec_add, vec_sub, vec_min, vec_adds and vec_conv float32 <-> int32 (the forward kernel's position,
    floor and weight planes), on values whose results are known by hand."""
    values = np.array([2.5, -0.5, -1.0, 3.0, 1e10, -1e10, np.nan, 0.75], np.float32)

    def body(ti, t):
        a = ti.Tensor("float32", (64,), name="a", scope=tik.scope_ubuf)
        b = ti.Tensor("float32", (64,), name="b", scope=tik.scope_ubuf)
        c = ti.Tensor("float32", (64,), name="c", scope=tik.scope_ubuf)
        i = ti.Tensor("int32", (64,), name="i", scope=tik.scope_ubuf)
        ti.data_move(a, t["v"], 0, 1, 1, 0, 0)
        ti.vec_conv(8, "floor", i, a, 1, 8, 8)  # floor, saturating; NaN -> INT32_MIN
        ti.vec_conv(8, "", b, i, 1, 8, 8)  # back to float32
        ti.vec_sub(8, c, a, b, 1, 8, 8, 8)  # fractional parts
        ti.vec_adds(8, b, b, 1.0, 1, 8, 8)  # floor + 1
        ti.vec_add(8, a, b, c, 1, 8, 8, 8)  # (floor + 1) + fraction
        d = ti.Tensor("float32", (64,), name="d", scope=tik.scope_ubuf)
        ti.vec_min(8, d, b, c, 1, 8, 8, 8)  # min(floor + 1, fraction)
        ti.data_move(t["mins"], d, 0, 1, 1, 0, 0)
        ti.data_move(t["floors"], b, 0, 1, 1, 0, 0)
        ti.data_move(t["fractions"], c, 0, 1, 1, 0, 0)
        ti.data_move(t["sums"], a, 0, 1, 1, 0, 0)

    ti = _kernel(body, {"v": 8}, {"floors": 8, "fractions": 8, "sums": 8, "mins": 8})
    floors, fractions, sums, mins = ti.tikdb.start_debug(feed_dict={"v": values}, interactive=False)
    int_min, int_max = float(np.float32(-(2**31))), float(np.float32(2**31 - 1))
    np.testing.assert_array_equal(floors[[0, 1, 2, 3, 7]], [3.0, 0.0, 0.0, 4.0, 1.0])
    assert floors[4] == np.float32(int_max + 1.0) and floors[5] == np.float32(
        int_min + 1.0
    )  # saturated
    assert floors[6] == np.float32(int_min + 1.0)  # NaN: the double's INT32_MIN
    np.testing.assert_array_equal(fractions[[0, 1, 2, 3, 7]], [0.5, 0.5, 0.0, 0.0, 0.75])
    np.testing.assert_array_equal(mins[[0, 1, 2, 3, 7]], [0.5, 0.0, 0.0, 0.0, 0.75])
    np.testing.assert_array_equal(sums[[0, 1, 2, 3, 7]], [3.5, 0.5, 0.0, 4.0, 1.75])
    assert [r.op for r in ti.trace if r.unit == "vector"] == [
        "vec_conv",
        "vec_conv",
        "vec_sub",
        "vec_adds",
        "vec_add",
        "vec_min",
    ]
    assert [r.dtype for r in ti.trace if r.op == "vec_conv"] == ["float32->int32", "int32->float32"]


@double_only
def test_double_atomic_add_across_blocks():
    """Two blocks atomically adding into one element is no conflict; a plain store is."""

    def body(ti, t, plain):
        with ti.for_range(0, 2, block_num=2) as block:
            ub = ti.Tensor("float32", (8,), name="ub", scope=tik.scope_ubuf)
            ti.data_move(ub, t["a"], 0, 1, 1, 0, 0)
            ti.set_atomic_add(0 if plain else 1)
            with ti.if_scope(block == 1):
                ti.data_move(t["out"], ub, 0, 1, 1, 0, 0)
            with ti.else_scope():
                ti.data_move(t["out"], ub, 0, 1, 1, 0, 0)
            ti.set_atomic_add(0)

    a = np.arange(8, dtype=np.float32)
    ti = _kernel(lambda ti, t: body(ti, t, plain=False), {"a": 8}, {"out": 8})
    (out,) = ti.tikdb.start_debug(feed_dict={"a": a}, interactive=False)
    assert np.isnan(out).all()  # atomic add onto uninitialised GM: the kernel must zero it first
    assert ti.gm_conflicts()["out"] == 0 and list(ti.gm_writer_counts("out")) == [2] * 8
    ti = _kernel(lambda ti, t: body(ti, t, plain=True), {"a": 8}, {"out": 8})
    ti.tikdb.start_debug(feed_dict={"a": a}, interactive=False)
    assert ti.gm_conflicts()["out"] == 8


@double_only
@pytest.mark.parametrize(
    "body,message",
    [
        (lambda ti, t, ub: ti.data_move(ub[4], t["a"], 0, 1, 1, 0, 0), "not 32-byte aligned"),
        (
            lambda ti, t, ub: ti.data_move(ub, t["a"], 0, 1, 0, 0, 0),
            r"burst = 0 outside \[1, 65535\]",
        ),
        (
            lambda ti, t, ub: ti.data_move(ub, t["a"], 0, 4096, 1, 0, 0),
            r"nburst = 4096 outside \[1, 4095\]",
        ),
        (lambda ti, t, ub: ti.data_move(ub, t["a"], 0, 1, 2, 0, 0), "outside 8 elements"),
        (
            lambda ti, t, ub: ti.vec_dup(64, ub, 0.0, 256, 8),
            r"repeat_times = 256 outside \[1, 255\]",
        ),
        (lambda ti, t, ub: ti.vec_dup(65, ub, 0.0, 1, 8), r"mask 65 outside \[1, 64\]"),
        (lambda ti, t, ub: ti.vec_dup([1, 0], ub, 0.0, 1, 8), "high word must be 0"),
        (lambda ti, t, ub: ti.vec_dup(64, ub, 0.0, 2, 8), "outside its 64 elements"),
        (lambda ti, t, ub: ti.vec_dup(8, t["a"], 0.0, 1, 8), "must be in UB"),
        (lambda ti, t, ub: ti.set_atomic_add(2), "supports 0 .off. and 1 .float32. only"),
        (
            lambda ti, t, ub: ti.Tensor("float32", (65536,), name="big", scope=tik.scope_ubuf),
            "capacity 262144",
        ),
        (
            lambda ti, t, ub: ti.scalar_conv(
                "floor", ti.Scalar("float32"), ti.Scalar("int32", init_value=1)
            ),
            "scalar_conv int32 -> float32 with round_mode 'floor'",
        ),
        (
            lambda ti, t, ub: ti.Scalar("int32", init_value=1) + 0.5,
            "a float immediate with an int32 expression",
        ),
        (
            lambda ti, t, ub: ti.vec_conv(
                64, "", ti.Tensor("int32", (64,), name="i", scope=tik.scope_ubuf), ub, 1, 8, 8
            ),
            "vec_conv float32 -> int32 with round_mode ''",
        ),
        (
            lambda ti, t, ub: ti.vec_add(
                64, ub, ub, ti.Tensor("float16", (64,), name="h", scope=tik.scope_ubuf), 1, 8, 8, 4
            ),
            "operands must share float16 or float32",
        ),
    ],
)
def test_double_refuses_what_tik_documents_as_invalid(body, message):
    def kernel(ti, t):
        ub = ti.Tensor("float32", (64,), name="ub", scope=tik.scope_ubuf)
        body(ti, t, ub)

    with pytest.raises(tik.TikError, match=message):
        ti = _kernel(kernel, {"a": 8}, {"out": 8})
        ti.tikdb.start_debug(feed_dict={"a": np.zeros(8, np.float32)}, interactive=False)


@double_only
def test_double_refuses_float16_atomic_add():
    def body(ti, t):
        ub = ti.Tensor("float16", (16,), name="ub", scope=tik.scope_ubuf)
        ti.data_move(ub, t["h"], 0, 1, 1, 0, 0)
        ti.set_atomic_add(1)
        ti.data_move(t["h_out"], ub, 0, 1, 1, 0, 0)
        ti.set_atomic_add(0)

    ti = tik.Tik()
    t = {
        name: ti.Tensor("float16", (16,), name=name, scope=tik.scope_gm) for name in ("h", "h_out")
    }
    body(ti, t)
    ti.BuildCCE(kernel_name="k", inputs=[t["h"]], outputs=[t["h_out"]])
    with pytest.raises(tik.TikError, match="adds float32 only, got float16"):
        ti.tikdb.start_debug(feed_dict={"h": np.zeros(16, np.float16)}, interactive=False)
