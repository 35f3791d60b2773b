"""NumPy stand-in for the TIK machine: runs edvr_sampling_program and checks what the device would need.

Each call of the program's machine interface is executed on NumPy arrays and checked:
UB addresses and DMA lengths on 32-byte blocks, UB accesses inside their buffer, GM loads inside
the tensor rounded up to a block, GM stores inside the tensor, the UB layout within the device's
budget, at most the device's cores, atomic add only into float32 GM, and per-element write counts
and writer cores (races between cores are recorded).
Unwritten outputs stay NaN (poison); UB starts as NaN on every core, GM padding is NaN.

precision="exact" keeps every buffer and scalar in float64 (checks addressing against a float64
oracle); precision="device" stores float16/float32 buffers and rounds float32 scalars as the
AI core would (vector maths in float32).
"""

import math

import numpy as np

from kernels.tbe.tbe.impl import edvr_sampling_plan as plan_lib


class MachineError(AssertionError):
    """A rule of the device broken by the program."""


class Buffer:
    def __init__(self, name, dtype, space, size, storage_dtype):
        self.name, self.dtype, self.space, self.size = name, dtype, space, size
        self.lanes = plan_lib.block_lanes(dtype)
        padded = plan_lib.round_up(size, self.lanes)
        self.data = np.full(padded, np.nan, dtype=storage_dtype)
        self.writes = np.zeros(padded, dtype=np.int64)
        self.writer = np.full(padded, -1, dtype=np.int64)

    @property
    def elements(self):
        return self.size


class Scalar:
    """A TIK-like scalar: set_as() stores, arithmetic yields plain Python numbers."""

    def __init__(self, dtype, value, rounding):
        self.dtype, self.rounding = dtype, rounding
        self.set_as(value)

    def set_as(self, value):
        value = _value(value)
        if self.dtype.startswith("int"):
            self.value = int(value)
        elif self.rounding:
            self.value = float(np.dtype(self.dtype).type(value))
        else:
            self.value = float(value)

    def __float__(self):
        return float(self.value)

    def __index__(self):
        return int(self.value)


def _value(v):
    return v.value if isinstance(v, Scalar) else v


def _binary(op):
    return lambda self, other: op(self.value, _value(other))


def _reflected(op):
    return lambda self, other: op(_value(other), self.value)


for _name, _op in (
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("lt", lambda a, b: a < b),
    ("le", lambda a, b: a <= b),
    ("gt", lambda a, b: a > b),
    ("ge", lambda a, b: a >= b),
    ("ne", lambda a, b: a != b),
):
    setattr(Scalar, "__%s__" % _name, _binary(_op))
for _name, _op in (
    ("radd", lambda a, b: a + b),
    ("rsub", lambda a, b: a - b),
    ("rmul", lambda a, b: a * b),
):
    setattr(Scalar, "__%s__" % _name, _reflected(_op))


