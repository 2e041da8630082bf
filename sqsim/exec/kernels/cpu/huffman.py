"""Stream readers of the CPU kernels: symbols of fixed-width and Huffman-coded streams (layout and tables:
:mod:`sqsim.exec.kernels.streams`), and the checkpoint scan that lets row blocks decode independently.

The decoders read a chunk of symbols at a time into small buffers, then use them (:func:`next_chunk`):
fixed widths up to 8 bits eight symbols per step, Huffman symbol by symbol with two streams interleaved,
or, where the layer keeps multi-symbol tables, up to three symbols per lookup, eight segments of a stream
at a time (:func:`read_lanes`).  A per-symbol helper inlined into the loops ran 4-20x slower (Numba kept
reference counting of the arrays inside the loop), and a fixed-width symbol at a time cannot be vectorised.

Multi-symbol tables: :func:`read_chunk_pair`'s symbol-at-a-time loop is latency-bound: each symbol's
position waits on the last one's table load, about 5.6 ns an entry (two symbols) on this project's
machine.  A multi-symbol lookup (the technique of zlib's and huff0's decoders) reads its ``W``-bit window
with one unaligned 8-byte load (:func:`.intrinsics.load_be64`) and stores its symbols with one 4-byte
store (:func:`.intrinsics.store_u32`); the segment checkpoints let ``LANES`` segments of a stream decode
at once as independent chains, into byte buffers the consumers read segment by segment (:func:`segment`).
Measured (one thread, both streams of an entry), AlexNet's fc6: 5.6 ns an entry symbol at a time, 2.2 with
four chains over two streams, 1.4 with eight chains per stream; conv3 (8-bit codes, many longer than W):
5.9, 3.3, 1.7.  The chains are written out: the same loop calling one inlined per-lookup helper per chain
ran at 15.6 instead of 2.1 ns an entry (fc6, four chains; presumably the per-call reference counting of
the arrays noted above), and with such a helper for the rounds' tails instead of read_multi, 20% slower.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..streams import (ENTRY_LENGTH_MASK, ENTRY_SYMBOL_SHIFT, MT_COUNT_FIELD, MT_COUNT_MASK, MT_COUNT_SHIFT,
                       MT_LENGTH_MASK, MT_SYMBOLS_SHIFT, SEG_ENTRIES, STREAM_PAD, TABLE_HEAD)
from . import JIT as _OPTS
from .intrinsics import load_be64, store_u32

GAP = 4  # slack after each segment's symbols in read_lanes' buffers: a lookup writes up to 3 bytes past it
LANES = 8  # segments of a stream read_lanes decodes at once (chains): 4 ran 1.3x slower, 16 no faster
CHUNK = LANES * SEG_ENTRIES  # entries the kernels below decode at a time (into small buffers, then used)
# Huffman entries a conv task decodes at least, on average (cpu.py): a layer with fewer entries than
# this per task decodes whole first.  A task's run of one to three segments reads at 4-14 ns an entry
# (SqueezeNet v1.1 fire6/expand1x1, small tables), a run of eight at 0.7-0.9 (conv10).
HUFFMAN_TASK_ENTRIES = CHUNK
# read_lanes runs its rounds while this many chains are live, the retired ones repeating a live one's
# lookups: with one live chain and seven repeating it a 189-entry run read at 13.8 ns an entry against
# 5.1 on its own; whole SqueezeNet v1.1 layers decode in 726-745 us in all against 776-793 without it.
MIN_LIVE = 4
SCRATCH = CHUNK + LANES * GAP  # where read_lanes' retired chains write (SEG_ENTRIES + 4 bytes at most)
LANE_BUF = SCRATCH + SEG_ENTRIES + 8  # the uint8 buffers read_lanes writes (segments with gaps, scratch)



def read_symbol(data, bitpos, table):
    """The symbol at ``bitpos`` and the position after it (compiled for the GPU; the CPU kernels inline it)."""
    t1 = np.int64(table[0])
    byte = bitpos >> 3
    v = (np.int64(data[byte]) << 16) | (np.int64(data[byte + 1]) << 8) | np.int64(data[byte + 2])
    if t1 < 0:
        return (v >> (24 - (bitpos & 7) + t1)) & ((np.int64(1) << -t1) - 1), bitpos - t1
    shift = 24 - (bitpos & 7) - t1
    ent = np.int64(table[TABLE_HEAD + ((v >> shift) & ((np.int64(1) << t1) - 1))])
    if ent < 0:
        t2 = table[1]
        ent = np.int64(table[-ent + ((v >> (shift - t2)) & ((np.int64(1) << t2) - 1))])
    return ent >> ENTRY_SYMBOL_SHIFT, bitpos + (ent & ENTRY_LENGTH_MASK)


read_symbol_jit = njit(inline="always")(read_symbol)


@njit(**_OPTS)
def scan_checkpoints(cdata, ctable, cvals, rdata, rtable, n_entries, n_weights, row_len, block_row,
                     block_entry, block_prev, block_cbit, block_rbit, seg_cbit, seg_rbit):
    """One sequential pass over a layer's entries recording, at each block's first row, the first entry,
    the position before it and the bit offsets of both streams, and (unless ``seg_cbit``, ``seg_rbit``
    are empty) the bit offsets at every ``SEG_ENTRIES``-th entry.  Returns 0, or -1 for an invalid code
    or a stream that ends early, -2 for entries past the weight blob."""
    segs = seg_cbit.size > 0
    rsegs = seg_rbit.size > 0
    nb = block_row.size - 1
    b = 0
    pos = np.int64(-1)
    cb = np.int64(0)
    rb = np.int64(0)
    rbits_total = np.int64(rdata.size - STREAM_PAD) * 8
    cbits_total = np.int64(cdata.size - STREAM_PAD) * 8
    rlen0 = rtable[0] == 0  # no index stream: every relative index is 0 and takes no bits
    for e in range(n_entries):
        if segs and e % SEG_ENTRIES == 0:
            seg_cbit[e // SEG_ENTRIES] = cb
            if rsegs:
                seg_rbit[e // SEG_ENTRIES] = rb
        r, rb2 = read_symbol_jit(rdata, rb, rtable)
        if (rb2 == rb and not rlen0) or rb2 > rbits_total:
            return -1
        p = pos + r + 1
        if p >= n_weights:
            return -2
        while b < nb and p >= block_row[b] * row_len:
            block_entry[b] = e
            block_prev[b] = pos
            block_cbit[b] = cb
            block_rbit[b] = rb
            b += 1
        if not cvals:
            c, cb2 = read_symbol_jit(cdata, cb, ctable)
            if cb2 == cb or cb2 > cbits_total:
                return -1
            cb = cb2
        rb = rb2
        pos = p
    while b < nb:
        block_entry[b] = n_entries
        block_prev[b] = pos
        block_cbit[b] = cb
        block_rbit[b] = rb
        b += 1
    block_entry[nb] = n_entries
    return 0


@njit(**_OPTS)
def read_chunk(data, table, first, bitpos, m, out):
    """Symbols ``first .. first+m-1`` of a stream (the first at ``bitpos``) into ``out[:m]``; returns the
    bit position after them.  Fixed widths up to 8 bits go eight symbols at a time (eight w-bit symbols
    are w whole bytes); Huffman streams symbol by symbol, each symbol's position depending on the last."""
    t1 = np.int64(table[0])
    if t1 < 0:
        w = -t1
        mask = (np.int64(1) << w) - 1
        i = 0
        if w <= 8:
            while i < m and (first + i) & 7:  # up to the next group of eight
                bit = bitpos + i * w
                v = (np.int64(data[bit >> 3]) << 16) | (np.int64(data[(bit >> 3) + 1]) << 8) | \
                    np.int64(data[(bit >> 3) + 2])
                out[i] = (v >> (24 - (bit & 7) - w)) & mask
                i += 1
            groups = (m - i) >> 3
            byte0 = (bitpos + i * w) >> 3
            for g in range(groups):
                word = np.int64(0)
                for k in range(w):
                    word = (word << 8) | np.int64(data[byte0 + g * w + k])
                for k in range(8):
                    out[i + g * 8 + k] = (word >> ((7 - k) * w)) & mask
            i += groups * 8
        for j in range(i, m):
            bit = bitpos + j * w
            v = (np.int64(data[bit >> 3]) << 16) | (np.int64(data[(bit >> 3) + 1]) << 8) | \
                np.int64(data[(bit >> 3) + 2])
            out[j] = (v >> (24 - (bit & 7) - w)) & mask
        return bitpos + m * w
    if t1 == 0 and table[1] == 0 and table.size == 3:  # absent stream
        out[:m] = 0
        return bitpos
    t2 = np.int64(table[1])
    m1 = (np.int64(1) << t1) - 1
    m2 = (np.int64(1) << t2) - 1
    for i in range(m):
        byte = bitpos >> 3
        v = (np.int64(data[byte]) << 16) | (np.int64(data[byte + 1]) << 8) | np.int64(data[byte + 2])
        shift = 24 - (bitpos & 7) - t1
        ent = np.int64(table[TABLE_HEAD + ((v >> shift) & m1)])
        if ent < 0:
            ent = np.int64(table[-ent + ((v >> (shift - t2)) & m2)])
        out[i] = ent >> ENTRY_SYMBOL_SHIFT
        bitpos += ent & ENTRY_LENGTH_MASK
    return bitpos


