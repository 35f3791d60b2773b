"""TIK back end of the machine interface used by edvr_sampling_program (Ascend 910 AI core).

Maps each call to TIK instructions. CANN's `tik` is imported only when a TikMachine is created,
so this module imports (and compiles) without the toolkit. The AI core count and UB size come from
CANN's profile at compile time (`device`).
Run in tests through tests/tbe/tik_double (our TIK double, written from CANN's documents); NOT
VERIFIED against CANN's own TIK (no CANN toolkit here).
"""

try:
    from . import edvr_sampling_plan as plan_lib
except ImportError:  # loaded as a top-level module by the op compiler
    import edvr_sampling_plan as plan_lib

CANN_MISSING = (
    "the EDVR TBE kernels need CANN's TIK (Python package `tbe` or `te` from the Ascend "
    "toolkit; source set_env.sh of the toolkit first). It could not be imported: %s"
)


def import_tik():
    """CANN's tik module, or RuntimeError with the reason and the fix."""
    errors = []
    for package in ("tbe", "te"):
        try:
            return __import__(package, fromlist=["tik"]).tik
        except (ImportError, AttributeError) as error:
            errors.append("%s: %s" % (package, error))
    raise RuntimeError(CANN_MISSING % "; ".join(errors))


class Handle:
    """A TIK tensor with the dtype and element count the program reads."""

    def __init__(self, tensor, dtype, elements):
        self.tensor, self.dtype, self.elements = tensor, dtype, elements


