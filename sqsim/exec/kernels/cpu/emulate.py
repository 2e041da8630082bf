"""The CPU engine of the datapath emulation (:mod:`sqsim.exec.kernels.emulated`): exact sums of integer
products, then the rounding kernels of :mod:`.requant`.

A conv or fc layer's sums run on one of three paths, all exact for fixed-point formats (bounds checked in
:func:`~sqsim.exec.kernels.emulated.quantize_layer`):

- **float32** (``QuantLayer.f32_exact``): every partial sum is an integer below 2**24, so the backend's own
  float32 kernels (direct, sparse, BLAS; any order, FMA or not) compute it exactly; the sums land in a
  float32 buffer and are rounded from there (8-bit formats and below on SqueezeNet);
- **float64**: the float64-accumulating direct kernels (:mod:`.exact_conv`; dense, or sparse on tap lists
  where few weight codes are non-zero), integers below 2**53: exact in any order; where those kernels do
  not apply (a phase narrower than a vector), im2col into float64 columns and a float64 GEMM per band of
  output rows on the task threads, rounded while the band is in cache;
- fc layers: a CSR product summed in float64 (:func:`.requant.csr_matmul`).
"""
from __future__ import annotations

import math

import numpy as np

from ...datapath import lrn_f64
from ..backend import HeldWeights
from . import dense as K
from . import requant as R


