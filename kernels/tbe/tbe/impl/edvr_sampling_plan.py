"""Tiling and addressing plans of the EDVR sampling kernels on Ascend 910 (pure Python, no CANN).

The TIK kernels (edvr_sampling_program.py run on a TIK machine) and the NumPy replay in
tests/tbe both get every tile, address, window, lane mask and unified-buffer (UB) layout from
the functions here. Address functions use only + - * // % so they work on Python ints (tests)
and on TIK scalars/expressions (device code) alike.

One geometry covers both ops. Deformable offsets: output point (n, ho, wo) has K = kh*kw taps per
group; bilinear sample is the case K = 1, G = 1, Ho = 1, Wo = P points, absolute positions.
Per-point parameters (offsets or coords) are rows of `param_stride` values:
channel g*K + k is dx (x for coords), G*K + g*K + k is dy (y), 2*G*K + g*K + k the mask.

Work split (why there are no races between AI cores):
* forward: task = (n, ho, run of wo); each task stores whole, 32-byte aligned output rows.
* gradient, phase A (grad_x, a scatter-add): task = (n, channel unit). A channel unit is the
  smallest run of whole groups that starts and ends on a 32-byte block, so one core owns every
  byte it zeroes and then adds into by float32 atomic add (in grad_x itself, or in a float32
  workspace that a last pass converts to float16).
* gradient, phase B (grad of offsets/coords): task = run of flat points whose first element sits
  on a 32-byte block; the last task ends with a back-off block (see `param_store_windows`).
"""

import math
from dataclasses import dataclass

UB_RESERVED_BYTES = 16 * 1024  # left to TIK for scalars, spills and reduce scratch
BLOCK_BYTES = 32  # DMA granule and UB address alignment
REPEAT_BYTES = 256  # one vector instruction repeat
F32_LANES_PER_REPEAT = REPEAT_BYTES // 4
MAX_BURSTS = 4095  # nburst limit of one data_move
MAX_BURST_BLOCKS = 65535
DTYPE_BYTES = {"float16": 2, "float32": 4, "int32": 4}
DATA_DTYPES = ("float16", "float32")
COMPUTE_DTYPE = "float32"
INDEX_DTYPE = "int32"  # floors and pixel indices in the sample planes
FLOAT32_EXACT_INTS = 2**24  # float32 holds every integer up to this exactly


@dataclass(frozen=True)
class Device:
    """The AI cores and unified buffer bytes per core that a kernel is compiled for, read from
    CANN's profile at compile time (tik.Dprofile(): get_aicore_num(), get_unified_buffer_size()):
    Ascend 910 variants differ (32 or 30 cores)."""

    cores: int
    ub_bytes: int

    @property
    def ub_budget(self):
        return self.ub_bytes - UB_RESERVED_BYTES


def ceil_div(a, b):
    return (a + b - 1) // b


def round_up(a, b):
    return ceil_div(a, b) * b


def block_lanes(dtype):
    """Elements of `dtype` in one 32-byte block."""
    return BLOCK_BYTES // DTYPE_BYTES[dtype]


@dataclass(frozen=True)
class SamplingGeometry:
    """Shapes and sampling rule shared by the forward and gradient kernels of both ops."""

    batch: int
    height: int
    width: int
    channels: int
    deformable_groups: int
    out_h: int
    out_w: int
    kernel_h: int = 1
    kernel_w: int = 1
    stride_h: int = 1
    stride_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    modulated: bool = False
    absolute: bool = False  # positions are the parameters themselves (bilinear sample)

    @property
    def taps(self):
        return self.kernel_h * self.kernel_w

    @property
    def points(self):
        """Output points per image."""
        return self.out_h * self.out_w

    @property
    def group_channels(self):
        """Channels per deformable group: C / G."""
        return self.channels // self.deformable_groups

    @property
    def param_stride(self):
        """Values per point in the offsets (dx, dy, mask blocks) or coords ((x, y)) tensor."""
        blocks = 3 if not self.absolute else 2
        return blocks * self.deformable_groups * self.taps

    @property
    def params_size(self):
        return self.batch * self.points * self.param_stride

    @property
    def output_size(self):
        return self.batch * self.points * self.taps * self.channels

    @property
    def x_size(self):
        return self.batch * self.height * self.width * self.channels