@njit(**_OPTS)
def read_chunk_pair(rdata, rtable, rb, cdata, ctable, cb, m, rout, cout):
    """Two Huffman streams, ``m`` symbols each, read in one loop: each stream's next position depends on
    its last symbol, so interleaving the two chains lets them overlap.  Returns both bit positions."""
    rt1, rt2 = np.int64(rtable[0]), np.int64(rtable[1])
    ct1, ct2 = np.int64(ctable[0]), np.int64(ctable[1])
    rm1, rm2 = (np.int64(1) << rt1) - 1, (np.int64(1) << rt2) - 1
    cm1, cm2 = (np.int64(1) << ct1) - 1, (np.int64(1) << ct2) - 1
    for i in range(m):
        byte = rb >> 3
        v = (np.int64(rdata[byte]) << 16) | (np.int64(rdata[byte + 1]) << 8) | np.int64(rdata[byte + 2])
        shift = 24 - (rb & 7) - rt1
        ent = np.int64(rtable[TABLE_HEAD + ((v >> shift) & rm1)])
        if ent < 0:
            ent = np.int64(rtable[-ent + ((v >> (shift - rt2)) & rm2)])
        rout[i] = ent >> ENTRY_SYMBOL_SHIFT
        rb += ent & ENTRY_LENGTH_MASK
        byte = cb >> 3
        v = (np.int64(cdata[byte]) << 16) | (np.int64(cdata[byte + 1]) << 8) | np.int64(cdata[byte + 2])
        shift = 24 - (cb & 7) - ct1
        ent = np.int64(ctable[TABLE_HEAD + ((v >> shift) & cm1)])
        if ent < 0:
            ent = np.int64(ctable[-ent + ((v >> (shift - ct2)) & cm2)])
        cout[i] = ent >> ENTRY_SYMBOL_SHIFT
        cb += ent & ENTRY_LENGTH_MASK
    return rb, cb


