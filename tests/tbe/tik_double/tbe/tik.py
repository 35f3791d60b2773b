"""A TIK double: the part of CANN's `tbe.tik` that the EDVR kernels call, executed on NumPy.

NOT CANN. This module is ours, written from CANN's public TIK documentation, so that the real
kernel files (kernels/tbe/tbe/impl) can be built and run where the toolkit cannot be installed.
With `PYTHONPATH=tests/tbe/tik_double`, `import_tik()` of edvr_tik_machine.py finds it exactly as
it would find CANN's `tbe.tik`. Tests that use it call only what CANN's TIK also has
(`Tik`, `Tensor`, `Scalar`, the instructions below, `BuildCCE`, `tikdb.start_debug`), so they run
unchanged against the real toolkit, with or without an NPU, where it is installed. Extras of the
double (`configure_profile`, `trace`, `gm_conflicts`, `cross_core_reads`) are for tests and
bench/ascend_estimate.py only.

How it runs. Building records the program: every instruction, scalar assignment and scope becomes
a statement; Python-level values (loop variables, Scalars, expressions of them) are evaluated when
the statement runs. `tikdb.start_debug(feed_dict, interactive=False)` executes the statements on
NumPy buffers, as TIK's debugger does on a CPU, and returns the outputs in BuildCCE order.
`for_range(0, n, block_num=n)` runs its n blocks one after the other, each with its own unified
buffer (UB tensors allocated inside the block are fresh, NaN-filled buffers per block) and its
own scalars; GM is shared. Unwritten GM outputs, workspaces, GM padding and fresh UB are NaN.

Limits enforced (TikError on violation), from CANN's documents for the Atlas training series
(Ascend 910):
* data_move(dst, src, sid, nburst, burst, src_stride, dst_stride): GM<->UB only here; sid in
  [0, 15]; nburst in [1, 4095]; burst in [1, 65535] blocks of 32 bytes; strides in [0, 65535]
  blocks; the UB address 32-byte aligned (a GM address need not be); dst and src of one dtype.
  Loads stay inside the GM tensor rounded up to a 32-byte block (our assumption: GM tensors are
  allocated in whole blocks), stores inside the tensor itself.
* vector instructions (vec_dup, vec_conv, vec_axpy, vec_muls, vec_adds, vec_mul, vec_add, vec_sub,
  vec_min, vec_reduce_add): operands
  in UB, 32-byte aligned (the vec_reduce_add destination: element aligned); repeat_times in
  [1, 255] (the documents allow 0, a no-op; the double refuses it because a zero repeat in our
  kernels would be a planning bug); repeat strides in [0, 255] blocks; every lane touched inside
  its tensor; mask in normal mode: an int in [1, lanes] (first lanes of every repeat) or a
  [high, low] bit pair of 64-bit words, lanes = 128 for float16 and 64 for float32 (for mixed
  dtypes, those of the wider type); dtypes per instruction as documented (below). Counter mask
  mode is not modelled.
* vec_conv(mask, round_mode, dst, src, repeat_times, dst_rep_stride, src_rep_stride):
  float16<->float32 ('', 'none'); float32->int32 ('round', 'floor', 'ceil', 'ceiling',
  'away-zero', 'to-zero'; overflow saturates, as documented; NaN is not documented: the double
  gives INT32_MIN); int32->float32 ('', 'none'). vec_add / vec_sub / vec_mul / vec_min (dst, src0, src1,
  three repeat strides) and vec_adds / vec_muls (dst, src, scalar, two strides): float16 or
  float32, one dtype for all operands, results rounded to it.
* scalar_conv(round_mode, dst, src): int32->float32 ('', 'none'), float32->int32 ('round',
  'away-zero', 'to-zero', 'floor', 'ceil', 'ceiling'), float16<->float32 ('', 'none'; 'odd' to
  float16). Scalars: int32 results outside int32 raise; float results round to the dtype after
  every operation; expressions mixing dtypes raise; `//` and `%` need non-negative operands
  (hardware division rounding of negatives is not documented for TIK expressions).
* set_atomic_add(mode): 0 off, 1 float32 (Ascend 910 accumulates float32 only; mode 2, float16,
  exists on other chips and is refused). While on, every UB->GM data_move adds into GM and must be
  float32. Atomic add left on when the kernel ends raises (CANN advises switching it off).
* UB capacity: the bytes of all live UB tensors (each rounded to 32 bytes) stay within
  `Dprofile().get_unified_buffer_size()`; a tensor lives until its scope closes.
* for_range(..., block_num=n): n in [1, 65535], begin 0 and end n, not nested in another loop;
  the double tracks GM writers per block for up to 64 blocks.

Instruction trace (read by bench/ascend_estimate.py): `tik_instance.trace` is a list of
TraceRecord, one per executed instruction, reset by every start_debug. Fields:
  core       block index (0 when the kernel has no multi-block loop)
  unit       "vector", "scalar", "dma" (or "cube": none of our kernels use it)
  op         TIK name: vec_dup, vec_conv, vec_axpy, vec_muls, vec_adds, vec_mul, vec_add, vec_sub,
             vec_min, vec_reduce_add, data_move, set_as (scalar <- expression), ub_to_scalar,
             scalar_to_ub, scalar_conv, set_atomic_add, for_range (one record per iteration:
             increment and compare), if_scope (one per test)
  repeat     vector: repeat_times; dma: nburst; scalar: scalar ALU operations the statement
             evaluates (at least 1: the move or compare itself, plus one per operator in its
             expressions)
  dtype      operand dtype; "source->destination" when they differ (vec_conv, mixed vec_axpy,
             scalar_conv), None for if_scope
  mask       vector: active lanes per repeat; otherwise None
  elements   vector: lanes processed (mask * repeat); dma: elements moved; scalar: 1
  nbytes     dma: bytes moved (nburst * burst * 32); otherwise 0
  direction  dma: "gm->ub" or "ub->gm"; otherwise None
  atomic     dma: True for a UB->GM move under set_atomic_add(1); otherwise False
  address_ops  vector and dma: scalar operations that evaluate the instruction's operands (the
             operators in its address, repeat, burst and stride expressions), work the scalar
             unit does to issue it; 0 for scalar records (their repeat includes it)

Sources (read, not copied; API names, argument orders and limits come from them):
* TIK API reference (Atlas training series): data_move
  https://www.hiascend.com/document/detail/en/canncommercial/800/apiref/aicpuopapi/atlastikapi_07_0100.html
  scalar_conv https://www.hiascend.com/document/detail/en/canncommercial/800/apiref/aicpuopapi/atlastikapi_07_0044.html
  vec_reduce_add (binary-tree sum within and across repeats)
  https://www.hiascend.com/document/detail/zh/canncommercial/601/operatordev/operatordevg/atlastikapi_07_0087.html
* TIK data movement guide (burst units, strides, GM/UB scopes, Tensor/Tik signatures)
  https://www.hiascend.com/document/detail/en/canncommercial/800/opdevg/tbeaicpudevg/atlasopdev_10_0053.html
* SetAtomicAdd product table (Atlas training series: float32 only, UB->GM only; GM is not zeroed)
  https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/910beta2/API/ascendcopapi/atlasascendc_api_07_0210.html
* CANN's built-in DeformableOffsetsGrad TIK kernel, impl/dynamic/deformable_offsets_grad_helper.py
  (opp built-in): core count and UB size read with tbe_platform.get_soc_spec(CORE_NUM / UB_SIZE),
  a 30-core variant noted, grad_x a float32 GM tensor with is_atomic_add=True, vec_dup/vconv loops
  of at most 255 repeats, 64 float32 lanes per repeat.
* vec_conv (conversions f322s32 with round modes, overflow saturating; s322f32)
  https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/850/API/aicpuopapi/atlastikapi_07_0083.html
  vec_add(mask, dst, src0, src1, repeat_times, dst_rep_stride, src0_rep_stride, src1_rep_stride)
  https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/850/API/aicpuopapi/atlastikapi_07_0065.html
  vec_sub (same arguments) .../atlastikapi_07_0066.html; vec_min and vec_adds from the same
  chapter (Atlas training series: float16/float32/int32; the double models the float types). vec_sel on the Atlas training series supports mode 0 only (one
  comparison mask for every repeat), atlastikapi_07_0081.html: why the kernels keep the range
  tests on the scalar unit.
* Ascend C ReduceSum / RepeatReduceSum pages (mask ranges [1, 128] for 16-bit, [1, 64] for 32-bit).
"""

