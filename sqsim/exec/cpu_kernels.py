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
from numba import njit, prange, types
from numba.extending import intrinsic

from .store import SEG_ENTRIES, STREAM_PAD

# Numba's thread pool: OpenMP where there is one.  A parallel loop then starts in about 2 us, where
# Numba's own 'workqueue' pool wakes its threads through the OS, 100-150 us a loop on this project's
# 2-core machine (a SqueezeNet batch runs some 30 of them).  GNU OpenMP's threads spin after a loop
# before they sleep: on two cores a spinning thread steals the core from the BLAS task threads and the
# next loop, so the spin is cut to GOMP_SPINCOUNT=10000 (measured best of 0-100000: SqueezeNet batch 16
# 107 ms vs 118 ms on workqueue and 138 ms with the default spin).  Explicit NUMBA_THREADING_LAYER or
# GOMP_SPINCOUNT settings win.  GNU OpenMP is not fork-safe: a process that forks after running sqsim
# should start its children with 'spawn' (or set NUMBA_THREADING_LAYER=workqueue).
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

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
@njit(inline="always")
def _im2col_row(x, n, p0, p1, kh, kw, sh, sw, ph, pw, q_, cols, row):
    c_, n_, h_, w_ = x.shape
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
def im2col(x, n, p0, p1, kh, kw, sh, sw, ph, pw, q_, cols):
    """Unfold output rows ``p0 <= p < p1`` of sample ``n`` of ``x (C, N, H, W)`` into
    ``cols (C*kh*kw, (p1-p0)*Q)``; positions in the zero padding read 0.  A band of output rows of one
    sample keeps the column matrix small enough to stay in cache for the GEMM that follows.
    Serial: the CPU backend runs bands on several threads at once."""
    for row in range(x.shape[0] * kh * kw):
        _im2col_row(x, n, p0, p1, kh, kw, sh, sw, ph, pw, q_, cols, row)


@njit(**_OPTS)
def im2col_rows(x, n, kh, kw, sh, sw, ph, pw, p_, q_, r0, r1, cols):
    """Rows ``r0 <= row < r1`` of the column matrix of sample ``n``, all output rows (serial: the CPU
    backend splits the rows among its task threads)."""
    for row in range(r0, r1):
        _im2col_row(x, n, 0, p_, kh, kw, sh, sw, ph, pw, q_, cols, row)


