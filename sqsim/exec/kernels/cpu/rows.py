"""Fixed-width streams by row pointers: a layer decoded, or multiplied, row by row.

A fixed-width stream is randomly addressable (entry e's symbol starts at bit ``e * w``), so with each row's
first entry and the position before it (``row_entry``, ``row_prev``: 8 bytes per row, kept by
:class:`sqsim.exec.store.SparseWeights`) every row decodes or multiplies on its own, with no chunk
buffers: rows are the parallel tasks.

Eight w-bit symbols starting at an entry that is a multiple of 8 are exactly w whole bytes: the fast
paths read them as one word and unpack with shifts (entries up to the next multiple of 8, and the row's
tail, go one at a time).  That needs 1..8 bits per code and per index; other layers (per-entry values,
no index stream, wider codes) take the one-at-a-time path throughout.

The kernels are built per ``(code bits, index bits)`` of a layer (:func:`row_kernels`), with the widths
as compile-time constants: the compiler unrolls the word reads and folds the shifts, and a model
compiles the kernels of the widths it has only (Deep Compression: 8-bit codes and 4-bit indices in conv
layers, 5-bit codes in fc layers; 6-bit codes without indices in dense-coded layers).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit, prange

from . import JIT as _OPTS
from . import with_globals
from .decode import layout_index
from .matmul import add_lane

# Rows of a sparse matmul task (sparse_matmul_rows).
MATMUL_ROWS_PER_TASK = 16


@njit(inline="always")
def _fixed_symbol(data, e, w):
    """Entry ``e`` of a stream of ``w``-bit symbols packed MSB first (``w`` <= 17; 0 reads 0)."""
    bit = e * w
    byte = bit >> 3
    v = (np.int64(data[byte]) << 16) | (np.int64(data[byte + 1]) << 8) | np.int64(data[byte + 2])
    return (v >> (24 - (bit & 7) - w)) & ((np.int64(1) << w) - 1)


@njit(inline="always")
def _word(data, byte0, nbytes):
    """``nbytes`` (<= 8) bytes from ``byte0`` as one big-endian integer."""
    v = np.int64(0)
    for k in range(nbytes):
        v = (v << 8) | np.int64(data[byte0 + k])
    return v


@njit(inline="always")
def _fast(cbits, ibits):
    return 1 <= cbits <= 8 and 1 <= ibits <= 8


@njit(inline="always")
def _decode_row(r, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out):
    """Row ``r``'s entries into its place in ``out`` (zeroed by the caller) in the layout of
    :func:`layout_index`: a strided view of the row (stride ``kr``)."""
    start = layout_index(r, 0, row_len, kr)
    dst = out[start:start + (row_len - 1) * kr + 1:kr]
    pos = np.int64(row_prev[r]) - r * row_len  # row pointers may be int32
    e, e1 = np.int64(row_entry[r]), np.int64(row_entry[r + 1])
    if ibits == 0 and 1 <= cbits <= 8:  # dense codes: entry e is weight e
        cmask = (np.int64(1) << cbits) - 1
        while e < e1 and e & 7:
            pos += 1
            dst[pos] = codebook[_fixed_symbol(cdata, e, cbits)]
            e += 1
        while e + 8 <= e1:
            cw = _word(cdata, (e >> 3) * cbits, cbits)
            for k in range(8):
                dst[np.uint64(pos + 1 + k)] = codebook[np.uint64((cw >> ((7 - k) * cbits)) & cmask)]
            pos += 8
            e += 8
    if _fast(cbits, ibits):
        cmask = (np.int64(1) << cbits) - 1
        imask = (np.int64(1) << ibits) - 1
        while e < e1 and e & 7:
            pos += _fixed_symbol(rdata, e, ibits) + 1
            dst[pos] = codebook[_fixed_symbol(cdata, e, cbits)]
            e += 1
        while e + 8 <= e1:
            rw = _word(rdata, (e >> 3) * ibits, ibits)
            cw = _word(cdata, (e >> 3) * cbits, cbits)
            for k in range(8):
                pos += ((rw >> ((7 - k) * ibits)) & imask) + 1
                dst[np.uint64(pos)] = codebook[np.uint64((cw >> ((7 - k) * cbits)) & cmask)]
            e += 8
    while e < e1:
        rel = _fixed_symbol(rdata, e, ibits) if ibits else np.int64(0)
        pos += rel + 1
        dst[pos] = codebook[_fixed_symbol(cdata, e, cbits)] if cbits else codebook[e]
        e += 1


@njit(inline="always")
def _zero_rows(ibits, row_entry, r0, r1, row_len, out):
    """Zero rows ``r0 <= r < r1`` of ``out`` (in either layout, a contiguous run for whole register blocks)
    unless every weight of them is stored (no index stream, an entry per weight)."""
    if ibits or row_entry[r1] - row_entry[r0] != (r1 - r0) * row_len:
        out[r0 * row_len:r1 * row_len] = 0.0


@njit(inline="always")
def _row_dot(codebook, cdata, cbits, rdata, ibits, e, e1, pos, x):
    """Sum over entries ``e .. e1-1`` of one row of ``value * x[position]`` (``x`` 1-D): entry e adds into
    partial sum ``e % 4``, the row is ``(s0 + s1) + (s2 + s3)``.  Indices are cast to unsigned, which
    spares Numba's negative-index test on every load."""
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    s3 = np.float32(0.0)
    if _fast(cbits, ibits):
        cmask = (np.int64(1) << cbits) - 1
        imask = (np.int64(1) << ibits) - 1
        while e < e1 and e & 7:
            pos += _fixed_symbol(rdata, e, ibits) + 1
            t = codebook[np.uint64(_fixed_symbol(cdata, e, cbits))] * x[np.uint64(pos)]
            s0, s1, s2, s3 = add_lane(s0, s1, s2, s3, e & 3, t)
            e += 1
        while e + 8 <= e1:
            rw = _word(rdata, (e >> 3) * ibits, ibits)
            cw = _word(cdata, (e >> 3) * cbits, cbits)
            for k in range(2):
                sh = 4 - 4 * k  # entries 4k .. 4k+3 of the eight sit (7 - j) symbols from the word's end
                pos += ((rw >> ((sh + 3) * ibits)) & imask) + 1
                s0 += codebook[np.uint64((cw >> ((sh + 3) * cbits)) & cmask)] * x[np.uint64(pos)]
                pos += ((rw >> ((sh + 2) * ibits)) & imask) + 1
                s1 += codebook[np.uint64((cw >> ((sh + 2) * cbits)) & cmask)] * x[np.uint64(pos)]
                pos += ((rw >> ((sh + 1) * ibits)) & imask) + 1
                s2 += codebook[np.uint64((cw >> ((sh + 1) * cbits)) & cmask)] * x[np.uint64(pos)]
                pos += ((rw >> (sh * ibits)) & imask) + 1
                s3 += codebook[np.uint64((cw >> (sh * cbits)) & cmask)] * x[np.uint64(pos)]
            e += 8
    while e < e1:
        rel = _fixed_symbol(rdata, e, ibits) if ibits else np.int64(0)
        pos += rel + 1
        t = (codebook[_fixed_symbol(cdata, e, cbits)] if cbits else codebook[e]) * x[pos]
        s0, s1, s2, s3 = add_lane(s0, s1, s2, s3, e & 3, t)
        e += 1
    return (s0 + s1) + (s2 + s3)