import builtins
import contextlib
from collections import namedtuple

import numpy as np

_py_all, _py_any = builtins.all, builtins.any
scope_gm = "scope_gm"
scope_ubuf = "scope_ubuf"

BLOCK_BYTES = 32
REPEAT_BYTES = 256
MAX_REPEAT = 255
MAX_REP_STRIDE = 255
MAX_NBURST = 4095
MAX_BURST = 65535
MAX_DMA_STRIDE = 65535
MAX_BLOCK_NUM = 65535
TRACKED_BLOCKS = 64
DTYPE_BYTES = {
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "float16": 2,
    "int32": 4,
    "uint32": 4,
    "float32": 4,
    "int64": 8,
    "uint64": 8,
}
INT32_RANGE = (-(2**31), 2**31)

TraceRecord = namedtuple(
    "TraceRecord", "core unit op repeat dtype mask elements nbytes direction atomic address_ops"
)


class TikError(RuntimeError):
    """A documented TIK rule broken by the kernel (CANN's TIK raises at build or debug time)."""


# ---- platform profile ------------------------------------------------------------------------
_PROFILE = {"aicore_num": 32, "ub_size": 256 * 1024}  # Ascend 910A; CANN lists 30-core variants


def configure_profile(aicore_num=32, ub_size=256 * 1024):
    """Double only: the AI core count and UB bytes that Dprofile reports (tests run 30 and 32)."""
    if aicore_num < 1 or ub_size < BLOCK_BYTES or ub_size % BLOCK_BYTES:
        raise ValueError(
            "configure_profile: expected aicore_num >= 1 and ub_size a positive multiple "
            "of 32, got %r, %r" % (aicore_num, ub_size)
        )
    _PROFILE.update(aicore_num=int(aicore_num), ub_size=int(ub_size))


class Dprofile:
    """tik.Dprofile(): older CANN releases take (ai_core_arch, ai_core_version), newer none."""

    def __init__(self, *args, **kwargs):
        self._profile = dict(_PROFILE)

    def get_aicore_num(self):
        return self._profile["aicore_num"]

    def get_unified_buffer_size(self):
        return self._profile["ub_size"]


# ---- expressions -----------------------------------------------------------------------------
def _round(dtype):
    if dtype == "float32":
        return lambda v: float(np.float32(v))
    if dtype == "float16":
        return lambda v: float(np.float16(v))
    return None


def _const(value):
    return lambda: value


def _operand(x):
    """(dtype or None for an immediate, value function, operator count) of an expression operand."""
    if isinstance(x, Expr):
        return x.dtype, x._fn, x.ops
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TikError("expected a Scalar, an expression or a number, got %r" % (x,))
    return ("immediate_float" if isinstance(x, float) else None), _const(x), 0


def _result_dtype(a, b, what):
    if a in (None, "immediate_float"):
        a, b = b, a
    if b in (None, "immediate_float") or b == a:
        if b == "immediate_float" and not a.startswith("float"):
            raise TikError("%s: a float immediate with an %s expression" % (what, a))
        return a
    raise TikError(
        "%s: operands of different dtypes %s and %s (TIK needs one dtype)" % (what, a, b)
    )


def _ops(x):
    """Operators in an expression operand (0 for an immediate, a Scalar or a loop variable)."""
    return x.ops if isinstance(x, Expr) else 0


def _int_checked(value, what):
    if not INT32_RANGE[0] <= value < INT32_RANGE[1]:
        raise TikError("%s: int32 result %d out of range" % (what, value))
    return value


def _arith(name, op, reflected=False):
    def method(self, other):
        a, b = (other, self) if reflected else (self, other)
        da, fa, oa = _operand(a)
        db, fb, ob = _operand(b)
        dtype = _result_dtype(da, db, name)
        rnd = _round(dtype)
        if rnd is not None:
            fn = lambda: rnd(op(fa(), fb()))
        else:

            def fn():
                x, y = fa(), fb()
                if name in ("//", "%") and (x < 0 or y <= 0):
                    raise TikError("%s on negative or zero int operands (%d, %d)" % (name, x, y))
                return _int_checked(op(x, y), name)

        return Expr(dtype, fn, oa + ob + 1)

    return method


