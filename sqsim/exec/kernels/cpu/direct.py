"""Direct convolutions on the CPU: the launch of a conv on the dense or sparse direct-conv kernels
(:mod:`.llvm`), built once and kept while the same arrays come back.

A launch (:class:`DirectLaunch`) is every kernel call of the conv as a row of integers (addresses and
sizes) run by a Numba loop (:mod:`.launch`), plus what each run does first: prepare the input (pad and
split it into stride phases, or copy a 1x1 conv's last partial tile) and, for a compressed layer not
decoded by the tasks themselves, decode it whole into the kernel's blocked order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from . import dense as K
from .conv import Compressed, Geometry
from .decode_dense import decode_into
from .launch import run_direct, run_direct_blocks, run_direct_rows, run_sparse_blocks
from .llvm import NSEG, store_map


@dataclass(frozen=True, eq=False)
class PadPhases:
    """Copy the input zero-padded and split into stride phases (:func:`.dense.pad_phases`)."""
    x: np.ndarray
    ph: int
    pw: int
    sh: int
    sw: int
    hq: int
    wq: int
    out: np.ndarray

    def __call__(self) -> None:
        K.pad_phases(self.x, self.ph, self.pw, self.sh, self.sw, self.hq, self.wq, self.out)


@dataclass(frozen=True, eq=False)
class TailCopy:
    """The last tile of a 1x1 conv reads a zero-padded copy of its columns: ``dst = src``, ``zeros = 0``."""
    dst: np.ndarray
    src: np.ndarray
    zeros: np.ndarray

    def __call__(self) -> None:
        np.copyto(self.dst, self.src)
        self.zeros.fill(0.0)


@dataclass(frozen=True, eq=False)
class WholeDecode:
    """A compressed layer decoded whole, straight into the kernel's blocks of ``kr`` rows, before the calls."""
    sw: object
    buf: np.ndarray
    kr: int

    def __call__(self) -> None:
        decode_into(self.sw, self.buf, self.kr)


@dataclass(frozen=True, eq=False)
class DirectLaunch:
    """A direct conv ready to run: ``prep`` and ``decode`` (or None), then ``kernel(*args)``; ``keep`` holds
    every array whose address ``args`` names."""
    prep: object
    decode: object
    kernel: object
    args: tuple
    keep: tuple

    def __call__(self) -> None:
        if self.prep is not None:
            self.prep()
        if self.decode is not None:
            self.decode()
        old = numba.set_parallel_chunksize(1)  # rows (tasks) taken one at a time: faster threads take more
        try:
            self.kernel(*self.args)
        finally:
            numba.set_parallel_chunksize(old)


@dataclass(frozen=True, eq=False)
class KeptLaunch:
    """A launch with the arrays it was built for (matched by identity) and its ReLU flag."""
    arrays: tuple
    relu: bool
    launch: DirectLaunch

    def matches(self, arrays: tuple, relu: bool) -> bool:
        return self.relu == relu and len(self.arrays) == len(arrays) and \
            all(u is v for u, v in zip(self.arrays, arrays))


@dataclass(frozen=True, eq=False)
class PackedWeights:
    """Dense weights packed for the direct kernel, per group, and the array they came from."""
    source: np.ndarray
    groups: tuple


class ConvTables(NamedTuple):
    """Where each tap's run of the input starts (``xoff``: in the phase-split input; ``xoff_tail``: in a
    1x1 conv's zero-padded last tile), and where the kernel stores each vector (:func:`.llvm.store_map`)."""
    xoff: np.ndarray
    xoff_tail: np.ndarray
    vdst: np.ndarray
    vmask: np.ndarray


