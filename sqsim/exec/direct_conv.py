"""Direct convolution micro-kernel: LLVM IR with explicit SIMD vectors, compiled once per process by
llvmlite (Numba's own code generator, so no new dependency).

Why not Numba or BLAS: Numba cannot keep a block of accumulator *vectors* in registers (its loops
vectorise one array at a time, through memory), and im2col + BLAS spends a copy of the input per
kernel tap before every GEMM.  This kernel computes a stride-1 convolution straight from the input,
as a GEMM whose column matrix is implicit (the "direct convolution" of Georganas et al., SC'18, and
of ONNX Runtime's MLAS; the register blocking of Goto & van de Geijn, TOMS 2008):

    y[k, o] = bias[k] + sum_l  w[k, l] * x[xoff[l] + o]          (then ReLU if asked)

where ``o`` runs over output positions in *padded-width* coordinates.  For a CNHW input padded to
``(C, N, Hp, Wp)`` and a kernel ``(R, S)``, output ``(n, p, q)`` sits at ``o = (n*Hp + p)*Wp + q`` and
tap ``l = (c, r, s)`` reads ``x[c*N*Hp*Wp + r*Wp + s + o]``: every tap is the same contiguous run of
the input, shifted.  Positions with ``q >= Q`` or ``p >= P`` are computed and dropped by the caller
(``(S-1)/Wp`` and ``(R-1)/Hp`` of the work: 3.5% for 3x3 on 55x55).  The CPU backend sends it the
stride-1 convs larger than 1x1; a 1x1 conv needs no im2col, and BLAS reads its input in place.

Register block: ``KR`` output channels x ``NV`` vectors of ``VL`` positions (8 x 3 x 16 with AVX-512:
24 accumulators, 3 input vectors and a broadcast weight in 32 registers).  The reduction is split into
blocks of ``LB`` taps so the input panel of one tile (LB x NV*VL floats) stays in L1; the partial sums
go through ``y`` between blocks.  Weights are packed ``(K/KR, L, KR)`` so each step reads ``KR``
consecutive floats.
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

# Reduction taps per block: the input panel of a tile (LB * NV * VL * 4 bytes = 24 KiB) stays in L1.
LB = 128

_LOCK = threading.Lock()
_KERNEL = None


class DirectConvKernel:
    """The compiled kernel and its blocking; call :meth:`run`.

    Attributes
    ----------
    kr, nv, vl : int
        Output channels per register block, vectors per block and lanes per vector; a tile covers
        ``tile = nv * vl`` positions.
    """

    def __init__(self, kr: int, nv: int, vl: int, fn, engine):
        self.kr, self.nv, self.vl = kr, nv, vl
        self.tile = nv * vl
        self._fn = fn
        self._engine = engine  # keeps the machine code alive

    def pack(self, w2d: np.ndarray) -> np.ndarray:
        """Weights ``(K, L)`` -> ``(ceil(K/kr), L, kr)``, zero rows past K."""
        k, l = w2d.shape
        kp = -(-k // self.kr) * self.kr
        src = np.zeros((kp, l), np.float32)
        src[:k] = w2d
        return np.ascontiguousarray(src.reshape(kp // self.kr, self.kr, l).transpose(0, 2, 1))

    def run(self, wp: np.ndarray, x_addr: int, xoff: np.ndarray, y_addr: int, ldy: int, ntiles: int,
            bias: np.ndarray, relu: bool) -> None:
        """``y[k, o] (+)= ...`` for ``0 <= o < ntiles * tile`` and every row block of ``wp``.

        ``x_addr`` and ``y_addr`` are the addresses of position 0 (``x`` must be readable up to
        ``max(xoff) + ntiles * tile``); ``y`` has ``wp.shape[0] * kr`` rows of stride ``ldy``; ``bias``
        has at least that many entries.  Releases the GIL.
        """
        self._fn(wp.ctypes.data, x_addr, xoff.ctypes.data, y_addr, ldy, wp.shape[0], ntiles, wp.shape[1],
                 bias.ctypes.data, int(relu))


def kernel() -> DirectConvKernel:
    """The process's kernel for this CPU, compiled on first use (about 0.05 s)."""
    global _KERNEL
    with _LOCK:
        if _KERNEL is None:
            _KERNEL = compile_kernel()
    return _KERNEL


def compile_kernel(wide: bool | None = None) -> DirectConvKernel:
    """Compile the kernel for the host CPU: 16-lane vectors where it has AVX-512 (``wide=None``), else
    8-lane (AVX2); ``wide=False`` forces the 8-lane form (tests run it on AVX-512 hosts too)."""
    import llvmlite.binding as llvm
    try:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
    except RuntimeError:  # already initialised by Numba
        pass
    features = llvm.get_host_cpu_features()
    if wide is None or wide:
        wide = bool(features.get("avx512f", False))
    # AVX-512: 32 vector registers of 16 floats; otherwise (AVX2) 16 registers of 8.
    kr, nv, vl = (8, 3, 16) if wide else (4, 3, 8)
    ir_text = _module(kr, nv, vl)
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    target = llvm.Target.from_default_triple()
    flat = features.flatten()
    # LLVM's default tuning for recent Intel cores halves 512-bit vectors; this kernel is built for them.
    if wide:
        flat += ",-prefer-256-bit"
    tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=flat, opt=3, codemodel="jitdefault")
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    addr = engine.get_function_address("sqsim_direct_conv")
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    fn = ctypes.CFUNCTYPE(None, ptr, ptr, ptr, ptr, i64, i64, i64, i64, ptr, i64)(addr)
    return DirectConvKernel(kr, nv, vl, fn, engine)


