"""How the CPU backend runs a convolution: on the direct-conv kernels (:mod:`.direct`), on the sparse conv
kernel, or by im2col + BLAS GEMM (this module), and the rules that choose.

Most convolutions run on the direct-conv kernel (:mod:`.llvm`: no im2col, the input padded and split
into stride phases once, each output row stored straight into place, tasks over chunks of output
positions, or, where the whole input fits in L2 (batch 1), over blocks of output channels).  A 1x1 conv
reads its input in place, on the kernel when its input channels are few enough for a tile's panel to
stay in L1, else as one BLAS GEMM per range of output columns.  Where the kernel does not apply (output
channels per group not a multiple of its register block, a phase narrower than half a vector, a strided
1x1, or no kernel for this CPU), convolution is im2col + GEMM in the CNHW layout, in tasks: a band of
output rows of one sample (im2col into a private, cache-sized column buffer, one GEMM per group, bias
and ReLU while the band is still in cache).  The BLAS tasks run on the backend's task threads, each
calling single-threaded BLAS and serial Numba kernels (all release the GIL), so OpenBLAS's own
busy-waiting pool never competes with Numba's for the cores.

Off the direct kernel, a conv with few output positions and many channels (batch 1, late layers) is
split the other way: the column matrix is built once (its rows split among the threads) and each task
multiplies a block of output channels, so each weight is read by one thread only
(:meth:`ConvOps._conv_by_channels`).  The direct kernel splits its own output channels where the whole
input fits in L2; it comes first (SqueezeNet v1.0 fire9/expand3x3 at batch 1: 0.24 vs 0.48 ms on BLAS
split by channels, AlexNet conv3-5 0.90-1.20 vs 1.41-1.61 ms, 2 threads).

A compressed conv storing at most ``sparse_density`` of its weights (the pruned 3x3 expands and conv10 of
SqueezeNet, AlexNet's conv2-5) never becomes dense: each task decodes its rows into per-row lists of
(input offset, value), in the one reused decode buffer, and the sparse kernel computes those output
channels from them: a third of the multiply-adds, no zeroing, and the decoder only appends to lists.
SqueezeNet at batch 1, P+Q+H against the dense run: v1.0 0.94-0.95 of its speed, v1.1 0.97-0.98, against
0.86-0.87 and 0.81 decoding dense weights (pairs of alternating processes); at batch 16 (v1.0) 1.11x
against 0.98x (one process).  Other compressed convs decode into the reused buffer first (for the direct
kernel straight into its blocked order; in a channel-split conv each task decodes its own rows just
before multiplying them).

The rules read the cache figures of :class:`CacheFigures` (the backend's ``caches``), never the
machine's directly, so a test can derive its expectations from them or pass others in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from . import dense as K
from .decode import decode_range
from .huffman import HUFFMAN_TASK_ENTRIES
from .rows import row_kernels
from ..streams import block_rows

# A compressed conv storing at most this fraction of its weights runs on the sparse kernel (tap lists)
# instead of being decoded to dense weights (see DirectOps._sparse_launch for the measurements).
SPARSE_CONV_DENSITY = 0.4
# A conv with at most this many output positions (N*P*Q), and no more than its output channels, splits
# the channels among the threads instead of the positions (_conv_by_channels).
SPLIT_CHANNELS_COLUMNS = 4096


@dataclass(frozen=True)
class CacheFigures:
    """The cache sizes the convolution rules read.

    Attributes
    ----------
    cols_band_elements : int
        Column-matrix elements per im2col band (1 MiB of float32): small enough to stay in L2 for the GEMM.
    l1_panel_bytes : int
        The direct kernel's input panel that stays in L1 (half the 48 KiB L1 of recent x86 cores).
    blocked_weight_bytes : int
        A direct conv whose block of output channels has more weights than this splits its reduction.
    in_chunk_elements : int
        Input elements per task of a direct conv (1 MiB): read once per block of output channels, from L2.
    sparse_window_bytes : int
        The input window the sparse kernel keeps in L1 while every output channel reads it (2/3 of 48 KiB).
    """
    cols_band_elements: int = 1 << 18
    l1_panel_bytes: int = 24 << 10
    blocked_weight_bytes: int = 72 << 10
    in_chunk_elements: int = 1 << 18
    sparse_window_bytes: int = 32 << 10


class Geometry(NamedTuple):
    """Positions ``(i, r, c)`` of a direct conv's (phase-split, padded) input: ``n`` samples of ``hq x wq``,
    and the outputs ``p x q`` they map to (a 1x1 conv's: one plane of ``n*h*w`` mapped to itself)."""
    n: int
    hq: int
    wq: int
    p: int
    q: int


class DirectLayout(NamedTuple):
    """A direct conv's sizes: a stride phase's height and width, its tiles of output positions, the
    elements of the kernel's input in the work buffer and of each thread's partial sums after it (0
    where the reduction runs whole)."""
    hq: int
    wq: int
    ntiles: int
    src_elements: int
    part_elements: int


@dataclass(frozen=True, eq=False)
class Compressed:
    """A compressed conv's weights as the conv paths take them: the layer and the reused decode buffer."""
    sw: object
    buf: np.ndarray


@dataclass(frozen=True)
class ChannelTask:
    """A task of a direct conv split by output channels: blocks ``k0 <= kb < k1`` of ``kr`` output channels
    of group ``group``, and what it decodes first: rows ``u0 <= r < u1`` (fixed-width streams) or row
    blocks ``u0 <= b < u1`` (block checkpoints); ``u0 == u1``: nothing (dense, or decoded whole before)."""
    group: int
    k0: int
    k1: int
    u0: int = 0
    u1: int = 0

    @property
    def decodes(self) -> bool:
        return self.u0 < self.u1


@dataclass(frozen=True)
class BlockRun:
    """Rows ``r0 <= r < r1`` of group ``group`` (counted from the group's first row), and the row blocks
    ``b0 <= b < b1`` of the layer's checkpoints that hold them (0, 0: none to decode)."""
    group: int
    r0: int
    r1: int
    b0: int = 0
    b1: int = 0


def _readable_after(a: np.ndarray) -> int:
    """Elements of the allocation behind ``a`` (a C-contiguous view) that lie past ``a``'s end: how far a
    kernel may read beyond it."""
    root = a
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.base is not None or not root.flags.c_contiguous:  # memory we do not own the layout of
        return 0
    return (root.ctypes.data + root.nbytes - (a.ctypes.data + a.nbytes)) // a.itemsize


class ConvOps:
    """The convolution of :class:`~.backend.CpuBackend` (a mixin: the backend supplies ``threads``,
    ``caches``, ``_direct``, ``_tasks``, ``_bias``, ``decode``)."""

    def conv2d(self, layer, x, out, weights, relu: bool, scratch) -> None:
        """Convolution of ``x (C, N, H, W)`` into ``out (K, N, P, Q)`` by ``weights`` (:class:`HeldWeights`)."""
        w2d = weights.dense if weights.sparse is None else Compressed(weights.sparse, scratch.decode)
        self._conv(layer, x, out, w2d, weights.bias, relu, scratch.work)

    def _conv(self, layer, x, out, w2d, bias, relu: bool, cols_buf) -> None:
        """:meth:`conv2d` on the dense (K, L) weight matrix or a :class:`Compressed` layer."""
        c, n, h, w = x.shape
        k, _, p, q = out.shape
        b = self._bias(bias, k)
        kept = self._kept_launch(layer.name, self._launch_arrays(x, out, cols_buf, b, w2d), relu)
        if kept is not None:  # this conv ran on these arrays before: its launch is ready
            return kept.launch()
        if self._takes_direct(layer, c, k, (h, w), n) or self._takes_sparse(layer, x, w2d, cols_buf):
            return self._conv_direct(layer, x, out, w2d, b, relu, cols_buf)
        act = bias is not None or relu
        # Off the direct kernel, tasks over column bands each read all the weights; tasks over channels each
        # read all the columns: split what is larger (few output positions, many channels: batch 1, late
        # layers).
        if self._parallel_tasks and n * p * q <= min(k, SPLIT_CHANNELS_COLUMNS):
            return self._conv_by_channels(layer, x, out, w2d, b, act, relu, cols_buf)
        if isinstance(w2d, Compressed):
            w2d = self.decode(w2d.sw, w2d.buf)
        if tuple(layer.kernel) + tuple(layer.stride) == (1, 1, 1, 1):  # the input is the column matrix
            return self._conv_pointwise_blas(layer, x, out, w2d, b, act, relu, cols_buf)
        return self._conv_im2col(layer, x, out, w2d, b, act, relu, cols_buf)

    def _conv_pointwise_blas(self, layer, x, out, w2d, b, act, relu, cols_buf) -> None:
        """A 1x1 stride-1 conv by BLAS, tasks over ranges of output columns.  A padded one is the unpadded
        one inside a border of act(bias) (conv10 of SqueezeNet v1.0): multiply the input as it is, then
        place the result inside the border."""
        c, n, h, w = x.shape
        k = out.shape[0]
        (ph, pw), g = layer.pad, layer.groups
        kg, lg = k // g, c // g
        cols_all = x.reshape(c, n * h * w)
        m = n * h * w
        padded = (ph, pw) != (0, 0)
        y_in = cols_buf[:k * m].reshape(k, m) if padded else out.reshape(k, m)
        # Two tasks per thread: every task's GEMM packs all the weights again, and smaller tasks (to keep
        # the output in cache for the bias/ReLU pass) cost more than they save (SqueezeNet's conv10 at
        # batch 16: 8.7 ms in 4 tasks, 11.8 ms in 21).
        chunk = max(32, -(-m // (2 * self.threads)))

        def one(t, slot):
            m0, m1 = t * chunk, min(m, (t + 1) * chunk)
            for i in range(g):
                np.matmul(w2d[i * kg:(i + 1) * kg], cols_all[i * lg:(i + 1) * lg, m0:m1],
                          out=y_in[i * kg:(i + 1) * kg, m0:m1])
            if act:
                K.bias_act(y_in, b, m0, m1, relu)
        self._tasks(-(-m // chunk), one)
        if padded:
            K.place_in_border(y_in.reshape(k, n, h, w), ph, pw, b, relu, out)

    def _conv_im2col(self, layer, x, out, w2d, b, act, relu, cols_buf) -> None:
        """im2col + GEMM, tasks over bands of output rows of one sample (:meth:`_band`), each unfolding its
        band into its own slot of the work buffer."""
        c, n, h, w = x.shape
        k, _, p, q = out.shape
        kh, kw = layer.kernel
        (sh, sw), (ph, pw) = layer.stride, layer.pad
        y = out.reshape(k, n * p * q)
        g = layer.groups
        kg, lg = k // g, (c // g) * kh * kw
        rows = c * kh * kw
        band = self._band(rows, n, p, q)
        bands = -(-p // band)
        slot_size = rows * band * q

        def one(t, slot):
            s, p0 = divmod(t, bands)
            p0 *= band
            p1 = min(p, p0 + band)
            m0, m1 = s * p * q + p0 * q, s * p * q + p1 * q
            cols = cols_buf[slot * slot_size: slot * slot_size + rows * (m1 - m0)].reshape(rows, m1 - m0)
            K.im2col(x, s, p0, p1, kh, kw, sh, sw, ph, pw, q, cols)
            for i in range(g):
                np.matmul(w2d[i * kg:(i + 1) * kg], cols[i * lg:(i + 1) * lg], out=y[i * kg:(i + 1) * kg, m0:m1])
            if act:
                K.bias_act(y, b, m0, m1, relu)
        self._tasks(n * bands, one)

    def _conv_by_channels(self, layer, x, out, w2d, b, act, relu, cols_buf) -> None:
        """A conv with few output positions (batch 1, late layers): the column matrix is built once (rows
        in parallel) and the tasks split the output channels, so every GEMM sees all the columns and
        each weight is read by one thread only."""
        c, n, h, w = x.shape
        k, _, p, q = out.shape
        kh, kw = layer.kernel
        (sh, sw), (ph, pw) = layer.stride, layer.pad
        m = n * p * q
        y = out.reshape(k, m)
        g = layer.groups
        kg, lg = k // g, (c // g) * kh * kw
        if (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0):
            cols = x.reshape(c, m)
        else:
            rows = c * kh * kw
            cols = cols_buf[: rows * m].reshape(n, rows, p * q)  # sample by sample, then reordered below
            per_r = -(-rows // self.threads)

            def unfold(t, slot):
                s, j = divmod(t, self.threads)
                K.im2col_rows(x, s, kh, kw, sh, sw, ph, pw, p, q, j * per_r, min(rows, (j + 1) * per_r), cols[s])
            self._tasks(n * self.threads, unfold)
            if n > 1:
                cols = np.ascontiguousarray(cols.transpose(1, 0, 2))
            cols = cols.reshape(rows, m)
        # About two tasks per thread in each group: runs of the row blocks a compressed layer has (the same
        # grid for dense weights, so that a layer and its decoded weights make the same GEMM calls: BLAS
        # may sum a dot product in an order that depends on the shape of the call), else even chunks.
        chunks = self._block_runs(block_rows(k), g, kg)
        if chunks is None:
            per = max(8, -(-kg // (2 * self.threads)))
            chunks = [BlockRun(i, k0, min(kg, k0 + per)) for i in range(g) for k0 in range(0, kg, per)]
        decode_rows = None  # each task decodes its own rows just before multiplying them (still in cache
        if isinstance(w2d, Compressed):  # for its GEMM): rows of fixed-width streams, or runs of row blocks
            sparse, buf = w2d.sw, w2d.buf
            w2d = buf[: sparse.rows * sparse.row_len].reshape(sparse.rows, sparse.row_len)
            if sparse.row_entry is not None:
                rows_of = row_kernels(sparse.code_bits, sparse.index_bits).decode_range
                args = sparse.row_kernel_args()

                def decode_rows(run, r0, r1):
                    rows_of(r0, r1, *args, 1, buf)
            elif (runs := self._block_runs(sparse.block_row, g, kg)) is not None:  # groups start on blocks
                args = sparse.kernel_args() + sparse.huffman_args()
                chunks = runs

                def decode_rows(run, r0, r1):
                    decode_range(run.b0, run.b1, *args, 1, buf)
            else:  # decoded in row blocks, before
                w2d = self.decode(sparse, buf)

        def one(t, slot):
            run = chunks[t]
            r0, r1 = run.group * kg + run.r0, run.group * kg + run.r1
            if decode_rows is not None:
                decode_rows(run, r0, r1)
            np.matmul(w2d[r0:r1], cols[run.group * lg:(run.group + 1) * lg], out=y[r0:r1])
            if act:
                K.bias_act(y[r0:r1], b[r0:r1], 0, m, relu)
        self._tasks(len(chunks), one)

    def _band(self, rows: int, n: int, p: int, q: int) -> int:
        """Output rows per im2col task: the column matrix fits ``caches.cols_band_elements``, and there are
        at least about four tasks per thread."""
        band = max(1, min(p, self.caches.cols_band_elements // max(1, rows * q)))
        per_sample = -(-4 * self.threads // n)  # bands per sample for enough tasks
        return max(1, min(band, -(-p // per_sample)))

    def work_elements(self, layer, in_shape, n: int, out_hw) -> int:
        """Size of the work buffer :meth:`conv2d` needs for ``layer`` on ``n`` samples of ``in_shape``
        ``(C, H, W)``: on the direct kernel the phase-split input (and partial sums); else the whole
        column matrix when the channels may be split, or one im2col band per thread.  A 1x1 conv reads
        its input in place: only the direct kernel's last tile needs a copy.  At least what the sparse
        kernel needs, should the layer's weights be compressed (:meth:`_phase_split_elements`)."""
        c, h, w = in_shape
        p, q = out_hw
        k = layer.out_channels
        # compressed weights may run on the sparse kernel: its phase-split input (as the direct kernel's)
        sparse = self._phase_split_elements(layer, c, n, h, w) if self._direct is not None else 0
        if self._takes_direct(layer, c, k, (h, w), n):
            lay = self._direct_layout(layer, c, n, h, w, k)
            # partial sums for every thread id the Numba loop may run on (its count can change later)
            return max(sparse, lay.src_elements + numba.config.NUMBA_NUM_THREADS * lay.part_elements)
        return max(sparse, self._im2col_elements(layer, c, n, h, w, p, q))

    def _im2col_elements(self, layer, c: int, n: int, h: int, w: int, p: int, q: int) -> int:
        """Work-buffer elements of a conv off the direct kernel (:meth:`work_elements`)."""
        k = layer.out_channels
        pointwise = self._pointwise(layer)
        rows = c * layer.kernel[0] * layer.kernel[1]
        by_channels = rows * n * p * q if n * p * q <= SPLIT_CHANNELS_COLUMNS and not pointwise else 0
        if tuple(layer.kernel) + tuple(layer.stride) == (1, 1, 1, 1):  # unpadded: none; padded: the GEMM's result
            return 0 if pointwise else max(by_channels, k * n * h * w)
        return max(by_channels, self.threads * rows * self._band(rows, n, p, q) * q)

    def _direct_form(self, layer, c: int, k: int, hw, n: int | None = None) -> str | None:
        """How a conv from ``c`` to ``k`` channels on ``n`` samples (None: any number) of height and width
        ``hw`` runs on the direct kernel: ``"whole"`` (the whole reduction in registers), ``"blocked"``
        (in blocks of LB taps, partial sums in a per-thread buffer), or None (not on it).

        The kernel needs output channels per group that fill its register blocks, and stores output rows
        straight into place, which needs a phase width of at least half a vector
        (:func:`.llvm.store_map`).  A strided 1x1 stays off it (most of its input is never read).
        Measured at batch 16 (2 threads):

        - a 1x1 conv's taps are its input channels, each a separate run.  While the panel one tile reads
          (cg runs of a tile) stays in L1 the whole form wins (SqueezeNet's squeeze from 128 channels:
          2.1-2.3 ms vs 2.5-3.2 on BLAS).  Beyond, the blocked form keeps a block of taps in L1 for every output
          channel block, if the tile's partial sums fit in L1 too (squeezes from 256-512 channels
          to 32-64: 1.0-2.5 ms vs 1.3-3.3 on BLAS); else BLAS (conv10, 512 to 1000: 11.5 vs 15.2 ms).
        - a larger kernel's taps overlap, and its panel fits; it goes blocked when the weights of a
          block of output channels (KR x L) overflow the cache: a 3x3 from 512 channels (L = 4608)
          67 ms blocked vs 99 ms whole, from 256 channels (L = 2304) 213 vs 194 ms.
        """
        kern = self._direct
        kg, cg = k // layer.groups, c // layer.groups
        if kern is None or kg % kern.kr:
            return None
        if tuple(layer.kernel) == (1, 1):
            if tuple(layer.stride) != (1, 1):
                return None
            if cg * kern.tile * 4 <= self.caches.l1_panel_bytes:
                form = "whole"
            elif kg * kern.tile * 4 <= self.caches.l1_panel_bytes or self._splits_channels(layer, cg, kg, n, hw):
                form = "blocked"
            else:
                return None
            if self._pointwise(layer):
                return form
        else:
            weights = kern.kr * cg * layer.kernel[0] * layer.kernel[1] * 4  # bytes per output-channel block
            form = "blocked" if weights > self.caches.blocked_weight_bytes else "whole"
        return form if 2 * self._phase_hw(layer, hw)[1] >= kern.vl - 1 else None

    def _splits_channels(self, layer, cg: int, kg: int, n: int | None, hw) -> bool:
        """Whether an unstrided 1x1 conv's direct launch splits its output channels (its whole input fits
        in L2 and there are two tasks a thread: :meth:`_conv_direct`).  Then the blocked form wins even
        where a tile's partial sums for all output channels overflow L1: SqueezeNet's conv10 (512 to 1000
        channels, 13x13) at batch 1 took 0.87 ms on it vs 1.16 ms on BLAS split by channels (2 threads)."""
        if n is None or self._channel_units(layer.groups, kg, self._direct.kr) is None:
            return False
        tile = self._direct.tile
        return cg * -(-n * hw[0] * hw[1] // tile) * tile <= self.caches.in_chunk_elements  # one plane, as launched

    def _takes_direct(self, layer, c: int, k: int, hw, n: int | None = None) -> bool:
        """Whether the conv runs on the direct kernel (:meth:`_direct_form`)."""
        return self._direct_form(layer, c, k, hw, n) is not None

    @staticmethod
    def _pointwise(layer) -> bool:
        """A 1x1 stride-1 unpadded conv: its input already is the column matrix."""
        return tuple(layer.kernel) + tuple(layer.stride) + tuple(layer.pad) == (1, 1, 1, 1, 0, 0)

    @staticmethod
    def _phase_hw(layer, hw) -> tuple[int, int]:
        """Height and width of one stride phase of the padded input (the whole padded input at stride 1)."""
        (h, w), (sh, sw), (ph, pw) = hw, layer.stride, layer.pad
        return -(-(h + 2 * ph) // sh), -(-(w + 2 * pw) // sw)

    def _direct_layout(self, layer, c: int, n: int, h: int, w: int, k: int) -> DirectLayout:
        """The :class:`DirectLayout` of a direct conv (partial sums only for the blocked form:
        :meth:`_direct_form`).

        A 1x1 conv reads its input in place (one plane of ``n*h*w`` positions); only its last, partial
        tile reads a copy (``c`` x one tile)."""
        tile = self._direct.tile
        part = k // layer.groups * tile if self._direct_form(layer, c, k, (h, w), n) == "blocked" else 0
        if self._pointwise(layer):
            plane = n * h * w
            return DirectLayout(1, plane, -(-plane // tile), c * tile, part)
        hq, wq = self._phase_hw(layer, (h, w))
        return DirectLayout(hq, wq, -(-n * hq * wq // tile), self._phase_split_elements(layer, c, n, h, w), part)

    @staticmethod
    def _useful_tiles(geometry, tile: int) -> list[tuple[int, int]]:
        """Ranges ``[t0, t1)`` of the tiles that hold an output of a :class:`Geometry`: the
        rows ``p <= r < hq`` at the foot of each sample are positions no output needs, skipped where
        they fill whole tiles (2 of every 15 rows for a 3x3 conv on 13x13)."""
        n, hq, wq, p, q = geometry
        runs: list[tuple[int, int]] = []
        for i in range(n):
            o0 = i * hq * wq
            t0, t1 = o0 // tile, -(-(o0 + (p - 1) * wq + q) // tile)
            if runs and t0 <= runs[-1][1]:
                runs[-1] = (runs[-1][0], t1)
            else:
                runs.append((t0, t1))
        return runs

    def _geometry(self, layer, x, out) -> Geometry:
        """The :class:`Geometry` of a direct conv."""
        c, n, h, w = x.shape
        _, _, p, q = out.shape
        if self._pointwise(layer):
            return Geometry(1, 1, n * h * w, 1, n * h * w)
        hq, wq = self._phase_hw(layer, (h, w))
        return Geometry(n, hq, wq, p, q)

    def _takes_sparse(self, layer, x, w2d, work) -> bool:
        """Whether a conv runs on the sparse kernel (:meth:`_sparse_launch`): compressed weights storing at
        most ``sparse_density`` of the layer, whose tap lists (8 bytes an entry, and the pointers of a list
        per row and block of input channels) fit
        in its decode buffer and whose row blocks start each group; the kernel's vectors must meet at most
        NSEG output rows (as the direct kernel's), its input fit the work buffer (padded) or be
        readable a vector past its end (1x1, read in place)."""
        kern = self._direct
        if kern is None or not isinstance(w2d, Compressed) or layer.op != "conv2d":
            return False
        sw, buf = w2d.sw, w2d.buf
        if sw.n_entries > self.sparse_density * sw.rows * sw.row_len:
            return False
        c, n, h, w = x.shape
        g = layer.groups
        (sh, sw_), (ph, pw) = layer.stride, layer.pad
        if (sh, sw_) != (1, 1) and tuple(layer.kernel) == (1, 1):
            return False
        if c * sh * sw_ * (n * (h + 2 * ph) * (w + 2 * pw) + 1) >= 2 ** 31:
            return False  # the tap lists hold input offsets as int32
        _, wq = self._phase_hw(layer, (h, w))
        ncb = self._sparse_channel_blocks(layer, c // g, wq)
        if 2 * sw.n_entries + 2 * (sw.rows * ncb + 1) + 2 > buf.size:
            return False
        if self._block_runs(sw.block_row, g, sw.rows // g) is None:
            return False
        if self._pointwise(layer):
            return _readable_after(x) >= kern.vl
        if 2 * wq < kern.vl - 1:
            return False
        return work.size >= self._phase_split_elements(layer, c, n, h, w)

    def _phase_split_elements(self, layer, c: int, n: int, h: int, w: int) -> int:
        """Work-buffer elements of a conv's phase-split input, for either direct kernel (0 for a 1x1 conv,
        read in place).  Slack past the last plane: the last tile reads up to ``((kh-1)//sh)*wq +
        (kw-1)//sw + tile`` elements beyond position ``plane`` of the last phase; what it reads there only
        reaches dropped positions."""
        if self._pointwise(layer):
            return 0
        (kh, kw), (sh, sw) = layer.kernel, layer.stride
        hq, wq = self._phase_hw(layer, (h, w))
        return c * sh * sw * n * hq * wq + ((kh - 1) // sh) * wq + (kw - 1) // sw + self._direct.tile

    def _sparse_channel_blocks(self, layer, cg: int, wq: int) -> int:
        """Into how many blocks of its ``cg`` input channels (a group's) the sparse kernel splits a conv's
        reduction: the fewest whose input window (a block's channels, for SNV vectors of positions and the
        kernel's reach beyond them, rows of the phase width ``wq``) fits ``caches.sparse_window_bytes``, so it stays
        in L1 while every output channel reads it; at most one block a channel."""
        kern = self._direct
        (kh, kw), (sh, sw) = layer.kernel, layer.stride
        reach = ((kh - 1) // sh) * wq + (kw - 1) // sw
        per_channel = sh * sw * (kern.snv * kern.vl + reach) * 4
        for ncb in range(1, cg + 1):
            if cg % ncb == 0 and cg // ncb * per_channel <= self.caches.sparse_window_bytes:
                return ncb
        return cg

    def _channel_tasks(self, sw, g: int, kg: int, kr: int):
        """The tasks of a direct conv split by output channels (:class:`ChannelTask`), about two tasks per
        thread, or None for fewer than two a thread (the layer then splits its positions).  A compressed
        layer ``sw`` decoded task by task decodes rows (fixed-width streams, row pointers) or row blocks
        (Huffman streams of at least ``HUFFMAN_TASK_ENTRIES`` entries a task, whose blocks and groups start
        on register blocks: store.ROW_ALIGN; shorter runs read slowly); else nothing, the layer decoded
        whole first."""
        units = self._channel_units(g, kg, kr)
        if units is None or sw is None:
            return units
        if sw.row_entry is not None:
            return [ChannelTask(u.group, u.k0, u.k1, u.group * kg + u.k0 * kr, u.group * kg + u.k1 * kr)
                    for u in units]
        runs = None
        if sw.n_entries >= 2 * self.threads * HUFFMAN_TASK_ENTRIES and not np.any(sw.block_row % kr):
            runs = self._block_runs(sw.block_row, g, kg)
        if runs is None or len(runs) < 2 * self.threads:
            return units  # decoded before, all at once
        return [ChannelTask(r.group, r.r0 // kr, r.r1 // kr, r.b0, r.b1) for r in runs]

    def _channel_units(self, g: int, kg: int, kr: int):
        """Blocks ``k0 <= kb < k1`` of ``kr`` output channels of each group, about two a thread, decoding
        nothing, or None for fewer than two a thread (:meth:`_channel_tasks`)."""
        nkb = kg // kr
        per = max(1, -(-nkb // (2 * self.threads)))
        units = [ChannelTask(i, k0, min(nkb, k0 + per)) for i in range(g) for k0 in range(0, nkb, per)]
        return units if len(units) >= 2 * self.threads else None

    def _block_runs(self, block_row: np.ndarray, g: int, kg: int):
        """Runs of consecutive row blocks (first rows ``block_row``, as a compressed layer's checkpoints)
        within each of ``g`` groups of ``kg`` rows, about two a thread in each (:class:`BlockRun`); None
        where a group does not start on a block boundary."""
        rows = block_row
        bounds = np.arange(g + 1) * kg
        starts = np.searchsorted(rows, bounds)
        if np.any(rows[np.minimum(starts, rows.size - 1)] != bounds):
            return None
        runs = []
        for i in range(g):
            per = max(1, -(-int(starts[i + 1] - starts[i]) // (2 * self.threads)))
            for b0 in range(int(starts[i]), int(starts[i + 1]), per):
                b1 = min(int(starts[i + 1]), b0 + per)
                runs.append(BlockRun(i, int(rows[b0]) - i * kg, int(rows[b1]) - i * kg, b0, b1))
        return runs