def out_size(size, pad, kernel, dilation, stride):
    """Output length along one axis of a deformable convolution (docs/ops.md):
    (size + pad - span) // stride + 1 with span = dilation * (kernel - 1) + 1 and `pad` the sum of
    both sides' padding; None when the dilated kernel does not fit in the padded input.

    The one definition for kernels/tbe and tests/tbe. It is a copy of ops._checks.out_size on
    purpose: CANN's op compiler loads this package from its opp tree on the Ascend host, where the
    project's `ops` package is not importable. tests/tbe/test_out_size.py checks the two agree.
    """
    span = dilation * (kernel - 1) + 1
    return None if size + pad < span else (size + pad - span) // stride + 1


def deformable_offsets_geometry(
    x_shape,
    offsets_shape,
    ksize,
    strides=(1, 1),
    pads=(0, 0, 0, 0),
    dilations=(1, 1),
    deformable_groups=1,
    modulated=True,
):
    """Geometry of EdvrDeformableOffsets; raises ValueError naming the bad argument."""
    n, h, w, c = _rank4("x", x_shape)
    kh, kw = _pair("ksize", ksize, minimum=1)
    sh, sw = _pair("strides", strides, minimum=1)
    dh, dw = _pair("dilations", dilations, minimum=1)
    if len(pads) != 4 or min(pads) < 0:
        raise ValueError(
            "pads: expected 4 non-negative ints (top, bottom, left, right), got %r" % (pads,)
        )
    top, bottom, left, right = pads
    g = deformable_groups
    if g < 1 or c % g:
        raise ValueError("deformable_groups: expected a divisor of C=%d, got %d" % (c, g))
    ho = out_size(h, top + bottom, kh, dh, sh)
    wo = out_size(w, left + right, kw, dw, sw)
    if ho is None or wo is None:
        raise ValueError(
            "ksize: kernel %dx%d (dilated) larger than the padded input %dx%d"
            % (kh, kw, h + top + bottom, w + left + right)
        )
    expected = (n, ho, wo, 3 * g * kh * kw)
    if tuple(offsets_shape) != expected:
        raise ValueError("offsets: expected shape %r, got %r" % (expected, tuple(offsets_shape)))
    return SamplingGeometry(
        n, h, w, c, g, ho, wo, kh, kw, sh, sw, top, left, dh, dw, modulated=bool(modulated)
    )


def bilinear_sample_geometry(x_shape, coords_shape):
    """Geometry of EdvrBilinearSample: coords [N, ..., 2] flatten to P points per image."""
    n, h, w, c = _rank4("x", x_shape)
    if len(coords_shape) < 2 or coords_shape[0] != n or coords_shape[-1] != 2:
        raise ValueError("coords: expected shape [%d, ..., 2], got %r" % (n, tuple(coords_shape)))
    points = 1  # math.prod is Python 3.8; the Ascend host runs 3.7
    for size in coords_shape[1:-1]:
        points *= int(size)
    return SamplingGeometry(n, h, w, c, 1, 1, points, absolute=True)


def _rank4(name, shape):
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(
            "%s: expected a non-empty [N, H, W, C] shape, got %r" % (name, tuple(shape))
        )
    return tuple(int(s) for s in shape)


def _pair(name, value, minimum):
    if len(value) != 2 or min(value) < minimum:
        raise ValueError("%s: expected 2 ints >= %d, got %r" % (name, minimum, tuple(value)))
    return int(value[0]), int(value[1])


