"""numba.cuda kernels of the GPU backend: one thread per output element (per row block for the compressed
weight kernels).  The same source runs on a GPU (on CuPy arrays) and, with NUMBA_ENABLE_CUDASIM=1, in
Numba's CUDA simulator on numpy arrays, which is how CI (no GPU) tests them against the CPU kernels.

Semantics are those of the CPU kernels (:mod:`sqsim.exec.kernels.cpu.dense`: Caffe pooling and LRN, CNHW
layout; :mod:`sqsim.exec.kernels.cpu.decode`: Deep Compression streams); see there for the formulas.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..cpu import huffman

THREADS = 256

# The stream reader is shared with the CPU kernels: the same Python function compiled for the device.
read_symbol = cuda.jit(device=True)(huffman.read_symbol)


def grid(n: int) -> tuple[int, int]:
    """(blocks, threads) covering ``n`` elements."""
    return max(1, (n + THREADS - 1) // THREADS), THREADS


@cuda.jit(cache=True)
def nchw_to_cnhw(x, out):
    i = cuda.grid(1)
    c_, n_, h_, w_ = out.shape
    if i < out.size:
        wi = i % w_
        hi = (i // w_) % h_
        n = (i // (w_ * h_)) % n_
        c = i // (w_ * h_ * n_)
        out[c, n, hi, wi] = x[n, c, hi, wi]


@cuda.jit(cache=True)
def features_to_columns(x, out):
    i = cuda.grid(1)
    c_, n_, s_ = x.shape
    if i < x.size:
        s = i % s_
        n = (i // s_) % n_
        c = i // (s_ * n_)
        out[c * s_ + s, n] = x[c, n, s]


@cuda.jit(cache=True)
def im2col(x, kh, kw, sh, sw, ph, pw, p_, q_, cols):
    i = cuda.grid(1)
    rows, m_ = cols.shape
    if i < rows * m_:
        row = i // m_
        m = i % m_
        c = row // (kh * kw)
        r = (row // kw) % kh
        s = row % kw
        q = m % q_
        p = (m // q_) % p_
        n = m // (q_ * p_)
        hi = p * sh - ph + r
        wi = q * sw - pw + s
        if 0 <= hi < x.shape[2] and 0 <= wi < x.shape[3]:
            cols[row, m] = x[c, n, hi, wi]
        else:
            cols[row, m] = 0.0


@cuda.jit(cache=True)
def bias_act(y, bias, relu):
    i = cuda.grid(1)
    k_, m_ = y.shape
    if i < k_ * m_:
        k = i // m_
        m = i % m_
        v = y[k, m] + bias[k]
        if relu and v < 0.0:
            v = 0.0
        y[k, m] = v


@cuda.jit(cache=True)
def relu(x, out):
    i = cuda.grid(1)
    if i < x.size:
        v = x[i]
        out[i] = v if v > 0.0 else 0.0


@cuda.jit(cache=True)
def add(a, b, out):
    i = cuda.grid(1)
    if i < a.size:
        out[i] = a[i] + b[i]


@cuda.jit(cache=True)
def max_pool(x, kh, kw, sh, sw, ph, pw, out):
    i = cuda.grid(1)
    b_, p_, q_ = out.shape
    if i < b_ * p_ * q_:
        q = i % q_
        p = (i // q_) % p_
        b = i // (q_ * p_)
        h0 = p * sh - ph
        w0 = q * sw - pw
        h1 = min(h0 + kh, x.shape[1])
        w1 = min(w0 + kw, x.shape[2])
        h0 = max(h0, 0)
        w0 = max(w0, 0)
        m = -math.inf
        for hh in range(h0, h1):
            for ww in range(w0, w1):
                if x[b, hh, ww] > m:
                    m = x[b, hh, ww]
        out[b, p, q] = m


@cuda.jit(cache=True)
def avg_pool(x, kh, kw, sh, sw, ph, pw, out):
    i = cuda.grid(1)
    b_, p_, q_ = out.shape
    if i < b_ * p_ * q_:
        q = i % q_
        p = (i // q_) % p_
        b = i // (q_ * p_)
        h0 = p * sh - ph
        w0 = q * sw - pw
        h1 = min(h0 + kh, x.shape[1] + ph)
        w1 = min(w0 + kw, x.shape[2] + pw)
        size = (h1 - h0) * (w1 - w0)
        h1 = min(h1, x.shape[1])
        w1 = min(w1, x.shape[2])
        h0 = max(h0, 0)
        w0 = max(w0, 0)
        s = np.float32(0.0)
        for hh in range(h0, h1):
            for ww in range(w0, w1):
                s += x[b, hh, ww]
        out[b, p, q] = s / np.float32(size)


@cuda.jit(cache=True)
def global_avg_pool(x, out):
    b = cuda.grid(1)
    if b < x.shape[0]:
        s = 0.0
        for i in range(x.shape[1]):
            s += x[b, i]
        out[b] = s / x.shape[1]


@cuda.jit(cache=True)
def lrn_across_channels(x, size, alpha, beta, k, out):
    i = cuda.grid(1)
    c_, m_ = x.shape
    if i < c_ * m_:
        c = i // m_
        m = i % m_
        half = (size - 1) // 2
        s = np.float32(0.0)
        for cc in range(max(0, c - half), min(c_ - 1, c + half) + 1):
            v = x[cc, m]
            s += v * v
        out[c, m] = x[c, m] * (np.float32(k) + np.float32(alpha / size) * s) ** np.float32(-beta)


@cuda.jit(cache=True)
def softmax_channels(x, out):
    m = cuda.grid(1)
    c_, m_ = x.shape
    if m < m_:
        mx = -math.inf
        for c in range(c_):
            mx = max(mx, x[c, m])
        s = 0.0
        for c in range(c_):
            e = math.exp(x[c, m] - mx)
            out[c, m] = e
            s += e
        for c in range(c_):
            out[c, m] = out[c, m] / s


@cuda.jit(cache=True)
def decode_blocks(codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                  block_cbit, block_rbit, row_len, out):
    """One thread per row block (one row on the GPU): zero its rows, then scatter its entries."""
    b = cuda.grid(1)
    if b < block_row.size - 1:
        for i in range(block_row[b] * row_len, block_row[b + 1] * row_len):
            out[i] = 0.0
        pos = block_prev[b]
        cb = block_cbit[b]
        rb = block_rbit[b]
        for e in range(block_entry[b], block_entry[b + 1]):
            r, rb = read_symbol(rdata, rb, rtable)
            pos += r + 1
            if cvals:
                out[pos] = codebook[e]
            else:
                c, cb = read_symbol(cdata, cb, ctable)
                out[pos] = codebook[c]


@cuda.jit(cache=True)
def sparse_matmul(codebook, cdata, ctable, cvals, rdata, rtable, block_row, block_entry, block_prev,
                  block_cbit, block_rbit, row_len, x, y):
    """``y = W @ x`` on the compressed W, one thread per row block."""
    b = cuda.grid(1)
    if b < block_row.size - 1:
        n_ = y.shape[1]
        r0 = block_row[b]
        for r in range(r0, block_row[b + 1]):
            for n in range(n_):
                y[r, n] = 0.0
        pos = block_prev[b]
        cb = block_cbit[b]
        rb = block_rbit[b]
        row = r0
        row_start = r0 * row_len
        for e in range(block_entry[b], block_entry[b + 1]):
            r, rb = read_symbol(rdata, rb, rtable)
            pos += r + 1
            if cvals:
                w = codebook[e]
            else:
                c, cb = read_symbol(cdata, cb, ctable)
                w = codebook[c]
            if w != 0.0:
                while pos >= row_start + row_len:
                    row += 1
                    row_start += row_len
                col = pos - row_start
                for n in range(n_):
                    y[row, n] += w * x[col, n]
