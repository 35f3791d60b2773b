"""Speed on paper: EDVR-M's deformable sampling on an Ascend 910, estimated from the instruction
trace of our TIK double, next to the same training step's convolutions at the Cube unit's peak.

    python -m bench.ascend_estimate [--dtype float32|float16] [--cores 32]

Nothing here ran on Ascend hardware. The TBE entry files (kernels/tbe/tbe/impl) are built and run
on the TIK double (tests/tbe/tik_double: ours, written from CANN's documents, not CANN), whose
trace lists every executed instruction with its core, unit, repeats and DMA bytes. This module
counts, per AI core: vector instructions weighted by their repeats, scalar operations (those of
scalar statements and those that evaluate the operands of vector and DMA instructions, the
trace's `address_ops`), and GM bytes moved; the cost model `Ascend910` turns them into cycles. Its figures and their sources:

* 1.0 GHz AI core clock, 32 AI cores, Cube 16x16x16: CANN's platform file for the 910
  (hicann/runtime, src/platform/platform_config/cann/Ascend910A.ini: cube_freq=1000,
  ai_core_cnt=32, cube_m/n/k_size=16).
* One vector repeat (256 bytes: 128 float16 or 64 float32 lanes) per cycle: CANN's TBE/TIK guide,
  "Tiling Principles" ("For TIK vector instructions, 256 bytes of data can be processed per clock
  cycle", https://www.hiascend.com/document/detail/en/canncommercial/800/opdevg/tbeaicpudevg/atlaste_09_0005.html);
  vec_calc_size=128 in Ascend910A.ini agrees.
* 32 bytes per cycle per core between GM and the core: Ascend910A.ini [AICoreMemoryRates]
  ddr_rate=ddr_read_rate=ddr_write_rate=32 (32 GB/s a core at 1 GHz, 1.02 TB/s for 32 cores).
* Cube peak 256 TFLOPS float16: Huawei's Ascend 910 announcement (32 Da Vinci cores, 4096 MACs
  a cycle each; Hot Chips 31, 2019). The ini's figures give 32 x 4096 x 2 x 1 GHz = 262 TFLOPS.

Assumptions (no public document gives these):
* the scalar unit does one scalar operation a cycle, and spends one cycle issuing each vector or
  DMA instruction to its queue (so every instruction costs the scalar unit at least a cycle);
* no start-up latency on vector or DMA instructions, no stall when the scalar unit reads a value
  a vector or DMA instruction wrote (our kernels do that per sample): the figures are floors;
* "overlapped" time: the scalar, vector and DMA pipes of a core run fully in parallel, a core
  takes the longest of the three; "serial": they never overlap, a core takes their sum;
* the work is split evenly over the cores (the plans give every core the same number of tasks
  at these shapes, up to one);
* the DCN offsets are zero and the mask 0.5 (the offset convs are zero-initialised, as in
  BasicSR), so every tap lands on the grid and the kernels take their common path.

Full-size kernels would take hours on the NumPy double, so each geometry is traced for one image
of 3 and of 4 rows (full width and channels); every count is affine in the row count (a test
shows it), so an image of H rows costs c(3) + (H - 3) (c(4) - c(3)), and N images N times that.
"""

import argparse
import collections
import os
import sys
from dataclasses import dataclass

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIK_DOUBLE = os.path.join(REPO, "tests", "tbe", "tik_double")
COUNT_FIELDS = (
    "vector_instructions",
    "vector_repeats",
    "scalar_instructions",
    "scalar_ops",
    "dma_instructions",
    "dma_bytes",
)
Counts = collections.namedtuple("Counts", COUNT_FIELDS)
TRACED_ROWS = (3, 4)