# ----------------------------------------------------------------------------------------------
# Addresses (element offsets). Arguments may be ints or TIK expressions.


def x_pixel_offset(geo, n, y, x):
    """First element of pixel (n, y, x) in x, grad_x or the float32 accumulator."""
    return ((n * geo.height + y) * geo.width + x) * geo.channels


def output_offset(geo, n, ho, i, wo, j):
    """First element of y[n, ho*kh + i, wo*kw + j, :] (also of the incoming gradient)."""
    return (
        (((n * geo.out_h + ho) * geo.kernel_h + i) * geo.out_w + wo) * geo.kernel_w + j
    ) * geo.channels


def param_offset(geo, flat_point):
    """First parameter of flat point n*points + ho*Wo + wo."""
    return flat_point * geo.param_stride


def param_channels(geo, g, k):
    """(dx, dy, mask) channels of group g, tap k inside one parameter row (mask is None if unused)."""
    gk = geo.deformable_groups * geo.taps
    base = g * geo.taps + k
    return base, gk + base, (2 * gk + base if geo.modulated else None)


def base_position(geo, ho, wo, i, j):
    """Undeformed sampling position (py, px) of tap (i, j) of point (ho, wo)."""
    if geo.absolute:
        return 0, 0
    return (
        ho * geo.stride_h - geo.pad_top + i * geo.dilation_h,
        wo * geo.stride_w - geo.pad_left + j * geo.dilation_w,
    )


def base_shift(geo, ho, wo):
    """base_position(geo, ho, wo, i, j) - base_position(geo, 0, 0, i, j): the part of a tap's
    undeformed position that depends on the point, not on the tap."""
    if geo.absolute:
        return 0, 0
    return ho * geo.stride_h, wo * geo.stride_w


def split_tap(geo, k):
    """Kernel row and column of tap k."""
    return k // geo.kernel_w, k % geo.kernel_w


def split_point(geo, flat_point):
    """(n, ho, wo) of a flat point index."""
    p = flat_point % geo.points
    return flat_point // geo.points, p // geo.out_w, p % geo.out_w


def aligned_window(start, count, lanes):
    """(aligned start, phase, blocks): the whole blocks of `lanes` elements holding [start, start+count)."""
    phase = start % lanes
    return start - phase, phase, (phase + count + lanes - 1) // lanes


# ----------------------------------------------------------------------------------------------
# Channel lanes and vector masks (static per group).


@dataclass(frozen=True)
class LaneSegment:
    """One masked vector instruction on float32 lanes [offset, offset+64) of a C-lane row."""

    offset: int
    mask_bits: int  # bit b selects lane offset + b

    @property
    def lanes(self):
        return [self.offset + b for b in range(F32_LANES_PER_REPEAT) if self.mask_bits >> b & 1]

    @property
    def tik_mask(self):
        """Bit-wise mask in TIK's [high, low] form (float32: 64 lanes, high word 0)."""
        return [0, self.mask_bits]


def lane_segments(first, count):
    """Masked float32 instructions covering exactly lanes [first, first+count)."""
    segments = []
    start = first - first % F32_LANES_PER_REPEAT
    while start < first + count:
        lo, hi = max(first, start), min(first + count, start + F32_LANES_PER_REPEAT)
        bits = ((1 << (hi - lo)) - 1) << (lo - start)
        segments.append(LaneSegment(start, bits))
        start += F32_LANES_PER_REPEAT
    return segments


def group_lanes(geo, g):
    return g * geo.group_channels, geo.group_channels


def group_window(geo, g, dtype):
    """(first lane, blocks) of the whole `dtype` blocks holding group g's channels in one pixel row."""
    first, count = group_lanes(geo, g)
    start, _, blocks = aligned_window(first, count, block_lanes(dtype))
    return start, blocks


