"""Numba kernels of the datapath emulation (:mod:`sqsim.exec.datapath`): rounding a value to a number format,
a conv/fc's accumulator written out through its psum format into its output format, average pools, and
exact sparse/dense products for fc layers.

A format is passed as the float64 vector of :meth:`~sqsim.exec.datapath.NumberFormat.params`
``[kind, bits, frac, exp_bits, man_bits, rounding, overflow]``; a value ``x`` comes with the fraction bits
``frac_in`` of its units (``x * 2**-frac_in`` is the real value).  Every step is exact for the magnitudes the
emulation admits (the bounds are checked where a layer is planned, :mod:`sqsim.exec.kernels.emulate`):

- scaling by a power of two is exact in binary floating point (no value here under- or overflows);
- ``rint``, ``floor`` and ``trunc`` of a double are exact, and so is ``t - floor(t)``, so every rounding mode
  below rounds the exact value of ``t``;
- a double holds every integer below 2**53, and a fixed-point result (below 2**(bits-1), bits <= 53 when it
  can overflow) is converted to int64 for wrapping, exactly.

These kernels mirror :func:`sqsim.exec.datapath.requantize` (numpy) operation for operation.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import JIT as _OPTS
from .intrinsics import call_direct

# Kernel codes (sqsim.exec.datapath): kinds, rounding modes (ROUNDING_MODES order), overflow modes.
_FIXED, _FLOAT = 0, 1
_NEAREST_EVEN, _NEAREST_AWAY, _NEAREST_UP, _TRUNCATE, _TOWARD_ZERO = 0, 1, 2, 3, 4
_SATURATE, _WRAP = 0, 1


@njit(inline="always")
def _round(t, mode):
    """``t`` rounded to an integer by ``mode`` (exact for |t| < 2**53)."""
    if mode == _NEAREST_EVEN:
        return np.rint(t)
    r = np.floor(t)
    if mode == _TRUNCATE:
        return r
    if mode == _TOWARD_ZERO:
        return np.trunc(t)
    f = t - r
    if mode == _NEAREST_UP:
        return r + 1.0 if f >= 0.5 else r
    if f > 0.5 or (f == 0.5 and t > 0.0):  # nearest, ties away from zero
        return r + 1.0
    return r


@njit(inline="always")
def _overflow(q, bits, half, ovf):
    """A rounded code ``q`` saturated or wrapped to a signed ``bits``-bit code (``half = 2**(bits-1)``)."""
    if q >= -half and q < half:
        return q
    if ovf == _WRAP and bits < 64:
        qi = np.int64(q)
        h = np.int64(1) << np.int64(bits - 1)
        m = (np.int64(1) << np.int64(bits)) - np.int64(1)
        return float(((qi + h) & m) - h)
    if q < 0:
        return -half
    return half - 1.0


@njit(inline="always")
def _float(v, exp_bits, man_bits, mode, ovf):
    """``v`` rounded to a float of ``exp_bits`` exponent and ``man_bits`` mantissa bits (IEEE-style subnormals;
    overflow to infinity, or saturated to the largest finite value)."""
    if v == 0.0 or not np.isfinite(v):
        return v
    emax = (1 << (exp_bits - 1)) - 1
    _, e = math.frexp(v)
    e = max(e - 1, 1 - emax)
    q = math.ldexp(_round(math.ldexp(v, man_bits - e), mode), e - man_bits)
    big = (2.0 - math.ldexp(1.0, -man_bits)) * math.ldexp(1.0, emax)
    if abs(q) > big:
        if ovf == _SATURATE:
            return big if q > 0 else -big
        return np.inf if q > 0 else -np.inf
    return q


@njit(inline="always")
def _prep(p, frac_in):
    """A format ``p`` read once for values in units of ``2**-frac_in``: ``(kind, scale, bits, half, exp_bits,
    man_bits, mode, overflow)``, ``scale`` the factor to the format's units (to real values for floats)."""
    kind, bits, frac = int(p[0]), int(p[1]), int(p[2])
    target = frac if kind == _FIXED else 0
    return (kind, math.ldexp(1.0, target - frac_in), bits, math.ldexp(1.0, bits - 1), int(p[3]), int(p[4]),
            int(p[5]), int(p[6]))


@njit(inline="always")
def _step(x, f):
    """``x`` in the format read by :func:`_prep`: a code (fixed), a value (float or real)."""
    kind, scale, bits, half, exp_bits, man_bits, mode, ovf = f
    t = x * scale
    if kind == _FIXED:
        return _overflow(_round(t, mode), bits, half, ovf)
    if kind == _FLOAT:
        return _float(t, exp_bits, man_bits, mode, ovf)
    return t


@njit(inline="always")
def _out_frac(p):
    """Fraction bits of what :func:`_step` returns for format ``p`` (its frac when fixed, else 0)."""
    return int(p[2]) if int(p[0]) == _FIXED else 0


