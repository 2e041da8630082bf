"""``y = W @ x`` on a compressed W, by row blocks, without decoding W (fc layers: each stored entry is read
once and multiplies one row of ``x``).  Every stream kind; fixed-width streams with row pointers also
have the row-parallel :func:`.rows.sparse_matmul_rows`, which sums in the same order."""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import JIT as _OPTS
from .huffman import CHUNK, LANE_BUF, LANES, next_chunk, run_start, segment

@njit(inline="always")
def add_lane(s0, s1, s2, s3, lane, t):
    if lane == 0:
        s0 += t
    elif lane == 1:
        s1 += t
    elif lane == 2:
        s2 += t
    else:
        s3 += t
    return s0, s1, s2, s3


@njit(inline="always")
def _dot_one(rel, code, off, i, e0, pos, row, base, s0, s1, s2, s3, codebook, cvals, x1, y, row_len):
    """Entry ``e0 + i`` of :func:`_dot_segment`, on its own."""
    pos += rel[np.uint64(i + off)] + 1
    if pos - base >= row_len:  # a later row: the one summed so far is complete
        if row >= 0:
            y[row, 0] = (s0 + s1) + (s2 + s3)
        s0 = s1 = s2 = s3 = np.float32(0.0)
        row = pos // row_len
        base = row * row_len
    v = codebook[np.uint64(e0 + i)] if cvals else codebook[np.uint64(code[np.uint64(i + off)])]
    s0, s1, s2, s3 = add_lane(s0, s1, s2, s3, (e0 + i) & 3, v * x1[np.uint64(pos - base)])
    return pos, row, base, s0, s1, s2, s3


@njit(inline="always")
def _dot_segment(rel, code, off, i0, i1, e0, pos, row, base, s0, s1, s2, s3, codebook, cvals, x1, y, row_len):
    """The N = 1 product over entries ``e0 + i`` (``i0 <= i < i1``; relative index and code at
    ``rel[i + off]``, ``code[i + off]``; with ``cvals``, value ``codebook[e0 + i]``) from position ``pos``,
    summing row ``row`` (first position ``base``) into partial sums ``s0..s3`` (entry e into
    ``s{e % 4}``); a row is stored into ``y`` when the next one starts.  Returns the new state.  With
    codes, four entries at a time (``e % 4`` = 0, 1, 2, 3) where all four lie in the current row."""
    i = i0
    while i < i1 and (e0 + i) & 3:
        pos, row, base, s0, s1, s2, s3 = _dot_one(rel, code, off, i, e0, pos, row, base, s0, s1, s2, s3,
                                                  codebook, cvals, x1, y, row_len)
        i += 1
    if not cvals:
        while i + 4 <= i1:
            j = np.uint64(i + off)
            p0 = pos + rel[j] + 1
            p1 = p0 + rel[j + 1] + 1
            p2 = p1 + rel[j + 2] + 1
            p3 = p2 + rel[j + 3] + 1
            if p3 - base < row_len:
                s0 += codebook[np.uint64(code[j])] * x1[np.uint64(p0 - base)]
                s1 += codebook[np.uint64(code[j + 1])] * x1[np.uint64(p1 - base)]
                s2 += codebook[np.uint64(code[j + 2])] * x1[np.uint64(p2 - base)]
                s3 += codebook[np.uint64(code[j + 3])] * x1[np.uint64(p3 - base)]
                pos = p3
            else:  # a row ends among them
                for k in range(i, i + 4):
                    pos, row, base, s0, s1, s2, s3 = _dot_one(rel, code, off, k, e0, pos, row, base, s0, s1, s2,
                                                              s3, codebook, cvals, x1, y, row_len)
            i += 4
    while i < i1:
        pos, row, base, s0, s1, s2, s3 = _dot_one(rel, code, off, i, e0, pos, row, base, s0, s1, s2, s3,
                                                  codebook, cvals, x1, y, row_len)
        i += 1
    return pos, row, base, s0, s1, s2, s3


