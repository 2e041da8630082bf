"""The LLVM IR building blocks of the direct-conv kernels: counted loops, loops carrying accumulator
vectors in registers (phi nodes), vector loads, broadcasts, and the masked stores of output rows."""
from __future__ import annotations

import llvmlite.ir as ir

# Output segments per vector: a vector's lanes meet at most NSEG rows of the output (padded width >= VL/2).
NSEG = 3


class Emitter:
    """Emits kernels of ``vl``-lane float32 vectors into one LLVM module (``self.mod``).

    Every kernel is a ``void`` function of the same 13 arguments (``KERNEL_ARGS``: twelve pointers and
    64-bit integers, and a thirteenth pointer), so one Numba loop can call any of them
    (:func:`sqsim.exec.kernels.cpu.launch.run_direct`).

    With ``acc64`` the kernels read float32 inputs as the others do, but widen them to float64, and read
    float64 weights (the first argument), bias, partial sums and outputs: the datapath emulation's exact
    sums of integer codes (:mod:`sqsim.exec.kernels.cpu.exact_conv`).  ``vec`` is the type
    of what is loaded, ``avec`` that of the accumulators (the same without ``acc64``).
    """

    def __init__(self, name: str, vl: int, acc64: bool = False):
        self.vl = vl
        self.acc64 = acc64
        self.f32, self.i64, self.i32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
        self.acc = ir.DoubleType() if acc64 else self.f32
        self.vec = ir.VectorType(self.f32, vl)
        self.avec = ir.VectorType(self.acc, vl)
        self.mvec = ir.VectorType(ir.IntType(1), vl)
        self.f32p, self.i64p, self.i32p = self.f32.as_pointer(), self.i64.as_pointer(), self.i32.as_pointer()
        self.accp = self.acc.as_pointer()
        self.vecp, self.avecp = self.vec.as_pointer(), self.avec.as_pointer()
        self.mod = ir.Module(name=name)
        avec = self.avec
        t = "f64" if acc64 else "f32"
        self.fma = ir.Function(self.mod, ir.FunctionType(avec, [avec, avec, avec]), name=f"llvm.fma.v{vl}{t}")
        self.vmax = ir.Function(self.mod, ir.FunctionType(avec, [avec, avec]), name=f"llvm.maxnum.v{vl}{t}")
        self.mstore = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [avec, self.avecp, self.i32, self.mvec]),
                                  name=f"llvm.masked.store.v{vl}{t}.p0")
        self.prefetch = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()] +
                                                              [self.i32] * 3), name="llvm.prefetch.p0")
        # (w, x, xoff, y, ldy, nkb, ntiles, L, bias, relu, vdst, vmask) + one pointer each kernel reads its way
        self.args = [self.accp, self.f32p, self.i64p, self.accp, self.i64, self.i64, self.i64, self.i64, self.accp,
                     self.i64, self.i64p, self.i32p, self.accp]
        self.zero = ir.Constant(avec, [0.0] * vl)
        self.undef = ir.Constant(avec, ir.Undefined)
        self.splat = ir.Constant(ir.VectorType(self.i32, vl), [0] * vl)
        self.align = ir.Constant(self.i32, 4)
        self.b: ir.IRBuilder | None = None

    # --- functions and values ------------------------------------------------------------------------
    def function(self, name: str):
        """Start kernel ``name``; returns its 13 arguments (pointers marked ``noalias``)."""
        fn = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), self.args), name=name)
        for a in fn.args:
            if isinstance(a.type, ir.PointerType):
                a.add_attribute("noalias")
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        return fn.args

    def c64(self, v: int):
        return ir.Constant(self.i64, v)

    def cast_ptr(self, p, ty):
        """Pointer ``p`` as a pointer of type ``ty`` (the kernels' typed views of their pointer slots)."""
        return self.b.inttoptr(self.b.ptrtoint(p, self.i64), ty)

    def broadcast(self, s):
        """A scalar in every lane of an accumulator vector (a float32 scalar is widened first)."""
        b = self.b
        if s.type != self.acc:
            s = b.fpext(s, self.acc)
        return b.shuffle_vector(b.insert_element(self.undef, s, ir.Constant(self.i32, 0)), self.undef, self.splat)

    def vptr(self, base, index):
        """A pointer to the vector at ``base[index]``: of loaded values (float32 ``base``) or of accumulators."""
        return self.b.bitcast(self.b.gep(base, [index]), self.avecp if base.type == self.accp else self.vecp)

    def load_vec(self, base, index):
        """``vl`` float32 values of ``base`` from ``index``, as an accumulator vector (widened with ``acc64``)."""
        v = self.b.load(self.vptr(base, index), align=4)
        return self.b.fpext(v, self.avec) if self.acc64 else v

    # --- control flow --------------------------------------------------------------------------------
    def counted(self, start, stop, name: str, body, step: int = 1) -> None:
        """``for i in range(start, stop, step): body(i)``."""
        b = self.b
        pre = b.block
        hdr, bod, end = (b.append_basic_block(f"{name}.{s}") for s in ("hdr", "body", "end"))
        b.branch(hdr)
        b.position_at_end(hdr)
        i = b.phi(self.i64, name=name)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), bod, end)
        b.position_at_end(bod)
        body(i)
        i.add_incoming(b.add(i, self.c64(step)), b.block)
        b.branch(hdr)
        b.position_at_end(end)

    def accumulate(self, i0, i1, init, name: str, step):
        """``acc = init; for i in range(i0, i1): acc = step(i, acc)``, the accumulators kept in registers as
        loop-carried vectors (phi nodes); returns them after the loop."""
        b = self.b
        pre = b.block
        hdr, bod, end = (b.append_basic_block(f"{name}.{s}") for s in ("hdr", "body", "end"))
        b.branch(hdr)
        b.position_at_end(hdr)
        i = b.phi(self.i64, name=name)
        i.add_incoming(i0, pre)
        acc = []
        for v0 in init:
            p = b.phi(self.avec)
            p.add_incoming(v0, pre)
            acc.append(p)
        b.cbranch(b.icmp_signed("<", i, i1), bod, end)
        b.position_at_end(bod)
        new = step(i, acc)
        i.add_incoming(b.add(i, self.c64(1)), b.block)
        for p, v1 in zip(acc, new):
            p.add_incoming(v1, b.block)
        b.branch(hdr)
        b.position_at_end(end)
        return acc

    def finish_or_keep(self, last, acc, ptrs, finish) -> None:
        """``if last: finish() else: *ptrs = acc`` (the partial sums kept for the next reduction block)."""
        b = self.b
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

    # --- output ----------------------------------------------------------------------------------------
    def store_vectors(self, acc, rows, biases, v0, n_rows: int, width: int, relu, vdst, vmask) -> None:
        """Vectors ``v0 .. v0+width-1`` of the output rows ``rows`` (``acc[r * width + j]``) = max(acc +
        bias, 0) (ReLU if relu), by masked segments: lane ``i`` of vector ``v`` in segment ``s`` lives at
        ``row + vdst[v, s] + i`` and belongs to the segment whose bit ``i`` is set in ``vmask[v, s]``
        (NSEG segments; lanes in none are computed and dropped).  A vector wholly inside one row (one full
        segment) is a plain store."""
        b, vl = self.b, self.vl
        do_relu = b.icmp_signed("!=", relu, self.c64(0))
        ivl = ir.IntType(vl)
        for j in range(width):
            segs, masks = [], []
            for sg in range(NSEG):
                e = b.add(b.mul(b.add(v0, self.c64(j)), self.c64(NSEG)), self.c64(sg))
                masks.append(b.trunc(b.load(b.gep(vmask, [e])), ivl))
                segs.append((b.load(b.gep(vdst, [e])), b.bitcast(masks[-1], self.mvec)))
            done = [b.select(do_relu, b.call(self.vmax, [b.fadd(acc[r * width + j], biases[r]), self.zero]),
                             b.fadd(acc[r * width + j], biases[r])) for r in range(n_rows)]
            rest = masks[1]
            for m in masks[2:]:
                rest = b.or_(rest, m)
            whole = b.and_(b.icmp_unsigned("==", masks[0], ir.Constant(ivl, (1 << vl) - 1)),
                           b.icmp_unsigned("==", rest, ir.Constant(ivl, 0)))
            plain, split, joined = (b.append_basic_block(f"st.{s}") for s in ("plain", "split", "joined"))
            b.cbranch(whole, plain, split)
            b.position_at_end(plain)
            for r in range(n_rows):
                b.store(done[r], self.vptr(rows[r], segs[0][0]), align=4)
            b.branch(joined)
            b.position_at_end(split)
            for r in range(n_rows):
                for off, m in segs:
                    b.call(self.mstore, [done[r], self.vptr(rows[r], off), self.align, m])
            b.branch(joined)
            b.position_at_end(joined)