@dataclass(frozen=True)
class Ascend910:
    """Cost model of one Ascend 910 (figures and sources: module docstring)."""

    clock_hz: float = 1.0e9
    cores: int = 32
    vector_repeats_per_cycle: float = 1.0
    scalar_ops_per_cycle: float = 1.0  # assumption
    issue_cycles: float = 1.0  # assumption: scalar-unit cycles to issue a vector or DMA instruction
    gm_bytes_per_cycle: float = 32.0
    cube_flops_per_second: float = 256e12

    def cycles(self, counts):
        """{"vector", "scalar", "dma"}: cycles each pipe of one core needs for `counts`."""
        return {
            "vector": counts.vector_repeats / self.vector_repeats_per_cycle,
            "scalar": counts.scalar_ops / self.scalar_ops_per_cycle
            + self.issue_cycles * (counts.vector_instructions + counts.dma_instructions),
            "dma": counts.dma_bytes / self.gm_bytes_per_cycle,
        }

    def kernel_seconds(self, per_core):
        """(overlapped, serial, bound) of a kernel whose cores do `per_core` {core: Counts}: the
        slowest core's time with its pipes overlapped and in series, and the pipe that bounds it."""
        overlapped = serial = 0.0
        bound = None
        for counts in per_core.values():
            pipes = self.cycles(counts)
            slowest = max(pipes, key=pipes.get)
            if pipes[slowest] >= overlapped:
                overlapped, bound = pipes[slowest], slowest
            serial = max(serial, sum(pipes.values()))
        return overlapped / self.clock_hz, serial / self.clock_hz, bound


def count_trace(trace):
    """{core: Counts} of a TIK double trace (records with core, unit, repeat, nbytes, address_ops).
    scalar_ops counts the scalar statements' operations and the address_ops of vector and DMA
    instructions: the scalar unit evaluates their addresses, repeats and bursts before issuing them."""
    totals = collections.defaultdict(collections.Counter)
    for record in trace:
        core = totals[record.core]
        if record.unit == "vector":
            core["vector_instructions"] += 1
            core["vector_repeats"] += record.repeat
            core["scalar_ops"] += record.address_ops
        elif record.unit == "scalar":
            core["scalar_instructions"] += 1
            core["scalar_ops"] += record.repeat
        elif record.unit == "dma":
            core["dma_instructions"] += 1
            core["dma_bytes"] += record.nbytes
            core["scalar_ops"] += record.address_ops
        else:
            raise ValueError(
                "trace: unit %r of %s is not counted (expected vector, scalar or dma)"
                % (record.unit, record.op)
            )
    return {core: Counts(*(c[f] for f in COUNT_FIELDS)) for core, c in sorted(totals.items())}


def total(per_core):
    """Counts summed over cores."""
    return Counts(*(sum(getattr(c, f) for c in per_core.values()) for f in COUNT_FIELDS))


def extrapolate_rows(counts_by_rows, rows, images=1):
    """Counts of `images` images of `rows` rows from those traced at two row counts
    ({rows: Counts}), each count affine in the row count."""
    (r0, c0), (r1, c1) = sorted(counts_by_rows.items())
    return Counts(*(images * (a + (b - a) * (rows - r0) / (r1 - r0)) for a, b in zip(c0, c1)))


def balanced(counts, cores):
    """{core: Counts} of `counts` split evenly over `cores` cores."""
    return {core: Counts(*(v / cores for v in counts)) for core in range(cores)}


# ---- running the entry files on the TIK double ---------------------------------------------------
def _tik_double():
    """Our TIK double's `tbe.tik` (the trace is its own; CANN's TIK has none)."""
    if not os.path.isdir(TIK_DOUBLE):
        raise RuntimeError(
            "bench.ascend_estimate needs the TIK double at %s (its instruction trace); "
            "it is not in this checkout" % TIK_DOUBLE
        )
    if TIK_DOUBLE not in sys.path:
        sys.path.insert(0, TIK_DOUBLE)
    from tbe import tik

    if not hasattr(tik, "configure_profile"):
        raise RuntimeError(
            "bench.ascend_estimate: `tbe.tik` is %s, not the TIK double; the estimate "
            "needs the double's trace (run without CANN's tbe on PYTHONPATH)" % tik.__file__
        )
    return tik