@njit(parallel=True, **_OPTS)
def pad_phases(x, ph, pw, sh, sw, hq, wq, out):
    """Zero-padded, stride-phase-split copy of ``x (C, N, H, W)`` into ``out``, read from element 0 as
    ``(C, sh, sw, N, hq, wq)`` with ``out[c, a, b, n, i, j] = xpad[c, n, i*sh + a, j*sw + b]`` (zero past
    the padded input): the direct conv's input, where every kernel tap of a strided conv is a shifted
    run of one phase (``out`` may be longer).  Stride 1 is the plain padded copy."""
    c_, n_, h_, w_ = x.shape
    for i in prange(c_ * sh * sw * n_):
        c = i // (sh * sw * n_)
        a = (i // (sw * n_)) % sh
        b = (i // n_) % sw
        n = i % n_
        dst = out[i * hq * wq:(i + 1) * hq * wq]
        for r in range(hq):
            y = r * sh + a - ph  # input row of this phase row
            row = dst[r * wq:(r + 1) * wq]
            if y < 0 or y >= h_:
                row[:] = 0.0
                continue
            src = x[c, n, y]
            # columns j with 0 <= j*sw + b - pw < W come from the input, the others are padding
            j0 = min(wq, max(0, (pw - b + sw - 1) // sw))
            j1 = max(j0, min(wq, (w_ - 1 + pw - b) // sw + 1))
            row[:j0] = 0.0
            row[j1:] = 0.0
            if sw == 1:  # a contiguous run: vectorised copy
                row[j0:j1] = src[j0 - pw:j1 - pw]
            else:
                for j in range(j0, j1):
                    row[j] = src[j * sw + b - pw]


@njit(parallel=True, **_OPTS)
def place_in_border(y, ph, pw, bias, relu, out):
    """``out (K, N, H+2ph, W+2pw)``: ``y (K, N, H, W)`` inside a border of ``bias[k]`` (ReLU'd when
    ``relu``), the output of a padded 1x1 conv computed without its padding."""
    k_, n_, h_, w_ = y.shape
    for i in prange(k_ * n_):
        k = i // n_
        n = i % n_
        edge = max(bias[k], np.float32(0.0)) if relu else bias[k]
        plane = out[k, n]
        for r in range(out.shape[2]):
            row = plane[r]
            if r < ph or r >= ph + h_:
                row[:] = edge
                continue
            row[:pw] = edge
            row[pw + w_:] = edge
            src = y[k, n, r - ph]
            for j in range(w_):
                row[pw + j] = src[j]


@intrinsic
def _call_direct(typingctx, addr, args, part):
    """Call the direct-conv kernel at address ``addr`` (:mod:`.direct_conv`, a C function of 13 64-bit
    integers and pointers) with the 12 integers of ``args`` and ``part``."""
    sig = types.void(types.int64, args, types.int64)

    def codegen(context, builder, signature, llargs):
        from llvmlite import ir
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(ir.VoidType(), [i64] * 13)
        fn = builder.inttoptr(llargs[0], fnty.as_pointer())
        builder.call(fn, [builder.extract_value(llargs[1], j) for j in range(12)] + [llargs[2]])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _load_be64(typingctx, data, byte):
    """The 8 bytes ``data[byte:byte+8]`` (a uint8 array) as one big-endian int64: one unaligned load and a
    byte swap (the Huffman readers' bit window; streams carry 8 bytes of padding)."""
    sig = types.int64(data, byte)

    def codegen(context, builder, signature, llargs):
        from llvmlite import ir
        i64 = ir.IntType(64)
        ptr = context.make_array(signature.args[0])(context, builder, llargs[0]).data
        at = builder.gep(ptr, [context.cast(builder, llargs[1], signature.args[1], types.int64)])
        word = builder.load(builder.bitcast(at, i64.as_pointer()), align=1)
        return builder.call(builder.module.declare_intrinsic("llvm.bswap", [i64]), [word])
    return sig, codegen


@intrinsic
def _store_u32(typingctx, buf, at, value):
    """``buf[at:at+4] = value``'s low 4 bytes, least significant first (``buf`` a uint8 array): one
    unaligned store (three symbols of a multi-symbol table entry, and one spare byte)."""
    sig = types.void(buf, at, value)

    def codegen(context, builder, signature, llargs):
        from llvmlite import ir
        i32 = ir.IntType(32)
        ptr = context.make_array(signature.args[0])(context, builder, llargs[0]).data
        dst = builder.gep(ptr, [context.cast(builder, llargs[1], signature.args[1], types.int64)])
        val = builder.trunc(context.cast(builder, llargs[2], signature.args[2], types.int64), i32)
        builder.store(val, builder.bitcast(dst, i32.as_pointer()), align=1)
        return context.get_dummy_value()
    return sig, codegen


@njit(parallel=True, **_OPTS)
def run_direct(addr, calls, part, part_bytes):
    """Run the direct-conv kernel at ``addr`` once per row of ``calls (M, 12)`` (its arguments as
    integers: weights, input, offsets, output, ldy, nkb, ntiles, taps, bias, relu, vdst, vmask),
    the rows in parallel; each thread's partial sums (the blocked form) at ``part + tid*part_bytes``."""
    for i in prange(calls.shape[0]):
        _direct_rows(addr, calls, i, i + 1, part + numba.get_thread_id() * part_bytes)


@njit(inline="always")
def _direct_rows(addr, calls, i0, i1, part):
    """Rows ``i0 <= i < i1`` of :func:`run_direct`'s calls, one after another on this thread."""
    for i in range(i0, i1):
        row = calls[i]
        a = (row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10], row[11])
        _call_direct(addr, a, part)


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

    Separable: per output row, the max over the window's input rows (one vectorised pass over the
    row, three rows at once for the common 3-row window), then the max over each window's columns."""
    b_, h_, w_ = x.shape
    p_, q_ = out.shape[1], out.shape[2]
    for b in prange(b_):
        colmax = np.empty(w_, np.float32)
        for p in range(p_):
            h0 = p * sh - ph
            h1 = min(h0 + kh, h_)
            h0 = max(h0, 0)
            if h1 - h0 == 3:
                r0, r1, r2 = x[b, h0], x[b, h0 + 1], x[b, h0 + 2]
                for j in range(w_):
                    colmax[j] = max(max(r0[j], r1[j]), r2[j])
            else:
                first = x[b, h0]
                for j in range(w_):
                    colmax[j] = first[j]
                for i in range(h0 + 1, h1):
                    xr = x[b, i]
                    for j in range(w_):
                        colmax[j] = max(colmax[j], xr[j])
            orow = out[b, p]
            # windows inside the input, q in [qa, qb)
            qa = min(q_, (pw + sw - 1) // sw)
            qb = max(qa, min(q_, (w_ - kw + pw) // sw + 1))
            if qb > qa:
                src = colmax[qa * sw - pw:]
                dst = orow[qa:qb]
                if sw == 2 and kw == 3:  # the usual window: a constant stride LLVM vectorises
                    for i in range(qb - qa):
                        dst[i] = max(max(src[2 * i], src[2 * i + 1]), src[2 * i + 2])
                else:
                    for i in range(qb - qa):
                        m = src[i * sw]
                        for j in range(1, kw):
                            m = max(m, src[i * sw + j])
                        dst[i] = m
            for q in range(q_):  # windows clipped by the edges
                if qa <= q < qb:
                    continue
                w0 = q * sw - pw
                w1 = min(w0 + kw, w_)
                w0 = max(w0, 0)
                m = colmax[w0]
                for j in range(w0 + 1, w1):
                    m = max(m, colmax[j])
                orow[q] = m


@njit(parallel=True, **_OPTS)
def max_pool_3x3s2(x, out):
    """:func:`max_pool` for the 3x3 window at stride 2, unpadded, every window inside the input
    (SqueezeNet's and AlexNet's pools): the same two passes with the window as constants, no edge
    cases; 1.5-2x faster than the general kernel."""
    b_, h_, w_ = x.shape
    p_, q_ = out.shape[1], out.shape[2]
    for b in prange(b_):
        colmax = np.empty(w_, np.float32)
        for p in range(p_):
            r0, r1, r2 = x[b, 2 * p], x[b, 2 * p + 1], x[b, 2 * p + 2]
            for j in range(w_):
                colmax[j] = max(max(r0[j], r1[j]), r2[j])
            orow = out[b, p]
            for i in range(q_):
                orow[i] = max(max(colmax[2 * i], colmax[2 * i + 1]), colmax[2 * i + 2])


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
    chunk = min(1024, max(64, (m_ + 7) // 8))  # at least about eight tasks (batch 1: 729 positions)
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
# to 8 bits eight symbols per step, Huffman symbol by symbol with two streams interleaved, or up to three
# symbols per lookup, eight segments at a time, where store.py keeps multi-symbol tables: read_lanes),
# then use them.
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


_GAP = 4  # slack after each segment's symbols in read_lanes' buffers: a lookup writes up to 3 bytes past it
LANES = 8  # segments of a stream read_lanes decodes at once (chains): 4 ran 1.3x slower, 16 no faster
_CHUNK = LANES * SEG_ENTRIES  # entries the kernels below decode at a time (into small buffers, then used)
# Huffman entries a conv task decodes at least, on average (cpu.py): a layer with fewer entries than
# this per task decodes whole first.  A task's run of one to three segments reads at 4-14 ns an entry
# (SqueezeNet v1.1 fire6/expand1x1, small tables), a run of eight at 0.7-0.9 (conv10).
HUFFMAN_TASK_ENTRIES = _CHUNK
# read_lanes runs its rounds while this many chains are live, the retired ones repeating a live one's
# lookups: with one live chain and seven repeating it a 189-entry run read at 13.8 ns an entry against
# 5.1 on its own; whole SqueezeNet v1.1 layers decode in 726-745 us in all against 776-793 without it.
_MIN_LIVE = 4
_SCRATCH = _CHUNK + LANES * _GAP  # where read_lanes' retired chains write (SEG_ENTRIES + 4 bytes at most)
_LANE_BUF = _SCRATCH + SEG_ENTRIES + 8  # the uint8 buffers read_lanes writes (segments with gaps, scratch)


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


# --- Huffman streams with multi-symbol tables ------------------------------------------------------------
# read_chunk_pair's symbol-at-a-time loop is latency-bound: each symbol's position waits on the last one's
# table load, about 5.6 ns an entry (two symbols) on this project's machine.  For streams of at most 256
# symbols store.py also builds a *multi-symbol* table, indexed by the next W bits (W <= 12; mt[0] = W):
# mt[1 + v] = ``len | n << 4 | s0 << 8 | s1 << 16 | s2 << 24``, the n <= 3 whole codes (s0, s1, s2; len bits
# in all) that the W bits begin with (the technique of zlib's and huff0's decoders), and n = 0 where the
# first code is longer than W (then the two-level table reads it).  A lookup reads its window with one
# unaligned 8-byte load (_load_be64) and stores its symbols with one 4-byte store (_store_u32).  store.py
# also keeps each stream's bit offset every SEG_ENTRIES entries, so LANES segments of a stream decode at
# once, LANES independent chains (read_lanes), into byte buffers the consumers read segment by segment.
# Measured (one thread, both streams of an entry), AlexNet's fc6: 5.6 ns an entry symbol at a time, 2.2
# with four chains over two streams (the previous version), 1.4 with eight chains per stream; conv3
# (8-bit codes, many longer than W): 5.9, 3.3, 1.7.  The chains are written out: the same loop calling
# one inlined per-lookup helper per chain ran at 15.6 instead of 2.1 ns an entry (fc6, four chains;
# presumably the per-call reference counting of the arrays noted above), and with such a helper for the
# rounds' tails instead of read_multi, 20% slower.

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
        ent = np.int64(mt[np.uint64(1 + (((_load_be64(data, bitpos >> 3) << (bitpos & 7)) >> (64 - w)) & mask))])
        n = (ent >> 4) & 3
        if n == 0:
            sym, bitpos = read_symbol_jit(data, bitpos, table)
            out[np.uint64(k)] = sym
            k += 1
        else:
            _store_u32(out, k, ent >> 8)
            k += n
            bitpos += ent & 15


@njit(inline="always")
def _lane_start(seg, bitpos, e0, m, p):
    """Chain ``p`` of :func:`read_lanes` over the ``m`` entries from ``e0``: the bit where its segment
    (:func:`_segment`) starts (``bitpos`` for the first, else its checkpoint in ``seg``), and where it
    starts and ends in the lane buffer."""
    i0, i1, off = _segment(e0, m, p)
    bit = bitpos if p == 0 else np.int64(seg[(e0 + i0) // SEG_ENTRIES])
    return bit, i0 + off, i1 + off


@njit(**_OPTS)
def read_lanes(data, mt, table, seg, bitpos, e0, t, buf, st):
    """Symbols ``e0 .. t-1`` of a Huffman stream (``bitpos`` the bit of entry ``e0``; ``t`` at most the
    ``LANES``-th segment checkpoint after ``e0``) into ``buf`` (uint8, ``_LANE_BUF`` bytes), as ``LANES``
    independent chains: chain p reads segment p, entries ``[s_p, s_p+1)`` (``s_0 = e0``, ``s_p`` the p-th
    checkpoint after it, its bit offset from ``seg``), into ``buf[s_p - e0 + p*_GAP:]``, and may write 3
    bytes past them.  ``st``: room for the chains' state (``4 * LANES`` int64, the caller's, reused).

    The loop runs in rounds of ``q`` steps, ``q`` a third of the fewest symbols any live chain still lacks
    (a step reads 1 to 3), so the steps need no end tests.  A chain with fewer than 3 symbols left reads
    them on its own and retires; until all have, a retired chain repeats a live one's lookups into the
    scratch bytes at ``buf[_SCRATCH:]`` (in bounds: the live one's), so the short first and last segments
    of a range, and chunks of fewer than ``LANES`` segments, keep the other chains interleaved.
    ``ent & 48`` is an entry's symbol count (bits 4-5), 0 for a code longer than the window."""
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
        if n_live < _MIN_LIVE:  # too few to be worth the repeated lookups: each on its own
            for p in range(LANES):
                if live[p]:
                    read_multi(data, mt, table, bs[p], ends[p] - ks[p], buf, ks[p])
            return
        for p in range(LANES):
            if not live[p]:  # repeat chain j into the scratch bytes
                bs[p] = bs[j]
                ks[p] = _SCRATCH
        b0, b1, b2, b3, b4, b5, b6, b7 = bs[0], bs[1], bs[2], bs[3], bs[4], bs[5], bs[6], bs[7]
        k0, k1, k2, k3, k4, k5, k6, k7 = ks[0], ks[1], ks[2], ks[3], ks[4], ks[5], ks[6], ks[7]
        for _ in range(q):
            ent = np.int64(mt[np.uint64(1 + (((_load_be64(data, b0 >> 3) << (b0 & 7)) >> (64 - w)) & mask))])
            if ent & 48:
                _store_u32(buf, k0, ent >> 8)
                k0 += (ent >> 4) & 3
                b0 += ent & 15
            else:  # a code longer than the window
                sym, b0 = read_symbol_jit(data, b0, table)
                buf[np.uint64(k0)] = sym
                k0 += 1
            ent = np.int64(mt[np.uint64(1 + (((_load_be64(data, b1 >> 3) << (b1 & 7)) >> (64 - w)) & mask))])
            if ent & 48:
                _store_u32(buf, k1, ent >> 8)
                k1 += (ent >> 4) & 3
                b1 += ent & 15
            else:  # a code longer than the window
                sym, b1 = read_symbol_jit(data, b1, table)
                buf[np.uint64(k1)] = sym
                k1 += 1
            ent = np.int64(mt[np.uint64(1 + (((_load_be64(data, b2 >> 3) << (b2 & 7)) >> (64 - w)) & mask))])
            if ent & 48:
                _store_u32(buf, k2, ent >> 8)
                k2 += (ent >> 4) & 3
                b2 += ent & 15
            else:  # a code longer than the window
                sym, b2 = read_symbol_jit(data, b2, table)
                buf[np.uint64(k2)] = sym
                k2 += 1
            ent = np.int64(mt[np.uint64(1 + (((_load_be64(data, b3 >> 3) << (b3 & 7)) >> (64 - w)) & mask))])
            if ent & 48:
                _store_u32(buf, k3, ent >> 8)
                k3 += (ent >> 4) & 3
                b3 += ent & 15
            else:  # a code longer than the window
                sym, b3 = read_symbol_jit(data, b3, table)
                buf[np.uint64(k3)] = sym
                k3 += 1
            ent = np.int64(mt[np.uint64(1 + (((_load_be64(data, b4 >> 3) << (b4 & 7)) >> (64 - w)) & mask))])
            if ent & 48:
                _store_u32(buf, k4, ent >> 8)
                k4 += (ent >> 4) & 3
                b4 += ent & 15
            else:  # a code longer than the window
                sym, b4 = read_symbol_jit(data, b4, table)
                buf[np.uint64(k4)] = sym
                k4 += 1
            ent = np.int64(mt[np.uint64(1 + (((_load_be64(data, b5 >> 3) << (b5 & 7)) >> (64 - w)) & mask))])
            if ent & 48:
                _store_u32(buf, k5, ent >> 8)
                k5 += (ent >> 4) & 3
                b5 += ent & 15
            else:  # a code longer than the window
                sym, b5 = read_symbol_jit(data, b5, table)
                buf[np.uint64(k5)] = sym
                k5 += 1
            ent = np.int64(mt[np.uint64(1 + (((_load_be64(data, b6 >> 3) << (b6 & 7)) >> (64 - w)) & mask))])
            if ent & 48:
                _store_u32(buf, k6, ent >> 8)
                k6 += (ent >> 4) & 3
                b6 += ent & 15
            else:  # a code longer than the window
                sym, b6 = read_symbol_jit(data, b6, table)
                buf[np.uint64(k6)] = sym
                k6 += 1
            ent = np.int64(mt[np.uint64(1 + (((_load_be64(data, b7 >> 3) << (b7 & 7)) >> (64 - w)) & mask))])
            if ent & 48:
                _store_u32(buf, k7, ent >> 8)
                k7 += (ent >> 4) & 3
                b7 += ent & 15
            else:  # a code longer than the window
                sym, b7 = read_symbol_jit(data, b7, table)
                buf[np.uint64(k7)] = sym
                k7 += 1
        bs[0], bs[1], bs[2], bs[3], bs[4], bs[5], bs[6], bs[7] = b0, b1, b2, b3, b4, b5, b6, b7
        ks[0], ks[1], ks[2], ks[3], ks[4], ks[5], ks[6], ks[7] = k0, k1, k2, k3, k4, k5, k6, k7


@njit(inline="always")
def _next_chunk(rdata, rtable, rmt, rseg, rb, cdata, ctable, cmt, cseg, cb, cvals, e0, e_end, rout, cout,
                rb8, cb8, st):
    """Read the next chunk of a range of entries from ``e0`` (at bit positions ``rb``, ``cb``); returns
    ``(m, rb, cb)``: its size and the bit positions at ``e0 + m``.

    With multi-symbol tables (``cmt.size``) a chunk runs to the ``LANES``-th segment checkpoint after
    ``e0``, each stream's segments read as ``LANES`` chains into ``rb8``/``cb8`` (:func:`read_lanes`;
    no index stream: ``rb8`` is left as it is, zero); the consumers read them segment by segment
    (:func:`_segment`).  Else the chunk is ``_CHUNK`` entries read symbol by symbol into
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
    m = min(_CHUNK, e_end - e0)
    rb, cb = _read_entries(rdata, rtable, rb, cdata, ctable, cb, cvals, e0, m, rout, cout)
    return m, rb, cb


@njit(inline="always")
def _segment(e0, m, p):
    """Segment ``p`` of a chunk read by :func:`read_lanes` from entry ``e0`` (``m`` entries): its
    entries ``[i0, i1)`` from the chunk's start, at ``i + p * _GAP`` in the lane buffers."""
    first = (e0 // SEG_ENTRIES + 1) * SEG_ENTRIES - e0
    i0 = 0 if p == 0 else min(first + (p - 1) * SEG_ENTRIES, m)
    return i0, min(first + p * SEG_ENTRIES, m), p * _GAP


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
def _layout_index(r, col, row_len, kr):
    """Where weight ``(r, col)`` of a decoded layer goes: ``kr`` 1, the plain ``(rows, row_len)`` order;
    else the direct-conv kernel's blocks ``(rows/kr, row_len, kr)`` (:meth:`.direct_conv.DirectConvKernel.pack`),
    so a layer for that kernel is decoded straight into the form it reads."""
    return (r // kr) * kr * row_len + col * kr + r % kr


@njit(inline="always")
def _all_stored(rtable, entries, weights):
    """Whether a run of ``entries`` entries with index table ``rtable`` stores every one of ``weights``
    weights (no index stream, as many entries as weights): then nothing needs zeroing first."""
    return rtable[0] == 0 and rtable.size == 3 and entries == weights


@njit(inline="always")
def _rows_whole(block_row, b0, b1, kr):
    """Whether the rows of blocks ``b0 .. b1-1`` are whole blocks of ``kr`` rows (store.py aligns block
    boundaries to ROW_ALIGN rows where a layer's rows allow), so a range decodes and zeroes on its own."""
    return block_row[b0] % kr == 0 and block_row[b1] % kr == 0


@njit(inline="always")
def _blocks_whole(block_row, kr):
    """Whether every block boundary falls on a block of ``kr`` rows (:func:`_rows_whole`)."""
    for b in range(block_row.size):
        if block_row[b] % kr:
            return False
    return True


@njit(inline="always")
def _chunk_buffers(cmt):
    """The buffers :func:`_next_chunk` reads chunks into: ``(relb, codeb, rb8, cb8, st)``, read_lanes'
    byte buffers where the layer has multi-symbol tables (``cmt.size``), else symbol by symbol."""
    n, n8 = (0, _LANE_BUF) if cmt.size else (_CHUNK, 0)
    relb = np.empty(n, np.int64)
    codeb = np.empty(n, np.int64)
    rb8 = np.zeros(n8, np.uint8)  # stays zero for a layer without an index stream
    cb8 = np.empty(n8, np.uint8)
    st = np.empty(4 * LANES, np.int64)
    return relb, codeb, rb8, cb8, st


@njit(inline="always")
def _run_start(b0, b1, block_entry, block_prev, block_cbit, block_rbit):
    """Where a run of entries from block ``b0``'s checkpoint to block ``b1``'s starts: ``(pos, cb, rb, e0,
    e_end)``, the position before its first entry, both streams' bit offsets, its first entry and its end."""
    return block_prev[b0], block_cbit[b0], block_rbit[b0], block_entry[b0], block_entry[b1]


@njit(inline="always")
def _decode_range(b0, b1, codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                  block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, kr, out):
    """Decode blocks ``b0 <= b < b1`` (consecutive blocks: one run of entries from block b0's checkpoint)
    in the layout of :func:`_layout_index`.  Where their rows form whole blocks of ``kr`` rows (always
    for ``kr`` 1: :func:`_rows_whole`) and not every weight is stored, each block of ``kr`` rows is zeroed
    as the entries reach it (a contiguous run of ``out``, still in L1 when they fill it) and the blocks
    no entry reaches at the end; else ``out`` is zeroed by the caller.  Against zeroing the whole range
    first (one thread, every layer, after 4 MB of other data went through the cache): SqueezeNet v1.0
    (Table 1 profile) 1588 vs 1776 us into the direct kernel's blocks, 1400 vs 1576 us in rows (but 1282
    vs 1153 us with everything in cache); AlexNet's fc6 (151 MB dense) 28 vs 41 ms in rows."""
    w0, w1 = block_row[b0] * row_len, block_row[b1] * row_len
    zero = _rows_whole(block_row, b0, b1, kr) and not _all_stored(rtable, block_entry[b1] - block_entry[b0], w1 - w0)
    relb, codeb, rb8, cb8, st = _chunk_buffers(cmt)
    pos, cb, rb, e0, e_end = _run_start(b0, b1, block_entry, block_prev, block_cbit, block_rbit)
    r = max(pos, 0) // row_len  # the row of the last position, where it ends, where it goes
    row_end = (r + 1) * row_len
    start = _layout_index(r, 0, row_len, kr)
    # the next row whose block is zeroed when the entries reach it (-1: none); the last position is
    # in a row before the range, or it is -1 and row 0, the range's first, is current already
    zrow = block_row[b0] if zero else np.int64(-1)
    if zero and r == zrow:
        _zero(out, zrow * row_len, (zrow + kr) * row_len)
        zrow += kr
    while e0 < e_end:
        m, rb, cb = _next_chunk(rdata, rtable, rmt, rseg, rb, cdata, ctable, cmt, cseg, cb, cvals, e0, e_end, relb,
                                codeb, rb8, cb8, st)
        if cmt.size:  # the lane buffers, segment by segment
            for p in range(LANES):
                i0, i1, off = _segment(e0, m, p)
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
    ``code[i + off]``) into ``out`` in the layout of :func:`_layout_index`, from position ``pos``
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
                start = _layout_index(r, 0, row_len, kr)
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
    """Decode a compressed layer into dense ``out`` (flat, in the layout of :func:`_layout_index`) as
    ``tasks`` parallel tasks (one per thread), each a run of consecutive row blocks (fewer chunk restarts
    than a task per block).

    Entry e sits at ``pos_e = pos_{e-1} + rel_e + 1`` and holds ``codebook[code_e]`` (with ``cvals``,
    ``codebook[e]``: per-entry fp32 values); every other weight is 0 (REFERENCE.md section 3).
    ``rmt``, ``cmt``, ``rseg``, ``cseg``: multi-symbol tables and segment checkpoints of both streams, or
    empty (see :func:`read_lanes`).
    """
    nb = block_row.size - 1
    tasks = max(1, min(nb, tasks))
    n = block_row[nb] * row_len
    if not _blocks_whole(block_row, kr) and not _all_stored(rtable, block_entry[nb], n):
        for t in prange(tasks):
            out[t * n // tasks:(t + 1) * n // tasks] = 0.0
    for t in prange(tasks):
        _decode_range(t * nb // tasks, (t + 1) * nb // tasks, codebook, cdata, ctable, cvals, rdata, rtable,
                      block_row, block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg,
                      kr, out)


@njit(**_OPTS)
def decode_blocks_serial(codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                         block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, kr, out):
    """:func:`decode_blocks` on one thread, all blocks as one run (small layers, where starting threads
    costs more)."""
    nb = block_row.size - 1
    if not _blocks_whole(block_row, kr) and not _all_stored(rtable, block_entry[nb], block_row[nb] * row_len):
        out[:block_row[nb] * row_len] = 0.0
    _decode_range(0, nb, codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                  block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, kr, out)


@njit(**_OPTS)
def decode_block_range(codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                       block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, b0, b1, out):
    """Blocks ``b0 <= b < b1`` of :func:`decode_blocks` (into their rows of ``out``, flat rows x row_len),
    serial: a conv task decodes the rows it is about to multiply, so they are still in cache for its GEMM."""
    _decode_range(b0, b1, codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                  block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, 1, out)


@njit(parallel=True, **_OPTS)
def run_direct_blocks(addr, calls, task_call, task_block, part, part_bytes, codebook, cdata, ctable, cvals, rdata,
                      rtable, block_row, block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg,
                      cseg, kr, out):
    """:func:`run_direct` on a layer decoded task by task: task t decodes row blocks ``task_block[t, 0] <= b <
    task_block[t, 1]`` (whole blocks of ``kr`` rows: :func:`_rows_whole`) into ``out``, the kernel's
    blocked weights, then runs calls ``task_call[t] .. task_call[t+1]-1``, which read only those rows.
    Each weight is decoded and then read on one core, while still in its cache, in one parallel loop."""
    for t in prange(task_block.shape[0]):
        _decode_range(task_block[t, 0], task_block[t, 1], codebook, cdata, ctable, cvals, rdata, rtable, block_row,
                      block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, kr, out)
        _direct_rows(addr, calls, task_call[t], task_call[t + 1], part + numba.get_thread_id() * part_bytes)


# --- sparse convolution: a layer decoded to per-row lists of (input offset, value) ------------------------
# The sparse direct-conv kernel (direct_conv.py, ``sqsim_sparse_conv``) reads, for output channel r and
# block j of its ncb blocks of input channels, entries ``rowptr[r*ncb+j] <= e < rowptr[r*ncb+j+1]``: the
# weight ``val[e]`` and the offset ``off[e]`` of its tap's run of the input (within the block's).  Entry e
# of the layer is entry e of these lists (stored zeros, the fillers of long gaps, included), so ranges of
# row blocks decode in parallel, each into its own entries.


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


@njit(inline="always")
def _decode_taps(b0, b1, codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                 block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, xoff, val, off, rowptr, ncb):
    """Decode blocks ``b0 <= b < b1`` (one run of entries) into the tap lists: entries ``block_entry[b0]
    <= e < block_entry[b1]``, and a list per row and block of input channels: each row's ``row_len``
    weights are ``ncb`` sub-rows of ``row_len / ncb`` (the taps of consecutive channels), sub-row ``s =
    r*ncb + j`` starts at entry ``rowptr[s]`` (``block_row[b0]*ncb <= s <= block_row[b1]*ncb``), and its
    offsets are those of the first block's taps (``xoff[col - j*row_len/ncb]``)."""
    row_len = row_len // ncb
    relb, codeb, rb8, cb8, st = _chunk_buffers(cmt)
    pos, cb, rb, e0, e_end = _run_start(b0, b1, block_entry, block_prev, block_cbit, block_rbit)
    r = block_row[b0] * ncb  # every entry of the range lies in its rows
    row_end = (r + 1) * row_len
    rowptr[r] = e0
    while e0 < e_end:
        m, rb, cb = _next_chunk(rdata, rtable, rmt, rseg, rb, cdata, ctable, cmt, cseg, cb, cvals, e0, e_end, relb,
                                codeb, rb8, cb8, st)
        if cmt.size:
            for p in range(LANES):
                i0, i1, o = _segment(e0, m, p)
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
    ``rowptr``: rows * ncb + 1, see :func:`_decode_taps`) as ``tasks`` parallel runs of row blocks."""
    nb = block_row.size - 1
    tasks = max(1, min(nb, tasks))
    for t in prange(tasks):
        _decode_taps(t * nb // tasks, (t + 1) * nb // tasks, codebook, cdata, ctable, cvals, rdata, rtable, block_row,
                     block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, xoff, val, off,
                     rowptr, ncb)


@njit(parallel=True, **_OPTS)
def run_sparse_blocks(addr, calls, task_call, task_block, params, params_bytes, codebook, cdata, ctable, cvals, rdata,
                      rtable, block_row, block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg,
                      cseg, xoff, val, off, rowptr, ncb):
    """The sparse direct-conv kernel at ``addr`` on a layer decoded task by task: task t decodes row blocks
    ``task_block[t, 0] <= b < task_block[t, 1]`` into its tap lists, then runs calls ``task_call[t] ..
    task_call[t+1]-1`` (:func:`run_direct`'s rows), which read only those rows' lists, still in its cache;
    each thread's kernel parameters (partial sums, channel blocks, :mod:`.direct_conv`) at ``params +
    tid*params_bytes``."""
    for t in prange(task_block.shape[0]):
        _decode_taps(task_block[t, 0], task_block[t, 1], codebook, cdata, ctable, cvals, rdata, rtable, block_row,
                     block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, xoff, val, off,
                     rowptr, ncb)
        _direct_rows(addr, calls, task_call[t], task_call[t + 1], params + numba.get_thread_id() * params_bytes)


@njit(inline="always")
def _add_lane(s0, s1, s2, s3, lane, t):
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
    s0, s1, s2, s3 = _add_lane(s0, s1, s2, s3, (e0 + i) & 3, v * x1[np.uint64(pos - base)])
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
    """``y (K, N) = W @ x (row_len, N)`` computed on the compressed form of W (see :func:`decode_blocks`):
    each entry is read once and multiplies one row of ``x``; no dense W is formed.

    Per block of rows, in chunks of entries: at N = 1 each entry is multiplied as it is placed
    (:func:`_dot_segment`); at N > 1 the chunk's positions and values are decoded, then multiplied
    row run by row run.  The sums run in the order of :func:`sparse_matmul_rows` (at N = 1, entry e
    adds into partial sum ``e % 4`` and a row is ``(s0 + s1) + (s2 + s3)``; at N > 1 entries add in
    order), so a layer gives the same bits from Huffman-coded and fixed-width streams."""
    n_ = y.shape[1]
    x1 = x.reshape(x.size)  # (row_len,) when N is 1 (x is C-contiguous)
    for b in prange(block_row.size - 1):
        y[block_row[b]:block_row[b + 1]] = 0.0
        posb = np.empty(_CHUNK, np.int64)
        codeb = np.empty(_CHUNK, np.int64)
        valb = np.empty(_CHUNK, np.float32)
        rb8 = np.zeros(_LANE_BUF, np.uint8)  # stays zero for a layer without an index stream
        cb8 = np.empty(_LANE_BUF, np.uint8)
        st = np.empty(4 * LANES, np.int64)
        s0 = s1 = s2 = s3 = np.float32(0.0)
        row = np.int64(-1)
        pos, cb, rb, e0, e_end = _run_start(b, b + 1, block_entry, block_prev, block_cbit, block_rbit)
        base = np.int64(-(1 << 62))  # the first position of the row being summed (none yet)
        while e0 < e_end:
            m, rb, cb = _next_chunk(rdata, rtable, rmt, rseg, rb, cdata, ctable, cmt, cseg, cb, cvals, e0, e_end,
                                    posb, codeb, rb8, cb8, st)
            if n_ == 1:  # each entry multiplied as it is placed
                if cmt.size:  # from the lane buffers, segment by segment
                    for p in range(LANES):
                        i0, i1, off = _segment(e0, m, p)
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
                    i0, i1, off = _segment(e0, m, p)
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


# --- fixed-width streams with row pointers ------------------------------------------------------------------
# A fixed-width stream is randomly addressable (entry e's symbol starts at bit e * w), so with each row's
# first entry and the position before it (``row_entry``, ``row_prev``: 8 bytes per row, store.py) every
# row decodes or multiplies on its own, with no chunk buffers: rows are the parallel tasks.
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


# Eight w-bit symbols starting at an entry that is a multiple of 8 are exactly w whole bytes: the fast
# paths below read them as one word and unpack with shifts (entries up to the next multiple of 8, and
# the row's tail, go one at a time).  That needs 1..8 bits per code and per index; other layers (per-entry
# values, no index stream, wider codes) take the one-at-a-time path throughout.
@njit(inline="always")
def _fast(cbits, ibits):
    return 1 <= cbits <= 8 and 1 <= ibits <= 8


@njit(inline="always")
def _decode_row(r, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out):
    """Row ``r``'s entries into its place in ``out`` (zeroed by the caller) in the layout of
    :func:`_layout_index`: a strided view of the row (stride ``kr``)."""
    start = _layout_index(r, 0, row_len, kr)
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
def _decode_row_any(r, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out):
    """:func:`_decode_row` with the common widths as constants (unrolled word reads, folded shifts)."""
    if ibits == 4 and cbits == 8:
        _decode_row(r, codebook, cdata, 8, rdata, 4, row_entry, row_prev, row_len, kr, out)
    elif ibits == 0 and cbits == 6:
        _decode_row(r, codebook, cdata, 6, rdata, 0, row_entry, row_prev, row_len, kr, out)
    elif ibits == 0 and cbits == 8:
        _decode_row(r, codebook, cdata, 8, rdata, 0, row_entry, row_prev, row_len, kr, out)
    elif ibits == 4 and cbits == 6:
        _decode_row(r, codebook, cdata, 6, rdata, 4, row_entry, row_prev, row_len, kr, out)
    elif ibits == 4 and cbits == 5:
        _decode_row(r, codebook, cdata, 5, rdata, 4, row_entry, row_prev, row_len, kr, out)
    else:
        _decode_row(r, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out)


@njit(inline="always")
def _zero_rows(ibits, row_entry, r0, r1, row_len, out):
    """Zero rows ``r0 <= r < r1`` of ``out`` (in either layout, a contiguous run for whole register blocks)
    unless every weight of them is stored (no index stream, an entry per weight)."""
    if ibits or row_entry[r1] - row_entry[r0] != (r1 - r0) * row_len:
        out[r0 * row_len:r1 * row_len] = 0.0


@njit(inline="always")
def _decode_row_block(blk, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out):
    """Rows ``blk*kr .. blk*kr + kr-1``: one contiguous block of ``out`` in either layout, zeroed (unless
    every weight is stored), then filled row by row."""
    _zero_rows(ibits, row_entry, blk * kr, (blk + 1) * kr, row_len, out)
    for r in range(blk * kr, (blk + 1) * kr):
        _decode_row_any(r, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out)


@njit(parallel=True, **_OPTS)
def decode_rows(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out):
    """Decode a layer of fixed-width streams into dense ``out`` (flat; layout :func:`_layout_index`:
    ``kr`` 1, rows x row_len; else the direct-conv kernel's blocks, ``rows`` a multiple of ``kr``),
    blocks of ``kr`` rows in parallel.

    Entry e of row r (``row_entry[r] <= e < row_entry[r+1]``) sits at ``pos_e = pos_{e-1} + rel_e + 1``
    (``pos`` before the row's first entry: ``row_prev[r]``) and holds ``codebook[code_e]`` (``cbits`` 0:
    ``codebook[e]``, per-entry values); ``ibits`` 0: every relative index is 0 (REFERENCE.md section 3)."""
    for blk in prange((row_entry.size - 1) // kr):
        _decode_row_block(blk, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out)


@njit(parallel=True, **_OPTS)
def run_direct_rows(addr, calls, task_call, task_row, part, part_bytes, codebook, cdata, cbits, rdata, ibits,
                    row_entry, row_prev, row_len, kr, out):
    """:func:`run_direct_blocks` for a layer of fixed-width streams: task t decodes rows ``task_row[t, 0] <=
    r < task_row[t, 1]`` (whole blocks of ``kr`` rows) into ``out``, then runs its calls."""
    for t in prange(task_row.shape[0]):
        for blk in range(task_row[t, 0] // kr, task_row[t, 1] // kr):
            _decode_row_block(blk, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out)
        _direct_rows(addr, calls, task_call[t], task_call[t + 1], part + numba.get_thread_id() * part_bytes)


@njit(**_OPTS)
def decode_rows_serial(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out):
    """:func:`decode_rows` on one thread (small layers, where starting threads costs more)."""
    for blk in range((row_entry.size - 1) // kr):
        _decode_row_block(blk, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, kr, out)


@njit(**_OPTS)
def decode_row_range(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, r0, r1, out):
    """Rows ``r0 <= r < r1`` of :func:`decode_rows` (into their place in ``out``, flat rows x row_len),
    serial: a conv task decodes the rows it is about to multiply, so they are still in cache for its GEMM."""
    _zero_rows(ibits, row_entry, r0, r1, row_len, out)
    for r in range(r0, r1):
        _decode_row_any(r, codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, 1, out)


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
            s0, s1, s2, s3 = _add_lane(s0, s1, s2, s3, e & 3, t)
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
        s0, s1, s2, s3 = _add_lane(s0, s1, s2, s3, e & 3, t)
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


@njit(parallel=True, **_OPTS)  # no FMA contraction: both kernels round alike
def sparse_matmul_rows(codebook, cdata, cbits, rdata, ibits, row_entry, row_prev, row_len, x, y):
    """``y (K, N) = W @ x (row_len, N)`` on the fixed-width compressed form of W (see :func:`decode_rows`),
    output rows in parallel: each stored entry is read once, its value looked up in the codebook and
    multiplied with one row of ``x``; no dense W is formed.  The sums run in a fixed order (see
    :func:`_row_dot`), the same as :func:`sparse_matmul`'s; they agree with the dense product to float32
    rounding."""
    k_, n_ = y.shape
    x1 = x.reshape(x.size)  # (row_len,) when N is 1 (x is C-contiguous)
    rows_per_task = 16
    for t in prange((k_ + rows_per_task - 1) // rows_per_task):
        acc = np.empty(n_, np.float32)
        for r in range(t * rows_per_task, min(k_, (t + 1) * rows_per_task)):
            pos = np.int64(row_prev[r]) - r * row_len
            e0, e1 = np.int64(row_entry[r]), np.int64(row_entry[r + 1])  # row pointers may be int32
            if n_ == 1:
                # Common widths as constants: the compiler then unrolls the word reads and folds the shifts
                # (Deep Compression's fc layers: 5-bit codes, 4-bit indices; conv: 8-bit codes).
                if cbits == 5 and ibits == 4:
                    s = _row_dot(codebook, cdata, 5, rdata, 4, e0, e1, pos, x1)
                elif cbits == 4 and ibits == 4:
                    s = _row_dot(codebook, cdata, 4, rdata, 4, e0, e1, pos, x1)
                elif cbits == 8 and ibits == 4:
                    s = _row_dot(codebook, cdata, 8, rdata, 4, e0, e1, pos, x1)
                else:
                    s = _row_dot(codebook, cdata, cbits, rdata, ibits, e0, e1, pos, x1)
                y[r, 0] = s
            else:
                acc[:] = 0.0
                if cbits == 5 and ibits == 4:
                    _row_axpy(codebook, cdata, 5, rdata, 4, e0, e1, pos, x, acc)
                elif cbits == 4 and ibits == 4:
                    _row_axpy(codebook, cdata, 4, rdata, 4, e0, e1, pos, x, acc)
                else:
                    _row_axpy(codebook, cdata, cbits, rdata, ibits, e0, e1, pos, x, acc)
                y[r, :] = acc