def cast_chunks(first, count):
    """(lane offset, lanes) chunks of at most 64 lanes for float16<->float32 conversions."""
    return [
        (o, min(F32_LANES_PER_REPEAT, first + count - o))
        for o in range(first, first + count, F32_LANES_PER_REPEAT)
    ]


@dataclass(frozen=True)
class ChannelUnit:
    """Groups [first_group, end_group) whose lanes [lane_lo, lane_hi) start and end on a block."""

    first_group: int
    end_group: int
    lane_lo: int
    lane_hi: int

    @property
    def lanes(self):
        return self.lane_hi - self.lane_lo


def channel_units(geo, dtype):
    """Partition of the groups into block-aligned channel units (the grad_x ownership unit)."""
    align = block_lanes(dtype)  # multiple of the float32 block (8 lanes) too
    units, first = [], 0
    for g in range(geo.deformable_groups):
        end_lane = (g + 1) * geo.group_channels
        if end_lane % align == 0:
            units.append(ChannelUnit(first, g + 1, first * geo.group_channels, end_lane))
            first = g + 1
    return units


# ----------------------------------------------------------------------------------------------
# UB layout and core split.


@dataclass(frozen=True)
class UbBuffer:
    name: str
    dtype: str
    elements: int
    offset_bytes: int

    @property
    def nbytes(self):
        return self.elements * DTYPE_BYTES[self.dtype]


def ub_layout(buffers):
    """Place (name, dtype, elements) buffers back to back on 32-byte boundaries.

    Sizes round up to whole float32 repeats (64 lanes), so float16/float32 twins of a buffer have
    the same length and conversions run on whole instructions.
    """
    placed, offset = [], 0
    for name, dtype, elements in buffers:
        elements = round_up(elements, F32_LANES_PER_REPEAT)
        placed.append(UbBuffer(name, dtype, elements, offset))
        offset += elements * DTYPE_BYTES[dtype]
    return placed


def ub_bytes(layout):
    return sum(b.nbytes for b in layout)


@dataclass(frozen=True)
class CoreSplit:
    """Tasks [core*per_core, ...) on `cores` cores; the last core gets `last_core_tasks`."""

    tasks: int
    cores: int
    per_core: int
    last_core_tasks: int

    def task_range(self, core):
        count = self.per_core if core < self.cores - 1 else self.last_core_tasks
        return range(core * self.per_core, core * self.per_core + count)


def split_tasks(tasks, cores):
    """Tasks spread evenly over at most `cores` cores."""
    per_core = ceil_div(tasks, cores)
    cores = ceil_div(tasks, per_core)
    return CoreSplit(tasks, cores, per_core, tasks - (cores - 1) * per_core)


def _check_channels(geo, dtype):
    if dtype not in DATA_DTYPES:
        raise ValueError("dtype: expected float16 or float32, got %r" % (dtype,))
    if geo.height * geo.width > FLOAT32_EXACT_INTS:
        raise ValueError(
            "x: the kernels compute pixel indices y * W + x in float32 vector lanes, "
            "exact up to H * W = 2**24; got H=%d, W=%d" % (geo.height, geo.width)
        )
    lanes = block_lanes(dtype)
    if geo.channels % lanes:
        raise ValueError(
            "x: the TBE kernels need C to fill whole 32-byte blocks: C %% %d == 0 for "
            "%s, got C=%d" % (lanes, dtype, geo.channels)
        )


def _largest_fitting(build, upper, budget):
    """Largest n in [1, upper] whose layout build(n) fits the UB budget (layouts grow with n)."""
    if ub_bytes(build(1)) > budget:
        raise ValueError(
            "unified buffer: even one point needs %d bytes, budget %d"
            % (ub_bytes(build(1)), budget)
        )
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ub_bytes(build(mid)) <= budget else (lo, mid - 1)
    return lo


# ----------------------------------------------------------------------------------------------
# Sample planes (both kernels).


