"""Kernel bodies of the EDVR sampling ops, written once against a small machine interface.

The same functions build the TIK kernels (machine = edvr_tik_machine.TikMachine) and run in the
NumPy replay of tests/tbe (machine = numpy_machine.NumpyMachine), so the replay executes exactly
the loops, addresses, DMAs and masked vector instructions that the device code is built from.
Every tile, window and address comes from edvr_sampling_plan. No CANN import here.

Machine interface (m): gm/ub handles with `.dtype`; scalar(dtype, name, init); for_range(begin,
end, body(i)); if_(cond, then, otherwise=None); all_of(*conds); any_of(*conds); launch(cores, ub_layout, body(core));
to_float(dst, int_expr); dma(dst, dst_off, src, src_off, nburst,
burst_blocks, src_gap=0, dst_gap=0); atomic_add(on) (UB->GM moves add into float32 GM while on);
fill(buf, off, lanes, value); fill_lanes(buf, off, segments, value) (value: a number or a scalar);
cast(dst, src, chunks) (same lane offsets in both); axpy(dst, dst_off, src, src_off, scalar, segments);
scale(dst, dst_off, src, src_off, scalar, segments); mul(dst, dst_off, a, a_off, b, b_off, segments);
masked_sum(dst_scalar, src, off, segments); adds(dst, dst_off, src, src_off, scalar, segments);
read(scalar, buf, index); write(buf, index, value). Whole 32-bit planes, lanes [0, lanes) in whole
64-lane repeats: vadd, vsub, vmul, vmin(dst, a, b, lanes); vadds, vmuls(dst, src, scalar, lanes);
vconv(dst, src, lanes, round_mode) (float32 -> int32 'floor' / 'round', int32 -> float32 '').
"""

try:
    from . import edvr_sampling_plan as plan_lib
except ImportError:  # loaded as a top-level module by the op compiler
    import edvr_sampling_plan as plan_lib

F32 = plan_lib.COMPUTE_DTYPE


def run_tasks(m, core, split, task):
    """Run this core's share of `split` (the last used core may get fewer tasks)."""

    def run(count):
        m.for_range(0, count, lambda local: task(core * split.per_core + local))

    if split.cores == 1:
        m.if_(core == 0, lambda: run(split.last_core_tasks))
        return
    m.if_(
        core < split.cores - 1,
        lambda: run(split.per_core),
        lambda: m.if_(core == split.cores - 1, lambda: run(split.last_core_tasks)),
    )


def static_choice(m, is_last, last_value, usual_value, body):
    """body(value) with a static value: the last tile of a row or of the tensor may be shorter."""
    if last_value == usual_value:
        body(usual_value)
    else:
        m.if_(is_last, lambda: body(last_value), lambda: body(usual_value))


class Sample:
    """Scalars of one bilinear sample: position, corner indices, weights and the mask value."""

    def __init__(self, m):
        s = lambda name, dtype=F32: m.scalar(dtype, name, 0)
        self.py, self.px, self.mask = s("py"), s("px"), s("mask")
        self.y0, self.x0 = s("y0", "int32"), s("x0", "int32")
        self.ly, self.lx, self.hy, self.hx = s("ly"), s("lx"), s("hy"), s("hx")
        self.base_y, self.base_x = s("base_y"), s("base_x")
        self.weight = s("weight")
        self.nan = s("nan")
        self.numeric = s("numeric", "int32")
        self.row = s("row", "int32")
        self.lane = s("lane", "int32")
        self.margin = s("margin")
        self.pixel = s("pixel", "int32")

    def set_row(self, row):
        """The UB index of the current point's parameter row, computed once per point."""
        self.row.set_as(row)

    def in_range(self, m, geo):
        """docs/ops.md's range rule: zero (and zero gradient) when py <= -1, py >= H, px <= -1 or px >= W."""
        return m.all_of(
            self.py > -1.0, self.py < float(geo.height), self.px > -1.0, self.px < float(geo.width)
        )

    @staticmethod
    def is_number(m, value):
        """False only for NaN: every ordered comparison with NaN is false. The kernels find NaN
        this way, comparing run-time values, not with `x != x`, which code generation may fold."""
        return m.any_of(value > -1.0, value <= -1.0)

    def make_nan(self):
        """docs/ops.md: NaN in gives NaN out. The NaN is computed at run time from the NaN input itself
        (py + px is NaN when either is), not written as an immediate."""
        self.nan.set_as(self.py + self.px)
        return self.nan

    def corners(self):
        """(dy, dx, the two factors of the corner's weight) of the four corners, in the order
        (0, 0), (0, 1), (1, 0), (1, 1): corner index 2 * dy + dx."""
        return (
            (0, 0, (self.hy, self.hx)),
            (0, 1, (self.hy, self.lx)),
            (1, 0, (self.ly, self.hx)),
            (1, 1, (self.ly, self.lx)),
        )

    def for_each_corner(self, m, geo, body):
        """body(pixel, corner) for each corner inside the image (outside corners count zero);
        pixel: the corner's first element in x (or grad_x). Only called in range, where y0 is in
        [-1, H-1] and x0 in [-1, W-1]: one bound per axis can fail, so each corner tests two."""
        for corner in self.corners():
            dy, dx = corner[0], corner[1]
            y_ok = self.y0 >= 0 if dy == 0 else self.y0 < geo.height - 1
            x_ok = self.x0 >= 0 if dx == 0 else self.x0 < geo.width - 1
            step = (dy * geo.width + dx) * geo.channels
            pixel = self.pixel + step if step else self.pixel
            m.if_(m.all_of(y_ok, x_ok), lambda pixel=pixel, corner=corner: body(pixel, corner))