@njit(inline="always")
def _row_axpy(codebook, cdata, cbits, rdata, ibits, e, e1, pos, x, acc):
    """``acc[:] += value * x[position, :]`` over entries ``e .. e1-1`` of one row."""
    n_ = acc.size
    if _fast(cbits, ibits):
        cmask = (np.int64(1) << cbits) - 1
        imask = (np.int64(1) << ibits) - 1
        while e < e1 and e & 7:
            pos += _fixed_symbol(rdata, e, ibits) + 1
            v = codebook[_fixed_symbol(cdata, e, cbits)]
            xr = x[pos]
            for n in range(n_):
                acc[n] += v * xr[n]
            e += 1
        while e + 8 <= e1:
            rw = _word(rdata, (e >> 3) * ibits, ibits)
            cw = _word(cdata, (e >> 3) * cbits, cbits)
            for k in range(8):
                pos += ((rw >> ((7 - k) * ibits)) & imask) + 1
                v = codebook[np.uint64((cw >> ((7 - k) * cbits)) & cmask)]
                xr = x[np.uint64(pos)]
                for n in range(n_):
                    acc[n] += v * xr[n]
            e += 8
    while e < e1:
        rel = _fixed_symbol(rdata, e, ibits) if ibits else np.int64(0)
        pos += rel + 1
        v = codebook[_fixed_symbol(cdata, e, cbits)] if cbits else codebook[e]
        xr = x[pos]
        for n in range(n_):
            acc[n] += v * xr[n]
        e += 1


