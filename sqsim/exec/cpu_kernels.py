"""Numba kernels of the CPU backend (compiled once, cached to disk).

The conv helpers (im2col, bias_act) are serial: the backend runs many of them at once on its task
threads.  The others are parallel over channels, planes or positions (``prange``).

Activations use the *CNHW* layout: ``(channels, batch, height, width)``.  With the batch folded into
the spatial axes a convolution is one GEMM per group, ``W (K, C*R*S) @ cols (C*R*S, N*P*Q)``, and a
channel range of a tensor (a concat input, a group) is one contiguous block.

Every kernel takes C-contiguous float32 arrays of a fixed rank and int64 scalars, so each compiles to
one signature.  The pooling and LRN rules follow Caffe (``caffe/src/caffe/layers/pooling_layer.cpp``,
``lrn_layer.cpp``); the decode kernels follow Deep Compression's sparse format (REFERENCE.md section 3):
a stream of entries, each a code into a codebook and the count of zeros skipped before it.
"""
from __future__ import annotations

import math
import os

import numba
import numpy as np
from numba import njit, prange

# OpenBLAS (numpy's sgemm) busy-waits after each GEMM; GNU OpenMP threads spin too, and with both pools
# on two cores each kernel then waits out the other's spin (measured: 10x slower per layer).  Numba's
# own 'workqueue' pool does not spin and is fork-safe.  An explicit NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

_OPTS = dict(cache=True, nogil=True, fastmath=False)


# --- layout ----------------------------------------------------------------------------------------
@njit(parallel=True, **_OPTS)
def nchw_to_cnhw(x, out):
    """out[c, n] = x[n, c] for 4-D arrays."""
    n_, c_ = x.shape[0], x.shape[1]
    for i in prange(n_ * c_):
        c = i // n_
        n = i % n_
        out[c, n] = x[n, c]


@njit(parallel=True, **_OPTS)
def features_to_columns(x, out):
    """Caffe's flatten of a CNHW tensor: ``x (C, N, S) -> out (C*S, N)``, ``out[c*S + s, n] = x[c, n, s]``."""
    c_, n_, s_ = x.shape
    for c in prange(c_):
        for n in range(n_):
            for s in range(s_):
                out[c * s_ + s, n] = x[c, n, s]


