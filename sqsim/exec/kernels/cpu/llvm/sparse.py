"""The sparse direct-conv kernel ``sqsim_sparse_conv``: a pruned conv computed on its tap lists.

``(val, x, off, y, ldy, nrows, nvec, rowptr, bias, relu, vdst, vmask, params)`` (``off`` int32, ``rowptr``
int64, passed in the pointer slots of the dense kernels' arguments; ``params`` -> int64 ``[part, ncb,
xstride]``: partial sums of SNV vectors a row, channel blocks, their distance)::

    for g in groups:                      ceil(nvec / SNV) runs of at most SNV vectors, as even as can be
      for jb in range(ncb):               a block of input channels: its window of x stays in L1
        for k in range(nrows):
          acc = 0 if jb == 0 else part[k]
          for e in range(rowptr[k*ncb + jb], rowptr[k*ncb + jb + 1]):
            acc[j] += val[e] * x[jb*xstride + off[e] + v0*VL + j*VL : +VL]
          if last block: y[k, vectors of g] = max(acc + bias, 0) else part[k] = acc
"""
from __future__ import annotations

import llvmlite.ir as ir

from .builder import Emitter

# Vectors of output positions the sparse kernel keeps in registers for one output channel.
SNV = 8


def emit_sparse(em: Emitter, snv: int = SNV) -> None:
    """``sqsim_sparse_conv``: one output row at a time from its own lists of (offset, value) entries, one
    list per block of input channels; groups of at most ``snv`` vectors outermost (a group's input window
    stays in cache while every row reads it), as even as they can be (a group of 5 after one of 8 would
    keep too few sums in flight)."""
    val, x, off, y, ldy, nrows, nvec, rowptr, bias, relu, vdst, vmask, params = em.function("sqsim_sparse_conv")
    b, c64 = em.b, em.c64
    rowptr = em.cast_ptr(rowptr, em.i64p)
    off = em.cast_ptr(off, em.i32p)
    params = em.cast_ptr(params, em.i64p)
    ptrs = (val, x, off, y, ldy, rowptr, bias, relu, vdst, vmask,
            b.inttoptr(b.load(b.gep(params, [c64(0)])), em.accp),  # part
            b.load(b.gep(params, [c64(1)])),                      # ncb
            b.load(b.gep(params, [c64(2)])))                      # xstride
    groups = b.sdiv(b.add(nvec, c64(snv - 1)), c64(snv))

    def group_body(gi):
        b = em.b
        v0 = b.sdiv(b.mul(gi, nvec), groups)
        v1 = b.sdiv(b.mul(b.add(gi, c64(1)), nvec), groups)
        done = b.append_basic_block("grp.done")
        sw_ = b.switch(b.sub(v1, v0), done)
        for width in range(1, snv + 1):
            blk = b.append_basic_block(f"grp.{width}")
            sw_.add_case(ir.Constant(em.i64, width), blk)
            b.position_at_end(blk)
            _rows_at(em, snv, nrows, ptrs, v0, width)
            b.branch(done)
        b.position_at_end(done)
    em.counted(c64(0), groups, "g", group_body)
    em.b.ret_void()


def _rows_at(em: Emitter, snv: int, nrows, ptrs, v0, width: int) -> None:
    """Vectors v0 .. v0+width-1 of every row: channel block by channel block (the block's input window
    stays in L1 while every row reads it), partial sums in ``part`` (SNV vectors a row) between."""
    val, x, off, y, ldy, rowptr, bias, relu, vdst, vmask, part, ncb, xstride = ptrs
    c64, vl = em.c64, em.vl

    def sparse_reduce(xb, e0, e1, pos, init):
        """acc[j] = init[j] + sum over e0 <= e < e1 of val[e] * xb[off[e] + pos + j*VL : +VL]."""
        def entry(e, acc):
            b = em.b
            o = b.add(b.sext(b.load(b.gep(off, [e])), em.i64), pos)
            s = em.broadcast(b.load(b.gep(val, [e])))
            return [b.call(em.fma, [s, em.load_vec(xb, b.add(o, c64(j * vl))), a]) for j, a in enumerate(acc)]
        return em.accumulate(e0, e1, init, "e", entry)

    def cb_body(jb):
        b = em.b
        xb = b.gep(x, [b.mul(jb, xstride)])
        first = b.icmp_signed("==", jb, c64(0))
        last = b.icmp_signed("==", jb, b.sub(ncb, c64(1)))

        def row_body(r):
            b = em.b
            sub = b.add(b.mul(r, ncb), jb)
            e0 = b.load(b.gep(rowptr, [sub]))
            e1 = b.load(b.gep(rowptr, [b.add(sub, c64(1))]))
            pr = b.gep(part, [b.mul(r, c64(snv * vl))])
            ptrs_r = [em.vptr(pr, c64(j * vl)) for j in range(width)]
            load_b, init_b = (b.append_basic_block(f"init.{s}") for s in ("load", "done"))
            pre = b.block
            b.cbranch(first, init_b, load_b)
            b.position_at_end(load_b)
            old = [b.load(p_, align=4) for p_ in ptrs_r]
            b.branch(init_b)
            b.position_at_end(init_b)
            init = []
            for v in old:
                ph = b.phi(em.avec)
                ph.add_incoming(em.zero, pre)
                ph.add_incoming(v, load_b)
                init.append(ph)
            acc = sparse_reduce(xb, e0, e1, b.mul(v0, c64(vl)), init)
            em.finish_or_keep(last, acc, ptrs_r, lambda: em.store_vectors(
                acc, [em.b.gep(y, [em.b.mul(r, ldy)])], [em.broadcast(em.b.load(em.b.gep(bias, [r])))], v0, 1,
                width, relu, vdst, vmask))
        em.counted(c64(0), nrows, "r", row_body)
    em.counted(c64(0), ncb, "jb", cb_body)