class CpuEmulation:
    """Datapath arithmetic on a :class:`~.backend.CpuBackend` (its buffers, task threads and kernels)."""

    def __init__(self, base):
        self.base = base
        self._bufs: dict = {}   # name -> float64 / float32 scratch, grown as needed
        self._views: dict = {}  # layer -> the psum view the direct kernels write (stable per shape)
        self._exact = None      # the float64 direct kernels, compiled when a layer first needs them

    # --- weights -----------------------------------------------------------------------------------------
    def prepare(self, layer, q) -> None:
        """Device forms of a quantized layer: float64 weights for the GEMM, CSR for fc, the float32 codes (or
        the quantized compressed layer) for the float32 kernels."""
        if layer.op == "fc":
            nz = np.nonzero(q.codes)
            counts = np.bincount(nz[0], minlength=q.codes.shape[0])
            q.device["indptr"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            q.device["indices"] = nz[1].astype(np.int32)
            q.device["values"] = q.codes[nz].astype(np.float32)
            return
        if q.f32_exact:
            if q.sparse is not None:
                q.device["held"] = HeldWeights(sparse=self.base.upload_sparse(q.sparse), rows=q.codes.shape[0],
                                               row_len=q.codes.shape[1], n_entries=q.sparse.n_entries)
            else:
                q.device["held"] = HeldWeights(dense=self.base.upload_dense(q.codes), rows=q.codes.shape[0],
                                               row_len=q.codes.shape[1])
        else:
            q.device["w64"] = None  # the im2col path's float64 weights, made if a layer takes it

    def _buf(self, key: str, n: int, dtype) -> np.ndarray:
        b = self._bufs.get(key)
        if b is None or b.size < n:
            b = self._bufs[key] = np.empty(n, dtype)
        return b[:n]

    # --- conv / fc -----------------------------------------------------------------------------------------
    def conv(self, layer, x, out, q, relu: bool, scratch) -> None:
        f = q.fmt
        pp, ap = f.psums.params(), f.output.params()
        prod = f.product_frac
        k = out.shape[0]
        y_out = out.reshape(k, -1)
        if q.f32_exact:
            psum = self._psum_view(layer, out.shape, np.float32)
            self.base.conv2d(layer, x, psum, q.device["held"], False, scratch)
            R.requant_rows(psum.reshape(k, -1), q.bias, prod, pp, ap, relu, y_out)
            return
        if self._exact is None:
            from .exact_conv import ExactConv
            self._exact = ExactConv(self.base)
        ex = self._exact
        geometry = self.base._geometry(layer, x, out)
        if not ex.takes(geometry):
            return self._conv_f64(layer, x, y_out, out.shape[2:], q, relu, pp, ap, prod)
        rows = k if ex.sparse(q) else ex.rows_padded(layer, k)
        ex.run(layer, x, geometry, self._psum_view(layer, (rows, y_out.shape[1]), np.float64), q, y_out, relu)

    def _psum_view(self, layer, shape, dtype) -> np.ndarray:
        """A buffer of ``shape`` for a layer's sums (the same view object every run, so the direct kernels keep
        their launches; one buffer per dtype, shared by the layers, which run one after another)."""
        key = (layer.name, np.dtype(dtype).str)
        v = self._views.get(key)
        if v is None or v.shape != tuple(shape):
            n = int(np.prod(shape))
            name = f"psum-{np.dtype(dtype).str}"
            buf = self._bufs.get(name)
            if buf is None or buf.size < n:
                buf = self._bufs[name] = (self.base.empty(max(n, 1 << 16)) if dtype == np.float32
                                          else np.empty(max(n, 1 << 16), dtype))
                self._views = {kk: vv for kk, vv in self._views.items() if kk[1] != np.dtype(dtype).str}
            v = self._views[key] = buf[:n].reshape(shape)
        return v

    def _conv_f64(self, layer, x, y_out, out_hw, q, relu, pp, ap, prod) -> None:
        """im2col + float64 GEMM in bands of output rows on the task threads, each band rounded while in cache."""
        base = self.base
        c, n, h, w = x.shape
        k = y_out.shape[0]
        p, qq = out_hw
        kh, kw = layer.kernel
        (sh, sw), (ph, pw) = layer.stride, layer.pad
        g = layer.groups
        kg, lg = k // g, (c // g) * kh * kw
        rows = c * kh * kw
        band = base._band(rows, n, p, qq)
        bands = -(-p // band)
        slots = base._pool.threads
        cols_all = self._buf("cols64", slots * rows * band * qq, np.float64)
        y_all = self._buf("y64", slots * k * band * qq, np.float64)
        w64 = q.device["w64"]
        if w64 is None:
            w64 = q.device["w64"] = q.codes.astype(np.float64)

        def one(t, slot):
            s, b0 = divmod(t, bands)
            p0 = b0 * band
            p1 = min(p, p0 + band)
            mb = (p1 - p0) * qq
            cols = cols_all[slot * rows * band * qq:][:rows * mb].reshape(rows, mb)
            y = y_all[slot * k * band * qq:][:k * mb].reshape(k, mb)
            K.im2col(x, s, p0, p1, kh, kw, sh, sw, ph, pw, qq, cols)
            for i in range(g):
                np.matmul(w64[i * kg:(i + 1) * kg], cols[i * lg:(i + 1) * lg], out=y[i * kg:(i + 1) * kg])
            R.requant_band(y, q.bias, prod, pp, ap, relu, y_out, s * p * qq + p0 * qq)
        base._tasks(n * bands, one)

    def fc(self, x, out, q, relu: bool, scratch) -> None:
        xf = self.base.fc_features(x, scratch.feat)
        k, n = out.shape[0], out.shape[1]
        y = self._buf("fc64", k * n, np.float64).reshape(k, n)
        d = q.device
        R.csr_matmul(d["indptr"], d["indices"], d["values"], np.ascontiguousarray(xf), y)
        f = q.fmt  # serial: an fc output is small
        R.requant_band(y, q.bias, f.product_frac, f.psums.params(), f.output.params(), relu, out.reshape(k, n), 0)

    # --- pools, add, LRN, softmax -------------------------------------------------------------------------
    def avgpool(self, layer, x, out, fin, fout) -> None:
        c, n, h, w = x.shape
        R.avg_pool_q(x.reshape(c * n, h, w), *layer.kernel, *layer.stride, *layer.pad, fin.frac, fout.params(),
                     out.reshape(c * n, out.shape[2], out.shape[3]))

    def global_avgpool(self, x, out, fin, fout) -> None:
        c, n, h, w = x.shape
        R.global_avg_pool_q(x.reshape(c * n, h * w), fin.frac, fout.params(), out.reshape(c * n))

    def add(self, xs, fins, fout, out) -> None:
        """The exact sum of the inputs aligned to the finest fraction, rounded once."""
        top = max(f.frac for f in fins)
        acc = self._buf("add64", out.size, np.float64)
        np.multiply(xs[0].reshape(-1), math.ldexp(1.0, top - fins[0].frac), out=acc, dtype=np.float64)
        for x, f in zip(xs[1:], fins[1:]):
            acc += x.reshape(-1).astype(np.float64) * math.ldexp(1.0, top - f.frac)
        R.requant(acc, top, fout.params(), out.reshape(-1))

    def lrn(self, layer, x, fin, fout, out) -> None:
        """Caffe's LRN (ACROSS_CHANNELS) on the input's values in float64, rounded to the output format (no
        chip's LRN circuit is modelled: this one is only as exact as float64)."""
        c = x.shape[0]
        v = x.reshape(c, -1).astype(np.float64) * math.ldexp(1.0, -fin.frac)
        y = lrn_f64(v, layer.local_size, float(layer.alpha), float(layer.beta), float(layer.k))
        R.requant(y.reshape(-1), 0, fout.params(), out.reshape(-1))

    def softmax(self, x, fin, out) -> None:
        vals = self._buf("softmax32", x.size, np.float32).reshape(x.shape)
        np.multiply(x, np.float32(math.ldexp(1.0, -fin.frac)), out=vals)
        self.base.softmax(vals, out)

