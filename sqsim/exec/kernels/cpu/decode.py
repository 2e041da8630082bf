"""Compressed layers decoded by row blocks (every stream kind: fixed width, Huffman, multi-symbol tables):
into dense weights (plain rows, or the direct-conv kernel's blocks), or into the sparse conv kernel's
tap lists.

Entry e sits at ``pos_e = pos_{e-1} + rel_e + 1`` and holds ``codebook[code_e]`` (per-entry values:
``codebook[e]``); every other weight is 0 (REFERENCE.md section 3).  A layer's row blocks start at
checkpoints (:class:`sqsim.exec.store.SparseWeights`), so runs of blocks decode in parallel.

The bodies :func:`decode_range` and :func:`decode_tap_range` are compiled once and shared by the parallel,
serial and fused (decode-then-compute, :mod:`.launch`) entry points.

Tap lists: the sparse direct-conv kernel (:mod:`.llvm.sparse`) reads, for output channel r and block j of
its ncb blocks of input channels, entries ``rowptr[r*ncb+j] <= e < rowptr[r*ncb+j+1]``: the weight
``val[e]`` and the offset ``off[e]`` of its tap's run of the input (within the block's).  Entry e of the
layer is entry e of these lists (stored zeros, the fillers of long gaps, included), so ranges of row
blocks decode in parallel, each into its own entries.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import JIT as _OPTS
from .huffman import LANES, chunk_buffers, next_chunk, run_start, segment

@njit(inline="always")
def layout_index(r, col, row_len, kr):
    """Where weight ``(r, col)`` of a decoded layer goes: ``kr`` 1, the plain ``(rows, row_len)`` order;
    else the direct-conv kernel's blocks ``(rows/kr, row_len, kr)`` (:meth:`.llvm.DirectConvKernel.pack`),
    so a layer for that kernel is decoded straight into the form it reads."""
    return (r // kr) * kr * row_len + col * kr + r % kr


@njit(inline="always")
def _all_stored(rtable, entries, weights):
    """Whether a run of ``entries`` entries with index table ``rtable`` stores every one of ``weights``
    weights (no index stream, as many entries as weights): then nothing needs zeroing first."""
    return rtable[0] == 0 and rtable.size == 3 and entries == weights


@njit(inline="always")
def rows_whole(block_row, b0, b1, kr):
    """Whether the rows of blocks ``b0 .. b1-1`` are whole blocks of ``kr`` rows (store.py aligns block
    boundaries to ROW_ALIGN rows where a layer's rows allow), so a range decodes and zeroes on its own."""
    return block_row[b0] % kr == 0 and block_row[b1] % kr == 0


@njit(inline="always")
def _blocks_whole(block_row, kr):
    """Whether every block boundary falls on a block of ``kr`` rows (:func:`rows_whole`)."""
    for b in range(block_row.size):
        if block_row[b] % kr:
            return False
    return True


@njit(**_OPTS)
def decode_range(b0, b1, codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                 block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, kr, out):
    """Decode blocks ``b0 <= b < b1`` (consecutive blocks: one run of entries from block b0's checkpoint)
    in the layout of :func:`layout_index`.  Where their rows form whole blocks of ``kr`` rows (always
    for ``kr`` 1: :func:`rows_whole`) and not every weight is stored, each block of ``kr`` rows is zeroed
    as the entries reach it (a contiguous run of ``out``, still in L1 when they fill it) and the blocks
    no entry reaches at the end; else ``out`` is zeroed by the caller.  Against zeroing the whole range
    first (one thread, every layer, after 4 MB of other data went through the cache): SqueezeNet v1.0
    (Table 1 profile) 1588 vs 1776 us into the direct kernel's blocks, 1400 vs 1576 us in rows (but 1282
    vs 1153 us with everything in cache); AlexNet's fc6 (151 MB dense) 28 vs 41 ms in rows."""
    w0, w1 = block_row[b0] * row_len, block_row[b1] * row_len
    zero = rows_whole(block_row, b0, b1, kr) and not _all_stored(rtable, block_entry[b1] - block_entry[b0], w1 - w0)
    relb, codeb, rb8, cb8, st = chunk_buffers(cmt)
    pos, cb, rb, e0, e_end = run_start(b0, b1, block_entry, block_prev, block_cbit, block_rbit)
    r = max(pos, 0) // row_len  # the row of the last position, where it ends, where it goes
    row_end = (r + 1) * row_len
    start = layout_index(r, 0, row_len, kr)
    # the next row whose block is zeroed when the entries reach it (-1: none); the last position is
    # in a row before the range, or it is -1 and row 0, the range's first, is current already
    zrow = block_row[b0] if zero else np.int64(-1)
    if zero and r == zrow:
        _zero(out, zrow * row_len, (zrow + kr) * row_len)
        zrow += kr
    while e0 < e_end:
        m, rb, cb = next_chunk(rdata, rtable, rmt, rseg, rb, cdata, ctable, cmt, cseg, cb, cvals, e0, e_end, relb,
                                codeb, rb8, cb8, st)
        if cmt.size:  # the lane buffers, segment by segment
            for p in range(LANES):
                i0, i1, off = segment(e0, m, p)
                pos, r, row_end, start, zrow = _place(rb8, cb8, off, i0, i1, e0, pos, r, row_end, start, zrow,
                                                      codebook, cvals, row_len, kr, out)
        else:
            pos, r, row_end, start, zrow = _place(relb, codeb, 0, 0, m, e0, pos, r, row_end, start, zrow, codebook,
                                                  cvals, row_len, kr, out)
        e0 += m
    if zero and zrow < block_row[b1]:  # the blocks after the last entry's
        _zero(out, zrow * row_len, w1)


@njit(inline="always")
def _zero(out, a, b):
    for j in range(a, b):
        out[np.uint64(j)] = 0.0


@njit(inline="always")
def _place(rel, code, off, i0, i1, e0, pos, r, row_end, start, zrow, codebook, cvals, row_len, kr, out):
    """Write entries ``e0 + i`` (``i0 <= i < i1``; relative index and code at ``rel[i + off]``,
    ``code[i + off]``) into ``out`` in the layout of :func:`layout_index`, from position ``pos``
    (in row ``r``, which ends at ``row_end`` and starts at ``out[start]``), zeroing the block of ``kr``
    rows from row ``zrow`` when they reach it (``zrow`` -1: nothing to zero; ``kr`` 1 then skips the row
    tracking); returns the new ``pos, r, row_end, start, zrow``.  Indices are cast to unsigned, which
    spares Numba's negative-index tests."""
    if kr != 1 or zrow >= 0:
        for i in range(i0 + off, i1 + off):  # the row of the next position: positions ascend
            pos += rel[np.uint64(i)] + 1
            while pos >= row_end:
                r += 1
                row_end += row_len
                start = layout_index(r, 0, row_len, kr)
                if r == zrow:  # the first row of a block of kr (start = r * row_len)
                    _zero(out, start, start + kr * row_len)
                    zrow += kr
            out[np.uint64(start + (pos - row_end + row_len) * kr)] = \
                codebook[np.uint64(e0 + i - off)] if cvals else codebook[np.uint64(code[np.uint64(i)])]
    elif cvals:
        for i in range(i0 + off, i1 + off):
            pos += rel[np.uint64(i)] + 1
            out[np.uint64(pos)] = codebook[np.uint64(e0 + i - off)]
    else:
        for i in range(i0 + off, i1 + off):
            pos += rel[np.uint64(i)] + 1
            out[np.uint64(pos)] = codebook[np.uint64(code[np.uint64(i)])]
    return pos, r, row_end, start, zrow


@njit(parallel=True, **_OPTS)
def decode_blocks(codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                  block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, tasks, kr, out):
    """Decode a compressed layer into dense ``out`` (flat, in the layout of :func:`layout_index`) as
    ``tasks`` parallel tasks (one per thread), each a run of consecutive row blocks (fewer chunk restarts
    than a task per block).

    Entry e sits at ``pos_e = pos_{e-1} + rel_e + 1`` and holds ``codebook[code_e]`` (with ``cvals``,
    ``codebook[e]``: per-entry fp32 values); every other weight is 0 (REFERENCE.md section 3).
    ``rmt``, ``cmt``, ``rseg``, ``cseg``: multi-symbol tables and segment checkpoints of both streams, or
    empty (see :func:`.huffman.read_lanes`).
    """
    nb = block_row.size - 1
    tasks = max(1, min(nb, tasks))
    n = block_row[nb] * row_len
    if not _blocks_whole(block_row, kr) and not _all_stored(rtable, block_entry[nb], n):
        for t in prange(tasks):
            out[t * n // tasks:(t + 1) * n // tasks] = 0.0
    for t in prange(tasks):
        decode_range(t * nb // tasks, (t + 1) * nb // tasks, codebook, cdata, ctable, cvals, rdata, rtable,
                     block_row, block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg,
                     kr, out)


@njit(inline="always")
def _place_taps(rel, code, o, i0, i1, e0, pos, r, row_end, codebook, cvals, xoff, val, off, rowptr, row_len):
    """Entries ``e0 + i`` (``i0 <= i < i1``; relative index and code at ``rel[i + o]``, ``code[i + o]``) as
    ``val[e]``, ``off[e]``, from position ``pos`` in row ``r`` (ending at ``row_end``); a row's first entry
    sets its ``rowptr`` (and those of the empty rows before it).  Returns the new ``pos, r, row_end``."""
    for i in range(i0 + o, i1 + o):
        e = np.uint64(e0 + i - o)
        pos += rel[np.uint64(i)] + 1
        while pos >= row_end:
            r += 1
            row_end += row_len
            rowptr[np.uint64(r)] = e
        val[e] = codebook[e] if cvals else codebook[np.uint64(code[np.uint64(i)])]
        off[e] = xoff[np.uint64(pos - row_end + row_len)]
    return pos, r, row_end


@njit(**_OPTS)
def decode_tap_range(b0, b1, codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                     block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, xoff, val, off, rowptr, ncb):
    """Decode blocks ``b0 <= b < b1`` (one run of entries) into the tap lists: entries ``block_entry[b0]
    <= e < block_entry[b1]``, and a list per row and block of input channels: each row's ``row_len``
    weights are ``ncb`` sub-rows of ``row_len / ncb`` (the taps of consecutive channels), sub-row ``s =
    r*ncb + j`` starts at entry ``rowptr[s]`` (``block_row[b0]*ncb <= s <= block_row[b1]*ncb``), and its
    offsets are those of the first block's taps (``xoff[col - j*row_len/ncb]``)."""
    row_len = row_len // ncb
    relb, codeb, rb8, cb8, st = chunk_buffers(cmt)
    pos, cb, rb, e0, e_end = run_start(b0, b1, block_entry, block_prev, block_cbit, block_rbit)
    r = block_row[b0] * ncb  # every entry of the range lies in its rows
    row_end = (r + 1) * row_len
    rowptr[r] = e0
    while e0 < e_end:
        m, rb, cb = next_chunk(rdata, rtable, rmt, rseg, rb, cdata, ctable, cmt, cseg, cb, cvals, e0, e_end, relb,
                                codeb, rb8, cb8, st)
        if cmt.size:
            for p in range(LANES):
                i0, i1, o = segment(e0, m, p)
                pos, r, row_end = _place_taps(rb8, cb8, o, i0, i1, e0, pos, r, row_end, codebook, cvals, xoff, val,
                                              off, rowptr, row_len)
        else:
            pos, r, row_end = _place_taps(relb, codeb, 0, 0, m, e0, pos, r, row_end, codebook, cvals, xoff, val, off,
                                          rowptr, row_len)
        e0 += m
    while r < block_row[b1] * ncb:  # the rows after the last entry's, and the range's end
        r += 1
        rowptr[r] = e_end


@njit(parallel=True, **_OPTS)
def decode_taps(codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev, block_cbit,
                block_rbit, row_len, rmt, cmt, rseg, cseg, tasks, xoff, val, off, rowptr, ncb):
    """Decode a compressed layer into the sparse kernel's tap lists (``val``, ``off``: one per entry;
    ``rowptr``: rows * ncb + 1, see :func:`decode_tap_range`) as ``tasks`` parallel runs of row blocks."""
    nb = block_row.size - 1
    tasks = max(1, min(nb, tasks))
    for t in prange(tasks):
        decode_tap_range(t * nb // tasks, (t + 1) * nb // tasks, codebook, cdata, ctable, cvals, rdata, rtable,
                         block_row, block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg,
                         xoff, val, off, rowptr, ncb)