class TikMachine:
    def __init__(self):
        self.tik = import_tik()
        self.tik_instance = self.tik.Tik()
        profile = self.tik.Dprofile()
        self.device = plan_lib.Device(profile.get_aicore_num(), profile.get_unified_buffer_size())
        self._ub = {}
        self._reduce = None

    # ---- tensors
    def gm(self, name, dtype, size, workspace=False):
        tensor = self.tik_instance.Tensor(
            dtype, (size,), name=name, scope=self.tik.scope_gm, is_workspace=workspace
        )
        return Handle(tensor, dtype, size)

    def ub(self, name):
        return self._ub[name]

    def scalar(self, dtype, name, init):
        return self.tik_instance.Scalar(dtype, name=name, init_value=init)

    def build(self, kernel_name, inputs, outputs):
        self.tik_instance.BuildCCE(
            kernel_name=kernel_name,
            inputs=[h.tensor for h in inputs],
            outputs=[h.tensor for h in outputs],
        )
        return self.tik_instance

    # ---- control
    def launch(self, cores, layout, body):
        tik = self.tik
        with self.tik_instance.for_range(0, cores, block_num=cores) as core:
            self._ub = {
                b.name: Handle(
                    self.tik_instance.Tensor(
                        b.dtype, (b.elements,), name=b.name, scope=tik.scope_ubuf
                    ),
                    b.dtype,
                    b.elements,
                )
                for b in layout
            }
            lanes = plan_lib.F32_LANES_PER_REPEAT
            self._reduce = (
                self.tik_instance.Tensor(
                    "float32", (lanes,), name="reduce_dst", scope=tik.scope_ubuf
                ),
                self.tik_instance.Tensor(
                    "float32", (lanes,), name="reduce_work", scope=tik.scope_ubuf
                ),
            )
            body(core)

    def for_range(self, begin, end, body):
        with self.tik_instance.for_range(begin, end) as i:
            body(i)

    def if_(self, cond, then, otherwise=None):
        """then() or otherwise() by a run-time condition."""
        with self.tik_instance.if_scope(cond):
            then()
        if otherwise is not None:
            with self.tik_instance.else_scope():
                otherwise()

    def all_of(self, *conds):
        return self.tik.all(*conds)

    def any_of(self, *conds):
        return self.tik.any(*conds)

    def to_float(self, dst, value):
        if isinstance(value, int):
            dst.set_as(float(value))
            return
        as_int = self.tik_instance.Scalar("int32", name="as_int")
        as_int.set_as(value)
        self.tik_instance.scalar_conv("none", dst, as_int)

    # ---- data movement (offsets in elements; bursts and gaps in 32-byte blocks)
    def dma(self, dst, dst_off, src, src_off, nburst, burst, src_gap=0, dst_gap=0):
        self.tik_instance.data_move(
            dst.tensor[dst_off], src.tensor[src_off], 0, nburst, burst, src_gap, dst_gap
        )

    def atomic_add(self, on):
        """UB->GM moves add into float32 GM while on (Ascend 910 adds float32 only)."""
        self.tik_instance.set_atomic_add(1 if on else 0)

    # ---- vector instructions
    def fill(self, buf, off, lanes, value):
        per_repeat = plan_lib.REPEAT_BYTES // plan_lib.DTYPE_BYTES[buf.dtype]
        stride = plan_lib.REPEAT_BYTES // plan_lib.BLOCK_BYTES
        repeats, tail = divmod(lanes, per_repeat)
        done = 0
        while repeats:
            step = min(repeats, 255)
            self.tik_instance.vec_dup(per_repeat, buf.tensor[off + done], value, step, stride)
            done, repeats = done + step * per_repeat, repeats - step
        if tail:
            self.tik_instance.vec_dup(tail, buf.tensor[off + done], value, 1, stride)

    def fill_lanes(self, buf, off, segments, value):
        for seg in segments:
            self.tik_instance.vec_dup(seg.tik_mask, buf.tensor[off + seg.offset], value, 1, 8)

    def cast(self, dst, src, chunks):
        """float16 <-> float32 conversion of the given (lane offset, lanes) chunks."""
        dst_stride = (
            plan_lib.F32_LANES_PER_REPEAT * plan_lib.DTYPE_BYTES[dst.dtype] // plan_lib.BLOCK_BYTES
        )
        src_stride = (
            plan_lib.F32_LANES_PER_REPEAT * plan_lib.DTYPE_BYTES[src.dtype] // plan_lib.BLOCK_BYTES
        )
        full = [c for c in chunks if c[1] == plan_lib.F32_LANES_PER_REPEAT]
        i = 0
        while i < len(full):  # consecutive whole chunks go as one multi-repeat instruction
            step = min(255, len(full) - i)
            self.tik_instance.vec_conv(
                plan_lib.F32_LANES_PER_REPEAT,
                "",
                dst.tensor[full[i][0]],
                src.tensor[full[i][0]],
                step,
                dst_stride,
                src_stride,
            )
            i += step
        for offset, count in chunks:
            if count != plan_lib.F32_LANES_PER_REPEAT:
                self.tik_instance.vec_conv(
                    count, "", dst.tensor[offset], src.tensor[offset], 1, dst_stride, src_stride
                )

    def axpy(self, dst, dst_off, src, src_off, scalar, segments):
        for seg in segments:
            self.tik_instance.vec_axpy(
                seg.tik_mask,
                dst.tensor[dst_off + seg.offset],
                src.tensor[src_off + seg.offset],
                scalar,
                1,
                8,
                8,
            )

    def scale(self, dst, dst_off, src, src_off, scalar, segments):
        for seg in segments:
            self.tik_instance.vec_muls(
                seg.tik_mask,
                dst.tensor[dst_off + seg.offset],
                src.tensor[src_off + seg.offset],
                scalar,
                1,
                8,
                8,
            )

    def mul(self, dst, dst_off, a, a_off, b, b_off, segments):
        for seg in segments:
            self.tik_instance.vec_mul(
                seg.tik_mask,
                dst.tensor[dst_off + seg.offset],
                a.tensor[a_off + seg.offset],
                b.tensor[b_off + seg.offset],
                1,
                8,
                8,
                8,
            )

    def masked_sum(self, dst, src, off, segments):
        reduce_dst, work = self._reduce
        part = self.tik_instance.Scalar("float32", name="part")
        dst.set_as(0.0)
        for seg in segments:
            self.tik_instance.vec_reduce_add(
                seg.tik_mask, reduce_dst, src.tensor[off + seg.offset], work, 1, 8
            )
            part.set_as(reduce_dst[0])
            dst.set_as(dst + part)

    def adds(self, dst, dst_off, src, src_off, scalar, segments):
        for seg in segments:
            self.tik_instance.vec_adds(
                seg.tik_mask,
                dst.tensor[dst_off + seg.offset],
                src.tensor[src_off + seg.offset],
                scalar,
                1,
                8,
                8,
            )

    # ---- whole planes: lanes [0, lanes) of 32-bit UB planes, lanes a multiple of 64
    def _plane_repeats(self, lanes, emit):
        """emit(first lane, repeats) over instructions of at most 255 repeats of 64 lanes."""
        per_repeat = plan_lib.F32_LANES_PER_REPEAT
        done, repeats = 0, lanes // per_repeat
        while repeats:
            step = min(repeats, 255)
            emit(done, step)
            done, repeats = done + step * per_repeat, repeats - step

    def _plane_binary(self, instruction, dst, a, b, lanes):
        """dst = instruction(a, b) lane by lane (vec_add, vec_sub, ...), contiguous planes."""
        self._plane_repeats(
            lanes,
            lambda o, r: instruction(
                plan_lib.F32_LANES_PER_REPEAT, dst.tensor[o], a.tensor[o], b.tensor[o], r, 8, 8, 8
            ),
        )

    def _plane_with_scalar(self, instruction, dst, src, scalar, lanes):
        """dst = instruction(src, scalar) lane by lane (vec_adds, vec_muls), contiguous planes."""
        self._plane_repeats(
            lanes,
            lambda o, r: instruction(
                plan_lib.F32_LANES_PER_REPEAT, dst.tensor[o], src.tensor[o], scalar, r, 8, 8
            ),
        )

    def vadd(self, dst, a, b, lanes):
        self._plane_binary(self.tik_instance.vec_add, dst, a, b, lanes)

    def vsub(self, dst, a, b, lanes):
        self._plane_binary(self.tik_instance.vec_sub, dst, a, b, lanes)

    def vmin(self, dst, a, b, lanes):
        self._plane_binary(self.tik_instance.vec_min, dst, a, b, lanes)

    def vmul(self, dst, a, b, lanes):
        self._plane_binary(self.tik_instance.vec_mul, dst, a, b, lanes)

    def vadds(self, dst, src, scalar, lanes):
        self._plane_with_scalar(self.tik_instance.vec_adds, dst, src, scalar, lanes)

    def vmuls(self, dst, src, scalar, lanes):
        self._plane_with_scalar(self.tik_instance.vec_muls, dst, src, scalar, lanes)

    def vconv(self, dst, src, lanes, round_mode=""):
        """float32 -> int32 with round_mode ('floor', 'round'), or int32 -> float32 ('')."""
        self._plane_repeats(
            lanes,
            lambda o, r: self.tik_instance.vec_conv(
                plan_lib.F32_LANES_PER_REPEAT, round_mode, dst.tensor[o], src.tensor[o], r, 8, 8
            ),
        )

    # ---- scalar access
    def read(self, scalar, buf, index):
        scalar.set_as(buf.tensor[index])

    def write(self, buf, index, value):
        staged = self.tik_instance.Scalar(buf.dtype, name="staged_value")
        staged.set_as(value)
        buf.tensor[index].set_as(staged)
