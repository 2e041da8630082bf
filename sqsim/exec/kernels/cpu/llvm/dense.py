"""The dense direct-conv kernels: ``sqsim_direct_conv`` and ``sqsim_direct_conv_blocked``.

Both ``(w, x, xoff, y, ldy, nkb, ntiles, L, bias, relu, vdst, vmask, part)``::

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
"""
from __future__ import annotations

import llvmlite.ir as ir

from .builder import Emitter

# Reduction taps per block of the blocked form: its input panel (LB * NV * VL * 4 bytes = 12 KiB), the
# partial sums and the weights stay in L1 together (64 measured 15% faster than 128 on a 1x1 from 384 channels).
LB = 64
# Software prefetch distance, in tiles.
PF = 4


class _Dense:
    """The shared pieces of both loop orders for a register block of ``kr`` channels x ``nv`` vectors."""

    def __init__(self, em: Emitter, kr: int, nv: int):
        self.em, self.kr, self.nv = em, kr, nv
        self.tile = nv * em.vl

    def reduce(self, w, x, xoff, n_l, kb, pos, l0, l1, init):
        """acc[r, j] = init[r, j] + sum over l0 <= l < l1 of w[kb, l, r] * x[xoff[l] + pos + j*VL : +VL]."""
        em = self.em
        wrow = em.b.gep(w, [em.b.mul(em.b.mul(kb, n_l), em.c64(self.kr))])
        return em.accumulate(l0, l1, init, "l", lambda l, acc: self.tap(wrow, x, xoff, pos, l, acc))

    def tap(self, wrow, x, xoff, pos, l, acc):
        """One step of :meth:`reduce`: tap ``l``'s FMAs into ``acc``."""
        em = self.em
        b, vl, c64 = em.b, em.vl, em.c64
        off = b.add(b.load(b.gep(xoff, [l])), pos)
        xs = [em.load_vec(x, b.add(off, c64(j * vl))) for j in range(self.nv)]
        # the same run PF tiles ahead: the taps are more streams than the hardware prefetchers track
        for j in range(0, self.tile * 4, 64):
            ahead = b.bitcast(b.gep(x, [b.add(off, c64(PF * self.tile + j // 4))]), ir.IntType(8).as_pointer())
            b.call(em.prefetch, [ahead, ir.Constant(em.i32, 0), ir.Constant(em.i32, 2), ir.Constant(em.i32, 1)])
        wl = b.gep(wrow, [b.mul(l, c64(self.kr))])
        new = []
        for r in range(self.kr):
            s = em.broadcast(b.load(b.gep(wl, [c64(r)])))
            new.extend(b.call(em.fma, [s, xs[j], acc[r * self.nv + j]]) for j in range(self.nv))
        return new

    def store_out(self, acc, y, ldy, kb, bias, relu, vdst, vmask, t):
        """y[rows of kb, vectors of tile t] = max(acc + bias, 0) (ReLU if relu), by masked segments."""
        em = self.em
        b, c64 = em.b, em.c64
        row0 = b.mul(kb, c64(self.kr))
        rows = [b.gep(y, [b.mul(b.add(row0, c64(r)), ldy)]) for r in range(self.kr)]
        biases = [em.broadcast(b.load(b.gep(bias, [b.add(row0, c64(r))]))) for r in range(self.kr)]
        em.store_vectors(acc, rows, biases, b.mul(t, c64(self.nv)), self.kr, self.nv, relu, vdst, vmask)


def emit_direct(em: Emitter, kr: int, nv: int) -> None:
    """``sqsim_direct_conv``: output-channel blocks outermost, the whole reduction in registers."""
    d = _Dense(em, kr, nv)
    w, x, xoff, y, ldy, nkb, ntiles, n_l, bias, relu, vdst, vmask, _ = em.function("sqsim_direct_conv")
    c64 = em.c64

    def kb_body(kb):
        def t_body(t):
            acc = d.reduce(w, x, xoff, n_l, kb, em.b.mul(t, c64(d.tile)), c64(0), n_l, [em.zero] * (kr * nv))
            d.store_out(acc, y, ldy, kb, bias, relu, vdst, vmask, t)
        em.counted(c64(0), ntiles, "t", t_body)
    em.counted(c64(0), nkb, "kb", kb_body)
    em.b.ret_void()


def emit_direct_blocked(em: Emitter, kr: int, nv: int) -> None:
    """``sqsim_direct_conv_blocked``: tiles outermost, the reduction in blocks of LB taps whose input panel
    stays in L1 across the output-channel blocks; partial sums in ``part`` (nkb*KR rows of one tile)."""
    d = _Dense(em, kr, nv)
    w, x, xoff, y, ldy, nkb, ntiles, n_l, bias, relu, vdst, vmask, part = em.function("sqsim_direct_conv_blocked")
    c64 = em.c64

    def t_body(t):
        b = em.b
        pos = b.mul(t, c64(d.tile))

        def lb_body(l0):
            b = em.b
            l1 = b.select(b.icmp_signed("<", b.add(l0, c64(LB)), n_l), b.add(l0, c64(LB)), n_l)
            first = b.icmp_signed("==", l0, c64(0))
            last = b.icmp_signed("==", l1, n_l)

            def kb_body(kb):
                b = em.b
                pk = b.gep(part, [b.mul(kb, c64(kr * d.tile))])
                ptrs = [em.vptr(pk, c64(r * d.tile + j * em.vl)) for r in range(kr) for j in range(nv)]
                old = [b.load(p_, align=4) for p_ in ptrs]
                init = [b.select(first, em.zero, v) for v in old]
                acc = d.reduce(w, x, xoff, n_l, kb, pos, l0, l1, init)
                em.finish_or_keep(last, acc, ptrs, lambda: d.store_out(acc, y, ldy, kb, bias, relu, vdst, vmask, t))
            em.counted(c64(0), nkb, "kb", kb_body)
        em.counted(c64(0), n_l, "lb", lb_body, step=LB)
    em.counted(c64(0), ntiles, "tt", t_body)
    em.b.ret_void()