@njit(**_OPTS)
def read_multi(data, mt, table, bitpos, m, out, o):
    """At least ``m`` symbols of a Huffman stream from ``bitpos`` into ``out[o:]`` (uint8) by its
    multi-symbol table ``mt`` (up to 3 more bytes are written after them; ``out`` has room).  Returns
    nothing: the bit position after exactly ``m`` symbols is not known when the last lookup read past
    them."""
    w = np.int64(mt[0])
    mask = (np.int64(1) << w) - 1
    k = o
    end = o + m
    while k < end:
        ent = np.int64(mt[np.uint64(1 + (((load_be64(data, bitpos >> 3) << (bitpos & 7)) >> (64 - w)) & mask))])
        n = (ent >> MT_COUNT_SHIFT) & MT_COUNT_MASK
        if n == 0:
            sym, bitpos = read_symbol_jit(data, bitpos, table)
            out[np.uint64(k)] = sym
            k += 1
        else:
            store_u32(out, k, ent >> MT_SYMBOLS_SHIFT)
            k += n
            bitpos += ent & MT_LENGTH_MASK


@njit(inline="always")
def _lane_start(seg, bitpos, e0, m, p):
    """Chain ``p`` of :func:`read_lanes` over the ``m`` entries from ``e0``: the bit where its segment
    (:func:`segment`) starts (``bitpos`` for the first, else its checkpoint in ``seg``), and where it
    starts and ends in the lane buffer."""
    i0, i1, off = segment(e0, m, p)
    bit = bitpos if p == 0 else np.int64(seg[(e0 + i0) // SEG_ENTRIES])
    return bit, i0 + off, i1 + off


@njit(inline="always")
def _next_round(data, mt, table, buf, bs, ks, ends, live):
    """The next round of :func:`read_lanes`: chains with fewer than 3 symbols left read them on their own
    and retire; returns ``(q, j, n_live)``: a third of the fewest symbols a live chain lacks, that chain,
    and how many are live."""
    q = np.int64(SEG_ENTRIES)
    j = -1
    n_live = 0
    for p in range(LANES):
        if live[p]:
            left = ends[p] - ks[p]
            if left < 3:  # its last symbols on its own
                read_multi(data, mt, table, bs[p], left, buf, ks[p])
                live[p] = 0
            else:
                n_live += 1
                if j < 0 or left // 3 < q:
                    q = left // 3
                    j = p
    return q, j, n_live


@njit(**_OPTS)
def read_lanes(data, mt, table, seg, bitpos, e0, t, buf, st):
    """Symbols ``e0 .. t-1`` of a Huffman stream (``bitpos`` the bit of entry ``e0``; ``t`` at most the
    ``LANES``-th segment checkpoint after ``e0``) into ``buf`` (uint8, ``LANE_BUF`` bytes), as ``LANES``
    independent chains: chain p reads segment p, entries ``[s_p, s_p+1)`` (``s_0 = e0``, ``s_p`` the p-th
    checkpoint after it, its bit offset from ``seg``), into ``buf[s_p - e0 + p*GAP:]``, and may write 3
    bytes past them.  ``st``: room for the chains' state (``4 * LANES`` int64, the caller's, reused).

    The loop runs in rounds of ``q`` steps, ``q`` a third of the fewest symbols any live chain still lacks
    (a step reads 1 to 3), so the steps need no end tests.  A chain with fewer than 3 symbols left reads
    them on its own and retires; until all have, a retired chain repeats a live one's lookups into the
    scratch bytes at ``buf[SCRATCH:]`` (in bounds: the live one's), so the short first and last segments
    of a range, and chunks of fewer than ``LANES`` segments, keep the other chains interleaved.
    ``ent & MT_COUNT_FIELD`` is an entry's symbol count (bits 4-5), 0 for a code longer than the window."""
    w = np.int64(mt[0])
    mask = (np.int64(1) << w) - 1
    m = t - e0
    bs = st[:LANES]
    ks = st[LANES:2 * LANES]
    ends = st[2 * LANES:3 * LANES]
    live = st[3 * LANES:]
    for p in range(LANES):
        bs[p], ks[p], ends[p] = _lane_start(seg, bitpos, e0, m, p)
        live[p] = 1
    while True:
        q, j, n_live = _next_round(data, mt, table, buf, bs, ks, ends, live)
        if n_live < MIN_LIVE:  # too few to be worth the repeated lookups: each on its own
            for p in range(LANES):
                if live[p]:
                    read_multi(data, mt, table, bs[p], ends[p] - ks[p], buf, ks[p])
            return
        for p in range(LANES):
            if not live[p]:  # repeat chain j into the scratch bytes
                bs[p] = bs[j]
                ks[p] = SCRATCH
        b0, b1, b2, b3, b4, b5, b6, b7 = bs[0], bs[1], bs[2], bs[3], bs[4], bs[5], bs[6], bs[7]
        k0, k1, k2, k3, k4, k5, k6, k7 = ks[0], ks[1], ks[2], ks[3], ks[4], ks[5], ks[6], ks[7]
        for _ in range(q):
            ent = np.int64(mt[np.uint64(1 + (((load_be64(data, b0 >> 3) << (b0 & 7)) >> (64 - w)) & mask))])
            if ent & MT_COUNT_FIELD:
                store_u32(buf, k0, ent >> MT_SYMBOLS_SHIFT)
                k0 += (ent >> MT_COUNT_SHIFT) & MT_COUNT_MASK
                b0 += ent & MT_LENGTH_MASK
            else:  # a code longer than the window
                sym, b0 = read_symbol_jit(data, b0, table)
                buf[np.uint64(k0)] = sym
                k0 += 1
            ent = np.int64(mt[np.uint64(1 + (((load_be64(data, b1 >> 3) << (b1 & 7)) >> (64 - w)) & mask))])
            if ent & MT_COUNT_FIELD:
                store_u32(buf, k1, ent >> MT_SYMBOLS_SHIFT)
                k1 += (ent >> MT_COUNT_SHIFT) & MT_COUNT_MASK
                b1 += ent & MT_LENGTH_MASK
            else:  # a code longer than the window
                sym, b1 = read_symbol_jit(data, b1, table)
                buf[np.uint64(k1)] = sym
                k1 += 1
            ent = np.int64(mt[np.uint64(1 + (((load_be64(data, b2 >> 3) << (b2 & 7)) >> (64 - w)) & mask))])
            if ent & MT_COUNT_FIELD:
                store_u32(buf, k2, ent >> MT_SYMBOLS_SHIFT)
                k2 += (ent >> MT_COUNT_SHIFT) & MT_COUNT_MASK
                b2 += ent & MT_LENGTH_MASK
            else:  # a code longer than the window
                sym, b2 = read_symbol_jit(data, b2, table)
                buf[np.uint64(k2)] = sym
                k2 += 1
            ent = np.int64(mt[np.uint64(1 + (((load_be64(data, b3 >> 3) << (b3 & 7)) >> (64 - w)) & mask))])
            if ent & MT_COUNT_FIELD:
                store_u32(buf, k3, ent >> MT_SYMBOLS_SHIFT)
                k3 += (ent >> MT_COUNT_SHIFT) & MT_COUNT_MASK
                b3 += ent & MT_LENGTH_MASK
            else:  # a code longer than the window
                sym, b3 = read_symbol_jit(data, b3, table)
                buf[np.uint64(k3)] = sym
                k3 += 1
            ent = np.int64(mt[np.uint64(1 + (((load_be64(data, b4 >> 3) << (b4 & 7)) >> (64 - w)) & mask))])
            if ent & MT_COUNT_FIELD:
                store_u32(buf, k4, ent >> MT_SYMBOLS_SHIFT)
                k4 += (ent >> MT_COUNT_SHIFT) & MT_COUNT_MASK
                b4 += ent & MT_LENGTH_MASK
            else:  # a code longer than the window
                sym, b4 = read_symbol_jit(data, b4, table)
                buf[np.uint64(k4)] = sym
                k4 += 1
            ent = np.int64(mt[np.uint64(1 + (((load_be64(data, b5 >> 3) << (b5 & 7)) >> (64 - w)) & mask))])
            if ent & MT_COUNT_FIELD:
                store_u32(buf, k5, ent >> MT_SYMBOLS_SHIFT)
                k5 += (ent >> MT_COUNT_SHIFT) & MT_COUNT_MASK
                b5 += ent & MT_LENGTH_MASK
            else:  # a code longer than the window
                sym, b5 = read_symbol_jit(data, b5, table)
                buf[np.uint64(k5)] = sym
                k5 += 1
            ent = np.int64(mt[np.uint64(1 + (((load_be64(data, b6 >> 3) << (b6 & 7)) >> (64 - w)) & mask))])
            if ent & MT_COUNT_FIELD:
                store_u32(buf, k6, ent >> MT_SYMBOLS_SHIFT)
                k6 += (ent >> MT_COUNT_SHIFT) & MT_COUNT_MASK
                b6 += ent & MT_LENGTH_MASK
            else:  # a code longer than the window
                sym, b6 = read_symbol_jit(data, b6, table)
                buf[np.uint64(k6)] = sym
                k6 += 1
            ent = np.int64(mt[np.uint64(1 + (((load_be64(data, b7 >> 3) << (b7 & 7)) >> (64 - w)) & mask))])
            if ent & MT_COUNT_FIELD:
                store_u32(buf, k7, ent >> MT_SYMBOLS_SHIFT)
                k7 += (ent >> MT_COUNT_SHIFT) & MT_COUNT_MASK
                b7 += ent & MT_LENGTH_MASK
            else:  # a code longer than the window
                sym, b7 = read_symbol_jit(data, b7, table)
                buf[np.uint64(k7)] = sym
                k7 += 1
        bs[0], bs[1], bs[2], bs[3], bs[4], bs[5], bs[6], bs[7] = b0, b1, b2, b3, b4, b5, b6, b7
        ks[0], ks[1], ks[2], ks[3], ks[4], ks[5], ks[6], ks[7] = k0, k1, k2, k3, k4, k5, k6, k7


@njit(inline="always")
def next_chunk(rdata, rtable, rmt, rseg, rb, cdata, ctable, cmt, cseg, cb, cvals, e0, e_end, rout, cout,
                rb8, cb8, st):
    """Read the next chunk of a range of entries from ``e0`` (at bit positions ``rb``, ``cb``); returns
    ``(m, rb, cb)``: its size and the bit positions at ``e0 + m``.

    With multi-symbol tables (``cmt.size``) a chunk runs to the ``LANES``-th segment checkpoint after
    ``e0``, each stream's segments read as ``LANES`` chains into ``rb8``/``cb8`` (:func:`read_lanes`;
    no index stream: ``rb8`` is left as it is, zero); the consumers read them segment by segment
    (:func:`segment`).  Else the chunk is ``CHUNK`` entries read symbol by symbol into
    ``rout``/``cout``."""
    if cmt.size:
        t = min((e0 // SEG_ENTRIES + LANES) * SEG_ENTRIES, e_end)  # the LANES-th checkpoint after e0
        read_lanes(cdata, cmt, ctable, cseg, cb, e0, t, cb8, st)
        if rmt.size:
            read_lanes(rdata, rmt, rtable, rseg, rb, e0, t, rb8, st)
        if t < e_end:  # t is a checkpoint
            cb = np.int64(cseg[t // SEG_ENTRIES])
            if rmt.size:
                rb = np.int64(rseg[t // SEG_ENTRIES])
        return t - e0, rb, cb
    m = min(CHUNK, e_end - e0)
    rb, cb = _read_entries(rdata, rtable, rb, cdata, ctable, cb, cvals, e0, m, rout, cout)
    return m, rb, cb


@njit(inline="always")
def segment(e0, m, p):
    """Segment ``p`` of a chunk read by :func:`read_lanes` from entry ``e0`` (``m`` entries): its
    entries ``[i0, i1)`` from the chunk's start, at ``i + p * GAP`` in the lane buffers."""
    first = (e0 // SEG_ENTRIES + 1) * SEG_ENTRIES - e0
    i0 = 0 if p == 0 else min(first + (p - 1) * SEG_ENTRIES, m)
    return i0, min(first + p * SEG_ENTRIES, m), p * GAP


@njit(inline="always")
def _read_entries(rdata, rtable, rb, cdata, ctable, cb, cvals, e0, m, rout, cout):
    """Relative indices (and codes unless ``cvals``) of entries ``e0 .. e0+m-1``; new bit positions."""
    if not cvals and rtable[0] > 0 and ctable[0] > 0:
        return read_chunk_pair(rdata, rtable, rb, cdata, ctable, cb, m, rout, cout)
    rb = read_chunk(rdata, rtable, e0, rb, m, rout)
    if not cvals:
        cb = read_chunk(cdata, ctable, e0, cb, m, cout)
    return rb, cb


@njit(inline="always")
def chunk_buffers(cmt):
    """The buffers :func:`next_chunk` reads chunks into: ``(relb, codeb, rb8, cb8, st)``, read_lanes'
    byte buffers where the layer has multi-symbol tables (``cmt.size``), else symbol by symbol."""
    n, n8 = (0, LANE_BUF) if cmt.size else (CHUNK, 0)
    relb = np.empty(n, np.int64)
    codeb = np.empty(n, np.int64)
    rb8 = np.zeros(n8, np.uint8)  # stays zero for a layer without an index stream
    cb8 = np.empty(n8, np.uint8)
    st = np.empty(4 * LANES, np.int64)
    return relb, codeb, rb8, cb8, st


@njit(inline="always")
def run_start(b0, b1, block_entry, block_prev, block_cbit, block_rbit):
    """Where a run of entries from block ``b0``'s checkpoint to block ``b1``'s starts: ``(pos, cb, rb, e0,
    e_end)``, the position before its first entry, both streams' bit offsets, its first entry and its end."""
    return block_prev[b0], block_cbit[b0], block_rbit[b0], block_entry[b0], block_entry[b1]