class SamplePlanes:
    """Sample planes of a plan with `geo` and `dtype`: lane local * slot + g * K + k of each plane
    holds one value of sample (point `local` of a tile, group g, tap k), so one vector instruction
    covers many samples."""

    @property
    def slot(self):
        """Plane lanes per point: its G*K samples, rounded up to a block of the op's dtype."""
        return plane_slot(self.geo, self.dtype)

    def plane_lanes(self, width):
        """Lanes the vector instructions cover for a tile of `width` points (whole repeats)."""
        return round_up(width * self.slot, F32_LANES_PER_REPEAT)

    @property
    def param_rows(self):
        """(plane, first channel) of the parameter rows loaded per point: dx, dy (and mask)."""
        gk = self.geo.deformable_groups * self.geo.taps
        rows = (("px", 0), ("py", gk))
        return rows + (("mask", 2 * gk),) if self.geo.modulated else rows

    @property
    def first_careful_point(self):
        """First flat point whose rows, loaded a whole slot long, could pass the parameter tensor's
        last block: those points load each row through a block-aligned scratch instead."""
        padded = round_up(self.geo.params_size, block_lanes(self.dtype))
        room = padded - self.param_rows[-1][1] - self.slot
        return 0 if room < 0 else room // self.geo.param_stride + 1


def plane_slot(geo, dtype):
    """Plane lanes per point: its G*K samples, rounded up to a block of `dtype`."""
    return round_up(geo.deformable_groups * geo.taps, block_lanes(dtype))


SAMPLE_PLANES = (
    "py",
    "px",
    "base_y",
    "base_x",
    "tmp",
    "ly",
    "lx",
    "hy",
    "hx",
    "w00",
    "w01",
    "w10",
    "w11",
    "margin",
)
SAMPLE_INDEX_PLANES = ("y0", "x0", "addr")


def _plane_buffers(geo, dtype, points):
    """UB buffers of the sample planes of `points` points (and the scratch of careful rows)."""
    plane = points * plane_slot(geo, dtype)
    masks = ("mask",) if geo.modulated else ()
    buffers = [(name, COMPUTE_DTYPE, plane) for name in SAMPLE_PLANES + masks]
    buffers += [(name, INDEX_DTYPE, plane) for name in SAMPLE_INDEX_PLANES]
    buffers.append(("row_scratch", dtype, plane_slot(geo, dtype) + block_lanes(dtype)))
    if dtype != COMPUTE_DTYPE:
        buffers += [(name + "_raw", dtype, plane) for name in ("py", "px") + masks]
    return buffers


# ----------------------------------------------------------------------------------------------
# Forward plan.


@dataclass(frozen=True)
class ForwardPlan(SamplePlanes):
    """Task = (n, ho, tile of `tile_w` output columns); the last tile of a row is `last_tile_w` wide."""

    geo: SamplingGeometry
    dtype: str
    tile_w: int
    tiles_per_row: int
    last_tile_w: int
    split: CoreSplit
    layout: tuple
    device: Device

    @property
    def needs_cast(self):
        return self.dtype != COMPUTE_DTYPE

    def split_task(self, task):
        """(n, ho, tile index) of a task."""
        tile = task % self.tiles_per_row
        row = task // self.tiles_per_row
        return row // self.geo.out_h, row % self.geo.out_h, tile

    def row_elements(self):
        """Stride between the kh output rows staged in UB."""
        return self.tile_w * self.geo.kernel_w * self.geo.channels

    def staged_offset(self, i, local_wo, j):
        """Where tap (i, j) of the tile's local column sits in the staged output."""
        return i * self.row_elements() + (local_wo * self.geo.kernel_w + j) * self.geo.channels

    def store_blocks(self, width):
        """Blocks of one staged output row of a tile `width` columns wide (C fills whole blocks)."""
        return width * self.geo.kernel_w * self.geo.channels // block_lanes(self.dtype)


