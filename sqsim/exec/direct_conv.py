"""Direct convolution micro-kernel: LLVM IR with explicit SIMD vectors, compiled once per process by
llvmlite (Numba's own code generator, so no new dependency).

Why not Numba or BLAS: Numba cannot keep a block of accumulator *vectors* in registers (its loops
vectorise one array at a time, through memory), and im2col + BLAS spends a copy of the input per
kernel tap before every GEMM.  This kernel computes a convolution straight from the input, as a GEMM
whose column matrix is implicit (the "direct convolution" of Georganas et al., SC'18, and of ONNX
Runtime's MLAS; the register blocking of Goto & van de Geijn, TOMS 2008):

    y[k, dst(o)] = bias[k] + sum_l  w[k, l] * x[xoff[l] + o]          (then ReLU if asked)

where ``o`` runs over output positions in *padded-width* coordinates.  For a stride-1 conv on a CNHW
input padded to ``(C, N, Hp, Wp)`` with a kernel ``(R, S)``, output ``(n, p, q)`` sits at
``o = (n*Hp + p)*Wp + q`` and tap ``l = (c, r, s)`` reads ``x[c*N*Hp*Wp + r*Wp + s + o]``: every tap
is the same contiguous run of the input, shifted.  A strided conv becomes one by splitting the padded
input into its stride phases (tap ``(c, r, s)`` reads phase ``(r % sh, s % sw)`` shifted by
``(r // sh, s // sw)``); a 1x1 conv reads its input as it is.  Positions with ``q >= Q`` or
``p >= P`` are computed and not stored: :func:`store_map` gives, per vector of positions, where its
lanes go in the output (up to NSEG rows, by masked stores), so outputs land in place, with no copy.

Register block: ``KR`` output channels x ``NV`` vectors of ``VL`` positions (8 x 3 x 16 with AVX-512:
24 accumulators, 3 input vectors and a broadcast weight in 32 registers).  Two loop orders:
``sqsim_direct_conv`` runs the whole reduction of a tile in registers, output-channel blocks
outermost (the input of a chunk of tiles stays in L2, each tile's panel in L1);
``sqsim_direct_conv_blocked`` splits the reduction into blocks of ``LB`` taps, tiles outermost, with
partial sums in a small per-thread buffer, for reductions whose weights per channel block overflow
the cache.  Weights are packed ``(K/KR, L, KR)`` so each step reads ``KR`` consecutive floats.

A third function, ``sqsim_sparse_conv``, computes a pruned conv on its sparse form: output channel
``k`` is a sum over its own list of stored weights, each a value and the offset of its tap's run,

    y[k, dst(o)] = bias[k] + sum_{rowptr[k] <= e < rowptr[k+1]}  val[e] * x[off[e] + o]

(``off[e] = xoff[col_e]``), the same runs as above, so the same input layout and store map serve.
One output channel at a time, ``SNV`` vectors of positions in registers, each entry one broadcast and
``SNV`` FMAs: no multiply by a pruned zero (the "direct sparse convolution" of Park et al., ICLR 2017).
Each entry reads ``SNV`` vectors of input for ``SNV`` FMAs, so the kernel runs at the speed the input
window of a group of vectors comes in: where the window of all input channels overflows L1 the lists
are split by blocks of input channels (one list per row and block), the blocks run one after another
over every row, and the partial sums go through a small buffer (the "blocked" order above).
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

# Reduction taps per block of the blocked form: its input panel (LB * NV * VL * 4 bytes = 12 KiB), the
# partial sums and the weights stay in L1 together (64 measured 15% faster than 128 on a 1x1 from 384 channels).
LB = 64
# Output segments per vector: a vector's lanes meet at most NSEG rows of the output (padded width >= VL/2).
NSEG = 3
# Software prefetch distance, in tiles.
PF = 4
# Vectors of output positions the sparse kernel keeps in registers for one output channel.
SNV = 8

_LOCK = threading.Lock()
_KERNEL = None


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
        pointers (``part`` unused by the unblocked form), for :func:`cpu_kernels.run_direct`."""
        return ctypes.cast(self._blocked if blocked else self._fn, ctypes.c_void_p).value

    def sparse_address(self) -> int:
        """The machine-code address of the sparse kernel, a C function of ``(val, x, off, y, ldy, nrows,
        nvec, rowptr, bias, relu, vdst, vmask, params)`` (:func:`_module`), for :func:`cpu_kernels.run_direct`
        (``params`` in its ``part`` slot) and :func:`cpu_kernels.run_sparse_blocks`."""
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
    """The process's kernel for this CPU, compiled on first use (about 0.05 s)."""
    global _KERNEL
    with _LOCK:
        if _KERNEL is None:
            _KERNEL = compile_kernel()
    return _KERNEL