def _module(kr: int, nv: int, vl: int) -> str:
    """LLVM IR of ``sqsim_direct_conv(w, x, xoff, y, ldy, nkb, ntiles, L, bias, relu)``:

    for t in tiles:                       positions [t*tile, (t+1)*tile)
      for l0 in range(0, L, LB):          reduction block (input panel in L1)
        for kb in range(nkb):             KR output channels
          acc = 0 if l0 == 0 else y[kb*KR : +KR, tile]
          for l in range(l0, min(L, l0 + LB)):
            acc[r, j] += w[kb, l, r] * x[xoff[l] + t*tile + j*VL : +VL]
          if last block: acc = max(acc + bias, 0) (ReLU only if relu)
          y[kb*KR : +KR, tile] = acc
    """
    import llvmlite.ir as ir
    f32, i64, i32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
    vec = ir.VectorType(f32, vl)
    f32p, i64p, vecp = f32.as_pointer(), i64.as_pointer(), vec.as_pointer()
    mod = ir.Module(name="sqsim_direct_conv")
    fma = ir.Function(mod, ir.FunctionType(vec, [vec, vec, vec]), name=f"llvm.fma.v{vl}f32")
    vmax = ir.Function(mod, ir.FunctionType(vec, [vec, vec]), name=f"llvm.maxnum.v{vl}f32")
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [f32p, f32p, i64p, f32p, i64, i64, i64, i64, f32p, i64]),
                     name="sqsim_direct_conv")
    w, x, xoff, y, ldy, nkb, ntiles, n_l, bias, relu = fn.args
    for a in (w, x, xoff, bias):
        a.add_attribute("noalias")
    y.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    c64 = lambda v: ir.Constant(i64, v)  # noqa: E731
    zero = ir.Constant(vec, [0.0] * vl)
    undef = ir.Constant(vec, ir.Undefined)
    splat = ir.Constant(ir.VectorType(i32, vl), [0] * vl)
    tile = nv * vl
    do_relu = b.icmp_signed("!=", relu, c64(0))

    def broadcast(s):
        return b.shuffle_vector(b.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat)

    def counted(start, stop, name, body, step=1):
        """for i in range(start, stop, step): body(i)"""
        pre = b.block
        hdr, bod, end = (b.append_basic_block(f"{name}.{s}") for s in ("hdr", "body", "end"))
        b.branch(hdr)
        b.position_at_end(hdr)
        i = b.phi(i64, name=name)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), bod, end)
        b.position_at_end(bod)
        body(i)
        i.add_incoming(b.add(i, c64(step)), b.block)
        b.branch(hdr)
        b.position_at_end(end)

    def vptr(base, index):
        return b.bitcast(b.gep(base, [index]), vecp)

    def t_body(t):
        pos = b.mul(t, c64(tile))

        def lb_body(l0):
            l1 = b.select(b.icmp_signed("<", b.add(l0, c64(LB)), n_l), b.add(l0, c64(LB)), n_l)
            first = b.icmp_signed("==", l0, c64(0))
            last = b.icmp_signed("==", l1, n_l)

            def kb_body(kb):
                row0 = b.mul(kb, c64(kr))
                ys = [b.gep(y, [b.add(b.mul(b.add(row0, c64(r)), ldy), pos)]) for r in range(kr)]
                init = []
                for r in range(kr):
                    for j in range(nv):
                        old = b.load(vptr(ys[r], c64(j * vl)), align=4)
                        init.append(b.select(first, zero, old))
                wrow = b.gep(w, [b.mul(b.mul(kb, n_l), c64(kr))])
                # reduction loop with the accumulators as loop-carried vectors (phi nodes)
                pre = b.block
                hdr, bod, end = (b.append_basic_block(f"l.{s}") for s in ("hdr", "body", "end"))
                b.branch(hdr)
                b.position_at_end(hdr)
                l = b.phi(i64, name="l")
                l.add_incoming(l0, pre)
                acc = []
                for v0 in init:
                    p = b.phi(vec)
                    p.add_incoming(v0, pre)
                    acc.append(p)
                b.cbranch(b.icmp_signed("<", l, l1), bod, end)
                b.position_at_end(bod)
                off = b.add(b.load(b.gep(xoff, [l])), pos)
                xs = [b.load(vptr(x, b.add(off, c64(j * vl))), align=4) for j in range(nv)]
                wl = b.gep(wrow, [b.mul(l, c64(kr))])
                new = []
                for r in range(kr):
                    s = broadcast(b.load(b.gep(wl, [c64(r)])))
                    new.extend(b.call(fma, [s, xs[j], acc[r * nv + j]]) for j in range(nv))
                l.add_incoming(b.add(l, c64(1)), b.block)
                for p, v1 in zip(acc, new):
                    p.add_incoming(v1, b.block)
                b.branch(hdr)
                b.position_at_end(end)
                for r in range(kr):
                    bv = broadcast(b.load(b.gep(bias, [b.add(row0, c64(r))])))
                    for j in range(nv):
                        v = acc[r * nv + j]
                        done = b.fadd(v, bv)
                        done = b.select(do_relu, b.call(vmax, [done, zero]), done)
                        b.store(b.select(last, done, v), vptr(ys[r], c64(j * vl)), align=4)
            counted(c64(0), nkb, "kb", kb_body)
        counted(c64(0), n_l, "lb", lb_body, step=LB)
    counted(c64(0), ntiles, "t", t_body)
    b.ret_void()
    return str(mod)