@njit(inline="always")
def _positions(rel, code, off, i0, i1, e0, pos, codebook, cvals, posb, valb):
    """``posb[i]``, ``valb[i]`` for entries ``e0 + i`` (``i0 <= i < i1``; relative index and code at
    ``rel[i + off]``, ``code[i + off]``): positions as a running sum of ``rel + 1`` from ``pos``, and
    values; returns the last position.  ``rel`` may be ``posb`` (``off`` 0: overwritten in place)."""
    if cvals:
        for i in range(i0, i1):
            pos += rel[np.uint64(i + off)] + 1
            posb[np.uint64(i)] = pos
            valb[np.uint64(i)] = codebook[np.uint64(e0 + i)]
    else:
        for i in range(i0, i1):
            pos += rel[np.uint64(i + off)] + 1
            posb[np.uint64(i)] = pos
            valb[np.uint64(i)] = codebook[np.uint64(code[np.uint64(i + off)])]
    return pos


@njit(parallel=True, **_OPTS)  # no FMA contraction: both kernels round alike
def sparse_matmul(codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                  block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, x, y):
    """``y (K, N) = W @ x (row_len, N)`` computed on the compressed form of W (see :func:`.decode.decode_blocks`):
    each entry is read once and multiplies one row of ``x``; no dense W is formed.

    Per block of rows, in chunks of entries: at N = 1 each entry is multiplied as it is placed
    (:func:`_dot_segment`); at N > 1 the chunk's positions and values are decoded, then multiplied
    row run by row run.  The sums run in the order of :func:`.rows.sparse_matmul_rows` (at N = 1, entry e
    adds into partial sum ``e % 4`` and a row is ``(s0 + s1) + (s2 + s3)``; at N > 1 entries add in
    order), so a layer gives the same bits from Huffman-coded and fixed-width streams."""
    n_ = y.shape[1]
    x1 = x.reshape(x.size)  # (row_len,) when N is 1 (x is C-contiguous)
    for b in prange(block_row.size - 1):
        y[block_row[b]:block_row[b + 1]] = 0.0
        posb = np.empty(CHUNK, np.int64)
        codeb = np.empty(CHUNK, np.int64)
        valb = np.empty(CHUNK, np.float32)
        rb8 = np.zeros(LANE_BUF, np.uint8)  # stays zero for a layer without an index stream
        cb8 = np.empty(LANE_BUF, np.uint8)
        st = np.empty(4 * LANES, np.int64)
        s0 = s1 = s2 = s3 = np.float32(0.0)
        row = np.int64(-1)
        pos, cb, rb, e0, e_end = run_start(b, b + 1, block_entry, block_prev, block_cbit, block_rbit)
        base = np.int64(-(1 << 62))  # the first position of the row being summed (none yet)
        while e0 < e_end:
            m, rb, cb = next_chunk(rdata, rtable, rmt, rseg, rb, cdata, ctable, cmt, cseg, cb, cvals, e0, e_end,
                                    posb, codeb, rb8, cb8, st)
            if n_ == 1:  # each entry multiplied as it is placed
                if cmt.size:  # from the lane buffers, segment by segment
                    for p in range(LANES):
                        i0, i1, off = segment(e0, m, p)
                        pos, row, base, s0, s1, s2, s3 = _dot_segment(rb8, cb8, off, i0, i1, e0, pos, row, base,
                                                                      s0, s1, s2, s3, codebook, cvals, x1, y,
                                                                      row_len)
                else:
                    pos, row, base, s0, s1, s2, s3 = _dot_segment(posb, codeb, 0, 0, m, e0, pos, row, base, s0, s1,
                                                                  s2, s3, codebook, cvals, x1, y, row_len)
                e0 += m
                continue
            if cmt.size:  # positions and values, from the lane buffers segment by segment
                for p in range(LANES):
                    i0, i1, off = segment(e0, m, p)
                    pos = _positions(rb8, cb8, off, i0, i1, e0, pos, codebook, cvals, posb, valb)
            else:
                pos = _positions(posb, codeb, 0, 0, m, e0, pos, codebook, cvals, posb, valb)
            i = 0
            while i < m:  # runs of entries in one row: positions ascend, so a run ends at the row's end
                r = posb[i] // row_len
                base = r * row_len
                j = i + np.searchsorted(posb[i:m], base + row_len)
                for t in range(i, j):
                    w = valb[t]
                    col = posb[t] - base
                    for n in range(n_):
                        y[r, n] += w * x[col, n]
                i = j
            e0 += m
        if n_ == 1 and row >= 0:
            y[row, 0] = (s0 + s1) + (s2 + s3)