def trace_deformable(x_shape, attrs, dtype="float32", backward=False, cores=32, seed=0):
    """The TIK double's trace of EdvrDeformableOffsets (or its gradient) on x [N, H, W, C].

    attrs: ksize, strides, pads, dilations, deformable_groups (modulated). Offsets are zero, the
    mask 0.5 (module docstring); x and the upstream gradient uniform in [-1, 1)."""
    tik = _tik_double()
    from kernels.tbe.tbe.impl import edvr_deformable_offsets, edvr_deformable_offsets_grad

    n, _, _, c = x_shape
    kh, kw = attrs["ksize"]
    _, ho, wo, params = _offsets_shape(x_shape, attrs)
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, x_shape).astype(dtype)
    offsets = np.zeros((n, ho, wo, params), dtype)
    offsets[..., 2 * params // 3 :] = 0.5  # the mask block
    y_shape = (n, ho * kh, wo * kw, c)
    desc = lambda shape: {"shape": tuple(shape), "dtype": dtype, "format": "NHWC"}
    tik.configure_profile(aicore_num=cores)
    try:
        if backward:
            grad = rng.uniform(-1, 1, y_shape).astype(dtype)
            instance = edvr_deformable_offsets_grad.edvr_deformable_offsets_grad(
                desc(y_shape),
                desc(x_shape),
                desc(offsets.shape),
                desc(x_shape),
                desc(offsets.shape),
                **attrs,
            )
            feed = {"grad": grad, "x": x, "offsets": offsets}
        else:
            instance = edvr_deformable_offsets.edvr_deformable_offsets(
                desc(x_shape), desc(offsets.shape), desc(y_shape), **attrs
            )
            feed = {"x": x, "offsets": offsets}
        instance.tikdb.start_debug(feed_dict=feed, interactive=False)
        return list(instance.trace)
    finally:
        tik.configure_profile()


def _offsets_shape(x_shape, attrs):
    n, h, w, _ = x_shape
    (kh, kw), (sh, sw) = attrs["ksize"], attrs.get("strides", (1, 1))
    (top, bottom, left, right), (dh, dw) = (
        attrs.get("pads", (0, 0, 0, 0)),
        attrs.get("dilations", (1, 1)),
    )
    ho = (h + top + bottom - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + left + right - (dw * (kw - 1) + 1)) // sw + 1
    return (n, ho, wo, 3 * attrs["deformable_groups"] * kh * kw)


def deformable_counts(x_shape, attrs, dtype, backward, cores, progress=None):
    """Total Counts of the kernel on x [N, H, W, C], from one image traced at TRACED_ROWS rows."""
    n, h, w, c = x_shape
    traced = {}
    for rows in TRACED_ROWS:
        traced[rows] = total(
            count_trace(trace_deformable((1, rows, w, c), attrs, dtype, backward, cores))
        )
        if progress:
            progress.update(1)
    return extrapolate_rows(traced, h, images=n)


# ---- the EDVR-M training step -------------------------------------------------------------------
def training_step(size="full"):
    """(DCN list, convolution FLOPs of one training step) of bench.workloads' EDVR-M step
    (batch 4 of 5 frames, 64x64 LR crops). Each DCN: {"name", "x_shape", "attrs"}, read from the
    graph's deformable ops (they need the native op library: `make build`)."""
    from bench.workloads import TrainStep, load_sized_config

    step = TrainStep(load_sized_config(size))
    try:
        dcns = []
        for op in step.graph.get_operations():
            if op.type in ("EdvrDeformConv2D", "EdvrDeformableOffsets"):
                attrs = {
                    a: op.get_attr(a)
                    for a in ("ksize", "strides", "pads", "dilations", "deformable_groups")
                }
                attrs = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}
                dcns.append(
                    {
                        "name": op.name,
                        "x_shape": tuple(int(d) for d in op.inputs[0].shape),
                        "attrs": attrs,
                    }
                )
        if not dcns:
            raise RuntimeError(
                "no EdvrDeformConv2D / EdvrDeformableOffsets op in the training graph: the "
                "reference backend builds DCNs from plain TF ops; build the native library "
                "(make build) and keep EDVR_OPS_BACKEND unset or 'native'"
            )
        return dcns, step.flops["total"]
    finally:
        step.close()