@dataclass(frozen=True)
class RowKernels:
    """The fixed-width kernels of one ``(code_bits, index_bits)``; every one takes
    ``SparseWeights.row_kernel_args()`` first.

    Attributes
    ----------
    decode_range : ``(r0, r1, *args, kr, out)``
        Rows ``r0 <= r < r1`` (whole blocks of ``kr`` rows) into ``out`` in the layout of
        :func:`.decode.layout_index`, zeroed first unless every weight is stored; serial (a conv task
        decodes the rows it is about to multiply, still in cache for its GEMM).  The body the others share.
    decode : ``(*args, kr, out)``
        The whole layer, blocks of ``kr`` rows in parallel.
    matmul : ``(*args, x, y)``
        ``y (K, N) = W @ x (row_len, N)`` without decoding W (:func:`sparse_matmul_rows`).
    """
    code_bits: int
    index_bits: int
    decode_range: object
    decode: object
    matmul: object


@lru_cache(maxsize=None)
def row_kernels(code_bits: int, index_bits: int) -> RowKernels:
    """The kernels for layers of ``code_bits``-bit codes (0: per-entry values) and ``index_bits``-bit
    relative indices (0: none), built once per process (compiled on first call, cached to disk)."""
    cb, ib = int(code_bits), int(index_bits)

    @njit(**_OPTS)
    def decode_range(r0, r1, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out):
        _zero_rows(ib, row_entry, r0, r1, row_len, out)
        for r in range(r0, r1):
            _decode_row(r, codebook, cdata, cb, rdata, ib, row_entry, row_prev, row_len, kr, out)

    def decode(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out):
        for blk in prange((row_entry.size - 1) // kr):
            _rows_body(blk * kr, (blk + 1) * kr, codebook, cdata, cb, rdata, ib, row_entry, row_prev, row_len, kr,
                       out)
    decode = njit(parallel=True, **_OPTS)(with_globals(decode, _rows_body=decode_range))

    @njit(parallel=True, **_OPTS)  # no FMA contraction: both sparse matmuls round alike
    def matmul(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, x, y):
        k_, n_ = y.shape
        x1 = x.reshape(x.size)  # (row_len,) when N is 1 (x is C-contiguous)
        for t in prange((k_ + MATMUL_ROWS_PER_TASK - 1) // MATMUL_ROWS_PER_TASK):
            acc = np.empty(n_, np.float32)
            for r in range(t * MATMUL_ROWS_PER_TASK, min(k_, (t + 1) * MATMUL_ROWS_PER_TASK)):
                pos = np.int64(row_prev[r]) - r * row_len
                e0, e1 = np.int64(row_entry[r]), np.int64(row_entry[r + 1])  # row pointers may be int32
                if n_ == 1:
                    y[r, 0] = _row_dot(codebook, cdata, cb, rdata, ib, e0, e1, pos, x1)
                else:
                    acc[:] = 0.0
                    _row_axpy(codebook, cdata, cb, rdata, ib, e0, e1, pos, x, acc)
                    y[r, :] = acc

    return RowKernels(cb, ib, decode_range, decode, matmul)


def sparse_matmul_rows(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, x, y) -> None:
    """``y (K, N) = W @ x (row_len, N)`` on the fixed-width compressed form of W, output rows in parallel:
    each stored entry is read once, its value looked up in the codebook and multiplied with one row of
    ``x``; no dense W is formed.  The sums run in a fixed order (at N = 1 entry e adds into partial sum
    ``e % 4``, a row is ``(s0 + s1) + (s2 + s3)``; at N > 1 entries add in order), the same as
    :func:`.matmul.sparse_matmul`'s, so Huffman-coded and fixed-width streams give the same bits; they
    agree with the dense product to float32 rounding."""
    row_kernels(cbits, ibits).matmul(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, x, y)


def decode_rows(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out) -> None:
    """Decode a layer of fixed-width streams into dense ``out`` (flat; layout :func:`.decode.layout_index`),
    blocks of ``kr`` rows in parallel.  Entry e of row r (``row_entry[r] <= e < row_entry[r+1]``) sits at
    ``pos_e = pos_{e-1} + rel_e + 1`` (``pos`` before the row's first entry: ``row_prev[r]``) and holds
    ``codebook[code_e]`` (``cbits`` 0: ``codebook[e]``); ``ibits`` 0: every relative index is 0."""
    row_kernels(cbits, ibits).decode(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out)


def decode_row_range(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, r0, r1, out, kr=1) -> None:
    """Rows ``r0 <= r < r1`` of :func:`decode_rows`, on this thread (see :attr:`RowKernels.decode_range`)."""
    row_kernels(cbits, ibits).decode_range(r0, r1, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev,
                                           row_len, kr, out)