def compile_kernel(wide: bool | None = None, snv: int | None = None) -> DirectConvKernel:
    """Compile the kernel for the host CPU: 16-lane vectors where it has AVX-512 (``wide=None``), else
    8-lane (AVX2); ``wide=False`` forces the 8-lane form (tests run it on AVX-512 hosts too).  ``snv``:
    the sparse kernel's vectors per output channel (default SNV)."""
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
    snv = snv or SNV
    ir_text = _module(kr, nv, vl, snv)
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
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    sig = ctypes.CFUNCTYPE(None, ptr, ptr, ptr, ptr, i64, i64, i64, i64, ptr, i64, ptr, ptr, ptr)
    fn = sig(engine.get_function_address("sqsim_direct_conv"))
    blocked = sig(engine.get_function_address("sqsim_direct_conv_blocked"))
    sparse = sig(engine.get_function_address("sqsim_sparse_conv"))
    return DirectConvKernel(kr, nv, vl, fn, blocked, engine, sparse, snv)


def _module(kr: int, nv: int, vl: int, snv: int = 8) -> str:
    """LLVM IR of ``sqsim_direct_conv`` and ``sqsim_direct_conv_blocked``, both
    ``(w, x, xoff, y, ldy, nkb, ntiles, L, bias, relu, vdst, vmask, part)``:

    sqsim_direct_conv (part unused):
    for kb in range(nkb):                 KR output channels (their weights stay in L1)
      for t in tiles:                     positions [t*tile, (t+1)*tile): vectors v = t*NV + j
        acc = 0
        for l in range(L):
          acc[r, j] += w[kb, l, r] * x[xoff[l] + t*tile + j*VL : +VL]
        y[rows, v] = max(acc + bias, 0)   (ReLU only if relu; stores by segment)

    sqsim_direct_conv_blocked:
    for t in tiles:
      for l0 in range(0, L, LB):          a block of taps: its input panel stays in L1 across kb
        for kb in range(nkb):
          acc = 0 if l0 == 0 else part[kb]
          acc += the taps l0 <= l < min(L, l0 + LB), as above
          if last block: y[rows, v] = max(acc + bias, 0) else part[kb] = acc

    and ``sqsim_sparse_conv``, ``(val, x, off, y, ldy, nrows, nvec, rowptr, bias, relu, vdst, vmask,
    params)`` (``off`` int32, ``rowptr`` int64, passed in the pointer slots of the others; ``params`` ->
    int64 ``[part, ncb, xstride]``: partial sums of SNV vectors a row, channel blocks, their distance):
    for g in groups:                      ceil(nvec / SNV) runs of at most SNV vectors, as even as can be
      for jb in range(ncb):               a block of input channels: its window of x stays in L1
        for k in range(nrows):
          acc = 0 if jb == 0 else part[k]
          for e in range(rowptr[k*ncb + jb], rowptr[k*ncb + jb + 1]):
            acc[j] += val[e] * x[jb*xstride + off[e] + v0*VL + j*VL : +VL]
          if last block: y[k, vectors of g] = max(acc + bias, 0) else part[k] = acc

    where lane ``i`` of vector ``v`` in segment ``s`` lives at ``y[row*ldy + vdst[v, s] + i]`` and
    belongs to the segment whose bit ``i`` is set in ``vmask[v, s]`` (NSEG segments; lanes in none
    are computed and dropped).  A vector wholly inside one row (one full segment) is a plain store.
    """
    import llvmlite.ir as ir
    f32, i64, i32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
    vec = ir.VectorType(f32, vl)
    mvec = ir.VectorType(ir.IntType(1), vl)
    f32p, i64p, i32p, vecp = f32.as_pointer(), i64.as_pointer(), i32.as_pointer(), vec.as_pointer()
    mod = ir.Module(name="sqsim_direct_conv")
    fma = ir.Function(mod, ir.FunctionType(vec, [vec, vec, vec]), name=f"llvm.fma.v{vl}f32")
    vmax = ir.Function(mod, ir.FunctionType(vec, [vec, vec]), name=f"llvm.maxnum.v{vl}f32")
    mstore = ir.Function(mod, ir.FunctionType(ir.VoidType(), [vec, vecp, i32, mvec]),
                         name=f"llvm.masked.store.v{vl}f32.p0")
    prefetch = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32]),
                           name="llvm.prefetch.p0")
    args = [f32p, f32p, i64p, f32p, i64, i64, i64, i64, f32p, i64, i64p, i32p]
    c64 = lambda v: ir.Constant(i64, v)  # noqa: E731
    align = ir.Constant(i32, 4)
    zero = ir.Constant(vec, [0.0] * vl)
    undef = ir.Constant(vec, ir.Undefined)
    splat = ir.Constant(ir.VectorType(i32, vl), [0] * vl)
    tile = nv * vl
    b = None

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

    def accumulate(i0, i1, init, name, step):
        """``acc = init; for i in range(i0, i1): acc = step(i, acc)``, the accumulators kept in registers as
        loop-carried vectors (phi nodes); returns them after the loop."""
        pre = b.block
        hdr, bod, end = (b.append_basic_block(f"{name}.{s}") for s in ("hdr", "body", "end"))
        b.branch(hdr)
        b.position_at_end(hdr)
        i = b.phi(i64, name=name)
        i.add_incoming(i0, pre)
        acc = []
        for v0 in init:
            p = b.phi(vec)
            p.add_incoming(v0, pre)
            acc.append(p)
        b.cbranch(b.icmp_signed("<", i, i1), bod, end)
        b.position_at_end(bod)
        new = step(i, acc)
        i.add_incoming(b.add(i, c64(1)), b.block)
        for p, v1 in zip(acc, new):
            p.add_incoming(v1, b.block)
        b.branch(hdr)
        b.position_at_end(end)
        return acc

    def reduce(w, x, xoff, n_l, kb, pos, l0, l1, init):
        """acc[r, j] = init[r, j] + sum over l0 <= l < l1 of w[kb, l, r] * x[xoff[l] + pos + j*VL : +VL]."""
        wrow = b.gep(w, [b.mul(b.mul(kb, n_l), c64(kr))])
        return accumulate(l0, l1, init, "l", lambda l, acc: tap(wrow, x, xoff, pos, l, acc))

    def tap(wrow, x, xoff, pos, l, acc):
        """One step of :func:`reduce`: tap ``l``'s FMAs into ``acc``."""
        off = b.add(b.load(b.gep(xoff, [l])), pos)
        xs = [b.load(vptr(x, b.add(off, c64(j * vl))), align=4) for j in range(nv)]
        # the same run PF tiles ahead: the taps are more streams than the hardware prefetchers track
        for j in range(0, tile * 4, 64):
            ahead = b.bitcast(b.gep(x, [b.add(off, c64(PF * tile + j // 4))]), ir.IntType(8).as_pointer())
            b.call(prefetch, [ahead, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        wl = b.gep(wrow, [b.mul(l, c64(kr))])
        new = []
        for r in range(kr):
            s = broadcast(b.load(b.gep(wl, [c64(r)])))
            new.extend(b.call(fma, [s, xs[j], acc[r * nv + j]]) for j in range(nv))
        return new

    def store_out(acc, y, ldy, kb, bias, relu, vdst, vmask, t):
        """y[rows of kb, vectors of tile t] = max(acc + bias, 0) (ReLU if relu), by masked segments."""
        row0 = b.mul(kb, c64(kr))
        rows = [b.gep(y, [b.mul(b.add(row0, c64(r)), ldy)]) for r in range(kr)]
        biases = [broadcast(b.load(b.gep(bias, [b.add(row0, c64(r))]))) for r in range(kr)]
        store_vectors(acc, rows, biases, b.mul(t, c64(nv)), kr, nv, relu, vdst, vmask)

    def store_vectors(acc, rows, biases, v0, n_rows, width, relu, vdst, vmask):
        """Vectors ``v0 .. v0+width-1`` of the output rows ``rows`` (``acc[r * width + j]``) = max(acc +
        bias, 0) (ReLU if relu), by masked segments."""
        do_relu = b.icmp_signed("!=", relu, c64(0))
        ivl = ir.IntType(vl)
        for j in range(width):
            segs, masks = [], []
            for sg in range(NSEG):
                e = b.add(b.mul(b.add(v0, c64(j)), c64(NSEG)), c64(sg))
                masks.append(b.trunc(b.load(b.gep(vmask, [e])), ivl))
                segs.append((b.load(b.gep(vdst, [e])), b.bitcast(masks[-1], mvec)))
            done = [b.select(do_relu, b.call(vmax, [b.fadd(acc[r * width + j], biases[r]), zero]),
                             b.fadd(acc[r * width + j], biases[r])) for r in range(n_rows)]
            # Most vectors lie whole inside one output row: a plain store; the others, segment by segment.
            rest = masks[1]
            for m in masks[2:]:
                rest = b.or_(rest, m)
            whole = b.and_(b.icmp_unsigned("==", masks[0], ir.Constant(ivl, (1 << vl) - 1)),
                           b.icmp_unsigned("==", rest, ir.Constant(ivl, 0)))
            plain, split, joined = (b.append_basic_block(f"st.{s}") for s in ("plain", "split", "joined"))
            b.cbranch(whole, plain, split)
            b.position_at_end(plain)
            for r in range(n_rows):
                b.store(done[r], vptr(rows[r], segs[0][0]), align=4)
            b.branch(joined)
            b.position_at_end(split)
            for r in range(n_rows):
                for off, m in segs:
                    b.call(mstore, [done[r], vptr(rows[r], off), align, m])
            b.branch(joined)
            b.position_at_end(joined)

    def finish_or_keep(last, acc, ptrs, finish):
        """``if last: finish() else: *ptrs = acc`` (the partial sums kept for the next reduction block)."""
        fin, keep, done = (b.append_basic_block(f"part.{s}") for s in ("fin", "keep", "done"))
        b.cbranch(last, fin, keep)
        b.position_at_end(fin)
        finish()
        b.branch(done)
        b.position_at_end(keep)
        for p_, v in zip(ptrs, acc):
            b.store(v, p_, align=4)
        b.branch(done)
        b.position_at_end(done)

    def function(name, extra):
        nonlocal b
        fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), args + extra), name=name)
        for a in fn.args:
            if isinstance(a.type, ir.PointerType):
                a.add_attribute("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        return fn.args

    # sqsim_direct_conv: output-channel blocks outermost, the whole reduction in registers
    w, x, xoff, y, ldy, nkb, ntiles, n_l, bias, relu, vdst, vmask, _ = function("sqsim_direct_conv", [f32p])

    def kb_body(kb):
        def t_body(t):
            acc = reduce(w, x, xoff, n_l, kb, b.mul(t, c64(tile)), c64(0), n_l, [zero] * (kr * nv))
            store_out(acc, y, ldy, kb, bias, relu, vdst, vmask, t)
        counted(c64(0), ntiles, "t", t_body)
    counted(c64(0), nkb, "kb", kb_body)
    b.ret_void()

    # sqsim_direct_conv_blocked: tiles outermost, the reduction in blocks of LB taps whose input panel
    # stays in L1 across the output-channel blocks; partial sums in `part` (nkb*KR rows of one tile)
    w, x, xoff, y, ldy, nkb, ntiles, n_l, bias, relu, vdst, vmask, part = function(
        "sqsim_direct_conv_blocked", [f32p])

    def t_body(t):
        pos = b.mul(t, c64(tile))

        def lb_body(l0):
            l1 = b.select(b.icmp_signed("<", b.add(l0, c64(LB)), n_l), b.add(l0, c64(LB)), n_l)
            first = b.icmp_signed("==", l0, c64(0))
            last = b.icmp_signed("==", l1, n_l)

            def kb_body(kb):
                pk = b.gep(part, [b.mul(kb, c64(kr * tile))])
                ptrs = [vptr(pk, c64(r * tile + j * vl)) for r in range(kr) for j in range(nv)]
                old = [b.load(p_, align=4) for p_ in ptrs]
                init = [b.select(first, zero, v) for v in old]
                acc = reduce(w, x, xoff, n_l, kb, pos, l0, l1, init)
                finish_or_keep(last, acc, ptrs, lambda: store_out(acc, y, ldy, kb, bias, relu, vdst, vmask, t))
            counted(c64(0), nkb, "kb", kb_body)
        counted(c64(0), n_l, "lb", lb_body, step=LB)
    counted(c64(0), ntiles, "tt", t_body)
    b.ret_void()

    # sqsim_sparse_conv: one output row at a time from its own lists of (offset, value) entries, one list
    # per block of input channels
    val, x, off, y, ldy, nrows, nvec, rowptr, bias, relu, vdst, vmask, params = function("sqsim_sparse_conv",
                                                                                         [f32p])
    rowptr = b.inttoptr(b.ptrtoint(rowptr, i64), i64p)
    off = b.inttoptr(b.ptrtoint(off, i64), i32p)
    params = b.inttoptr(b.ptrtoint(params, i64), i64p)
    part = b.inttoptr(b.load(b.gep(params, [c64(0)])), f32p)
    ncb = b.load(b.gep(params, [c64(1)]))
    xstride = b.load(b.gep(params, [c64(2)]))

    def sparse_reduce(xb, e0, e1, pos, init):
        """acc[j] = init[j] + sum over e0 <= e < e1 of val[e] * xb[off[e] + pos + j*VL : +VL]."""
        def entry(e, acc):
            o = b.add(b.sext(b.load(b.gep(off, [e])), i64), pos)
            s = broadcast(b.load(b.gep(val, [e])))
            return [b.call(fma, [s, b.load(vptr(xb, b.add(o, c64(j * vl))), align=4), a]) for j, a in enumerate(acc)]
        return accumulate(e0, e1, init, "e", entry)

    def rows_at(v0, width):
        """Vectors v0 .. v0+width-1 of every row: channel block by channel block (the block's input window
        stays in L1 while every row reads it), partial sums in ``part`` (SNV vectors a row) between."""
        def cb_body(jb):
            xb = b.gep(x, [b.mul(jb, xstride)])
            first = b.icmp_signed("==", jb, c64(0))
            last = b.icmp_signed("==", jb, b.sub(ncb, c64(1)))

            def row_body(r):
                sub = b.add(b.mul(r, ncb), jb)
                e0 = b.load(b.gep(rowptr, [sub]))
                e1 = b.load(b.gep(rowptr, [b.add(sub, c64(1))]))
                pr = b.gep(part, [b.mul(r, c64(snv * vl))])
                ptrs = [vptr(pr, c64(j * vl)) for j in range(width)]
                load_b, init_b = (b.append_basic_block(f"init.{s}") for s in ("load", "done"))
                pre = b.block
                b.cbranch(first, init_b, load_b)
                b.position_at_end(load_b)
                old = [b.load(p_, align=4) for p_ in ptrs]
                b.branch(init_b)
                b.position_at_end(init_b)
                init = []
                for v in old:
                    ph = b.phi(vec)
                    ph.add_incoming(zero, pre)
                    ph.add_incoming(v, load_b)
                    init.append(ph)
                acc = sparse_reduce(xb, e0, e1, b.mul(v0, c64(vl)), init)
                finish_or_keep(last, acc, ptrs, lambda: store_vectors(
                    acc, [b.gep(y, [b.mul(r, ldy)])], [broadcast(b.load(b.gep(bias, [r])))], v0, 1, width, relu,
                    vdst, vmask))
            counted(c64(0), nrows, "r", row_body)
        counted(c64(0), ncb, "jb", cb_body)

    # groups of at most SNV vectors outermost (a group's input window stays in cache while every row reads
    # it), as even as they can be: a group of 5 after one of 8 would keep too few sums in flight
    groups = b.sdiv(b.add(nvec, c64(snv - 1)), c64(snv))

    def group_body(gi):
        v0 = b.sdiv(b.mul(gi, nvec), groups)
        v1 = b.sdiv(b.mul(b.add(gi, c64(1)), nvec), groups)
        done = b.append_basic_block("grp.done")
        sw_ = b.switch(b.sub(v1, v0), done)
        for width in range(1, snv + 1):
            blk = b.append_basic_block(f"grp.{width}")
            sw_.add_case(ir.Constant(i64, width), blk)
            b.position_at_end(blk)
            rows_at(v0, width)
            b.branch(done)
        b.position_at_end(done)
    counted(c64(0), groups, "g", group_body)
    b.ret_void()
    return str(mod)