def _compare(name, op):
    def method(self, other):
        da, fa, oa = _operand(self)
        db, fb, ob = _operand(other)
        _result_dtype(da, db, name)
        return Cond(lambda: op(fa(), fb()), oa + ob + 1)

    return method


class Expr:
    """A TIK expression of Scalars, loop variables and immediates, evaluated when it runs."""

    __hash__ = object.__hash__

    def __init__(self, dtype, fn, ops):
        self.dtype, self._fn, self.ops = dtype, fn, ops

    def __bool__(self):
        raise TikError("a TIK expression has no Python truth value at build time; use if_scope")

    __add__ = _arith("+", lambda a, b: a + b)
    __radd__ = _arith("+", lambda a, b: a + b, reflected=True)
    __sub__ = _arith("-", lambda a, b: a - b)
    __rsub__ = _arith("-", lambda a, b: a - b, reflected=True)
    __mul__ = _arith("*", lambda a, b: a * b)
    __rmul__ = _arith("*", lambda a, b: a * b, reflected=True)
    __floordiv__ = _arith("//", lambda a, b: a // b)
    __mod__ = _arith("%", lambda a, b: a % b)
    __lt__ = _compare("<", lambda a, b: a < b)
    __le__ = _compare("<=", lambda a, b: a <= b)
    __gt__ = _compare(">", lambda a, b: a > b)
    __ge__ = _compare(">=", lambda a, b: a >= b)
    __eq__ = _compare("==", lambda a, b: a == b)
    __ne__ = _compare("!=", lambda a, b: a != b)


class Cond:
    """A condition for if_scope (comparisons, tik.all, tik.any)."""

    def __init__(self, fn, ops):
        self._fn, self.ops = fn, ops

    def __bool__(self):
        raise TikError("a TIK condition has no Python truth value at build time; use if_scope")


def all(*conds):  # noqa: A001  (TIK's name; evaluates every condition, as compiled code does)
    fns = [_cond(c) for c in conds]
    return Cond(lambda: _py_all([f() for f in fns]), sum(c.ops for c in conds))


def any(*conds):  # noqa: A001  (TIK's name)
    fns = [_cond(c) for c in conds]
    return Cond(lambda: _py_any([f() for f in fns]), sum(c.ops for c in conds))


def _cond(c):
    if not isinstance(c, Cond):
        raise TikError("expected a TIK condition (a comparison, tik.all or tik.any), got %r" % (c,))
    return c._fn


class LoopVar(Expr):
    def __init__(self, name, dtype):
        self.name, self.value = name, None
        Expr.__init__(self, dtype, lambda: self.value, 0)


class Scalar(Expr):
    """tik_instance.Scalar(dtype="int64", name="reg_buf", init_value=None)."""

    def __init__(self, tik, dtype, name, init_value):
        if dtype not in DTYPE_BYTES:
            raise TikError("Scalar %s: unsupported dtype %r" % (name, dtype))
        self._tik, self.name, self.value = tik, name, None
        Expr.__init__(self, dtype, self._read, 0)
        if init_value is not None:
            self.set_as(init_value)

    def _read(self):
        if self.value is None:
            raise TikError("Scalar %s read before it was set" % self.name)
        return self.value

    def _store(self, value):
        if self.dtype.startswith("float"):
            self.value = _round(self.dtype)(value)
        else:
            if not np.isfinite(value) or value != int(value):
                raise TikError(
                    "Scalar %s (%s): non-integer value %r" % (self.name, self.dtype, value)
                )
            self.value = _int_checked(int(value), "Scalar %s" % self.name)

    def set_as(self, value, src_offset=None):
        tik = self._tik
        if src_offset is not None:
            raise TikError("Scalar.set_as: src_offset is not modelled by the double")
        if isinstance(value, TensorSlice):
            tensor, offset, index_ops = value.tensor, value.offset_fn, value.ops
            if tensor.scope != scope_ubuf:
                raise TikError(
                    "Scalar %s: set_as from %s: the double reads scalars from UB only"
                    % (self.name, tensor.name)
                )
            if tensor.dtype != self.dtype:
                raise TikError(
                    "Scalar %s (%s): set_as from %s of dtype %s"
                    % (self.name, self.dtype, tensor.name, tensor.dtype)
                )

            def run():
                index = offset()
                tensor.check_index(index, "Scalar %s.set_as" % self.name)
                self._store(float(tensor.buffer()[index]))
                tik._record("scalar", "ub_to_scalar", 1 + index_ops, self.dtype)

            tik._emit(run)
            return
        dtype, fn, ops = _operand(value)
        if dtype is not None and dtype != "immediate_float" and dtype != self.dtype:
            raise TikError(
                "Scalar %s (%s): set_as from an expression of dtype %s"
                % (self.name, self.dtype, dtype)
            )
        if dtype == "immediate_float" and not self.dtype.startswith("float"):
            raise TikError("Scalar %s (%s): set_as from float %r" % (self.name, self.dtype, value))

        def run():
            self._store(fn())
            tik._record("scalar", "set_as", ops + 1, self.dtype)

        tik._emit(run)


# ---- tensors ---------------------------------------------------------------------------------
class Tensor:
    def __init__(self, tik, dtype, shape, scope, name, is_workspace, is_atomic_add):
        if dtype not in DTYPE_BYTES:
            raise TikError("Tensor %s: unsupported dtype %r" % (name, dtype))
        if scope not in (scope_gm, scope_ubuf):
            raise TikError(
                "Tensor %s: scope %r is not modelled (scope_gm, scope_ubuf)" % (name, scope)
            )
        size = 1
        for s in shape:
            if not isinstance(s, int) or s < 1:
                raise TikError("Tensor %s: shape %r must be positive ints" % (name, shape))
            size *= s
        self.dtype, self.shape, self.scope, self.name, self.size = (
            dtype,
            tuple(shape),
            scope,
            name,
            size,
        )
        self.is_workspace, self.is_atomic_add = is_workspace, is_atomic_add
        self.itemsize = DTYPE_BYTES[dtype]
        self.block_lanes = BLOCK_BYTES // self.itemsize
        self.nbytes = -(-size * self.itemsize // BLOCK_BYTES) * BLOCK_BYTES
        self.padded = self.nbytes // self.itemsize
        self.data = None

    def buffer(self):
        if self.data is None:
            raise TikError("tensor %s used outside the scope that allocates it" % self.name)
        return self.data

    def fresh(self):
        """GM padding, outputs, workspaces and new UB hold NaN (poison) or a sentinel for ints."""
        fill = np.nan if self.dtype.startswith("float") else -12345
        self.data = np.full(self.padded, fill, dtype=self.dtype)
        if self.scope == scope_gm:
            self.any_writers = np.zeros(self.padded, dtype=np.uint64)
            self.plain_writers = np.zeros(self.padded, dtype=np.uint64)

    def check_index(self, index, what):
        if not 0 <= index < self.size:
            raise TikError(
                "%s: index %d outside %s (%d elements)" % (what, index, self.name, self.size)
            )

    def __getitem__(self, index):
        if isinstance(index, slice):
            raise TikError("tensor slices a:b are not modelled by the double; index one element")
        return TensorSlice(self, index)


class TensorSlice:
    """tensor[index]: an address for instructions, or one element for set_as."""

    def __init__(self, tensor, index):
        dtype, fn, _ = _operand(index)
        if dtype not in (None, "int32", "int64", "uint32"):
            raise TikError("%s[...]: index of dtype %s" % (tensor.name, dtype))
        self.tensor, self.offset_fn, self.ops = tensor, fn, _ops(index)

    def set_as(self, value):
        tensor, offset, tik, index_ops = self.tensor, self.offset_fn, self.tensor.tik, self.ops
        if tensor.scope != scope_ubuf:
            raise TikError("%s[...].set_as: the double writes scalars to UB only" % tensor.name)
        dtype, fn, ops = _operand(value)
        if dtype not in (None, "immediate_float", tensor.dtype):
            raise TikError(
                "%s[...].set_as: value of dtype %s into a %s tensor"
                % (tensor.name, dtype, tensor.dtype)
            )

        def run():
            index = offset()
            tensor.check_index(index, "%s[...].set_as" % tensor.name)
            tensor.buffer()[index] = fn()
            tik._record("scalar", "scalar_to_ub", ops + 1 + index_ops, tensor.dtype)

        tik._emit(run)


def _address(x, what):
    """(tensor, offset value function, operators in the offset) of an instruction operand."""
    if isinstance(x, Tensor):
        return x, _const(0), 0
    if isinstance(x, TensorSlice):
        return x.tensor, x.offset_fn, x.ops
    raise TikError("%s: expected a Tensor or tensor[index], got %r" % (what, x))


def _int_arg(x, what, lo, hi):
    """Value function of an int argument (immediate or int Scalar/Expr) checked against [lo, hi]."""
    dtype, fn, _ = _operand(x)
    if dtype is not None and not dtype.startswith(("int", "uint")):
        raise TikError("%s: expected an int, got a %s value" % (what, dtype))

    def checked():
        v = fn()
        if not lo <= v <= hi:
            raise TikError("%s = %d outside [%d, %d]" % (what, v, lo, hi))
        return v

    if dtype is None:
        checked()  # immediates are checked when the instruction is built, as TIK does
    return checked


# ---- vector helpers --------------------------------------------------------------------------
def _mask_lanes(mask, lanes, what):
    """Lane numbers selected in each repeat by a normal-mode mask (int or [high, low])."""
    if isinstance(mask, bool):
        raise TikError("%s: mask %r" % (what, mask))
    if isinstance(mask, int):
        if not 1 <= mask <= lanes:
            raise TikError("%s: mask %d outside [1, %d]" % (what, mask, lanes))
        return np.arange(mask)
    if (
        isinstance(mask, (list, tuple))
        and len(mask) == 2
        and _py_all(isinstance(m, int) for m in mask)
    ):
        high, low = mask
        if not (0 <= high < 2**64 and 0 <= low < 2**64) or high == low == 0:
            raise TikError("%s: mask %r must be two 64-bit words, not both 0" % (what, mask))
        if lanes == 64 and high:
            raise TikError(
                "%s: mask %r: the high word must be 0 for 64 lanes (32-bit dtypes)" % (what, mask)
            )
        bits = low | high << 64
        return np.array([b for b in range(lanes) if bits >> b & 1])
    raise TikError(
        "%s: mask %r must be an int or [high, low] (counter mode is not modelled)" % (what, mask)
    )


class _Operand:
    """One vector operand: a UB tensor, its start offset and its repeat stride in blocks."""

    def __init__(self, x, rep_stride, what, aligned=True):
        self.tensor, self.offset_fn, self.ops = _address(x, what)
        self.ops += _ops(rep_stride)
        if self.tensor.scope != scope_ubuf:
            raise TikError(
                "%s: operand %s must be in UB, got %s" % (what, self.tensor.name, self.tensor.scope)
            )
        self.stride_fn = _int_arg(rep_stride, what + " repeat stride", 0, MAX_REP_STRIDE)
        self.what, self.aligned = what, aligned

    def indices(self, lanes, repeat):
        t = self.tensor
        offset = self.offset_fn()
        if self.aligned and offset % t.block_lanes:
            raise TikError(
                "%s: %s at element %d is not 32-byte aligned" % (self.what, t.name, offset)
            )
        step = self.stride_fn() * t.block_lanes
        idx = offset + (np.arange(repeat) * step)[:, None] + lanes[None, :]
        if idx.min() < 0 or idx.max() >= t.size:
            raise TikError(
                "%s: lanes [%d, %d] of %s outside its %d elements"
                % (self.what, idx.min(), idx.max(), t.name, t.size)
            )
        return idx


def _tree_sum(values, dtype):
    """Pairwise (binary-tree) sum along the last axis, rounding to dtype after every level."""
    values = values.astype(dtype)
    while values.shape[-1] > 1:
        if values.shape[-1] % 2:
            values = np.concatenate([values, np.zeros(values.shape[:-1] + (1,), dtype)], axis=-1)
        values = (values[..., 0::2] + values[..., 1::2]).astype(dtype)
    return values[..., 0]


class _If:
    def __init__(self, tik, cond):
        self.tik, self.cond, self.ops = tik, cond._fn, cond.ops
        self.body, self.orelse = [], None

    def __call__(self):
        self.tik._record("scalar", "if_scope", self.ops, None)
        if self.cond():
            _run(self.body)
        elif self.orelse is not None:
            _run(self.orelse)


def _run(body):
    for statement in body:
        statement()


# vec_conv: the conversions the kernels use, with the round modes CANN documents for them.
_VEC_CONV_MODES = {
    ("float16", "float32"): ("", "none"),
    ("float32", "float16"): ("", "none"),
    ("float32", "int32"): ("round", "floor", "ceil", "ceiling", "away-zero", "to-zero"),
    ("int32", "float32"): ("", "none"),
}
_TO_INT = {
    "round": np.rint,
    "floor": np.floor,
    "ceil": np.ceil,
    "ceiling": np.ceil,
    "to-zero": np.trunc,
    "away-zero": lambda v: np.sign(v) * np.ceil(np.abs(v)),
}


def _saturate_int32(values):
    """float32 -> int32 as vec_conv documents it: overflow saturates. NaN is not documented; the
    double gives INT32_MIN (our kernels convert NaN positions but never read the result)."""
    values = np.where(np.isnan(values), INT32_RANGE[0], values)
    return np.clip(values, INT32_RANGE[0], INT32_RANGE[1] - 1)


# ---- the instance ----------------------------------------------------------------------------
class Tik:
    def __init__(self, profiling=None, disable_debug=False, err_msg_level=0):
        self._profile = Dprofile()
        self._body = [[]]  # statement lists of the open scopes
        self._ub_scopes = [[]]  # UB tensors allocated in each open scope
        self._ub_live = 0
        self._in_loop = 0
        self._gm = []
        self._built = None
        self._core = 0
        self._atomic = 0
        self.trace = []
        self.cross_core_reads = []
        self.tikdb = _Debugger(self)

    # build-time plumbing
    def _emit(self, statement):
        if self._built is not None:
            raise TikError("instruction after BuildCCE")
        self._body[-1].append(statement)

    def _record(
        self,
        unit,
        op,
        repeat,
        dtype,
        mask=None,
        elements=1,
        nbytes=0,
        direction=None,
        atomic=False,
        address_ops=0,
    ):
        self.trace.append(
            TraceRecord(
                self._core,
                unit,
                op,
                repeat,
                dtype,
                mask,
                elements,
                nbytes,
                direction,
                atomic,
                address_ops,
            )
        )

    @contextlib.contextmanager
    def _scope(self):
        self._body.append([])
        self._ub_scopes.append([])
        try:
            yield self._body[-1]
        finally:
            self._body.pop()
            self._ub_live -= sum(t.nbytes for t in self._ub_scopes.pop())

    # tensors and scalars
    def Tensor(
        self,
        dtype,
        shape,
        scope,
        name,
        enable_buffer_reuse=False,
        no_reuse_list=None,
        reuse_list=None,
        is_workspace=False,
        is_atomic_add=False,
    ):
        tensor = Tensor(self, dtype, shape, scope, name, is_workspace, is_atomic_add)
        tensor.tik = self
        if scope == scope_gm:
            if len(self._body) > 1:
                raise TikError("GM tensor %s declared inside a scope" % name)
            if name in [t.name for t in self._gm]:
                raise TikError("two GM tensors named %s" % name)
            self._gm.append(tensor)
            return tensor
        capacity = self._profile.get_unified_buffer_size()
        if self._ub_live + tensor.nbytes > capacity:
            raise TikError(
                "UB tensor %s (%d bytes): %d bytes live, capacity %d"
                % (name, tensor.nbytes, self._ub_live, capacity)
            )
        self._ub_live += tensor.nbytes
        self._ub_scopes[-1].append(tensor)
        self._emit(tensor.fresh)  # each execution of the scope (each block) gets a fresh buffer
        return tensor

    def Scalar(self, dtype="int64", name="reg_buf", init_value=None):
        return Scalar(self, dtype, name, init_value)

    # control flow
    @contextlib.contextmanager
    def for_range(
        self,
        begin,
        end,
        name="i",
        thread_num=1,
        thread_type="whole",
        block_num=1,
        dtype="int32",
        for_type="serial",
    ):
        if thread_num != 1 or for_type != "serial":
            raise TikError(
                "for_range: thread_num %r / for_type %r are not modelled" % (thread_num, for_type)
            )
        var = LoopVar(name, dtype)
        if block_num != 1:
            if not (isinstance(block_num, int) and 1 <= block_num <= MAX_BLOCK_NUM):
                raise TikError(
                    "for_range: block_num %r outside [1, %d]" % (block_num, MAX_BLOCK_NUM)
                )
            if (begin, end) != (0, block_num) or self._in_loop:
                raise TikError(
                    "for_range with block_num=%d must be the outermost loop over [0, %d), got "
                    "[%r, %r)" % (block_num, block_num, begin, end)
                )
            if block_num > TRACKED_BLOCKS:
                raise TikError(
                    "for_range: the double tracks GM writers of at most %d blocks" % TRACKED_BLOCKS
                )
        begin_fn, end_fn = _int_arg(begin, "for_range begin", 0, 2**31 - 1), _operand(end)[1]
        self._in_loop += 1
        try:
            with self._scope() as body:
                yield var
        finally:
            self._in_loop -= 1

        if block_num != 1:

            def run():
                for core in range(block_num):
                    self._core, var.value = core, core
                    _run(body)
                    if self._atomic:
                        raise TikError(
                            "block %d ends with set_atomic_add(%d) still on" % (core, self._atomic)
                        )
                self._core = 0
        else:

            def run():
                for i in range(begin_fn(), end_fn()):
                    var.value = i
                    self._record("scalar", "for_range", 1, dtype)
                    _run(body)

        self._emit(run)

    @contextlib.contextmanager
    def if_scope(self, cond):
        statement = _If(self, cond if isinstance(cond, Cond) else _bad_cond(cond))
        with self._scope() as body:
            yield
        statement.body = body
        self._emit(statement)

    @contextlib.contextmanager
    def else_scope(self):
        previous = self._body[-1][-1] if self._body[-1] else None
        if not isinstance(previous, _If) or previous.orelse is not None:
            raise TikError("else_scope must directly follow an if_scope")
        with self._scope() as body:
            yield
        previous.orelse = body

    # scalar instructions
    def scalar_conv(self, round_mode, dst, src):
        allowed = {
            ("int32", "float32"): ("", "none"),
            ("float16", "float32"): ("", "none"),
            ("float32", "float16"): ("", "none", "odd"),
            ("float32", "int32"): ("round", "away-zero", "to-zero", "floor", "ceil", "ceiling"),
        }
        if not (isinstance(dst, Scalar) and isinstance(src, Scalar)):
            raise TikError("scalar_conv: dst and src must be Scalars")
        modes = allowed.get((src.dtype, dst.dtype))
        if modes is None or round_mode not in modes:
            raise TikError(
                "scalar_conv %s -> %s with round_mode %r: supported %r"
                % (src.dtype, dst.dtype, round_mode, modes)
            )
        to_int = {
            "round": np.rint,
            "floor": np.floor,
            "ceil": np.ceil,
            "ceiling": np.ceil,
            "to-zero": np.trunc,
            "away-zero": lambda v: np.sign(v) * np.ceil(abs(v)),
        }.get(round_mode)
        if round_mode == "odd":
            raise TikError("scalar_conv: round_mode 'odd' is not modelled by the double")

        def run():
            value = src._read()
            if to_int is not None:
                if not np.isfinite(value):
                    raise TikError("scalar_conv %s of %r to int32" % (round_mode, value))
                value = float(to_int(value))
            dst._store(value)
            self._record("scalar", "scalar_conv", 1, src.dtype + "->" + dst.dtype)

        self._emit(run)

    def set_atomic_add(self, mode):
        if mode not in (0, 1):
            raise TikError(
                "set_atomic_add(%r): Ascend 910 supports 0 (off) and 1 (float32) only" % (mode,)
            )

        def run():
            self._atomic = mode
            self._record("scalar", "set_atomic_add", 1, "float32" if mode else None)

        self._emit(run)

    # data movement
    def data_move(self, dst, src, sid, nburst, burst, src_stride, dst_stride, *args, **argv):
        dst_t, dst_off, dst_ops = _address(dst, "data_move dst")
        src_t, src_off, src_ops = _address(src, "data_move src")
        address_ops = (
            dst_ops + src_ops + sum(_ops(x) for x in (nburst, burst, src_stride, dst_stride))
        )
        if dst_t.dtype != src_t.dtype:
            raise TikError(
                "data_move %s -> %s: dtypes %s and %s differ"
                % (src_t.name, dst_t.name, src_t.dtype, dst_t.dtype)
            )
        scopes = (src_t.scope, dst_t.scope)
        if scopes not in ((scope_gm, scope_ubuf), (scope_ubuf, scope_gm)):
            raise TikError(
                "data_move %s -> %s: only GM->UB and UB->GM are modelled, got %s -> %s"
                % ((src_t.name, dst_t.name) + scopes)
            )
        _int_arg(sid, "data_move sid", 0, 15)
        nburst_fn = _int_arg(nburst, "data_move nburst", 1, MAX_NBURST)
        burst_fn = _int_arg(burst, "data_move burst", 1, MAX_BURST)
        src_gap_fn = _int_arg(src_stride, "data_move src_stride", 0, MAX_DMA_STRIDE)
        dst_gap_fn = _int_arg(dst_stride, "data_move dst_stride", 0, MAX_DMA_STRIDE)
        load = src_t.scope == scope_gm
        ub, gm = (dst_t, src_t) if load else (src_t, dst_t)
        lanes = ub.block_lanes

        def run():
            nb, bl, src_gap, dst_gap = nburst_fn(), burst_fn(), src_gap_fn(), dst_gap_fn()
            d0, s0 = dst_off(), src_off()
            ub_start = s0 if not load else d0
            if ub_start % lanes:
                raise TikError(
                    "data_move: UB address %s[%d] is not 32-byte aligned" % (ub.name, ub_start)
                )
            atomic = bool(self._atomic) and not load
            if atomic and gm.dtype != "float32":
                raise TikError(
                    "data_move into %s under set_atomic_add: Ascend 910 adds float32 only, got %s"
                    % (gm.name, gm.dtype)
                )
            n = bl * lanes
            bit = np.uint64(1 << self._core)
            for b in range(nb):
                d, s = d0 + b * (bl + dst_gap) * lanes, s0 + b * (bl + src_gap) * lanes
                u, g = (d, s) if load else (s, d)
                if u < 0 or u + n > ub.size:
                    raise TikError(
                        "data_move: UB %s[%d:%d] outside its %d elements"
                        % (ub.name, u, u + n, ub.size)
                    )
                limit = gm.padded if load else gm.size
                if g < 0 or g + n > limit:
                    raise TikError(
                        "data_move: GM %s[%d:%d] outside %d elements%s"
                        % (gm.name, g, g + n, limit, " (rounded up to a block)" if load else "")
                    )
                if load:
                    others = gm.any_writers[g : g + n] & ~bit
                    if others.any():
                        self.cross_core_reads.append((self._core, gm.name, g, n))
                    ub.buffer()[u : u + n] = gm.data[g : g + n]
                else:
                    if atomic:
                        gm.data[g : g + n] = gm.data[g : g + n] + ub.buffer()[u : u + n]
                    else:
                        gm.data[g : g + n] = ub.buffer()[u : u + n]
                        gm.plain_writers[g : g + n] |= bit
                    gm.any_writers[g : g + n] |= bit
            self._record(
                "dma",
                "data_move",
                nb,
                gm.dtype,
                None,
                nb * n,
                nb * n * gm.itemsize,
                "gm->ub" if load else "ub->gm",
                atomic,
                address_ops,
            )

        self._emit(run)

    # vector instructions
    def _vector(self, name, mask, repeat_times, dtypes, operands, compute, scalar=None):
        lanes_per_repeat = REPEAT_BYTES // max(DTYPE_BYTES[d] for d in dtypes)
        lanes = _mask_lanes(mask, lanes_per_repeat, name)
        repeat_fn = _int_arg(repeat_times, name + " repeat_times", 1, MAX_REPEAT)
        label = (
            "->".join(sorted(set(dtypes), key=dtypes.index)) if len(set(dtypes)) > 1 else dtypes[0]
        )
        address_ops = sum(op.ops for op in operands) + _ops(repeat_times) + _ops(scalar)

        def run():
            repeat = repeat_fn()
            idx = [op.indices(lanes, repeat) for op in operands]
            with np.errstate(invalid="ignore", over="ignore"):
                compute(idx, repeat)
            self._record(
                "vector",
                name,
                repeat,
                label,
                len(lanes),
                len(lanes) * repeat,
                address_ops=address_ops,
            )

        self._emit(run)

    def vec_dup(self, mask, dst, scalar, repeat_times, dst_rep_stride):
        out = _Operand(dst, dst_rep_stride, "vec_dup dst")
        if out.tensor.dtype not in ("float16", "float32", "int16", "int32", "uint16", "uint32"):
            raise TikError("vec_dup: dst dtype %s" % out.tensor.dtype)
        value = self._scalar_value(scalar, out.tensor.dtype, "vec_dup")

        def compute(idx, repeat):
            out.tensor.buffer()[idx[0]] = value()

        self._vector("vec_dup", mask, repeat_times, [out.tensor.dtype], [out], compute, scalar)

    def vec_conv(
        self,
        mask,
        round_mode,
        dst,
        src,
        repeat_times,
        dst_rep_stride,
        src_rep_stride,
        deqscale=None,
        ldst_high_half=False,
    ):
        out, a = (
            _Operand(dst, dst_rep_stride, "vec_conv dst"),
            _Operand(src, src_rep_stride, "vec_conv src"),
        )
        pair = (a.tensor.dtype, out.tensor.dtype)
        modes = _VEC_CONV_MODES.get(pair)
        if modes is None or round_mode not in modes or deqscale is not None or ldst_high_half:
            raise TikError(
                "vec_conv %s -> %s with round_mode %r: the double models %s"
                % (
                    pair
                    + (
                        round_mode,
                        ", ".join(
                            "%s->%s %r" % (k + (v,)) for k, v in sorted(_VEC_CONV_MODES.items())
                        ),
                    )
                )
            )
        to_int = _TO_INT.get(round_mode) if pair == ("float32", "int32") else None

        def compute(idx, repeat):
            values = a.tensor.buffer()[idx[1]]
            if to_int is not None:
                values = _saturate_int32(to_int(values.astype(np.float64)))
            out.tensor.buffer()[idx[0]] = values.astype(out.tensor.dtype)

        self._vector("vec_conv", mask, repeat_times, list(pair), [out, a], compute)

    def vec_axpy(self, mask, dst, src, scalar, repeat_times, dst_rep_stride, src_rep_stride):
        out, a = (
            _Operand(dst, dst_rep_stride, "vec_axpy dst"),
            _Operand(src, src_rep_stride, "vec_axpy src"),
        )
        pair = (a.tensor.dtype, out.tensor.dtype)
        if pair not in (("float16", "float16"), ("float32", "float32"), ("float16", "float32")):
            raise TikError("vec_axpy: src %s, dst %s not supported" % pair)
        value = self._scalar_value(scalar, a.tensor.dtype, "vec_axpy")
        acc = out.tensor.dtype

        def compute(idx, repeat):
            d = out.tensor.buffer()
            d[idx[0]] = (
                d[idx[0]] + a.tensor.buffer()[idx[1]].astype(acc) * np.dtype(acc).type(value())
            ).astype(acc)

        self._vector("vec_axpy", mask, repeat_times, list(pair), [out, a], compute, scalar)

    def _with_scalar(
        self, name, op, mask, dst, src, scalar, repeat_times, dst_rep_stride, src_rep_stride
    ):
        out, a = (
            _Operand(dst, dst_rep_stride, name + " dst"),
            _Operand(src, src_rep_stride, name + " src"),
        )
        dtype = self._same_float_dtype(name, out, a)
        value = self._scalar_value(scalar, dtype, name)

        def compute(idx, repeat):
            out.tensor.buffer()[idx[0]] = op(
                a.tensor.buffer()[idx[1]], np.dtype(dtype).type(value())
            )

        self._vector(name, mask, repeat_times, [dtype], [out, a], compute, scalar)

    def vec_muls(self, mask, dst, src, scalar, repeat_times, dst_rep_stride, src_rep_stride):
        self._with_scalar(
            "vec_muls",
            np.multiply,
            mask,
            dst,
            src,
            scalar,
            repeat_times,
            dst_rep_stride,
            src_rep_stride,
        )

    def vec_adds(self, mask, dst, src, scalar, repeat_times, dst_rep_stride, src_rep_stride):
        self._with_scalar(
            "vec_adds", np.add, mask, dst, src, scalar, repeat_times, dst_rep_stride, src_rep_stride
        )

    def _binary(
        self,
        name,
        op,
        mask,
        dst,
        src0,
        src1,
        repeat_times,
        dst_rep_stride,
        src0_rep_stride,
        src1_rep_stride,
    ):
        out = _Operand(dst, dst_rep_stride, name + " dst")
        a, b = (
            _Operand(src0, src0_rep_stride, name + " src0"),
            _Operand(src1, src1_rep_stride, name + " src1"),
        )
        dtype = self._same_float_dtype(name, out, a, b)

        def compute(idx, repeat):
            out.tensor.buffer()[idx[0]] = op(a.tensor.buffer()[idx[1]], b.tensor.buffer()[idx[2]])

        self._vector(name, mask, repeat_times, [dtype], [out, a, b], compute)

    def vec_mul(
        self, mask, dst, src0, src1, repeat_times, dst_rep_stride, src0_rep_stride, src1_rep_stride
    ):
        self._binary(
            "vec_mul",
            np.multiply,
            mask,
            dst,
            src0,
            src1,
            repeat_times,
            dst_rep_stride,
            src0_rep_stride,
            src1_rep_stride,
        )

    def vec_add(
        self, mask, dst, src0, src1, repeat_times, dst_rep_stride, src0_rep_stride, src1_rep_stride
    ):
        self._binary(
            "vec_add",
            np.add,
            mask,
            dst,
            src0,
            src1,
            repeat_times,
            dst_rep_stride,
            src0_rep_stride,
            src1_rep_stride,
        )

    def vec_sub(
        self, mask, dst, src0, src1, repeat_times, dst_rep_stride, src0_rep_stride, src1_rep_stride
    ):
        self._binary(
            "vec_sub",
            np.subtract,
            mask,
            dst,
            src0,
            src1,
            repeat_times,
            dst_rep_stride,
            src0_rep_stride,
            src1_rep_stride,
        )

    def vec_min(
        self, mask, dst, src0, src1, repeat_times, dst_rep_stride, src0_rep_stride, src1_rep_stride
    ):
        """NaN operands are not documented; the double propagates them (our kernels read vec_min
        results only where both operands are whole numbers)."""
        self._binary(
            "vec_min",
            np.minimum,
            mask,
            dst,
            src0,
            src1,
            repeat_times,
            dst_rep_stride,
            src0_rep_stride,
            src1_rep_stride,
        )

    def vec_reduce_add(self, mask, dst, src, work_tensor, repeat_times, src_rep_stride):
        out = _Operand(dst, 0, "vec_reduce_add dst", aligned=False)
        a = _Operand(src, src_rep_stride, "vec_reduce_add src")
        work = _Operand(work_tensor, 1, "vec_reduce_add work_tensor")
        dtype = self._same_float_dtype("vec_reduce_add", out, a, work)
        lanes_per_repeat = REPEAT_BYTES // DTYPE_BYTES[dtype]
        selected = _mask_lanes(mask, lanes_per_repeat, "vec_reduce_add")

        def compute(idx, repeat):
            # Every repeat sums its masked lanes as a binary tree; the repeat sums likewise.
            values = np.zeros((repeat, lanes_per_repeat), dtype)
            values[:, selected] = a.tensor.buffer()[idx[1]]
            partial = _tree_sum(values, dtype)
            work_idx = work.offset_fn() + np.arange(repeat)
            if work_idx[-1] >= work.tensor.size:
                raise TikError(
                    "vec_reduce_add: work_tensor %s needs %d elements" % (work.tensor.name, repeat)
                )
            work.tensor.buffer()[work_idx] = partial
            out.tensor.buffer()[idx[0][0, 0]] = _tree_sum(partial[None, :], dtype)[0]

        self._vector(
            "vec_reduce_add",
            mask,
            repeat_times,
            [dtype],
            [_FirstLane(out), a, _FirstLane(work)],
            compute,
        )

    def _same_float_dtype(self, name, *operands):
        dtypes = {op.tensor.dtype for op in operands}
        if len(dtypes) != 1 or dtypes & {"float16", "float32"} != dtypes:
            raise TikError(
                "%s: operands must share float16 or float32, got %s" % (name, sorted(dtypes))
            )
        return dtypes.pop()

    def _scalar_value(self, scalar, dtype, what):
        sdtype, fn, _ = _operand(scalar)
        if sdtype not in (None, "immediate_float", dtype):
            raise TikError("%s: scalar of dtype %s with %s operands" % (what, sdtype, dtype))
        return fn

    # build and run
    def BuildCCE(
        self,
        kernel_name,
        inputs,
        outputs,
        output_files_path=None,
        enable_l2=False,
        config=None,
        flowtable=None,
        evaluates=None,
    ):
        if len(self._body) != 1:
            raise TikError("BuildCCE inside an open scope")
        for t in list(inputs) + list(outputs):
            if not isinstance(t, Tensor) or t.scope != scope_gm or t.is_workspace:
                raise TikError(
                    "BuildCCE %s: inputs and outputs must be GM tensors (not workspaces), got %r"
                    % (kernel_name, getattr(t, "name", t))
                )
        names = [t.name for t in list(inputs) + list(outputs)]
        if len(set(names)) != len(names):
            raise TikError("BuildCCE %s: repeated tensor in %r" % (kernel_name, names))
        self._built = (kernel_name, list(inputs), list(outputs))

    def gm_conflicts(self):
        """Double only: {GM tensor: elements written by two or more blocks, one of them plainly
        (not through atomic add)} of the last start_debug run."""
        result = {}
        for t in self._gm:
            many = (t.any_writers & (t.any_writers - np.uint64(1))) != 0
            result[t.name] = int(np.count_nonzero(many & (t.plain_writers != 0)))
        return result

    def gm_writer_counts(self, name):
        """Double only: how many blocks wrote each element of GM tensor `name` (last run)."""
        t = next(t for t in self._gm if t.name == name)
        bits = t.any_writers[: t.size]
        return np.array([bin(int(v)).count("1") for v in bits])


class _FirstLane:
    """An operand of which an instruction uses only the first element(s) (reduce dst, work)."""

    def __init__(self, operand):
        self.operand, self.tensor, self.offset_fn, self.ops = (
            operand,
            operand.tensor,
            operand.offset_fn,
            operand.ops,
        )

    def indices(self, lanes, repeat):
        offset = self.offset_fn()
        if self.operand.aligned and offset % self.tensor.block_lanes:
            raise TikError(
                "%s: %s at element %d is not 32-byte aligned"
                % (self.operand.what, self.tensor.name, offset)
            )
        self.tensor.check_index(offset, self.operand.what)
        return np.array([[offset]])


def _bad_cond(cond):
    raise TikError("if_scope: expected a TIK condition, got %r" % (cond,))


class _Debugger:
    """tik_instance.tikdb: start_debug runs the built kernel on the CPU and returns its outputs."""

    def __init__(self, tik):
        self._tik = tik

    def start_debug(self, feed_dict, interactive=True):
        tik = self._tik
        if interactive:
            raise TikError(
                "start_debug: the double has no interactive debugger; pass interactive=False"
            )
        if tik._built is None:
            raise TikError("start_debug before BuildCCE")
        _, inputs, outputs = tik._built
        names = {t.name for t in inputs}
        if set(feed_dict) != names:
            raise TikError(
                "start_debug: feed_dict keys %r, expected the inputs %r"
                % (sorted(feed_dict), sorted(names))
            )
        for t in tik._gm:
            t.fresh()
        for t in inputs:
            value = np.asarray(feed_dict[t.name])
            if value.dtype != np.dtype(t.dtype) or value.size != t.size:
                raise TikError(
                    "start_debug: %s expects %d values of %s, got %d of %s"
                    % (t.name, t.size, t.dtype, value.size, value.dtype)
                )
            t.data[: t.size] = value.reshape(-1)
        tik.trace, tik.cross_core_reads = [], []
        tik._core, tik._atomic = 0, 0
        _run(tik._body[0])
        if tik._atomic:
            raise TikError("the kernel ends with set_atomic_add(%d) still on" % tik._atomic)
        return [t.data[: t.size].reshape(t.shape).copy() for t in outputs]