@njit(**_OPTS)  # not inlined: compiled once per dtype and shared by the three kernels below
def _requant_span(y, k, j0, j1, b, prod_frac, pp, ap, relu, out, ko, dst):
    """``out[ko, dst + j] = act(psum(y[k, j] + b))`` for ``j0 <= j < j1`` (ReLU'd when ``relu``)."""
    fp = _prep(pp, prod_frac)
    fa = _prep(ap, _out_frac(pp))
    # slices and range(n): an index that could be negative stops LLVM vectorising the loop (dense.py)
    yk = y[k, j0:j1]
    ok = out[ko, dst + j0:dst + j1]
    n = yk.size
    if fp[0] == _FIXED and fa[0] == _FIXED and fp[6] == _NEAREST_EVEN and fa[6] == _NEAREST_EVEN \
            and fp[7] == _SATURATE and fa[7] == _SATURATE:  # the common case, branch-free (vectorises)
        s1, h1, s2, h2 = fp[1], fp[3], fa[1], fa[3]
        lo = 0.0 if relu else -h2
        for j in range(n):
            p = min(max(np.rint((yk[j] + b) * s1), -h1), h1 - 1.0)
            ok[j] = min(max(np.rint(p * s2), lo), h2 - 1.0)
        return
    for j in range(n):
        a = _step(_step(yk[j] + b, fp), fa)
        if relu and a < 0.0:
            a = 0.0
        ok[j] = a


@njit(parallel=True, **_OPTS)
def requant_rows(y, bias, prod_frac, pp, ap, relu, out):
    """A conv/fc output: ``out[k, m] = act(psum(y[k, m] + bias[k]))``, ReLU'd when ``relu``.

    ``y (K, M)``: the exact sums of products, in units of ``2**-prod_frac``; ``bias (K,)`` aligned to the same
    units (float64); ``pp``, ``ap``: the psum and output formats; ``out (K, M)`` float32 codes."""
    k_, m_ = y.shape
    chunk = 4096
    nch = (m_ + chunk - 1) // chunk
    for i in prange(k_ * nch):
        k = i // nch
        m0 = (i % nch) * chunk
        _requant_span(y, k, m0, min(m_, m0 + chunk), bias[k], prod_frac, pp, ap, relu, out, k, 0)


@njit(**_OPTS)
def requant_band(y, bias, prod_frac, pp, ap, relu, out, m0):
    """:func:`requant_rows` of a band: ``y (K, mb)`` into columns ``m0 .. m0 + mb`` of ``out (K, M)``
    (serial: the backend runs bands on its task threads)."""
    for k in range(y.shape[0]):
        _requant_span(y, k, 0, y.shape[1], bias[k], prod_frac, pp, ap, relu, out, k, m0)


@njit(parallel=True, **_OPTS)
def run_exact(addr, calls, part, rect, y, bias, prod_frac, pp, ap, relu, out):
    """The float64 direct-conv kernel at ``addr`` once per row of ``calls`` (as :func:`.launch.run_direct`),
    the rows in parallel, each call's outputs rounded right after it, while in cache: rows ``rect[i, 0] <= r <
    rect[i, 1]`` of ``y``, columns ``rect[i, 3] <= m < rect[i, 4]``, into rows from ``rect[i, 2]`` of ``out``
    (as :func:`requant_rows`)."""
    for i in prange(calls.shape[0]):
        row = calls[i]
        a = (row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10], row[11])
        call_direct(addr, a, part)
        r0, r1, o0, m0, m1 = rect[i, 0], rect[i, 1], rect[i, 2], rect[i, 3], rect[i, 4]
        for r in range(r0, r1):
            ko = o0 + r - r0
            _requant_span(y, r, m0, m1, bias[ko], prod_frac, pp, ap, relu, out, ko, 0)


@njit(parallel=True, **_OPTS)
def requant(x, frac_in, ap, out):
    """``out = fmt(x)`` elementwise (``x`` in units of ``2**-frac_in``), 1-D arrays."""
    fa = _prep(ap, frac_in)
    for i in prange(x.size):
        out[i] = _step(x[i], fa)


@njit(parallel=True, **_OPTS)
def avg_pool_q(x, kh, kw, sh, sw, ph, pw, frac_in, ap, out):
    """Caffe AVE pooling of codes ``x (B, H, W)``: the exact window sum (over the window clipped to the input)
    divided by the window's count (clipped to the padded input, as :func:`.dense.avg_pool`), rounded once to
    the format ``ap``.  With ``t = S * 2**d / n`` and ``|S| * 2**max(d, 0) < 2**52``, the double quotient
    rounds the same way as the exact one: a rounding boundary (a multiple of 1/2) is at least
    ``min(1, 2**d) / (2n)`` from ``t`` unless ``t`` is on it (then the quotient is exact), and the quotient's
    error is at most ``|t| * 2**-53``, below that distance."""
    b_, h_, w_ = x.shape
    p_, q_ = out.shape[1], out.shape[2]
    fa = _prep(ap, frac_in)
    for b in prange(b_):
        colsum = np.empty(w_, np.float64)
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
                s = 0.0
                for j in range(w0, w1):
                    s += colsum[j]
                out[b, p, q] = _step(s / size, fa)


@njit(parallel=True, **_OPTS)
def global_avg_pool_q(x, frac_in, ap, out):
    """Mean of each plane of codes ``x (B, S)``, exact sum over ``S``, rounded once to ``ap`` (as
    :func:`avg_pool_q`)."""
    b_, s_ = x.shape
    fa = _prep(ap, frac_in)
    for b in prange(b_):
        s = 0.0
        for i in range(s_):
            s += x[b, i]
        out[b] = _step(s / s_, fa)


@njit(parallel=True, **_OPTS)
def csr_matmul(indptr, indices, values, x, y):
    """``y (K, N) = W @ x`` for a CSR ``W`` (float32 values) and ``x (L, N)`` float32, summed in float64
    (exact for integer codes below the checked bound)."""
    k_, n_ = y.shape
    for k in prange(k_):
        for n in range(n_):
            y[k, n] = 0.0
        for e in range(indptr[k], indptr[k + 1]):
            v = np.float64(values[e])
            xr = x[indices[e]]
            for n in range(n_):
                y[k, n] += v * xr[n]
