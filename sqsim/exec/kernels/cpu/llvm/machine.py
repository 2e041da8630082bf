"""Compiling the direct-conv kernels for the target CPU (:mod:`sqsim.cpu_target`), and what the backend
needs to call them: :class:`DirectConvKernel` (blocking, weight packing, addresses) and :func:`store_map`.

Register block: ``KR`` output channels x ``NV`` vectors of ``VL`` positions: 8 x 3 x 16 where the target
has AVX-512 (24 accumulators, 3 input vectors and a broadcast weight in 32 registers), else 4 x 3 x 8
(AVX2's 16 registers of 8 floats; other architectures get the same IR, which LLVM legalises for their
vectors).  The kernels are compiled once per process (about 0.05 s), not cached.
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

from .builder import NSEG
from .sparse import SNV

_LOCK = threading.Lock()
_KERNEL = None
_KERNEL64 = None


class DirectConvKernel:
    """The compiled kernel and its blocking; call :meth:`run`.

    Attributes
    ----------
    kr, nv, vl : int
        Output channels per register block, vectors per block and lanes per vector; a tile covers
        ``tile = nv * vl`` positions.
    snv : int
        Vectors of positions the sparse kernel keeps in registers for one output channel.
    """

    def __init__(self, kr: int, nv: int, vl: int, fn, blocked, engine, sparse, snv: int):
        self.kr, self.nv, self.vl, self.snv = kr, nv, vl, snv
        self.tile = nv * vl
        self._fn, self._blocked, self._sparse = fn, blocked, sparse
        self._engine = engine  # keeps the machine code alive

    def pack(self, w2d: np.ndarray) -> np.ndarray:
        """Weights ``(K, L)`` -> ``(ceil(K/kr), L, kr)``, zero rows past K."""
        k, l = w2d.shape
        kp = -(-k // self.kr) * self.kr
        src = np.zeros((kp, l), np.float32)
        src[:k] = w2d
        return np.ascontiguousarray(src.reshape(kp // self.kr, self.kr, l).transpose(0, 2, 1))

    def run(self, wp: np.ndarray, x_addr: int, xoff: np.ndarray, y_addr: int, ldy: int, ntiles: int,
            bias: np.ndarray, relu: bool, vdst: np.ndarray, vmask: np.ndarray,
            part: np.ndarray | None = None) -> None:
        """``y[k, dst(o)] = ...`` for ``0 <= o < ntiles * tile`` and every row block of ``wp``; with
        ``part`` (``wp.shape[0] * kr * tile`` floats of scratch), by the blocked form.

        ``x_addr`` is the address of position 0 (``x`` must be readable up to ``max(xoff) + ntiles *
        tile``); ``y_addr`` that of row 0, with ``wp.shape[0] * kr`` rows of stride ``ldy``; ``vdst``
        and ``vmask`` (:func:`store_map`, from this tile's first vector on) say where each lane goes;
        ``bias`` has at least ``wp.shape[0] * kr`` entries.  Releases the GIL.
        """
        a = (wp.ctypes.data, x_addr, xoff.ctypes.data, y_addr, ldy, wp.shape[0], ntiles, wp.shape[1],
             bias.ctypes.data, int(relu), vdst.ctypes.data, vmask.ctypes.data)
        if part is None:
            self._fn(*a, 0)
        else:
            self._blocked(*a, part.ctypes.data)

    def address(self, blocked: bool = False) -> int:
        """The machine-code address of the kernel (``blocked``: of its blocked form), a C function of
        ``(w, x, xoff, y, ldy, nkb, ntiles, L, bias, relu, vdst, vmask, part)``, all 64-bit integers or
        pointers (``part`` unused by the unblocked form), for :func:`..launch.run_direct`."""
        return ctypes.cast(self._blocked if blocked else self._fn, ctypes.c_void_p).value

    def sparse_address(self) -> int:
        """The machine-code address of the sparse kernel, a C function of ``(val, x, off, y, ldy, nrows,
        nvec, rowptr, bias, relu, vdst, vmask, params)`` (:mod:`.sparse`), for :func:`..launch.run_direct`
        (``params`` in its ``part`` slot) and :func:`..launch.run_sparse_blocks`."""
        return ctypes.cast(self._sparse, ctypes.c_void_p).value


def store_map(n: int, hq: int, wq: int, p: int, q: int, nvec: int, vl: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the kernel stores each lane: ``(vdst, vmask)``, both ``(nvec, NSEG)``.

    Position ``o = (i*hq + r)*wq + c`` (sample ``i``, padded row ``r``, column ``c``) is output
    ``(i*p + r)*q + c`` when ``r < p`` and ``c < q``, else dropped.  Lane ``l`` of vector ``v`` is
    position ``v*vl + l``; the lanes of one padded row form a segment, stored at ``vdst[v, s] + l``
    under the bit mask ``vmask[v, s]``.  Needs ``2*wq >= vl - 1`` (at most NSEG rows per vector).
    """
    if 2 * wq < vl - 1:
        raise ValueError(f"padded width {wq} is too narrow for {vl}-lane vectors")
    o = np.arange(nvec * vl, dtype=np.int64)
    line, col = np.divmod(o, wq)
    row = line % hq
    valid = (o < n * hq * wq) & (row < p) & (col < q)
    dst = ((line // hq) * p + row) * q + col - (o % vl)      # the same for every lane of a segment
    seg = (line - line[(o // vl) * vl]).reshape(nvec, vl)    # 0, 1 or 2: the row within the vector
    valid, dst = valid.reshape(nvec, vl), dst.reshape(nvec, vl)
    vdst = np.zeros((nvec, NSEG), np.int64)
    vmask = np.zeros((nvec, NSEG), np.int32)
    bit = (1 << np.arange(vl, dtype=np.int64))[None, :]
    for s in range(NSEG):
        inside = valid & (seg == s)
        vmask[:, s] = (inside * bit).sum(axis=1)
        # any lane of the segment gives its offset; an empty segment stores nothing, so 0 will do
        first = np.where(inside.any(axis=1), inside.argmax(axis=1), 0)
        vdst[:, s] = np.where(inside.any(axis=1), dst[np.arange(nvec), first], 0)
    return vdst, vmask


def kernel() -> DirectConvKernel:
    """The process's kernel for the target CPU, compiled on first use."""
    global _KERNEL
    with _LOCK:
        if _KERNEL is None:
            _KERNEL = compile_kernel()
    return _KERNEL


def kernel64() -> DirectConvKernel:
    """The process's float64-accumulating kernels (``acc64``: float32 weights and inputs, float64 sums,
    bias and outputs) for the target CPU, compiled on first use: the datapath emulation's exact sums."""
    global _KERNEL64
    with _LOCK:
        if _KERNEL64 is None:
            _KERNEL64 = compile_kernel(acc64=True)
    return _KERNEL64


def _build(wide: bool | None, snv: int | None, acc64: bool = False):
    """``(llvm module, target machine, kr, nv, vl, snv)`` for the target CPU (see :func:`compile_kernel`).
    ``acc64``: lanes are doubles (8 to a 512-bit register, 4 to a 256-bit one), the same 24 or 12
    accumulator registers."""
    import llvmlite.binding as llvm

    from .....cpu_target import resolve
    from .builder import Emitter
    from .dense import emit_direct, emit_direct_blocked
    from .sparse import emit_sparse
    target = resolve()
    if wide is None or wide:
        wide = target.has("avx512f")
    kr, nv, vl = (8, 3, 16) if wide else (4, 3, 8)
    if acc64:
        vl //= 2
    snv = snv or SNV
    em = Emitter("sqsim_direct_conv64" if acc64 else "sqsim_direct_conv", vl, acc64)
    emit_direct(em, kr, nv)
    emit_direct_blocked(em, kr, nv)
    emit_sparse(em, snv)
    mod = llvm.parse_assembly(str(em.mod))
    mod.verify()
    features = target.features
    if wide:  # LLVM's default tuning for recent Intel cores halves 512-bit vectors; these kernels want them
        features += ",-prefer-256-bit"
    tm = llvm.Target.from_triple(target.triple).create_target_machine(cpu=target.cpu, features=features, opt=3,
                                                                      codemodel="jitdefault")
    return mod, tm, kr, nv, vl, snv


def compile_kernel(wide: bool | None = None, snv: int | None = None, acc64: bool = False) -> DirectConvKernel:
    """Compile the kernels for the target CPU (:func:`sqsim.cpu_target.resolve`): 16-lane vectors where
    it has AVX-512 (``wide=None``), else 8-lane; ``wide=False`` forces the 8-lane form (tests run it on
    AVX-512 hosts too).  ``snv``: the sparse kernel's vectors per output channel (default SNV).
    ``acc64``: the float64-accumulating form (:class:`.builder.Emitter`), half the lanes."""
    import llvmlite.binding as llvm
    mod, tm, kr, nv, vl, snv = _build(wide, snv, acc64)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    sig = ctypes.CFUNCTYPE(None, ptr, ptr, ptr, ptr, i64, i64, i64, i64, ptr, i64, ptr, ptr, ptr)
    fn = sig(engine.get_function_address("sqsim_direct_conv"))
    blocked = sig(engine.get_function_address("sqsim_direct_conv_blocked"))
    sparse = sig(engine.get_function_address("sqsim_sparse_conv"))
    return DirectConvKernel(kr, nv, vl, fn, blocked, engine, sparse, snv)


def assembly(wide: bool | None = None, acc64: bool = False) -> str:
    """The machine code of the kernels :func:`compile_kernel` builds, as assembly text (to check which
    instructions and registers a target gets)."""
    mod, tm, *_ = _build(wide, None, acc64)
    return tm.emit_assembly(mod)