def load_group_row(m, plan, gm, gm_row, g, name):
    """DMA group g's whole blocks of one C-lane row into UB (lane = channel), as float32."""
    geo = plan.geo
    first, blocks = plan_lib.group_window(geo, g, plan.dtype)
    raw = m.ub(name)
    m.dma(raw, first, gm, gm_row + first, 1, blocks)
    if not plan.needs_cast:
        return raw
    wide = m.ub(name + "_f32")
    m.cast(wide, raw, plan_lib.cast_chunks(first, blocks * plan_lib.block_lanes(plan.dtype)))
    return wide


# ---- sample planes (edvr_sampling_plan.SamplePlanes) ---------------------------------------------
def load_planes(m, plan, params, start, flat_first, count, lanes):
    """The dx, dy (and mask) rows of flat points [flat_first, flat_first + count) into their plane
    slots, as float32. `start`: an int32 scalar for the current point's first parameter."""
    geo = plan.geo
    raw = "_raw" if plan.needs_cast else ""
    careful = plan.first_careful_point < geo.batch * geo.points

    def point(local):
        start.set_as(plan_lib.param_offset(geo, flat_first + local))
        if careful:
            m.if_(
                flat_first + local < plan.first_careful_point,
                lambda: _rows(m, plan, params, start, local, raw),
                lambda: _careful_rows(m, plan, params, start, local, raw),
            )
        else:
            _rows(m, plan, params, start, local, raw)

    m.for_range(0, count, point)
    if plan.needs_cast:
        for name, _ in plan.param_rows:
            m.cast(m.ub(name), m.ub(name + raw), plan_lib.cast_chunks(0, lanes))


def _rows(m, plan, params, start, local, raw):
    for name, channel in plan.param_rows:
        m.dma(
            m.ub(name + raw),
            local * plan.slot,
            params,
            start + channel,
            1,
            plan.slot // plan_lib.block_lanes(plan.dtype),
        )


