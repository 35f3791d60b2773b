"""bench.ascend_estimate: its arithmetic on hand-made traces with hand-derived cycles, the DCN
shapes it reads from the training graph, and (on the TIK double) that the kernels' counts are
affine in the row count, which its extrapolation to full-size images relies on."""

import collections
import os

import pytest

from bench import ascend_estimate as est

# The TIK double's record fields (tests/tbe/tik_double/tbe/tik.py, TraceRecord).
Record = collections.namedtuple(
    "Record", "core unit op repeat dtype mask elements nbytes direction atomic address_ops"
)
ATTRS = dict(ksize=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), deformable_groups=2)


def vector(core, op, repeat, address_ops=0):
    return Record(
        core, "vector", op, repeat, "float32", 64, 64 * repeat, 0, None, False, address_ops
    )


def scalar(core, op, ops):
    return Record(core, "scalar", op, ops, None, None, 1, 0, None, False, 0)


def dma(core, nbytes, direction="gm->ub", address_ops=0):
    return Record(
        core,
        "dma",
        "data_move",
        1,
        "float32",
        None,
        nbytes // 4,
        nbytes,
        direction,
        False,
        address_ops,
    )


# Core 0: 3 + 2 scalar statement ops, and 2 + 1 operand ops of a vector and a DMA instruction.
HAND_TRACE = [
    vector(0, "vec_axpy", 10, address_ops=2),
    vector(0, "vec_dup", 2),
    scalar(0, "set_as", 3),
    scalar(0, "for_range", 2),
    dma(0, 640, address_ops=1),
    dma(0, 320, "ub->gm"),
] + [scalar(1, "set_as", 1)] * 100


def test_counts_per_core():
    per_core = est.count_trace(HAND_TRACE)
    assert per_core == {
        0: est.Counts(
            vector_instructions=2,
            vector_repeats=12,
            scalar_instructions=2,
            scalar_ops=8,
            dma_instructions=2,
            dma_bytes=960,
        ),
        1: est.Counts(0, 0, 100, 100, 0, 0),
    }
    assert est.total(per_core) == est.Counts(2, 12, 102, 108, 2, 960)


def test_cycles_and_kernel_time():
    model = est.Ascend910()
    per_core = est.count_trace(HAND_TRACE)
    # core 0: vector 12 repeats; scalar 8 ops + 4 issued instructions; DMA 960 B / 32 B a cycle
    assert model.cycles(per_core[0]) == {"vector": 12, "scalar": 12, "dma": 30}
    assert model.cycles(per_core[1]) == {"vector": 0, "scalar": 100, "dma": 0}
    overlapped, serial, bound = model.kernel_seconds(per_core)
    assert (overlapped, serial, bound) == (100e-9, 100e-9, "scalar")
    # Without core 1, core 0 decides: 30 cycles of DMA overlapped, 12 + 12 + 30 in series.
    overlapped, serial, bound = model.kernel_seconds({0: per_core[0]})
    assert (overlapped, serial, bound) == (pytest.approx(30e-9), pytest.approx(54e-9), "dma")
    slower = est.Ascend910(clock_hz=0.5e9, gm_bytes_per_cycle=16)
    assert slower.kernel_seconds({0: per_core[0]})[:2] == (
        pytest.approx(120e-9),
        pytest.approx(168e-9),
    )


def test_unknown_unit_is_named():
    with pytest.raises(ValueError, match="unit 'cube' of mmad is not counted"):
        est.count_trace([Record(0, "cube", "mmad", 1, None, None, 1, 0, None, False, 0)])


def test_extrapolation_and_even_split():
    traced = {3: est.Counts(1, 30, 5, 50, 2, 640), 4: est.Counts(1, 40, 6, 62, 3, 960)}
    # per row: +10 repeats, +1 scalar instruction, +12 ops, +1 DMA, +320 bytes
    assert est.extrapolate_rows(traced, 64, images=20) == est.Counts(
        20, 20 * 640, 20 * 66, 20 * 782, 20 * 63, 20 * 20160
    )
    split = est.balanced(est.Counts(32, 64, 96, 128, 0, 3200), 32)
    assert len(split) == 32 and split[31] == est.Counts(1, 2, 3, 4, 0, 100)


def test_table_arithmetic():
    model = est.Ascend910()
    counts = est.Counts(1, 2, 3, 4, 5, 6e6)
    rows = [
        {
            "dcn": "pcd_alignment/l1",
            "x_shape": (20, 64, 64, 64),
            "direction": d,
            "counts": counts,
            "overlapped": 2e-3,
            "serial": 3e-3,
            "bound": "scalar",
        }
        for d in ("forward", "backward")
    ]
    table = est.format_table(rows, conv_flops=512e9, model=model, dtype="float32")
    assert "4.00 ms (overlapped) to 6.00 ms (serial)" in table
    assert "(512.0 GFLOP) at the Cube peak of 256 TFLOPS: 2.00 ms" in table
    assert "sampling / convolution at peak: 2.0x to 3.0x" in table


def test_dcn_shapes_come_from_the_training_graph():
    """EDVR-tiny at bench's quick size (batch 2 x 5 frames, 16x16 crops): the PCD DCNs at 4x4,
    8x8, 16x16 and the cascading one at 16x16, 10 images each, 2 deformable groups."""
    try:
        dcns, conv_flops = est.training_step("quick")
    except RuntimeError as error:
        pytest.skip(str(error))  # reference backend: no deformable op in the graph
    shapes = sorted((d["name"].split("/dcn/")[0], d["x_shape"]) for d in dcns)
    assert shapes == [
        ("edvr/pcd_alignment/cascading", (10, 16, 16, 32)),
        ("edvr/pcd_alignment/l1", (10, 16, 16, 32)),
        ("edvr/pcd_alignment/l2", (10, 8, 8, 32)),
        ("edvr/pcd_alignment/l3", (10, 4, 4, 32)),
    ]
    assert all(d["attrs"] == ATTRS for d in dcns)
    assert conv_flops > 0


@pytest.mark.skipif(
    not os.path.isdir(est.TIK_DOUBLE), reason="needs the TIK double, tests/tbe/tik_double"
)
@pytest.mark.parametrize("backward", (False, True), ids=("forward", "backward"))
def test_counts_are_affine_in_rows(backward):
    """Each count at 5 rows equals its extrapolation from 3 and 4 rows. Forward: exactly (every
    interior row repeats the same instructions, one more row one more task and core). Backward:
    the offsets gradient splits the flat points into per-core runs whose boundaries move with the
    size, a few instructions each; measured within 0.1% of a row's increment, allowed 1%."""
    traced = {
        rows: est.total(
            est.count_trace(
                est.trace_deformable((1, rows, 8, 16), ATTRS, "float32", backward, cores=32)
            )
        )
        for rows in (3, 4, 5)
    }
    predicted = est.extrapolate_rows({3: traced[3], 4: traced[4]}, 5)
    for field, got, want, step in zip(
        est.COUNT_FIELDS, traced[5], predicted, (b - a for a, b in zip(traced[3], traced[4]))
    ):
        assert step > 0, field
        if backward:
            assert abs(got - want) <= 0.01 * step, (field, got, want)
        else:
            assert got == want, (field, got, want)