def estimate(dtype="float32", cores=32, model=None, size="full"):
    """Rows {dcn, direction, counts, overlapped, serial, bound} and the step's conv FLOPs."""
    from tqdm import tqdm

    model = model or Ascend910(cores=cores)
    dcns, conv_flops = training_step(size)
    geometries = sorted({(d["x_shape"], tuple(sorted(d["attrs"].items()))) for d in dcns})
    cache, rows = {}, []
    with tqdm(
        total=len(geometries) * 2 * len(TRACED_ROWS), desc="tracing kernels on the TIK double"
    ) as bar:
        for x_shape, attrs in geometries:
            for backward in (False, True):
                cache[x_shape, attrs, backward] = deformable_counts(
                    x_shape, dict(attrs), dtype, backward, model.cores, bar
                )
    for d in dcns:
        for backward in (False, True):
            counts = cache[d["x_shape"], tuple(sorted(d["attrs"].items())), backward]
            overlapped, serial, bound = model.kernel_seconds(balanced(counts, model.cores))
            rows.append(
                {
                    "dcn": d["name"].split("/dcn/")[0].split("/", 1)[-1],  # e.g. pcd_alignment/l1
                    "x_shape": d["x_shape"],
                    "direction": "backward" if backward else "forward",
                    "counts": counts,
                    "overlapped": overlapped,
                    "serial": serial,
                    "bound": bound,
                }
            )
    return rows, conv_flops, model


def format_table(rows, conv_flops, model, dtype):
    lines = [
        "EDVR-M training step, batch 4 x 5 frames, 64x64 LR crops, %s sampling, %d AI cores "
        "(estimate, not a measurement: see bench/ascend_estimate.py)" % (dtype, model.cores),
        "%-24s %-18s %-9s %14s %14s %10s %12s %12s %-7s"
        % (
            "DCN",
            "x",
            "direction",
            "vector rep.",
            "scalar ops",
            "GM MB",
            "ms overlap",
            "ms serial",
            "bound",
        ),
    ]
    for r in rows:
        c = r["counts"]
        lines.append(
            "%-24s %-18s %-9s %14.3g %14.3g %10.1f %12.3f %12.3f %-7s"
            % (
                r["dcn"][:24],
                "x".join(str(s) for s in r["x_shape"]),
                r["direction"],
                c.vector_repeats,
                c.scalar_ops,
                c.dma_bytes / 1e6,
                1e3 * r["overlapped"],
                1e3 * r["serial"],
                r["bound"],
            )
        )
    sampling = sum(r["overlapped"] for r in rows), sum(r["serial"] for r in rows)
    conv = conv_flops / model.cube_flops_per_second
    lines += [
        "sampling, all DCNs, forward + backward: %.2f ms (overlapped) to %.2f ms (serial)"
        % (1e3 * sampling[0], 1e3 * sampling[1]),
        "convolutions of the step (%.1f GFLOP) at the Cube peak of %.0f TFLOPS: %.2f ms"
        % (conv_flops / 1e9, model.cube_flops_per_second / 1e12, 1e3 * conv),
        "sampling / convolution at peak: %.1fx to %.1fx" % (sampling[0] / conv, sampling[1] / conv),
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="sampling dtype (float32: the TF graph's; float16 under mixed precision)",
    )
    parser.add_argument(
        "--cores", type=int, default=32, help="AI cores (32; some 910 variants have 30)"
    )
    args = parser.parse_args(argv)
    rows, conv_flops, model = estimate(args.dtype, args.cores)
    print(format_table(rows, conv_flops, model, args.dtype))


if __name__ == "__main__":
    main()