# --- convolution helpers -----------------------------------------------------------------------------
# Loops below run over range(n) on slices: an index from range(a, b) could be negative, and Numba's
# wraparound test for negative indices stops LLVM from vectorising the loop (measured 5x slower).
@njit(**_OPTS)
def im2col(x, n, p0, p1, kh, kw, sh, sw, ph, pw, q_, cols):
    """Unfold output rows ``p0 <= p < p1`` of sample ``n`` of ``x (C, N, H, W)`` into
    ``cols (C*kh*kw, (p1-p0)*Q)``; positions in the zero padding read 0.  A band of output rows of one
    sample keeps the column matrix small enough to stay in cache for the GEMM that follows.
    Serial: the CPU backend runs bands on several threads at once."""
    c_, n_, h_, w_ = x.shape
    for row in range(c_ * kh * kw):
        c = row // (kh * kw)
        r = (row // kw) % kh
        s = row % kw
        # output columns q whose input column q*sw - pw + s lies inside [0, W)
        q_lo = 0
        if pw - s > 0:
            q_lo = min(q_, (pw - s + sw - 1) // sw)
        q_hi = max(q_lo, min(q_, (w_ - 1 + pw - s) // sw + 1))  # exclusive
        for p in range(p0, p1):
            dst = cols[row, (p - p0) * q_:(p - p0 + 1) * q_]
            hi = p * sh - ph + r
            if hi < 0 or hi >= h_:
                dst[:] = 0.0
                continue
            dst[:q_lo] = 0.0
            dst[q_hi:] = 0.0
            inner = dst[q_lo:q_hi]
            src = x[c, n, hi, q_lo * sw + s - pw:]
            if sw == 1:
                for i in range(inner.size):
                    inner[i] = src[i]
            else:
                for i in range(inner.size):
                    inner[i] = src[i * sw]


@njit(**_OPTS)
def bias_act(y, bias, m0, m1, relu):
    """``y[:, m0:m1] += bias[k]`` per row k, then ReLU when ``relu``; in place (serial)."""
    zero = np.float32(0.0)
    for k in range(y.shape[0]):
        b = bias[k]
        row = y[k, m0:m1]
        if relu:
            for m in range(row.size):
                row[m] = max(row[m] + b, zero)
        else:
            for m in range(row.size):
                row[m] += b


@njit(parallel=True, **_OPTS)
def relu(x, out):
    """``out = max(x, 0)`` over 1-D views (``out`` may be ``x``)."""
    n = x.size
    chunk = 65536
    zero = np.float32(0.0)
    for b in prange((n + chunk - 1) // chunk):
        xs = x[b * chunk:min(n, (b + 1) * chunk)]
        os = out[b * chunk:min(n, (b + 1) * chunk)]
        for i in range(xs.size):
            os[i] = max(xs[i], zero)


@njit(parallel=True, **_OPTS)
def add(a, b, out):
    """``out = a + b`` over 1-D views."""
    n = a.size
    chunk = 65536
    for blk in prange((n + chunk - 1) // chunk):
        lo, hi = blk * chunk, min(n, (blk + 1) * chunk)
        av, bv, ov = a[lo:hi], b[lo:hi], out[lo:hi]
        for i in range(av.size):
            ov[i] = av[i] + bv[i]


# --- pooling ----------------------------------------------------------------------------------------
@njit(parallel=True, **_OPTS)
def max_pool(x, kh, kw, sh, sw, ph, pw, out):
    """Caffe MAX pooling of planes ``x (B, H, W) -> out (B, P, Q)``; the window is clipped to the input.

    Separable: per output row, the max over the window's input rows (a contiguous, vectorised pass),
    then the max over each window's columns of that."""
    b_, h_, w_ = x.shape
    p_, q_ = out.shape[1], out.shape[2]
    for b in prange(b_):
        colmax = np.empty(w_, np.float32)
        for p in range(p_):
            h0 = p * sh - ph
            h1 = min(h0 + kh, h_)
            h0 = max(h0, 0)
            first = x[b, h0]
            for j in range(w_):
                colmax[j] = first[j]
            for i in range(h0 + 1, h1):
                xr = x[b, i]
                for j in range(w_):
                    colmax[j] = max(colmax[j], xr[j])
            for q in range(q_):
                w0 = q * sw - pw
                w1 = min(w0 + kw, w_)
                w0 = max(w0, 0)
                m = colmax[w0]
                for j in range(w0 + 1, w1):
                    m = max(m, colmax[j])
                out[b, p, q] = m


@njit(parallel=True, **_OPTS)
def avg_pool(x, kh, kw, sh, sw, ph, pw, out):
    """Caffe AVE pooling: the sum over the window clipped to the input, divided by the size of the window
    clipped to the *padded* input, ``(min(h0+k, H+pad) - h0) * (...)`` (pooling_layer.cpp, Forward_cpu)."""
    b_, h_, w_ = x.shape
    p_, q_ = out.shape[1], out.shape[2]
    for b in prange(b_):
        colsum = np.empty(w_, np.float32)
        for p in range(p_):
            h0 = p * sh - ph
            h1 = min(h0 + kh, h_ + ph)
            hn = h1 - h0
            h1 = min(h1, h_)
            h0 = max(h0, 0)
            colsum[:] = 0.0
            for i in range(h0, h1):
                xr = x[b, i]
                for j in range(w_):
                    colsum[j] += xr[j]
            for q in range(q_):
                w0 = q * sw - pw
                w1 = min(w0 + kw, w_ + pw)
                size = hn * (w1 - w0)
                w1 = min(w1, w_)
                w0 = max(w0, 0)
                s = np.float32(0.0)
                for j in range(w0, w1):
                    s += colsum[j]
                out[b, p, q] = s / np.float32(size)


@njit(parallel=True, **_OPTS)
def global_avg_pool(x, out):
    """Mean of each plane: ``x (B, S) -> out (B,)`` (accumulated in float64)."""
    b_, s_ = x.shape
    for b in prange(b_):
        s = 0.0
        for i in range(s_):
            s += x[b, i]
        out[b] = s / s_


# --- normalisation ------------------------------------------------------------------------------------
@njit(parallel=True, **_OPTS)
def lrn_across_channels(x, size, alpha, beta, k, out):
    """Caffe LRN, ACROSS_CHANNELS: ``out = x / (k + alpha/size * sum_{c' in window} x[c']^2) ** beta``,
    window ``[c - (size-1)/2, c + (size-1)/2]`` clipped to the channels (lrn_layer.cpp).  ``x (C, M)``."""
    c_, m_ = x.shape
    half = (size - 1) // 2
    a = np.float32(alpha / size)
    kk = np.float32(k)
    nb = np.float32(-beta)
    chunk = 1024
    for blk in prange((m_ + chunk - 1) // chunk):
        m0 = blk * chunk
        m1 = min(m_, m0 + chunk)
        s = np.empty(m1 - m0, np.float32)
        for c in range(c_):
            s[:] = 0.0
            for cc in range(max(0, c - half), min(c_ - 1, c + half) + 1):
                xr = x[cc, m0:m1]
                for i in range(s.size):
                    s[i] += xr[i] * xr[i]
            xc = x[c, m0:m1]
            oc = out[c, m0:m1]
            if beta == 0.75:  # Caffe's default: d**-0.75 = 1 / (sqrt(d) * sqrt(sqrt(d))), vectorised
                for i in range(s.size):
                    d = kk + a * s[i]
                    r = np.sqrt(d)
                    oc[i] = xc[i] / (r * np.sqrt(r))
            else:
                for i in range(s.size):
                    oc[i] = xc[i] * (kk + a * s[i]) ** nb


@njit(parallel=True, **_OPTS)
def softmax_channels(x, out):
    """Softmax over the channel axis of ``x (C, M)`` for every position m (float64 sums)."""
    c_, m_ = x.shape
    for m in prange(m_):
        mx = -np.inf
        for c in range(c_):
            if x[c, m] > mx:
                mx = x[c, m]
        s = 0.0
        for c in range(c_):
            e = math.exp(x[c, m] - mx)
            out[c, m] = e
            s += e
        inv = 1.0 / s
        for c in range(c_):
            out[c, m] = out[c, m] * inv


# --- compressed weights ---------------------------------------------------------------------------------
# A stream of symbols is ``(data, table)``: ``data`` holds its bits MSB first, plus 3 zero bytes of padding;
# ``table`` says how to read it.  table[0] = -b < 0: fixed width, b bits per symbol (store.py repacks the
# files' LSB-first streams MSB first).  Otherwise a two-level canonical-code table (store.code_table) of a
# Huffman stream (sqsim.compress.huffman): table[0] = T1, table[1] = T2; table[2 + w] for the first T1 bits
# w is ``symbol << 8 | length`` for codes up to T1 bits, else minus the start of a 2**T2-entry sub-table
# indexed by the next T2 bits.  An absent stream (table [0, 0, 0]) reads symbol 0 of 0 bits forever.
#
# The per-run kernels decode a chunk of symbols at a time into small buffers (read_chunk: fixed widths up
# to 8 bits eight symbols per step, Huffman symbol by symbol with two streams interleaved), then use them.
# A per-symbol helper inlined into the loops ran 4-20x slower (Numba kept reference counting of the
# arrays inside the loop), and a fixed-width symbol at a time cannot be vectorised.


def read_symbol(data, bitpos, table):
    """The symbol at ``bitpos`` and the position after it (compiled for the GPU; the CPU kernels inline it)."""
    t1 = np.int64(table[0])
    byte = bitpos >> 3
    v = (np.int64(data[byte]) << 16) | (np.int64(data[byte + 1]) << 8) | np.int64(data[byte + 2])
    if t1 < 0:
        return (v >> (24 - (bitpos & 7) + t1)) & ((np.int64(1) << -t1) - 1), bitpos - t1
    shift = 24 - (bitpos & 7) - t1
    ent = np.int64(table[2 + ((v >> shift) & ((np.int64(1) << t1) - 1))])
    if ent < 0:
        t2 = table[1]
        ent = np.int64(table[-ent + ((v >> (shift - t2)) & ((np.int64(1) << t2) - 1))])
    return ent >> 8, bitpos + (ent & 255)


read_symbol_jit = njit(inline="always")(read_symbol)


@njit(**_OPTS)
def scan_checkpoints(cdata, ctable, cvals, rdata, rtable, n_entries, n_weights, row_len, block_row,
                     block_entry, block_prev, block_cbit, block_rbit):
    """One sequential pass over a layer's entries recording, at each block's first row, the first entry,
    the position before it and the bit offsets of both streams.  Returns 0, or -1 for an invalid code or
    a stream that ends early, -2 for entries past the weight blob."""
    nb = block_row.size - 1
    b = 0
    pos = np.int64(-1)
    cb = np.int64(0)
    rb = np.int64(0)
    rbits_total = np.int64(rdata.size - 3) * 8
    cbits_total = np.int64(cdata.size - 3) * 8
    rlen0 = rtable[0] == 0  # no index stream: every relative index is 0 and takes no bits
    for e in range(n_entries):
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


_CHUNK = 1024  # entries the kernels below decode at a time (symbols into small buffers, then use them)


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
        ent = np.int64(table[2 + ((v >> shift) & m1)])
        if ent < 0:
            ent = np.int64(table[-ent + ((v >> (shift - t2)) & m2)])
        out[i] = ent >> 8
        bitpos += ent & 255
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
        ent = np.int64(rtable[2 + ((v >> shift) & rm1)])
        if ent < 0:
            ent = np.int64(rtable[-ent + ((v >> (shift - rt2)) & rm2)])
        rout[i] = ent >> 8
        rb += ent & 255
        byte = cb >> 3
        v = (np.int64(cdata[byte]) << 16) | (np.int64(cdata[byte + 1]) << 8) | np.int64(cdata[byte + 2])
        shift = 24 - (cb & 7) - ct1
        ent = np.int64(ctable[2 + ((v >> shift) & cm1)])
        if ent < 0:
            ent = np.int64(ctable[-ent + ((v >> (shift - ct2)) & cm2)])
        cout[i] = ent >> 8
        cb += ent & 255
    return rb, cb


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
def _decode_block(b, codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                  block_cbit, block_rbit, row_len, out):
    out[block_row[b] * row_len:block_row[b + 1] * row_len] = 0.0
    relb = np.empty(_CHUNK, np.int64)
    codeb = np.empty(_CHUNK, np.int64)
    pos = block_prev[b]
    cb = block_cbit[b]
    rb = block_rbit[b]
    e0 = block_entry[b]
    while e0 < block_entry[b + 1]:
        m = min(_CHUNK, block_entry[b + 1] - e0)
        rb, cb = _read_entries(rdata, rtable, rb, cdata, ctable, cb, cvals, e0, m, relb, codeb)
        if cvals:
            for i in range(m):
                pos += relb[i] + 1
                out[pos] = codebook[e0 + i]
        else:
            for i in range(m):
                pos += relb[i] + 1
                out[pos] = codebook[codeb[i]]
        e0 += m


@njit(parallel=True, **_OPTS)
def decode_blocks(codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                  block_cbit, block_rbit, row_len, out):
    """Decode a compressed layer into dense ``out`` (flat, rows x row_len), one block of rows per task.

    Entry e sits at ``pos_e = pos_{e-1} + rel_e + 1`` and holds ``codebook[code_e]`` (with ``cvals``,
    ``codebook[e]``: per-entry fp32 values); every other weight is 0 (REFERENCE.md section 3).
    """
    for b in prange(block_row.size - 1):
        _decode_block(b, codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                      block_cbit, block_rbit, row_len, out)


@njit(**_OPTS)
def decode_blocks_serial(codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                         block_cbit, block_rbit, row_len, out):
    """:func:`decode_blocks` on one thread (small layers, where starting threads costs more)."""
    for b in range(block_row.size - 1):
        _decode_block(b, codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                      block_cbit, block_rbit, row_len, out)


@njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc", "contract"})
def sparse_matmul(codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                  block_cbit, block_rbit, row_len, x, y):
    """``y (K, N) = W @ x (row_len, N)`` computed on the compressed form of W (see :func:`decode_blocks`):
    each entry is read once and multiplies one row of ``x``; no dense W is formed.

    Per block of rows, in chunks of entries: decode the chunk's positions and values, then, per run of
    entries in one output row, a dot product with ``x`` (gathered; summed in any order, hence
    ``reassoc``: results agree with the dense product to float32 rounding)."""
    n_ = y.shape[1]
    for b in prange(block_row.size - 1):
        y[block_row[b]:block_row[b + 1]] = 0.0
        posb = np.empty(_CHUNK, np.int64)
        codeb = np.empty(_CHUNK, np.int64)
        valb = np.empty(_CHUNK, np.float32)
        pos = block_prev[b]
        cb = block_cbit[b]
        rb = block_rbit[b]
        e0 = block_entry[b]
        while e0 < block_entry[b + 1]:
            m = min(_CHUNK, block_entry[b + 1] - e0)
            rb, cb = _read_entries(rdata, rtable, rb, cdata, ctable, cb, cvals, e0, m, posb, codeb)
            for i in range(m):  # positions: a running sum of (rel + 1)
                pos += posb[i] + 1
                posb[i] = pos
            if cvals:
                valb[:m] = codebook[e0:e0 + m]
            else:
                for i in range(m):
                    valb[i] = codebook[codeb[i]]
            i = 0
            while i < m:  # runs of entries in one row: positions ascend, so a run ends at the row's end
                row = posb[i] // row_len
                base = row * row_len
                j = i + np.searchsorted(posb[i:m], base + row_len)
                cols = posb[i:j]
                vals = valb[i:j]
                if n_ == 1:
                    acc = np.float32(0.0)
                    for t in range(cols.size):
                        acc += vals[t] * x[cols[t] - base, 0]
                    y[row, 0] += acc
                else:
                    for t in range(cols.size):
                        w = vals[t]
                        col = cols[t] - base
                        for n in range(n_):
                            y[row, n] += w * x[col, n]
                i = j
            e0 += m