class DirectOps:
    """The direct-conv launches of :class:`~.backend.CpuBackend` (a mixin, with :class:`.conv.ConvOps`)."""

    def _packed_weights(self, layer, w2d) -> tuple:
        """Per group, dense weights packed for the direct-conv kernel (``(K/KR, L, KR)`` blocks), packed
        once (keyed by the array they came from).  A compressed layer is decoded into the reused decode
        buffer in this order instead (:meth:`_direct_launch`)."""
        hit = self._packed.get(layer.name)
        if hit is not None and hit.source is w2d:
            return hit.groups
        blocks = self._direct.pack(w2d)
        nkb = blocks.shape[0] // layer.groups
        packed = PackedWeights(w2d, tuple(blocks[i * nkb:(i + 1) * nkb] for i in range(layer.groups)))
        self._packed[layer.name] = packed
        return packed.groups

    def _conv_direct(self, layer, x, out, w2d, b, relu: bool, work) -> None:
        """Convolution by the direct-conv kernel (:mod:`.llvm`): no im2col.

        Its launch (every kernel call as a row of addresses and sizes, see :meth:`_direct_launch`) depends
        only on the layer and on which arrays it reads and writes, so it is built once and kept while the
        same arrays come back (the executor passes the same views on every run of a plan): a run then
        only prepares the input, decodes a compressed layer (unless its tasks decode it) and launches.
        SqueezeNet v1.0 dense at batch 1, 2 threads: 8.6-9.4 ms a run against 9.7-10.4 ms building it on
        every run (three pairs of alternating processes)."""
        arrays = self._launch_arrays(x, out, work, b, w2d)
        hit = self._kept_launch(layer.name, arrays, relu)
        if hit is None:  # the launch holds addresses: its record keeps every array it names alive
            hit = KeptLaunch(arrays, relu, self._direct_launch(layer, x, out, w2d, b, relu, work))
            self._launches[layer.name] = (hit,) + self._launches.get(layer.name, ())[:1]  # two plans, as the executor
        hit.launch()

    @staticmethod
    def _launch_arrays(x, out, work, b, w2d) -> tuple:
        """What a direct conv's launch reads and writes: dense weights, or compressed ones and their decode
        buffer."""
        return (x, out, work, b) + ((w2d.sw, w2d.buf) if isinstance(w2d, Compressed) else (w2d,))

    def _kept_launch(self, name: str, arrays: tuple, relu: bool) -> KeptLaunch | None:
        """The kept launch of layer ``name`` on these very arrays, or None."""
        return next((r for r in self._launches.get(name, ()) if r.matches(arrays, relu)), None)

    def _direct_launch(self, layer, x, out, w2d, b, relu: bool, work) -> DirectLaunch:
        """The launch of a direct conv on the dense kernel (or the sparse one: :meth:`_sparse_launch`).

        The input is copied once, zero-padded and split into stride phases (:func:`.dense.pad_phases`),
        at the start of ``work``; then tap ``(c, r, s)`` reads phase ``(c, r % sh, s % sw)`` shifted by
        ``(r // sh, s // sw)``, a contiguous run for every output tile.  A 1x1 conv reads its input in
        place (its last tile reads a zero-padded copy).  Tasks split the output positions into chunks of
        tiles (and the output channels when there are few chunks); the kernel stores each output row
        straight into ``out``."""
        if self._takes_sparse(layer, x, w2d, work):
            return self._sparse_launch(layer, x, out, w2d.sw, w2d.buf, b, relu, work)
        kern = self._direct
        c, n, h, w = x.shape
        k = out.shape[0]
        kh, kw = layer.kernel
        sh, sw = layer.stride
        g = layer.groups
        cg, kg, kr = c // g, k // g, kern.kr
        lay = self._direct_layout(layer, c, n, h, w, k)
        # Where the whole input fits in L2 the tasks split the output channels (each reads the input, and
        # each weight is read by one thread), and a compressed layer is decoded task by task where its
        # streams allow (each task decodes its rows, then multiplies them while they are in its cache).
        # SqueezeNet v1.0 at batch 1, 2 threads: dense 10.1 vs 10.7 ms split by positions; P+Q 1.02x
        # the old dense instead of 0.95x (one process, alternating).
        units = None
        if cg * sh * sw * lay.ntiles * kern.tile <= self.caches.in_chunk_elements:
            units = self._channel_tasks(w2d.sw if isinstance(w2d, Compressed) else None, g, kg, kr)
        per_task = units is not None and units[0].decodes  # each task decodes its rows
        decode = None
        if isinstance(w2d, Compressed):  # decoded into the kernel's blocks, by the tasks or whole first
            blocks = w2d.buf.reshape(-1)[: k * cg * kh * kw].reshape(k // kr, cg * kh * kw, kr)
            packed = tuple(blocks[i * (kg // kr):(i + 1) * (kg // kr)] for i in range(g))
            if not per_task:
                decode = WholeDecode(w2d.sw, w2d.buf, kr)
        else:
            packed = self._packed_weights(layer, w2d)
        geometry = Geometry(1, 1, lay.wq, 1, lay.wq) if self._pointwise(layer) else \
            Geometry(n, lay.hq, lay.wq, *out.shape[2:])
        prep, calls, task_call = self._direct_calls(layer, x, out, packed, b, relu, work, lay, geometry, units)
        addr, calls = kern.address(blocked=lay.part_elements > 0), np.array(calls, np.int64)
        part, part_bytes = work.ctypes.data + lay.src_elements * 4, lay.part_elements * 4
        if not per_task:  # one kernel call a row
            return DirectLaunch(prep, decode, run_direct, (addr, calls, part, part_bytes), packed)
        sp = w2d.sw
        head = (addr, calls, np.array(task_call, np.int64), np.array([(u.u0, u.u1) for u in units], np.int64),
                part, part_bytes)
        flat = w2d.buf.reshape(-1)
        if sp.row_entry is not None:
            fused = run_direct_rows(sp.code_bits, sp.index_bits)
            return DirectLaunch(prep, None, fused, head + (*sp.row_kernel_args(), kr, flat), packed)
        return DirectLaunch(prep, None, run_direct_blocks, head + (*sp.kernel_args(), *sp.huffman_args(), kr, flat),
                            packed)

    def _direct_calls(self, layer, x, out, packed, b, relu, work, lay, geometry, units):
        """``(prep, calls, task_call)`` of :meth:`_direct_launch`: the input's preparation, every kernel call
        as a row of integers (addresses in bytes, float32 items), and where each channel task's calls
        start (with ``units``)."""
        kern = self._direct
        c, n = x.shape[:2]
        g = layer.groups
        cg, kg = c // g, out.shape[0] // g
        sh, sw = layer.stride
        tile, kr, nv = kern.tile, kern.kr, kern.nv
        nkb = kg // kr
        plane = geometry.n * lay.hq * lay.wq
        tables = self._tables(layer, cg, geometry, lay.ntiles * nv)
        if self._pointwise(layer):
            # the last tile would read past the input's end: it reads a zero-padded copy of its columns
            full = plane // tile
            tail = work[:lay.src_elements].reshape(c, tile)
            prep = TailCopy(tail[:, :plane - full * tile], x.reshape(c, plane)[:, full * tile:],
                            tail[:, plane - full * tile:])
            src_addr, tail_addr = x.ctypes.data, tail.ctypes.data
        else:
            full = lay.ntiles
            src = work[:lay.src_elements]
            prep = PadPhases(x, *layer.pad, sh, sw, lay.hq, lay.wq, src)
            src_addr = tail_addr = src.ctypes.data
        # Split by positions, at least about four tasks per thread; a chunk's input (cg*sh*sw phases of
        # per*tile positions) stays in L2 while each block of KR output channels reads it.  Split by
        # channels, a task runs its blocks over every chunk (one, as a rule).
        per = max(1, self.caches.in_chunk_elements // (cg * sh * sw * tile))
        if units is None:
            per = min(per, -(-lay.ntiles // (4 * self.threads)))
        chunks = [(t0, min(t1, t0 + per)) for a, t1 in self._useful_tiles(geometry, tile) for t0 in range(a, t1, per)]
        if units is None:
            kper = -(-nkb // max(1, min(nkb, -(-2 * self.threads // (len(chunks) * g)))))
            tasks = [(i, t0, t1, k0, min(nkb, k0 + kper)) for i in range(g) for (t0, t1) in chunks
                     for k0 in range(0, nkb, kper)]
        else:
            tasks = [(u.group, t0, t1, u.k0, u.k1) for u in units for (t0, t1) in chunks]
        item, ldy, taps = 4, n * out.shape[2] * out.shape[3], packed[0].shape[1]
        w_addrs = [pk.ctypes.data for pk in packed]

        def call(i, k0, k1, t0, count, x_addr, offsets):
            r0 = i * kg + k0 * kr
            return (w_addrs[i] + k0 * taps * kr * item, x_addr, offsets.ctypes.data, out.ctypes.data + r0 * ldy * item,
                    ldy, k1 - k0, count, taps, b.ctypes.data + r0 * item, int(relu),
                    tables.vdst.ctypes.data + t0 * nv * NSEG * 8, tables.vmask.ctypes.data + t0 * nv * NSEG * 4)
        calls, task_call = [], [0]
        for j, (i, t0, t1, k0, k1) in enumerate(tasks):
            if min(t1, full) > t0:
                calls.append(call(i, k0, k1, t0, min(t1, full) - t0,
                                  src_addr + (i * cg * sh * sw * plane + t0 * tile) * item, tables.xoff))
            if t1 > full:  # the last tile of a 1x1 conv, from its zero-padded copy
                calls.append(call(i, k0, k1, full, 1, tail_addr + i * cg * tile * item, tables.xoff_tail))
            if units is not None and (j + 1) % len(chunks) == 0:  # a channel task's last chunk
                task_call.append(len(calls))
        return prep, calls, task_call

    def _tables(self, layer, cg: int, geometry: Geometry, nvec: int) -> ConvTables:
        """The :class:`ConvTables` of a direct conv for ``nvec`` vectors (kept per shape)."""
        kh, kw = layer.kernel
        sh, sw = layer.stride
        key = (cg, kh, kw, sh, sw) + tuple(geometry)
        tables = self._xoff.get(key)
        if tables is None or tables.vdst.shape[0] < nvec:
            plane = geometry.n * geometry.hq * geometry.wq
            cc, rr, ss = np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij")
            phase = (cc * sh + rr % sh) * sw + ss % sw
            xoff = np.ascontiguousarray((phase * plane + (rr // sh) * geometry.wq + ss // sw).reshape(-1), np.int64)
            xoff_tail = np.ascontiguousarray(np.arange(cg, dtype=np.int64) * self._direct.tile)
            tables = self._xoff[key] = ConvTables(xoff, xoff_tail, *store_map(*geometry, nvec, self._direct.vl))
        return tables

    def _sparse_launch(self, layer, x, out, sw, buf, b, relu: bool, work) -> DirectLaunch:
        """The launch of a conv on the sparse kernel: each task decodes a run of the layer's row blocks into
        tap lists in ``buf`` (:func:`.launch.run_sparse_blocks`: per entry its value and where its tap's run
        of the input starts, per row where its entries start), then computes those output channels, every
        entry read from its cache while ``SNV`` vectors of output positions stay in registers
        (:mod:`.llvm.sparse`), block of input channels by block where their window overflows L1
        (:meth:`_sparse_channel_blocks`).  No dense weights, no zeros computed, and the decode only appends
        to lists (no zeroing, no scattered stores).

        The first kernel alone (one list a row) against the dense direct kernel on the same weights, one
        thread: 0.70-0.83 of its time on 3x3 convs from 16-64 channels at 30-33% density, 0.75-0.80 on a
        1x1 from 512 channels at 20%, but 1.1x at 50% and 2x dense.  Channel blocks against one list a row,
        whole launch (decode included, 2 threads, in cache): SqueezeNet v1.0 conv10 (P+Q+H) 0.71 vs 0.91
        ms, AlexNet conv3-5 (P+Q) 1.21, 1.00, 0.68 vs 1.49, 1.20, 0.82 ms."""
        kern = self._direct
        c, n, h, w = x.shape
        k, _, p, q = out.shape
        g = layer.groups
        cg, kg = c // g, k // g
        geometry = self._geometry(layer, x, out)
        plane = geometry.n * geometry.hq * geometry.wq
        nvec = -(-plane // kern.tile) * kern.nv  # as many vectors as the direct kernel's tiles hold
        tables = self._tables(layer, cg, geometry, nvec)
        if self._pointwise(layer):
            prep, src_addr = None, x.ctypes.data
        else:
            src = work[:self._phase_split_elements(layer, c, n, h, w)]
            prep, src_addr = PadPhases(x, *layer.pad, *layer.stride, geometry.hq, geometry.wq, src), src.ctypes.data
        phases = layer.stride[0] * layer.stride[1]
        ncb = self._sparse_channel_blocks(layer, cg, geometry.wq)
        e = sw.n_entries
        flat = buf.reshape(-1)
        val = flat[:e]
        off = flat[e:2 * e].view(np.int32)
        at = 2 * e + (-(2 * e + flat.ctypes.data // 4) % 2)  # the row pointers on an 8-byte boundary
        rowptr = flat[at:at + 2 * (k * ncb + 1)].view(np.int64)
        item, ldy = 4, n * p * q
        runs = self._block_runs(sw.block_row, g, kg)
        calls, task_call = [], [0]
        for run in runs:
            row = run.group * kg + run.r0
            for v0, v1 in self._useful_tiles(geometry, kern.vl):
                calls.append((val.ctypes.data, src_addr + (run.group * cg * plane * phases + v0 * kern.vl) * item,
                              off.ctypes.data, out.ctypes.data + row * ldy * item, ldy, run.r1 - run.r0, v1 - v0,
                              rowptr.ctypes.data + row * ncb * 8, b.ctypes.data + row * item, int(relu),
                              tables.vdst.ctypes.data + v0 * NSEG * 8, tables.vmask.ctypes.data + v0 * NSEG * 4))
            task_call.append(len(calls))
        # per thread id: its partial sums (SNV vectors for each row of a task), the channel blocks and the
        # distance between their inputs
        threads = numba.config.NUMBA_NUM_THREADS
        rows = max(run.r1 - run.r0 for run in runs) if ncb > 1 else 0
        part = self.empty(threads * rows * kern.snv * kern.vl).reshape(threads, -1)
        params = np.array([(part[t].ctypes.data, ncb, cg // ncb * phases * plane) for t in range(threads)], np.int64)
        args = (kern.sparse_address(), np.array(calls, np.int64), np.array(task_call, np.int64),
                np.array([(run.b0, run.b1) for run in runs], np.int64), params.ctypes.data, params.strides[0],
                *sw.kernel_args(), *sw.huffman_args(), tables.xoff, val, off, rowptr, ncb)
        return DirectLaunch(prep, None, run_sparse_blocks, args, (val, off, rowptr, tables.xoff, part, params))
