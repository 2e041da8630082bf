"""The GPU engine of the datapath emulation (:mod:`sqsim.exec.kernels.emulated`): the same arithmetic as the
CPU engine, with CuPy (numpy under ``NUMBA_ENABLE_CUDASIM``).

Sums: im2col (the backend's CUDA kernel, float32 codes, exact) widened to float64 and one float64 GEMM per
group (cuBLAS ``dgemm``): sums of integer codes below 2**53 (the bound checked on the host) are exact in any
order, so a fixed-point layer's sums, and with them every rounded output, are bit-identical to the CPU's.
Rounding: :func:`sqsim.exec.datapath.requantize` on the device arrays (the numpy reference, operation for
operation; IEEE division and ``rint`` are correctly rounded on the GPU too).  Float formats are summed in
float64 in cuBLAS's order, which may differ from the CPU's in a sum's last bit (below any psum format's).
"""
from __future__ import annotations

import math

import numpy as np

from ...datapath import lrn_f64, requantize


class GpuEmulation:
    """Datapath arithmetic on a :class:`~.backend.GpuBackend` (CuPy arrays and its CUDA kernels)."""

    def __init__(self, base):
        self.base = base
        self.xp = base.xp

    def prepare(self, layer, q) -> None:
        """The float64 weight codes and aligned biases on the device."""
        xp = self.xp
        q.device["w64"] = xp.asarray(q.codes.astype(np.float64))
        q.device["bias"] = xp.asarray(q.bias)

    def _write(self, s, q, relu: bool, out2d) -> None:
        """``out2d`` = the layer's outputs from the exact sums ``s (K, M)`` (bias not yet added)."""
        xp, f = self.xp, q.fmt
        s = s + q.device["bias"][:, None]
        p = requantize(s, f.product_frac, f.psums, xp)
        a = requantize(p, f.psums.frac if f.psums.kind == "fixed" else 0, f.output, xp)
        if relu:
            a = xp.maximum(a, 0.0)
        out2d[...] = a.astype(xp.float32)

    def conv(self, layer, x, out, q, relu: bool, scratch) -> None:
        cols = self.base.conv_columns(layer, x, out.shape, scratch.work).astype(self.xp.float64)
        k = out.shape[0]
        s = self.xp.empty((k, cols.shape[1]), self.xp.float64)
        self.base.grouped_matmul(q.device["w64"], cols, s, layer.groups)
        self._write(s, q, relu, out.reshape(k, -1))

    def fc(self, x, out, q, relu: bool, scratch) -> None:
        xf = self.base.fc_features(x, scratch.feat).astype(self.xp.float64)
        k, n = out.shape[0], out.shape[1]
        self._write(q.device["w64"] @ xf, q, relu, out.reshape(k, n))

    def avgpool(self, layer, x, out, fin, fout) -> None:
        """Exact window sums over the window clipped to the input, divided by Caffe's count (the window
        clipped to the padded input), rounded once."""
        xp = self.xp
        c, n, h, w = x.shape
        p, q = out.shape[2], out.shape[3]
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
        # pad generously: windows of Caffe's ceil-mode outputs may reach past the padded input
        hp, wp = max(h + 2 * ph, (p - 1) * sh + kh), max(w + 2 * pw, (q - 1) * sw + kw)
        xpd = xp.zeros((c, n, hp, wp), xp.float64)
        xpd[:, :, ph:ph + h, pw:pw + w] = x
        s = xp.zeros((c, n, p, q), xp.float64)
        for r in range(kh):
            for t in range(kw):
                s += xpd[:, :, r:r + (p - 1) * sh + 1:sh, t:t + (q - 1) * sw + 1:sw]
        rows = np.minimum(np.arange(p) * sh - ph + kh, h + ph) - (np.arange(p) * sh - ph)
        cols = np.minimum(np.arange(q) * sw - pw + kw, w + pw) - (np.arange(q) * sw - pw)
        count = xp.asarray((rows[:, None] * cols[None, :]).astype(np.float64))
        out[...] = requantize(s / count, fin.frac, fout, xp).astype(xp.float32)

    def global_avgpool(self, x, out, fin, fout) -> None:
        xp = self.xp
        c, n, h, w = x.shape
        s = x.reshape(c * n, h * w).astype(xp.float64).sum(axis=1)
        out.reshape(-1)[...] = requantize(s / (h * w), fin.frac, fout, xp).astype(xp.float32)

    def add(self, xs, fins, fout, out) -> None:
        xp = self.xp
        top = max(f.frac for f in fins)
        acc = xs[0].astype(xp.float64) * math.ldexp(1.0, top - fins[0].frac)
        for x, f in zip(xs[1:], fins[1:]):
            acc = acc + x.astype(xp.float64) * math.ldexp(1.0, top - f.frac)
        out[...] = requantize(acc, top, fout, xp).astype(xp.float32)

    def lrn(self, layer, x, fin, fout, out) -> None:
        """On the host, the CPU engine's float64 LRN (numpy): the same bits as the CPU (a device's ``pow``
        may differ from numpy's in its last bit, and that could move a rounded code)."""
        xp = self.xp
        c = x.shape[0]
        host = (x if xp is np else xp.asnumpy(x)).reshape(c, -1).astype(np.float64) * math.ldexp(1.0, -fin.frac)
        y = lrn_f64(host, layer.local_size, float(layer.alpha), float(layer.beta), float(layer.k))
        out.reshape(c, -1)[...] = xp.asarray(requantize(y, 0, fout).astype(np.float32))

    def softmax(self, x, fin, out) -> None:
        vals = (x * np.float32(math.ldexp(1.0, -fin.frac))).astype(self.xp.float32)
        self.base.softmax(vals, out)