def _forward_layout(geo, dtype, tile_w):
    staged = geo.kernel_h * tile_w * geo.kernel_w * geo.channels
    buffers = _plane_buffers(geo, dtype, tile_w)
    buffers += [("staged", COMPUTE_DTYPE, staged), ("corner", dtype, geo.channels)]
    if dtype != COMPUTE_DTYPE:
        buffers += [("corner_f32", COMPUTE_DTYPE, geo.channels), ("staged_cast", dtype, staged)]
    return tuple(ub_layout(buffers))


def plan_forward(geo, dtype, device, tile_limit=None):
    """Forward plan for `device` (a Device); tile_limit caps the tile width (tests use it to force
    many tiles and cores)."""
    _check_channels(geo, dtype)
    tile_w = _largest_fitting(
        lambda t: _forward_layout(geo, dtype, t),
        min(geo.out_w, tile_limit or geo.out_w),
        device.ub_budget,
    )
    tiles = ceil_div(geo.out_w, tile_w)
    split = split_tasks(geo.batch * geo.out_h * tiles, device.cores)
    return ForwardPlan(
        geo,
        dtype,
        tile_w,
        tiles,
        geo.out_w - (tiles - 1) * tile_w,
        split,
        _forward_layout(geo, dtype, tile_w),
        device,
    )


# ----------------------------------------------------------------------------------------------
# Gradient plan.


@dataclass(frozen=True)
class BackwardPlan(SamplePlanes):
    """Phase A: (n, channel unit) tasks accumulate grad_x over point tiles of `points_per_tile`.
    Phase B: tiles of `param_tile` flat points compute grad of offsets/coords."""

    geo: SamplingGeometry
    dtype: str
    units: tuple
    points_per_tile: int
    split_a: CoreSplit
    zero_pixels: int  # pixels zeroed (or converted) per strided DMA
    param_tile: int
    param_tiles: int
    last_param_tile: int
    split_b: CoreSplit
    layout: tuple
    device: Device

    @property
    def needs_cast(self):
        return self.dtype != COMPUTE_DTYPE

    @property
    def accumulates_in_workspace(self):
        """float16 grad_x is accumulated in a float32 workspace and converted at the end."""
        return self.needs_cast

    # phase A
    def split_task_a(self, task):
        """(n, unit index) of a phase-A task."""
        return task // len(self.units), task % len(self.units)

    def point_tiles(self):
        return ceil_div(self.geo.points, self.points_per_tile)

    def last_point_tile(self):
        return self.geo.points - (self.point_tiles() - 1) * self.points_per_tile

    def strided_runs(self):
        """(first pixel, pixels) runs of the strided DMAs that zero / convert a unit of one image."""
        pixels = self.geo.height * self.geo.width
        return [(p, min(self.zero_pixels, pixels - p)) for p in range(0, pixels, self.zero_pixels)]

    def unit_gap_blocks(self, unit, dtype):
        """Blocks skipped between two pixels' unit lanes in a strided DMA."""
        return (self.geo.channels - unit.lanes) // block_lanes(dtype)

    # phase B
    def param_tile_first(self, tile):
        """First flat point of a phase-B tile (tiles hold `param_tile` points, the last one
        `last_param_tile`)."""
        return tile * self.param_tile

    def param_store_windows(self, first_point, count):
        """Stores of a phase-B tile: [(gm start, staged start, blocks)].

        The tile starts on a block. If its end does not, the tail is one block ending exactly at the
        tile's end (and the tensor's: only the last tile can be ragged); it rewrites the bytes
        before it with the same values from this core, and is gathered into the `tail` UB buffer.
        """
        lanes = block_lanes(self.dtype)
        start = param_offset(self.geo, first_point)
        count_elems = count * self.geo.param_stride
        whole = count_elems // lanes
        stores = [(start, 0, whole)] if whole else []
        if count_elems % lanes:
            stores.append((start + count_elems - lanes, count_elems - lanes, 1))
        return stores