class NumpyMachine:
    def __init__(self, device, precision="exact"):
        assert precision in ("exact", "device")
        self.device, self.precision = device, precision
        self.atomic = False
        self.gm_buffers = {}
        self.dmas = []  # dicts: core, kind, gm, gm_start, elements, ub, ub_start
        self.races = []
        self.core = None
        self.ub_buffers = {}
        self.max_ub_bytes = 0
        self.cores_used = 0

    def _storage(self, dtype):
        return (
            np.float64 if self.precision == "exact" or dtype.startswith("int") else np.dtype(dtype)
        )

    # ---- GM tensors (set up by the test)
    def gm(self, name, dtype, size, values=None):
        buf = Buffer(name, dtype, "gm", size, self._storage(dtype))
        if values is not None:
            buf.data[:size] = np.asarray(values).reshape(-1)
        self.gm_buffers[name] = buf
        return buf

    def result(self, name, shape):
        return self.gm_buffers[name].data[: math.prod(shape)].reshape(shape).astype(np.float64)

    # ---- control
    def launch(self, cores, layout, body):
        if not 1 <= cores <= self.device.cores:
            raise MachineError("launch: %d cores, the device has %d" % (cores, self.device.cores))
        total = plan_lib.ub_bytes(layout)
        if total > self.device.ub_budget:
            raise MachineError(
                "UB layout needs %d bytes, budget %d" % (total, self.device.ub_budget)
            )
        for b in layout:
            if b.offset_bytes % plan_lib.BLOCK_BYTES or b.nbytes % plan_lib.BLOCK_BYTES:
                raise MachineError("UB buffer %s not on 32-byte blocks" % b.name)
        self.max_ub_bytes = max(self.max_ub_bytes, total)
        self.cores_used = max(self.cores_used, cores)
        for core in range(cores):
            self.core = core
            self.ub_buffers = {
                b.name: Buffer(b.name, b.dtype, "ub", b.elements, self._storage(b.dtype))
                for b in layout
            }
            body(core)
        self.core = None

    def ub(self, name):
        return self.ub_buffers[name]

    def scalar(self, dtype, name, init):
        return Scalar(dtype, init, rounding=self.precision == "device")

    def for_range(self, begin, end, body):
        for i in range(int(_value(begin)), int(_value(end))):
            body(i)

    def if_(self, cond, then, otherwise=None):
        if bool(cond):
            then()
        elif otherwise is not None:
            otherwise()

    def all_of(self, *conds):
        return all(bool(c) for c in conds)

    def any_of(self, *conds):
        return any(bool(c) for c in conds)

    def to_float(self, dst, value):
        dst.set_as(float(_value(value)))

    # ---- data movement
    def atomic_add(self, on):
        if on == self.atomic:
            raise MachineError("atomic_add(%r) twice" % on)
        self.atomic = on

    def dma(self, dst, dst_off, src, src_off, nburst, burst, src_gap=0, dst_gap=0):
        dst_off, src_off = int(_value(dst_off)), int(_value(src_off))
        nburst, burst = int(_value(nburst)), int(_value(burst))
        if dst.dtype != src.dtype:
            raise MachineError("dma %s -> %s: dtypes differ" % (src.name, dst.name))
        if {dst.space, src.space} != {"gm", "ub"}:
            raise MachineError(
                "dma %s -> %s: expected one GM and one UB side" % (src.name, dst.name)
            )
        if not (1 <= nburst <= plan_lib.MAX_BURSTS and 1 <= burst <= plan_lib.MAX_BURST_BLOCKS):
            raise MachineError(
                "dma %s -> %s: nburst %d, burst %d" % (src.name, dst.name, nburst, burst)
            )
        lanes = dst.lanes
        n = burst * lanes
        load = src.space == "gm"
        ub, ub_off, ub_gap = (dst, dst_off, dst_gap) if load else (src, src_off, src_gap)
        gm, gm_off, gm_gap = (src, src_off, src_gap) if load else (dst, dst_off, dst_gap)
        if ub_off % lanes:
            raise MachineError("dma: UB offset %d of %s not on a 32-byte block" % (ub_off, ub.name))
        for b in range(nburst):
            u = ub_off + b * (burst + ub_gap) * lanes
            g = gm_off + b * (burst + gm_gap) * lanes
            if u < 0 or u + n > ub.size:
                raise MachineError(
                    "dma: UB %s[%d:%d] outside %d elements" % (ub.name, u, u + n, ub.size)
                )
            if load:
                if g < 0 or g + n > len(gm.data):
                    raise MachineError(
                        "dma: load %s[%d:%d] beyond the tensor's last block (%d)"
                        % (gm.name, g, g + n, len(gm.data))
                    )
                seen = gm.writer[g : min(g + n, gm.size)]
                if np.any((seen != -1) & (seen != self.core)):
                    self.races.append(("read", gm.name, g, self.core))
                ub.data[u : u + n] = gm.data[g : g + n]
            else:
                if g < 0 or g + n > gm.size:
                    raise MachineError(
                        "dma: store %s[%d:%d] outside %d elements" % (gm.name, g, g + n, gm.size)
                    )
                prior = gm.writer[g : g + n]
                if np.any((prior != -1) & (prior != self.core)):
                    self.races.append(("write", gm.name, g, self.core))
                if self.atomic:
                    if gm.dtype != "float32":
                        raise MachineError(
                            "dma: atomic add into %s of %s (float32 only)" % (gm.name, gm.dtype)
                        )
                    gm.data[g : g + n] = self._f32(gm.data[g : g + n] + ub.data[u : u + n])
                else:
                    gm.data[g : g + n] = ub.data[u : u + n]
                gm.writes[g : g + n] += 1
                gm.writer[g : g + n] = self.core
            self.dmas.append(
                dict(
                    core=self.core,
                    kind="load" if load else "store",
                    gm=gm.name,
                    gm_start=g,
                    elements=n,
                    lanes=lanes,
                    ub=ub.name,
                    ub_start=u,
                    atomic=self.atomic and not load,
                )
            )

    # ---- vector and scalar instructions
    def _check_vector(self, buf, offset, count):
        if offset % plan_lib.block_lanes(buf.dtype):
            raise MachineError(
                "vector op on %s at lane %d: not on a 32-byte block" % (buf.name, offset)
            )
        if offset < 0 or offset + count > buf.size:
            raise MachineError(
                "vector op on %s[%d:%d] outside %d" % (buf.name, offset, offset + count, buf.size)
            )

    def _f32(self, values):
        return values if self.precision == "exact" else values.astype(np.float32)

    def fill(self, buf, off, lanes, value):
        off = int(_value(off))
        self._check_vector(buf, off, lanes)
        buf.data[off : off + lanes] = value

    def fill_lanes(self, buf, off, segments, value):
        lanes = self._segment_lanes(segments, (buf, int(_value(off))))
        buf.data[int(_value(off)) + lanes] = float(_value(value))

    def cast(self, dst, src, chunks):
        for offset, count in chunks:
            if count > plan_lib.F32_LANES_PER_REPEAT:
                raise MachineError("cast chunk of %d lanes" % count)
            self._check_vector(dst, offset, count)
            self._check_vector(src, offset, count)
            dst.data[offset : offset + count] = src.data[offset : offset + count]  # astype on store

    def _segment_lanes(self, segments, *bufs):
        """Lanes selected by the masked instructions; each starts on a block inside every buffer."""
        lanes = []
        for seg in segments:
            for buf, base in bufs:
                self._check_vector(buf, base + seg.offset, max(seg.lanes) - seg.offset + 1)
            lanes += seg.lanes
        return np.array(lanes, dtype=np.int64)

    def axpy(self, dst, dst_off, src, src_off, scalar, segments):
        dst_off, src_off = int(_value(dst_off)), int(_value(src_off))
        lanes = self._segment_lanes(segments, (dst, dst_off), (src, src_off))
        w = float(_value(scalar))
        dst.data[dst_off + lanes] = self._f32(
            dst.data[dst_off + lanes] + self._f32(w * src.data[src_off + lanes])
        )

    def scale(self, dst, dst_off, src, src_off, scalar, segments):
        dst_off, src_off = int(_value(dst_off)), int(_value(src_off))
        lanes = self._segment_lanes(segments, (dst, dst_off), (src, src_off))
        dst.data[dst_off + lanes] = self._f32(float(_value(scalar)) * src.data[src_off + lanes])

    def mul(self, dst, dst_off, a, a_off, b, b_off, segments):
        lanes = self._segment_lanes(segments, (dst, dst_off), (a, a_off), (b, b_off))
        dst.data[dst_off + lanes] = self._f32(a.data[a_off + lanes] * b.data[b_off + lanes])

    def masked_sum(self, dst, src, off, segments):
        lanes = self._segment_lanes(segments, (src, off))
        dst.set_as(float(np.sum(self._f32(src.data[off + lanes]))))

    def adds(self, dst, dst_off, src, src_off, scalar, segments):
        dst_off, src_off = int(_value(dst_off)), int(_value(src_off))
        lanes = self._segment_lanes(segments, (dst, dst_off), (src, src_off))
        dst.data[dst_off + lanes] = self._f32(src.data[src_off + lanes] + float(_value(scalar)))

    # whole planes: lanes [0, lanes) of 32-bit buffers, whole 64-lane repeats
    def _planes(self, lanes, *bufs):
        if lanes % plan_lib.F32_LANES_PER_REPEAT:
            raise MachineError("plane instruction over %d lanes: not whole repeats" % lanes)
        for buf in bufs:
            if plan_lib.DTYPE_BYTES[buf.dtype] != 4:
                raise MachineError(
                    "plane instruction on %s of %s: 32-bit planes only" % (buf.name, buf.dtype)
                )
            self._check_vector(buf, 0, lanes)
        return slice(0, lanes)

    def vadd(self, dst, a, b, lanes):
        s = self._planes(lanes, dst, a, b)
        dst.data[s] = self._f32(a.data[s] + b.data[s])

    def vsub(self, dst, a, b, lanes):
        s = self._planes(lanes, dst, a, b)
        dst.data[s] = self._f32(a.data[s] - b.data[s])

    def vmin(self, dst, a, b, lanes):
        s = self._planes(lanes, dst, a, b)
        dst.data[s] = np.minimum(a.data[s], b.data[s])

    def vmul(self, dst, a, b, lanes):
        s = self._planes(lanes, dst, a, b)
        dst.data[s] = self._f32(a.data[s] * b.data[s])

    def vadds(self, dst, src, scalar, lanes):
        s = self._planes(lanes, dst, src)
        dst.data[s] = self._f32(src.data[s] + float(_value(scalar)))

    def vmuls(self, dst, src, scalar, lanes):
        s = self._planes(lanes, dst, src)
        dst.data[s] = self._f32(src.data[s] * float(_value(scalar)))

    def vconv(self, dst, src, lanes, round_mode=""):
        """Integer planes hold float64 here: NaN stays NaN (reading it into a scalar raises)."""
        s = self._planes(lanes, dst, src)
        to_int = {"floor": np.floor, "round": np.rint, "": None}[round_mode]
        if (to_int is None) != (dst.dtype == "float32"):
            raise MachineError(
                "vconv %s -> %s with round_mode %r" % (src.dtype, dst.dtype, round_mode)
            )
        dst.data[s] = src.data[s] if to_int is None else to_int(src.data[s])

    def read(self, scalar, buf, index):
        index = int(_value(index))
        if not 0 <= index < buf.size:
            raise MachineError("read %s[%d] outside %d" % (buf.name, index, buf.size))
        scalar.set_as(float(buf.data[index]))

    def write(self, buf, index, value):
        index = int(_value(index))
        if not 0 <= index < buf.size:
            raise MachineError("write %s[%d] outside %d" % (buf.name, index, buf.size))
        buf.data[index] = float(_value(value))
