"""Exact sums of a conv for the datapath emulation, on the float64-accumulating direct-conv kernels
(:func:`.llvm.kernel64`: float32 codes in, float64 weights, sums and outputs).

The same scheme as the float32 direct conv (:mod:`.direct`, :mod:`.llvm`): the input is copied zero-padded
and split into stride phases (a 1x1 conv's input copied as it is), so every tap reads a shifted contiguous
run of it; tasks over blocks of output channels and chunks of output tiles run the dense kernel, or, where at
most :data:`SPARSE_DENSITY` of the layer's weight codes are non-zero, the sparse kernel on per-row tap lists
(built once: the codes are fixed).  Each output lands as a float64 sum in ``y (K, N*P*Q)``, and each kernel
call's outputs are rounded to the layer's formats right after it, in the same parallel loop, while still in
cache (:func:`.requant.run_exact`).

Every product of two integer codes is an integer, and every partial sum of them an integer no larger in
magnitude than the layer's bound (largest row sum of |weight codes| times the largest input code, checked
below 2**53 in :func:`sqsim.exec.kernels.emulated.quantize_layer`): each is a double, so every FMA and add
is exact and the sum does not depend on the order, the vector width or the blocking.  Positions outside
the output (the padded columns, the tail of the last tile) are computed from zeros or other finite codes
and not stored.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import dense as K
from .llvm import NSEG, kernel64, store_map
from .requant import run_exact

# A conv whose weight codes are at most this fraction non-zero runs on the sparse kernel.
SPARSE_DENSITY = 0.4


@dataclass(frozen=True, eq=False)
class ExactLaunch:
    """A conv ready to run: copy its input into the phase-split buffer, then the kernel calls, each followed by
    the rounding of its outputs; ``keep`` holds every array whose address the calls name, ``arrays`` the ones
    the launch was built for."""
    arrays: tuple
    prep: tuple
    args: tuple
    keep: tuple

    def __call__(self, requant: tuple) -> None:
        import numba
        x, ph, pw, sh, sw, hq, wq, src = self.prep
        if src.ndim == 1:
            K.pad_phases(x, ph, pw, sh, sw, hq, wq, src)
        else:
            np.copyto(src, x.reshape(src.shape))
        old = numba.set_parallel_chunksize(1)  # calls taken one at a time: faster threads take more
        try:
            run_exact(*self.args, *requant)
        finally:
            numba.set_parallel_chunksize(old)


class ExactConv:
    """Launches of the float64 direct kernels for a :class:`~.backend.CpuBackend` (its thread count and
    useful-tile rule)."""

    def __init__(self, base):
        self.base = base
        self.kern = kernel64()
        self._launches: dict = {}
        self._zero = np.zeros(1)

    def takes(self, geometry) -> bool:
        """Whether the kernels can run a conv of this :class:`~.conv.Geometry` (the backend's
        ``_geometry``): a vector meets at most NSEG output rows."""
        return 2 * geometry.wq >= self.kern.vl - 1

    def rows_padded(self, layer, k: int) -> int:
        """Rows of ``y`` the dense kernel writes: every group's rows rounded up to its register block."""
        g = layer.groups
        kr = self.kern.kr
        return g * (-(-(k // g) // kr) * kr)

    def run(self, layer, x, geometry, y, q, out, relu: bool) -> None:
        """``out (K, N*P*Q)`` = the layer's outputs in its formats (:func:`.requant.requant_rows`), from the
        exact sums of products in ``y``, a float64 buffer of :meth:`rows_padded` rows on the dense kernel
        (extra rows: not rounded), ``K`` on the sparse one."""
        # keyed by the arrays' memory (a reshaped view is a new object each run); the launch holds the arrays
        # it names, so their memory cannot be reused under it
        arrays = tuple((a.ctypes.data, a.shape) for a in (x, y, out))
        hit = self._launches.get(layer.name)
        if hit is None or hit.arrays != arrays:
            hit = self._launches[layer.name] = self._launch(layer, x, geometry, y, q, out)
        f = q.fmt
        hit((y, q.bias, f.product_frac, f.psums.params(), f.output.params(), bool(relu), out))

    def sparse(self, q) -> bool:
        """Whether a layer runs on the sparse kernel."""
        nz = q.device.get("nonzero")
        if nz is None:
            nz = q.device["nonzero"] = int(np.count_nonzero(q.codes))
        return nz <= SPARSE_DENSITY * q.codes.size

    def _launch(self, layer, x, geometry, y, q, out) -> ExactLaunch:
        kern = self.kern
        c = x.shape[0]
        g = layer.groups
        cg = c // g
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
        hq, wq = geometry.hq, geometry.wq
        phases = sh * sw  # the stride phases of the padded input (one plane for a 1x1 stride-1 conv)
        plane = geometry.n * hq * wq
        ntiles = -(-plane // kern.tile)
        vdst, vmask = store_map(*geometry, ntiles * kern.nv, kern.vl)
        cc, rr, ss = np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij")
        xoff = np.ascontiguousarray(((((cc * sh + rr % sh) * sw + ss % sw) * plane + (rr // sh) * wq + ss // sw)
                                     .reshape(-1)), np.int64)
        # the phase-split input, readable (zeros) past its end as far as the last tile of the last tap reads
        body = c * phases * plane
        src = np.zeros(body + int(xoff.max(initial=0)) + ntiles * kern.tile + kern.tile, np.float32)
        if phases == 1 and (ph, pw) == (0, 0) and (kh, kw) == (1, 1):
            prep = (x, 0, 0, 1, 1, 1, 1, src[:body].reshape(c, plane))
        else:
            prep = (x, ph, pw, sh, sw, hq, wq, src)
        ldy = y.shape[1]  # n * P * Q outputs a row
        if self.sparse(q):
            args, keep = self._sparse_calls(q, g, cg, phases * plane, geometry, xoff, src, y, ldy, vdst, vmask)
        else:
            args, keep = self._dense_calls(q, g, cg, phases * plane, geometry, ntiles, xoff, src, y, ldy, vdst, vmask)
        return ExactLaunch(tuple((a.ctypes.data, a.shape) for a in (x, y, out)), prep, args,
                           keep + (x, y, out, src, xoff, vdst, vmask))

    @staticmethod
    def _outputs_before(geometry, o: int) -> int:
        """How many outputs (stored positions) come before padded position ``o``: each output call's rounding
        covers ``_outputs_before(a) <= m < _outputs_before(b)`` for its positions ``a <= o < b``."""
        n, hq, wq, p, q = geometry
        o = min(max(o, 0), n * hq * wq)
        i, rest = divmod(o, hq * wq)
        r, c = divmod(rest, wq)
        return i * p * q + min(r, p) * q + (min(c, q) if r < p else 0)

    def _chunks(self, geometry, tile: int, per_group_units: int, g: int) -> list[tuple[int, int]]:
        """Ranges of useful tiles, about four tasks per thread in all."""
        runs = self.base._useful_tiles(geometry, tile)
        total = sum(t1 - t0 for t0, t1 in runs)
        want = max(1, -(-4 * self.base.threads // (g * per_group_units)))
        per = max(1, -(-total // want))
        return [(t0, min(t1, t0 + per)) for t0, t1 in runs for t0 in range(t0, t1, per)]

    def _dense_calls(self, q, g, cg, group_plane, geometry, ntiles, xoff, src, y, ldy, vdst, vmask):
        kern = self.kern
        kr, nv, tile = kern.kr, kern.nv, kern.tile
        k, taps = q.codes.shape
        kg = k // g
        kgp = -(-kg // kr) * kr
        nkb = kgp // kr
        w = np.zeros((g, kgp, taps))
        w[:, :kg] = q.codes.reshape(g, kg, taps)
        packed = np.ascontiguousarray(w.reshape(g, nkb, kr, taps).transpose(0, 1, 3, 2))  # (g, nkb, taps, kr)
        if self._zero.size < kgp * g:
            self._zero = np.zeros(kgp * g)
        kper = max(1, -(-nkb // max(1, -(-2 * self.base.threads // g))))
        chunks = self._chunks(geometry, tile, -(-nkb // kper), g)
        calls, rect = [], []
        for i in range(g):
            for k0 in range(0, nkb, kper):
                k1 = min(nkb, k0 + kper)
                for t0, t1 in chunks:
                    r0 = i * kgp + k0 * kr
                    calls.append((packed[i, k0].ctypes.data, src.ctypes.data + (i * cg * group_plane + t0 * tile) * 4,
                                  xoff.ctypes.data, y.ctypes.data + r0 * ldy * 8, ldy, k1 - k0, t1 - t0, taps,
                                  self._zero.ctypes.data, 0, vdst.ctypes.data + t0 * nv * NSEG * 8,
                                  vmask.ctypes.data + t0 * nv * NSEG * 4))
                    rect.append((r0, min(r0 + (k1 - k0) * kr, i * kgp + kg), i * kg + k0 * kr,
                                 self._outputs_before(geometry, t0 * tile), self._outputs_before(geometry, t1 * tile)))
        return (kern.address(), np.array(calls, np.int64), 0, np.array(rect, np.int64)), (packed, self._zero)

    def _sparse_calls(self, q, g, cg, group_plane, geometry, xoff, src, y, ldy, vdst, vmask):
        kern = self.kern
        k = q.codes.shape[0]
        kg = k // g
        rows, cols = np.nonzero(q.codes)
        val = np.ascontiguousarray(q.codes[rows, cols], np.float64)
        off = np.ascontiguousarray(xoff[cols], np.int32)
        rowptr = np.zeros(k + 1, np.int64)
        rowptr[1:] = np.cumsum(np.bincount(rows, minlength=k))
        if self._zero.size < k:
            self._zero = np.zeros(k)
        params = np.array([0, 1, 0], np.int64)  # no partial sums: one block of input channels
        per = max(1, -(-kg // max(1, -(-2 * self.base.threads // g))))
        runs = self.base._useful_tiles(geometry, kern.vl)
        calls, rect = [], []
        for i in range(g):
            for r0 in range(i * kg, (i + 1) * kg, per):
                r1 = min((i + 1) * kg, r0 + per)
                for v0, v1 in runs:
                    calls.append((val.ctypes.data, src.ctypes.data + (i * cg * group_plane + v0 * kern.vl) * 4,
                                  off.ctypes.data, y.ctypes.data + r0 * ldy * 8, ldy, r1 - r0, v1 - v0,
                                  rowptr.ctypes.data + r0 * 8, self._zero.ctypes.data + r0 * 8, 0,
                                  vdst.ctypes.data + v0 * NSEG * 8, vmask.ctypes.data + v0 * NSEG * 4))
                    rect.append((r0, r1, r0, self._outputs_before(geometry, v0 * kern.vl),
                                 self._outputs_before(geometry, v1 * kern.vl)))
        return ((kern.sparse_address(), np.array(calls, np.int64), params.ctypes.data, np.array(rect, np.int64)),
                (val, off, rowptr, params, self._zero))