def _backward_layout(geo, dtype, points_per_tile, param_tile, zero_pixels, unit_lanes_max):
    lanes = block_lanes(dtype)
    c = geo.channels
    buffers = [
        ("grad_in", dtype, c),
        ("corner", dtype, c),
        ("accum", COMPUTE_DTYPE, c),
        ("product", COMPUTE_DTYPE, c),
        ("grad_params", COMPUTE_DTYPE, param_tile * geo.param_stride),
        ("strided", COMPUTE_DTYPE, zero_pixels * unit_lanes_max),
    ]
    if dtype != COMPUTE_DTYPE:
        buffers += [
            ("grad_in_f32", COMPUTE_DTYPE, c),
            ("corner_f32", COMPUTE_DTYPE, c),
            ("grad_params_cast", dtype, param_tile * geo.param_stride),
            ("strided_cast", dtype, zero_pixels * unit_lanes_max),
        ]
    buffers.append(("tail", dtype, lanes))
    buffers += _plane_buffers(geo, dtype, max(points_per_tile, param_tile))
    slot = plane_slot(geo, dtype)
    buffers += [("pattern_y", COMPUTE_DTYPE, slot), ("pattern_x", COMPUTE_DTYPE, slot)]
    return tuple(ub_layout(buffers))


STRIDED_BYTES = 16 * 1024  # float32 staging for zeroing / converting grad_x, per strided DMA


def plan_backward(geo, dtype, device, tile_limit=None):
    """Gradient plan for `device` (a Device); tile_limit caps points per tile and pixels per strided DMA (tests force
    many tiles, cores, runs and a ragged last tile with it)."""
    _check_channels(geo, dtype)
    units = tuple(channel_units(geo, dtype))
    unit_lanes_max = max(u.lanes for u in units)
    zero_pixels = max(
        1, min(MAX_BURSTS, STRIDED_BYTES // (unit_lanes_max * DTYPE_BYTES[COMPUTE_DTYPE]))
    )
    if tile_limit:
        zero_pixels = min(zero_pixels, tile_limit)
    lanes = block_lanes(dtype)
    # Phase-B tiles start on a block: a multiple of this many points.
    point_quantum = lanes // math.gcd(geo.param_stride, lanes)
    total_points = geo.batch * geo.points
    if total_points * geo.param_stride < lanes:
        raise ValueError(
            "offsets: the TBE gradient needs at least 32 bytes of offsets/coords, got %d "
            "values" % (total_points * geo.param_stride)
        )

    def layout_for(quanta):
        # A tile may absorb a short last tile (below one block), hence + point_quantum.
        tile = quanta * point_quantum
        return _backward_layout(
            geo, dtype, min(geo.points, tile), tile + point_quantum, zero_pixels, unit_lanes_max
        )

    # Enough tiles for every core when there are enough points; then as large as UB allows.
    upper = max(1, ceil_div(ceil_div(total_points, point_quantum), device.cores))
    if tile_limit:
        upper = min(upper, max(1, tile_limit // point_quantum))
    quanta = _largest_fitting(layout_for, upper, device.ub_budget)
    param_tile = quanta * point_quantum
    tiles = ceil_div(total_points, param_tile)
    last = total_points - (tiles - 1) * param_tile
    if tiles > 1 and last * geo.param_stride < lanes:
        tiles, last = tiles - 1, last + param_tile  # the short tail joins the previous tile
    points_per_tile = min(geo.points, param_tile)
    layout = _backward_layout(
        geo, dtype, points_per_tile, param_tile + point_quantum, zero_pixels, unit_lanes_max
    )
    return BackwardPlan(
        geo,
        dtype,
        units,
        points_per_tile,
        split_tasks(geo.batch * len(units), device.cores),
        zero_pixels,
        param_tile,
        tiles,
        last,
        split_tasks(tiles, device.cores),
        layout,
        device,
    )