def _careful_rows(m, plan, params, start, local, raw):
    """Rows near the tensor's end: loaded from their block-aligned start, copied by the scalar
    unit (a few points per tensor), so no load passes the tensor's last block."""
    gk = plan.geo.deformable_groups * plan.geo.taps
    lanes = plan_lib.block_lanes(plan.dtype)
    scratch, value = m.ub("row_scratch"), m.scalar(plan.dtype, "row_value", 0)
    for name, channel in plan.param_rows:
        first = start + channel
        phase = first % lanes
        m.dma(scratch, 0, params, first - phase, 1, (phase + gk + lanes - 1) // lanes)
        for e in range(gk):
            m.read(value, scratch, phase + e)
            m.write(m.ub(name + raw), local * plan.slot + e, value)


def write_base_pattern(m, geo, base_y, base_x):
    """Lanes g * K + k of base_y / base_x: base_position(geo, 0, 0, i, j), the tap part of a
    sample's undeformed position (the point part is plan_lib.base_shift)."""
    for g in range(geo.deformable_groups):
        for k in range(geo.taps):
            i, j = plan_lib.split_tap(geo, k)
            first_y, first_x = plan_lib.base_position(geo, 0, 0, i, j)
            m.write(base_y, g * geo.taps + k, float(first_y))
            m.write(base_x, g * geo.taps + k, float(first_x))


def sample_planes(m, geo, sample, lanes):
    """From the position planes py, px: floors, fractions, pixel indices, weights and the margin of
    every sample: y0 = floor(py), ly = py - y0, hy = 1 - ly (likewise x), addr = y0 * W + x0,
    w<dy><dx> = mask * (h_or_l_y * h_or_l_x) as the scalar rule computes them, and margin =
    min(y0, H-2-y0, x0, W-2-x0), >= 0 when all four corners are inside the image."""
    py, px, tmp, margin = m.ub("py"), m.ub("px"), m.ub("tmp"), m.ub("margin")
    y0, x0, addr = m.ub("y0"), m.ub("x0"), m.ub("addr")
    ly, lx, hy, hx = m.ub("ly"), m.ub("lx"), m.ub("hy"), m.ub("hx")
    m.vconv(y0, py, lanes, "floor")
    m.vconv(x0, px, lanes, "floor")
    m.vconv(tmp, y0, lanes)
    m.vsub(ly, py, tmp, lanes)
    _distance_to_last(m, margin, tmp, geo.height, lanes)
    m.vmuls(tmp, tmp, float(geo.width), lanes)
    m.vconv(hx, x0, lanes)  # hx holds float(x0) until it is computed below
    m.vsub(lx, px, hx, lanes)
    m.vadd(tmp, tmp, hx, lanes)  # y0 * W + x0, exact below 2**24 (the plan checks H * W)
    m.vconv(addr, tmp, lanes, "round")
    _distance_to_last(m, tmp, hx, geo.width, lanes)
    m.vmin(margin, margin, tmp, lanes)
    for one_minus, frac in ((hy, ly), (hx, lx)):
        m.vmuls(one_minus, frac, -1.0, lanes)
        m.vadds(one_minus, one_minus, 1.0, lanes)
    for dy, dx, _ in sample.corners():
        weight = m.ub("w%d%d" % (dy, dx))
        factor_y = hy if dy == 0 else ly
        factor_x = hx if dx == 0 else lx
        if geo.modulated:
            m.vmul(tmp, factor_y, factor_x, lanes)
            m.vmul(weight, m.ub("mask"), tmp, lanes)
        else:
            m.vmul(weight, factor_y, factor_x, lanes)


def _distance_to_last(m, dst, first, size, lanes):
    """dst = min(first, size - 2 - first): >= 0 when corners first and first + 1 are both inside
    [0, size - 1] (first: a plane of floors, whole numbers, as float32)."""
    m.vmuls(dst, first, -1.0, lanes)
    m.vadds(dst, dst, float(size - 2), lanes)
    m.vmin(dst, dst, first, lanes)


def each_corner(m, geo, sample, image, lane, body):
    """body(pixel, corner) for each corner inside the image of the sample at plane lane `lane`
    (in range); image: the first element of its image. All four when the margin says so, else
    each tested on the floors (Sample.for_each_corner)."""
    m.read(sample.pixel, m.ub("addr"), lane)
    sample.pixel.set_as(image + sample.pixel * geo.channels)
    m.read(sample.margin, m.ub("margin"), lane)

    def interior():
        for c in sample.corners():
            step = (c[0] * geo.width + c[1]) * geo.channels
            body(sample.pixel + step if step else sample.pixel, c)

    def border():
        m.read(sample.y0, m.ub("y0"), lane)
        m.read(sample.x0, m.ub("x0"), lane)
        sample.for_each_corner(m, geo, body)

    m.if_(sample.margin >= 0.0, interior, border)


# ----------------------------------------------------------------------------------------------
def forward(m, plan, x, params, y):
    """y[n, ho*kh+i, wo*kw+j, c] = mask * bilinear(x, py, px): one (n, ho, column tile) per task.

    Vector work carries the sampling arithmetic: each point's parameter rows are loaded into
    sample planes (lane local * slot + g * K + k, edvr_sampling_plan.SamplePlanes.slot), and whole
    planes of positions, floors, fractions, pixel indices and the four corner weights (mask folded
    in) are computed with multi-repeat vector instructions, in the same float32 operations and
    order as the scalar rule. The scalar unit keeps, per sample, the range test (docs/ops.md's rule and
    NaN: vec_sel on Ascend 910 takes one mask for every repeat, so it cannot carry it) and, per
    corner inside the image, the corner's address, its load and the weighted add."""
    geo = plan.geo
    sample = staged = staged_at = image = start = (
        None  # per core: TIK scalars live inside the core loop
    )

    def task(t):
        n, ho, tile = plan.split_task(t)
        wo_begin = tile * plan.tile_w
        static_choice(
            m,
            tile == plan.tiles_per_row - 1,
            plan.last_tile_w,
            plan.tile_w,
            lambda width: tile_body(n, ho, wo_begin, width),
        )

    def tile_body(n, ho, wo_begin, width):
        lanes = plan.plane_lanes(width)
        load_planes(
            m, plan, params, start, n * geo.points + ho * geo.out_w + wo_begin, width, lanes
        )
        shift_y, shift_x = plan_lib.base_shift(geo, ho, wo_begin)
        m.to_float(sample.base_y, shift_y)
        m.to_float(sample.base_x, shift_x)
        tmp = m.ub("tmp")
        for plane, base, shift in (
            ("py", "base_y", sample.base_y),
            ("px", "base_x", sample.base_x),
        ):
            m.vadds(tmp, m.ub(base), shift, lanes)  # whole numbers: exact
            m.vadd(m.ub(plane), m.ub(plane), tmp, lanes)
        sample_planes(m, geo, sample, lanes)
        image.set_as(plan_lib.x_pixel_offset(geo, n, 0, 0))
        m.fill(staged, 0, staged.elements, 0.0)
        m.for_range(0, width, column)
        out = staged
        if plan.needs_cast:
            out = m.ub("staged_cast")
            m.cast(out, staged, plan_lib.cast_chunks(0, staged.elements))
        for i in range(geo.kernel_h):
            m.dma(
                y,
                plan_lib.output_offset(geo, n, ho, i, wo_begin, 0),
                out,
                i * plan.row_elements(),
                1,
                plan.store_blocks(width),
            )

    def base_planes():
        """Per core: the tap part of every sample's undeformed position, base_position(0, local, i, j),
        written for point 0 by the scalar unit and moved to the other points by vector adds."""
        base_y, base_x = m.ub("base_y"), m.ub("base_x")
        write_base_pattern(m, geo, base_y, base_x)
        segments = plan_lib.lane_segments(0, plan.slot)
        step = plan_lib.base_shift(geo, 0, 1)[1]
        for local in range(1, plan.tile_w):
            m.adds(base_y, local * plan.slot, base_y, 0, 0.0, segments)
            m.adds(base_x, local * plan.slot, base_x, 0, float(local * step), segments)

    def column(local):
        sample.set_row(local * plan.slot)

        def tap(k):
            i, j = plan_lib.split_tap(geo, k)
            dst = staged_at
            dst.set_as(plan.staged_offset(i, local, j))  # once per tap, for all groups and corners
            for g in range(geo.deformable_groups):
                lane = sample.lane
                lane.set_as(
                    sample.row + (g * geo.taps + k)
                )  # once per sample, for its up to 9 reads
                m.read(sample.py, m.ub("py"), lane)
                m.read(sample.px, m.ub("px"), lane)
                m.if_(
                    sample.in_range(m, geo),
                    lambda g=g, lane=lane: accumulate(g, lane, dst),
                    lambda g=g: nan_or_zero(g, dst),
                )

        m.for_range(0, geo.taps, tap)

    def nan_or_zero(g, dst):
        """Out of range: the staged zeros stay, unless py or px is NaN (then NaN, per docs/ops.md).
        A flag, because no ordered comparison is true for NaN (and no scope is left empty)."""
        sample.numeric.set_as(0)
        m.if_(
            Sample.is_number(m, sample.py),
            lambda: m.if_(Sample.is_number(m, sample.px), lambda: sample.numeric.set_as(1)),
        )
        m.if_(
            sample.numeric < 1,
            lambda: m.fill_lanes(
                staged,
                dst,
                plan_lib.lane_segments(*plan_lib.group_lanes(geo, g)),
                sample.make_nan(),
            ),
        )

    def accumulate(g, lane, dst):
        segments = plan_lib.lane_segments(*plan_lib.group_lanes(geo, g))

        def corner(pixel, c):
            m.read(sample.weight, m.ub("w%d%d" % (c[0], c[1])), lane)
            src = load_group_row(m, plan, x, pixel, g, "corner")
            m.axpy(staged, dst, src, 0, sample.weight, segments)

        each_corner(m, geo, sample, image, lane, corner)

    def core_body(core):
        nonlocal sample, staged, staged_at, image, start
        sample, staged, staged_at = Sample(m), m.ub("staged"), m.scalar("int32", "staged_at", 0)
        image, start = m.scalar("int32", "image", 0), m.scalar("int32", "param_start", 0)
        base_planes()
        run_tasks(m, core, plan.split, task)

    m.launch(plan.split.cores, plan.layout, core_body)


# ----------------------------------------------------------------------------------------------
def backward(m, plan, grad, x, params, grad_x, grad_params, accumulator):
    """Gradients of `forward`. `accumulator` is grad_x (float32) or a float32 workspace (float16).
    Both phases take positions, weights, fractions and corner indices from sample planes, as
    `forward` does; a tile spans several output rows, so each point adds its own base shift."""
    geo = plan.geo
    sample = dots = d_mask = d_ly = d_lx = grad_at = image = start = param_row = None  # per core

    # Phase A: grad_x. One core owns (n, channel unit): zero, accumulate, (convert).
    def task_a(t):
        n, unit_index = plan.split_task_a(t)
        for index, unit in enumerate(plan.units):
            m.if_(unit_index == index, lambda unit=unit: unit_body(n, unit))

    def unit_body(n, unit):
        image = plan_lib.x_pixel_offset(geo, n, 0, 0)
        strided = m.ub("strided")
        f32_gap = plan.unit_gap_blocks(unit, F32)
        m.fill(strided, 0, strided.elements, 0.0)
        for first, pixels in plan.strided_runs():
            m.dma(
                accumulator,
                image + first * geo.channels + unit.lane_lo,
                strided,
                0,
                pixels,
                unit.lanes // plan_lib.block_lanes(F32),
                0,
                f32_gap,
            )
        # The scatter adds into GM by atomic add (float32), as CANN's DeformableOffsetsGrad does:
        # no GM element is read back and rewritten. This core zeroed the unit above (same store queue).
        m.atomic_add(True)
        accumulate_image(n, unit)
        m.atomic_add(False)
        if plan.accumulates_in_workspace:
            convert_unit(image, unit, f32_gap)

    def accumulate_image(n, unit):
        tiles = plan.point_tiles()

        def tile(t):
            first = t * plan.points_per_tile
            static_choice(
                m,
                t == tiles - 1,
                plan.last_point_tile(),
                plan.points_per_tile,
                lambda count: point_tile_a(n, unit, first, count),
            )

        m.for_range(0, tiles, tile)

    def point_tile_a(n, unit, first, count):
        """Sample planes of `count` points from point `first` of image n, then their scatter."""
        lanes = plan.plane_lanes(count)
        load_planes(m, plan, params, start, n * geo.points + first, count, lanes)
        m.for_range(0, count, lambda local: point_base(first + local, local))
        for plane, base in (("py", "base_y"), ("px", "base_x")):
            m.vadd(m.ub(plane), m.ub(plane), m.ub(base), lanes)
        sample_planes(m, geo, sample, lanes)
        image.set_as(plan_lib.x_pixel_offset(geo, n, 0, 0))
        m.for_range(0, count, lambda local: point_a(n, unit, first + local, local))

    def point_base(p, local):
        """The undeformed positions of point p's samples: the per-core tap pattern + its shift
        (a tile spans several output rows, so one shift per point)."""
        shift_y, shift_x = plan_lib.base_shift(geo, p // geo.out_w, p % geo.out_w)
        m.to_float(sample.base_y, shift_y)
        m.to_float(sample.base_x, shift_x)
        segments = plan_lib.lane_segments(0, plan.slot)
        m.adds(m.ub("base_y"), local * plan.slot, m.ub("pattern_y"), 0, sample.base_y, segments)
        m.adds(m.ub("base_x"), local * plan.slot, m.ub("pattern_x"), 0, sample.base_x, segments)

    def point_a(n, unit, p, local):
        ho, wo = p // geo.out_w, p % geo.out_w
        sample.set_row(local * plan.slot)

        def tap(k):
            i, j = plan_lib.split_tap(geo, k)
            grad_row = plan_lib.output_offset(geo, n, ho, i, wo, j)
            raw = m.ub("grad_in")
            lanes = plan_lib.block_lanes(plan.dtype)
            m.dma(raw, unit.lane_lo, grad, grad_row + unit.lane_lo, 1, unit.lanes // lanes)
            g_in = raw
            if plan.needs_cast:
                g_in = m.ub("grad_in_f32")
                m.cast(g_in, raw, plan_lib.cast_chunks(unit.lane_lo, unit.lanes))
            for g in range(unit.first_group, unit.end_group):
                sample.lane.set_as(
                    sample.row + (g * geo.taps + k)
                )  # once per sample, for its reads
                m.read(sample.py, m.ub("py"), sample.lane)
                m.read(sample.px, m.ub("px"), sample.lane)
                m.if_(sample.in_range(m, geo), lambda g=g: scatter(g, g_in))

        m.for_range(0, geo.taps, tap)

    def scatter(g, g_in):
        segments = plan_lib.lane_segments(*plan_lib.group_lanes(geo, g))
        first, blocks = plan_lib.group_window(geo, g, F32)
        contribution = m.ub("accum")
        # Lanes of the stored blocks outside group g add zero.
        m.fill(contribution, first, blocks * plan_lib.block_lanes(F32), 0.0)

        def corner(pixel, c):
            m.read(sample.weight, m.ub("w%d%d" % (c[0], c[1])), sample.lane)
            m.scale(contribution, 0, g_in, 0, sample.weight, segments)
            m.dma(accumulator, pixel + first, contribution, first, 1, blocks)  # atomic add

        each_corner(m, geo, sample, image, sample.lane, corner)

    def convert_unit(image, unit, f32_gap):
        strided, narrow = m.ub("strided"), m.ub("strided_cast")
        lanes = plan_lib.block_lanes(plan.dtype)
        for first, pixels in plan.strided_runs():
            offset = image + first * geo.channels + unit.lane_lo
            m.dma(
                strided,
                0,
                accumulator,
                offset,
                pixels,
                unit.lanes // plan_lib.block_lanes(F32),
                f32_gap,
                0,
            )
            m.cast(narrow, strided, plan_lib.cast_chunks(0, pixels * unit.lanes))
            m.dma(
                grad_x,
                offset,
                narrow,
                0,
                pixels,
                unit.lanes // lanes,
                0,
                plan.unit_gap_blocks(unit, plan.dtype),
            )

    # Phase B: gradient of the parameters, one block-aligned run of flat points per task.
    def task_b(t):
        first = plan.param_tile_first(t)
        static_choice(
            m,
            t == plan.param_tiles - 1,
            plan.last_param_tile,
            plan.param_tile,
            lambda count: param_tile_b(first, count),
        )

    def param_tile_b(first, count):
        lanes = plan.plane_lanes(count)
        load_planes(m, plan, params, start, first, count, lanes)
        m.for_range(0, count, lambda local: point_base((first + local) % geo.points, local))
        for plane, base in (("py", "base_y"), ("px", "base_x")):
            m.vadd(m.ub(plane), m.ub(plane), m.ub(base), lanes)
        sample_planes(m, geo, sample, lanes)
        staged = m.ub("grad_params")
        m.fill(staged, 0, staged.elements, 0.0)
        # Tiles start on a block (plan: multiples of the point quantum), so the staged gradients'
        # rows start at local * param_stride and their stores on whole blocks.
        m.for_range(0, count, lambda local: point_b(first + local, local, staged))
        out = staged
        if plan.needs_cast:
            out = m.ub("grad_params_cast")
            m.cast(out, staged, plan_lib.cast_chunks(0, staged.elements))
        for gm_start, ub_start, blocks in plan.param_store_windows(first, count):
            src, src_start = out, ub_start
            if ub_start % plan_lib.block_lanes(plan.dtype):  # ragged tail: gather one aligned block
                src, src_start = gather_tail(out, ub_start), 0
            m.dma(grad_params, gm_start, src, src_start, 1, blocks)

    def gather_tail(out, ub_start):
        tail = m.ub("tail")
        value = m.scalar(out.dtype, "tail_value", 0)
        for e in range(plan_lib.block_lanes(plan.dtype)):
            m.read(value, out, ub_start + e)
            m.write(tail, e, value)
        return tail

    def point_b(q, local, staged):
        n, ho, wo = plan_lib.split_point(geo, q)
        image.set_as(plan_lib.x_pixel_offset(geo, n, 0, 0))
        sample.set_row(local * plan.slot)
        param_row.set_as(local * geo.param_stride)

        def tap(k):
            i, j = plan_lib.split_tap(geo, k)
            grad_at.set_as(
                plan_lib.output_offset(geo, n, ho, i, wo, j)
            )  # once per tap, for all groups
            for g in range(geo.deformable_groups):
                sample.lane.set_as(
                    sample.row + (g * geo.taps + k)
                )  # once per sample, for its reads
                m.read(sample.py, m.ub("py"), sample.lane)
                m.read(sample.px, m.ub("px"), sample.lane)
                m.if_(sample.in_range(m, geo), lambda g=g: param_grads(g, k, staged))

        m.for_range(0, geo.taps, tap)

    def param_grads(g, k, staged):
        for name in ("hy", "hx", "ly", "lx"):
            m.read(getattr(sample, name), m.ub(name), sample.lane)
        if geo.modulated:
            m.read(sample.mask, m.ub("mask"), sample.lane)
        else:
            sample.mask.set_as(1.0)
        segments = plan_lib.lane_segments(*plan_lib.group_lanes(geo, g))
        g_in = load_group_row(m, plan, grad, grad_at, g, "grad_in")
        product = m.ub("product")
        for d in dots:  # corners outside the image keep 0
            d.set_as(0.0)

        def corner(pixel, c):
            src = load_group_row(m, plan, x, pixel, g, "corner")
            m.mul(product, 0, g_in, 0, src, 0, segments)
            m.masked_sum(dots[2 * c[0] + c[1]], product, 0, segments)

        each_corner(m, geo, sample, image, sample.lane, corner)
        # d/d(ly, lx, mask) of sum_c weight_c * dot_c, the weights' derivatives grouped by corner pair.
        d00, d01, d10, d11 = dots
        hy, hx, ly, lx = sample.hy, sample.hx, sample.ly, sample.lx
        d_ly.set_as(hx * (d10 - d00) + lx * (d11 - d01))
        d_lx.set_as(hy * (d01 - d00) + ly * (d11 - d10))
        d_mask.set_as(hy * (hx * d00 + lx * d01) + ly * (hx * d10 + lx * d11))
        dx_ch, dy_ch, mask_ch = plan_lib.param_channels(geo, g, k)
        m.write(staged, param_row + dx_ch, sample.mask * d_lx)
        m.write(staged, param_row + dy_ch, sample.mask * d_ly)
        if mask_ch is not None:
            m.write(staged, param_row + mask_ch, d_mask)

    cores = max(plan.split_a.cores, plan.split_b.cores)

    def core_body(core):
        nonlocal sample, dots, d_mask, d_ly, d_lx, grad_at, image, start, param_row
        grad_at, param_row = m.scalar("int32", "grad_at", 0), m.scalar("int32", "param_row", 0)
        image, start = m.scalar("int32", "image", 0), m.scalar("int32", "param_start", 0)
        sample = Sample(m)
        write_base_pattern(m, geo, m.ub("pattern_y"), m.ub("pattern_x"))
        dots = [m.scalar(F32, "dot%d" % c, 0) for c in range(4)]
        d_mask, d_ly, d_lx = (m.scalar(F32, name, 0) for name in ("d_mask", "d_ly", "d_lx"))
        run_tasks(m, core, plan.split_a, task_a)
        run_tasks(m, core, plan.split_b, task_b)

    m.launch(cores, plan.layout, core_body)
