"""Numba kernels of the dense ops: layout changes, im2col, the direct conv's padded input, bias and ReLU,
pooling, LRN, softmax, add.

Activations use the *CNHW* layout: ``(channels, batch, height, width)``.  With the batch folded into
the spatial axes a convolution is one GEMM per group, ``W (K, C*R*S) @ cols (C*R*S, N*P*Q)``, and a
channel range of a tensor (a concat input, a group) is one contiguous block.

The conv helpers (im2col, bias_act) are serial: the backend runs many of them at once on its task
threads.  The others are parallel over channels, planes or positions (``prange``).  Every kernel takes
C-contiguous float32 arrays of a fixed rank and int64 scalars, so each compiles to one signature.  The
pooling and LRN rules follow Caffe (``caffe/src/caffe/layers/pooling_layer.cpp``, ``lrn_layer.cpp``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import JIT as _OPTS


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
