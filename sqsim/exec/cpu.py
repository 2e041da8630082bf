"""CPU backend: Numba kernels (cpu_kernels) plus BLAS sgemm through numpy for conv and fc.

Most convolutions run on the direct-conv kernel (:mod:`.direct_conv`, LLVM IR with explicit vector
registers, built by llvmlite): no im2col, the input padded and split into stride phases once, each
output row stored straight into place, tasks over chunks of output positions, or, where the whole
input fits in L2 (batch 1), over blocks of output channels (:meth:`CpuBackend._conv_direct`).  A 1x1 conv reads its input in place, on the kernel when its input
channels are few enough for a tile's panel to stay in L1, else as one BLAS GEMM per range of output
columns.  Where the kernel does not apply (output channels per group not a multiple of its register
block, a phase narrower than half a vector, a strided 1x1, or no kernel for this CPU), convolution is
im2col + GEMM in the CNHW layout, in tasks: a band of output rows of one sample (im2col into a
private, cache-sized column buffer, one GEMM per group, bias and ReLU while the band is still in
cache).  The direct kernel's calls run in a Numba parallel loop (:func:`cpu_kernels.run_direct`); the
BLAS tasks run on a pool of Python threads, each calling single-threaded BLAS and serial Numba kernels
(all release the GIL), so OpenBLAS's own busy-waiting pool never competes with Numba's for the cores
(whose OpenMP threads spin only briefly: see cpu_kernels).  The other ops are Numba kernels parallel
over channels or positions.

Off the direct kernel, a conv with few output positions and many channels (batch 1, late layers) is
split the other way: the column matrix is built once (its rows split among the threads) and each task
multiplies a block of output channels, so each weight is read by one thread only
(:meth:`CpuBackend._conv_by_channels`).  The direct kernel splits its own output channels where the
whole input fits in L2; it comes first (SqueezeNet v1.0 fire9/expand3x3 at batch 1: 0.24 vs 0.48 ms
on BLAS split by channels, AlexNet conv3-5 0.90-1.20 vs 1.41-1.61 ms, 2 threads).

A compressed conv storing at most SPARSE_CONV_DENSITY of its weights (the pruned 3x3 expands and conv10
of SqueezeNet, AlexNet's conv2-5) never becomes dense: each task decodes its rows into per-row lists of
(input offset, value), in the one reused decode buffer, and the sparse kernel of :mod:`.direct_conv`
computes those output channels from them (:func:`cpu_kernels.run_sparse_blocks`): a third of the
multiply-adds, no zeroing, and the decoder only appends to lists.  SqueezeNet at batch 1, P+Q+H against
the dense run: v1.0 0.94-0.95 of its speed, v1.1 0.97-0.98, against 0.86-0.87 and 0.81 decoding dense
weights (pairs of alternating processes); at batch 16 (v1.0) 1.11x against 0.98x (one process).

Other compressed convs and fc layers decode into the reused buffer before the GEMM (for the direct
kernel straight into its blocked order; in a channel-split conv each task decodes its own rows
just before multiplying them, :func:`cpu_kernels.decode_row_range` and
:func:`cpu_kernels.decode_block_range`, and :func:`cpu_kernels.run_direct_rows` and
:func:`cpu_kernels.run_direct_blocks` on the direct kernel), or, for fc layers where it is cheaper, multiplies on the sparse
form directly (:func:`cpu_kernels.sparse_matmul_rows` on fixed-width streams, with per-row pointers;
:func:`cpu_kernels.sparse_matmul` on Huffman streams).
"""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba
import numpy as np

from . import cpu_kernels as K
from .direct_conv import NSEG
from .store import SparseWeights

# Column-matrix elements per im2col band (1 MiB of float32): small enough to stay in L2 for the GEMM.
COLS_BAND_ELEMENTS = 1 << 18
# The direct kernel's input panel that stays in L1 (half the 48 KiB L1 of recent x86 cores).
L1_PANEL_BYTES = 24 << 10
# A direct conv whose block of output channels has more weights than this splits its reduction.
BLOCKED_WEIGHT_BYTES = 72 << 10
# Input elements per task of a direct conv (1 MiB): read once per block of output channels, from L2.
IN_CHUNK_ELEMENTS = 1 << 18
# A compressed conv storing at most this fraction of its weights runs on the sparse kernel (tap lists)
# instead of being decoded to dense weights (see CpuBackend._sparse_launch for the measurements).
SPARSE_CONV_DENSITY = 0.4
# The input window the sparse kernel keeps in L1 while every output channel reads it (2/3 of 48 KiB).
SPARSE_WINDOW_BYTES = 32 << 10
# Elements every buffer of the backend can be read past its end (one vector of the widest kernel).
VECTOR_SLACK = 16


_POOLS: dict[int, ThreadPoolExecutor] = {}
# A conv with at most this many output positions (N*P*Q), and no more than its output channels, splits
# the channels among the threads instead of the positions (_conv_by_channels).
SPLIT_CHANNELS_COLUMNS = 4096


def _readable_after(a: np.ndarray) -> int:
    """Elements of the allocation behind ``a`` (a C-contiguous view) that lie past ``a``'s end: how far a
    kernel may read beyond it."""
    root = a
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.base is not None or not root.flags.c_contiguous:  # memory we do not own the layout of
        return 0
    return (root.ctypes.data + root.nbytes - (a.ctypes.data + a.nbytes)) // a.itemsize


def _task_pool(workers: int) -> ThreadPoolExecutor:
    """One shared pool of task threads per size (executors come and go; their threads need not)."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="sqsim-exec")
    return _POOLS[workers]


def _direct_kernel():
    """The direct-conv kernel, or None where llvmlite cannot build it for this CPU (im2col + BLAS then)."""
    from .direct_conv import kernel
    try:
        return kernel()
    except Exception:  # noqa: BLE001 - any LLVM failure: the im2col path computes the same
        return None


def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


class CpuBackend:
    """Runs plan steps on numpy arrays; every method writes into the ``out`` view it is given."""
    name = "cpu"
    xp = np

    def __init__(self, threads: int | None = None, direct: bool = True):
        if threads is not None:
            if not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
                from ..errors import SqsimError
                raise SqsimError(f"threads must be in 1..{numba.config.NUMBA_NUM_THREADS}, got {threads}")
            numba.set_num_threads(threads)
        self.threads = numba.get_num_threads()
        self._blas = _blas_controller()
        # Without threadpoolctl BLAS cannot be made single-threaded: let it parallelise each GEMM itself
        # rather than run two multi-threaded GEMMs at once.
        parallel_tasks = self.threads > 1 and self._blas is not None
        self._pool = _task_pool(self.threads - 1) if parallel_tasks else None
        self._zero_bias: dict[int, np.ndarray] = {}
        self._direct = _direct_kernel() if direct else None
        self._packed: dict[str, tuple] = {}   # layer -> (dense weights, packed per group)
        self._xoff: dict[tuple, np.ndarray] = {}
        self._launches: dict[str, tuple] = {}  # layer -> the direct conv's last two launches, with their arrays
        # compressed convs storing at most this fraction of their weights run on the sparse kernel (0: none)
        self.sparse_density = SPARSE_CONV_DENSITY

    @contextmanager
    def running(self):
        """Around a run: BLAS single-threaded (the task pool supplies the parallelism)."""
        if self._blas is None:
            yield
            return
        with self._blas.limit(limits=1, user_api="blas"):
            yield

    def _tasks(self, n_tasks: int, fn) -> None:
        """Run ``fn(task, slot)`` for every task on the pool; ``slot`` < threads names a private buffer."""
        if self._pool is None or n_tasks == 1:
            for t in range(n_tasks):
                fn(t, 0)
            return
        counter = itertools.count()

        def worker(slot):
            while True:
                t = next(counter)  # atomic under the GIL
                if t >= n_tasks:
                    return
                fn(t, slot)
        futures = [self._pool.submit(worker, slot) for slot in range(1, min(self.threads, n_tasks))]
        try:
            worker(0)
        finally:
            for f in futures:
                f.result()

    # --- memory ------------------------------------------------------------------------------------
    def empty(self, n: int) -> np.ndarray:
        """``n`` float32, starting on a 64-byte cache line (numpy's large arrays start 16 bytes past one,
        so every 64-byte vector access of the kernels would straddle two lines), and readable for at least
        VECTOR_SLACK elements past its end (the sparse kernel's last vector of a 1x1 conv reads past its input)."""
        raw = np.empty(n + 16 + VECTOR_SLACK, np.float32)
        skip = (-raw.ctypes.data % 64) // 4
        return raw[skip:skip + n]

    def upload_dense(self, w: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(w, np.float32)

    def upload_sparse(self, sw: SparseWeights) -> SparseWeights:
        return sw

    def to_host_nchw(self, view: np.ndarray) -> np.ndarray:
        # always a copy: at batch 1 the transposed view is already contiguous, and the next run writes it
        return view.transpose(1, 0, 2, 3).copy()

    def count_nonzero(self, view: np.ndarray) -> int:
        return int(np.count_nonzero(view))

    def synchronize(self) -> None:
        pass

    # --- weights -------------------------------------------------------------------------------------
    def decode(self, sw: SparseWeights, buf: np.ndarray) -> np.ndarray:
        """Dense (K, L) view of a compressed layer, decoded into the reused ``buf``."""
        return sw.decode_into(buf)

    def sparse_matmul(self, sw: SparseWeights, x: np.ndarray, y: np.ndarray) -> None:
        if sw.row_entry is not None:
            K.sparse_matmul_rows(*sw.row_kernel_args(), x, y)
        else:
            K.sparse_matmul(*sw.kernel_args(), *sw.huffman_args(), x, y)

    def _bias(self, bias, k: int):
        if bias is not None:
            return bias
        if k not in self._zero_bias:
            self._zero_bias[k] = np.zeros(k, np.float32)
        return self._zero_bias[k]

    # --- ops -----------------------------------------------------------------------------------------
    def input(self, x: np.ndarray, out: np.ndarray) -> None:
        if x.shape[0] == 1:  # one sample: CNHW and NCHW are the same order
            np.copyto(out.reshape(x.shape), x)
            return
        K.nchw_to_cnhw(np.ascontiguousarray(x, np.float32), out)

    lazy_decode = True  # conv2d takes a compressed layer as (SparseWeights, buffer) and decodes it itself

    def conv2d(self, layer, x, out, w2d, bias, relu: bool, cols_buf) -> None:
        """Convolution; ``w2d`` is the dense (K, L) weight matrix or ``(SparseWeights, decode buffer)``."""
        c, n, h, w = x.shape
        k, _, p, q = out.shape
        kh, kw = layer.kernel
        (sh, sw), (ph, pw) = layer.stride, layer.pad
        y = out.reshape(k, n * p * q)
        g = layer.groups
        kg, lg = k // g, (c // g) * kh * kw
        b = self._bias(bias, k)
        act = bias is not None or relu

        kept = self._kept_launch(layer.name, self._launch_arrays(x, out, cols_buf, b, w2d), relu)
        if kept is not None:  # this conv ran on these arrays before: its launch is ready
            return self._launch(kept[2])
        if self._takes_direct(layer, c, k, (h, w), n) or self._takes_sparse(layer, x, w2d, cols_buf):
            return self._conv_direct(layer, x, out, w2d, b, relu, cols_buf)
        # Off the direct kernel, tasks over column bands each read all the weights; tasks over channels each
        # read all the columns: split what is larger (few output positions, many channels: batch 1, late
        # layers).
        if self._pool is not None and n * p * q <= min(k, SPLIT_CHANNELS_COLUMNS):
            return self._conv_by_channels(layer, x, out, w2d, b, act, relu, cols_buf)
        if isinstance(w2d, tuple):
            w2d = self.decode(*w2d)
        if (kh, kw, sh, sw) == (1, 1, 1, 1):  # the input is the column matrix
            cols_all = x.reshape(c, n * h * w)
            m = n * h * w
            padded = (ph, pw) != (0, 0)
            # A padded 1x1 conv is the unpadded one inside a border of act(bias) (conv10 of SqueezeNet
            # v1.0): multiply the input as it is, then place the result inside the border.
            y_in = cols_buf[:k * m].reshape(k, m) if padded else y
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
            return

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

    def _packed_weights(self, layer, w2d):
        """Per group, dense weights packed for the direct-conv kernel (``(K/KR, L, KR)`` blocks), packed
        once (keyed by the array they came from).  A compressed layer is decoded into the reused decode
        buffer in this order instead (:meth:`_direct_launch`)."""
        hit = self._packed.get(layer.name)
        if hit is not None and hit[0] is w2d:
            return hit[1]
        blocks = self._direct.pack(w2d)
        nkb = blocks.shape[0] // layer.groups
        packed = [blocks[i * nkb:(i + 1) * nkb] for i in range(layer.groups)]
        self._packed[layer.name] = (w2d, packed)
        return packed

    def _direct_form(self, layer, c: int, k: int, hw, n: int | None = None) -> str | None:
        """How a conv from ``c`` to ``k`` channels on ``n`` samples (None: any number) of height and width
        ``hw`` runs on the direct kernel: ``"whole"`` (the whole reduction in registers), ``"blocked"``
        (in blocks of LB taps, partial sums in a per-thread buffer), or None (not on it).

        The kernel needs output channels per group that fill its register blocks, and stores output rows
        straight into place, which needs a phase width of at least half a vector
        (:func:`.direct_conv.store_map`).  A strided 1x1 stays off it (most of its input is never read).
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
            if cg * kern.tile * 4 <= L1_PANEL_BYTES:
                form = "whole"
            elif kg * kern.tile * 4 <= L1_PANEL_BYTES or self._splits_channels(layer, cg, kg, n, hw):
                form = "blocked"
            else:
                return None
            if self._pointwise(layer):
                return form
        else:
            weights = kern.kr * cg * layer.kernel[0] * layer.kernel[1] * 4  # bytes per output-channel block
            form = "blocked" if weights > BLOCKED_WEIGHT_BYTES else "whole"
        return form if 2 * self._phase_hw(layer, hw)[1] >= kern.vl - 1 else None

    def _splits_channels(self, layer, cg: int, kg: int, n: int | None, hw) -> bool:
        """Whether an unstrided 1x1 conv's direct launch splits its output channels (its whole input fits
        in L2 and there are two tasks a thread: :meth:`_conv_direct`).  Then the blocked form wins even
        where a tile's partial sums for all output channels overflow L1: SqueezeNet's conv10 (512 to 1000
        channels, 13x13) at batch 1 took 0.87 ms on it vs 1.16 ms on BLAS split by channels (2 threads)."""
        if n is None or self._channel_units(layer.groups, kg, self._direct.kr) is None:
            return False
        tile = self._direct.tile
        return cg * -(-n * hw[0] * hw[1] // tile) * tile <= IN_CHUNK_ELEMENTS  # as _direct_launch: one plane

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

    def _direct_layout(self, layer, c: int, n: int, h: int, w: int, k: int):
        """``(hq, wq, ntiles, src_elements, part_elements)`` of a direct conv: a stride phase's height and
        width, the tiles of output positions, the size of the kernel's input in the work buffer, and
        of each thread's partial sums after it (0 where the reduction runs whole: :meth:`_direct_form`).

        A 1x1 conv reads its input in place (one plane of ``n*h*w`` positions); only its last, partial
        tile reads a copy (``c`` x one tile)."""
        tile = self._direct.tile
        part = k // layer.groups * tile if self._direct_form(layer, c, k, (h, w), n) == "blocked" else 0
        if self._pointwise(layer):
            plane = n * h * w
            return 1, plane, -(-plane // tile), c * tile, part
        hq, wq = self._phase_hw(layer, (h, w))
        return hq, wq, -(-n * hq * wq // tile), self._phase_split_elements(layer, c, n, h, w), part

    @staticmethod
    def _useful_tiles(geometry, tile: int) -> list[tuple[int, int]]:
        """Ranges ``[t0, t1)`` of the tiles that hold an output of ``geometry = (n, hq, wq, p, q)``: the
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

    def _conv_direct(self, layer, x, out, w2d, b, relu: bool, work) -> None:
        """Convolution by the direct-conv kernel (:mod:`.direct_conv`): no im2col.

        Its launch (every kernel call as a row of addresses and sizes, see :meth:`_direct_launch`) depends
        only on the layer and on which arrays it reads and writes, so it is built once and kept while the
        same arrays come back (the executor passes the same views on every run of a plan): a run then
        only prepares the input, decodes a compressed layer (unless its tasks decode it) and launches.
        SqueezeNet v1.0 dense at batch 1, 2 threads: 8.6-9.4 ms a run against 9.7-10.4 ms building it on
        every run (three pairs of alternating processes)."""
        arrays = self._launch_arrays(x, out, work, b, w2d)
        hit = self._kept_launch(layer.name, arrays, relu)
        if hit is None:  # the launch holds addresses: its record keeps every array it names alive
            hit = (arrays, relu, self._direct_launch(layer, x, out, w2d, b, relu, work))
            self._launches[layer.name] = (hit,) + self._launches.get(layer.name, ())[:1]  # two plans, as the executor
        self._launch(hit[2])

    @staticmethod
    def _launch_arrays(x, out, work, b, w2d) -> tuple:
        """What a direct conv's launch reads and writes: dense weights, or compressed ones and their decode
        buffer."""
        return (x, out, work, b) + (w2d if isinstance(w2d, tuple) else (w2d,))

    def _kept_launch(self, name: str, arrays: tuple, relu: bool):
        """The kept launch of layer ``name`` on these very arrays, or None."""
        for r in self._launches.get(name, ()):
            if r[1] == relu and len(r[0]) == len(arrays) and all(u is v for u, v in zip(r[0], arrays)):
                return r
        return None

    def _launch(self, launch) -> None:
        """Run a direct conv's launch (:meth:`_direct_launch`): prepare the input, decode, call the kernel."""
        prep, decode, kernel, args, _ = launch
        if prep[0] == "tail":  # the last tile of a 1x1 conv reads a zero-padded copy of its columns
            np.copyto(prep[1], prep[2])
            prep[3].fill(0.0)
        elif prep[0] == "pad":
            K.pad_phases(*prep[1:])
        if decode is not None:
            decode[0].decode_into(decode[1], decode[2])  # straight into the kernel's blocks
        old = numba.set_parallel_chunksize(1)  # rows (tasks) taken one at a time: faster threads take more
        try:
            kernel(*args)
        finally:
            numba.set_parallel_chunksize(old)

    def _direct_launch(self, layer, x, out, w2d, b, relu: bool, work):
        """The launch of a direct conv: ``(prep, decode, kernel, args, weights)``: how the input is
        prepared on every run (``("tail", dst, src, zeros)``: copy a 1x1 conv's last partial tile, or
        ``("pad", *pad_phases args)``), the compressed layer decoded whole first or None, the Numba loop
        with its arguments, and the weight arrays whose addresses they hold.

        The input is copied once, zero-padded and split into stride phases (:func:`cpu_kernels.pad_phases`),
        at the start of ``work``; then tap ``(c, r, s)`` reads phase ``(c, r % sh, s % sw)`` shifted by
        ``(r // sh, s // sw)``, a contiguous run for every output tile.  A 1x1 conv reads its input in
        place.  Tasks split the output positions into chunks of tiles (and the output channels when there
        are few chunks); the kernel stores each output row straight into ``out``."""
        if self._takes_sparse(layer, x, w2d, work):
            return self._sparse_launch(layer, x, out, w2d[0], w2d[1], b, relu, work)
        kern = self._direct
        c, n, h, w = x.shape
        k, _, p, q = out.shape
        kh, kw = layer.kernel
        sh, sw = layer.stride
        g = layer.groups
        cg, kg = c // g, k // g
        tile, kr, nv = kern.tile, kern.kr, kern.nv
        nkb = kg // kr
        hq, wq, ntiles, src_elements, part_elements = self._direct_layout(layer, c, n, h, w, k)
        # Where the whole input fits in L2 the tasks split the output channels (each reads the input, and
        # each weight is read by one thread), and a compressed layer is decoded task by task where its
        # streams allow (each task decodes its rows, then multiplies them while they are in its cache).
        # SqueezeNet v1.0 at batch 1, 2 threads: dense 10.1 vs 10.7 ms split by positions; P+Q 1.02x
        # the old dense instead of 0.95x (one process, alternating).
        units = None
        if cg * sh * sw * ntiles * tile <= IN_CHUNK_ELEMENTS:
            units = self._channel_tasks(w2d[0] if isinstance(w2d, tuple) else None, g, kg, kr)
        sparse = w2d[0] if units is not None and units[0][3] < units[0][4] else None  # decoded per task
        decode = None
        if isinstance(w2d, tuple):  # decoded into the kernel's blocks, by the tasks or whole first
            buf = w2d[1]
            blocks = buf.reshape(-1)[: k * cg * kh * kw].reshape(k // kr, cg * kh * kw, kr)
            packed = [blocks[i * nkb:(i + 1) * nkb] for i in range(g)]
            if sparse is None:
                decode = (w2d[0], buf, kr)
        else:
            packed = self._packed_weights(layer, w2d)
        pointwise = self._pointwise(layer)
        # positions (i, r, c) -> outputs; a 1x1 conv's are one plane mapped to itself
        geometry = (1, 1, wq, 1, wq) if pointwise else (n, hq, wq, p, q)
        plane = geometry[0] * hq * wq
        xoff, xoff_tail, vdst, vmask = self._tables(layer, cg, geometry, ntiles * nv)
        if pointwise:
            # the last tile would read past the input's end: it reads a zero-padded copy of its columns
            full = plane // tile
            tail = work[:src_elements].reshape(c, tile)
            prep = ("tail", tail[:, :plane - full * tile], x.reshape(c, plane)[:, full * tile:],
                    tail[:, plane - full * tile:])
            src_addr, tail_addr = x.ctypes.data, tail.ctypes.data
        else:
            full = ntiles
            src = work[:src_elements]
            prep = ("pad", x, *layer.pad, sh, sw, hq, wq, src)
            src_addr = src.ctypes.data
        # Split by positions, at least about four tasks per thread; a chunk's input (cg*sh*sw phases of
        # per*tile positions) stays in L2 while each block of KR output channels reads it.  Split by
        # channels, a task runs its blocks over every chunk (one, as a rule).
        per = max(1, IN_CHUNK_ELEMENTS // (cg * sh * sw * tile))
        if units is None:
            per = min(per, -(-ntiles // (4 * self.threads)))
        chunks = [(t0, min(t1, t0 + per)) for a, t1 in self._useful_tiles(geometry, tile)
                  for t0 in range(a, t1, per)]
        if units is None:
            parts = max(1, min(nkb, -(-2 * self.threads // (len(chunks) * g))))
            kper = -(-nkb // parts)
            tasks = [(i, t0, t1, k0, min(nkb, k0 + kper)) for i in range(g) for (t0, t1) in chunks
                     for k0 in range(0, nkb, kper)]
        else:
            tasks = [(i, t0, t1, k0, k1) for i, k0, k1, _, _ in units for (t0, t1) in chunks]
        # Every kernel call as a row of integers (addresses in bytes, float32 items), run in parallel by
        # a Numba loop (cpu_kernels.run_direct): no Python in the tasks, no GIL between them.
        item = 4
        ldy = n * p * q
        y_addr, b_addr = out.ctypes.data, b.ctypes.data
        w_addrs = [pk.ctypes.data for pk in packed]
        taps = packed[0].shape[1]
        xoff_addr, tail_xoff_addr = xoff.ctypes.data, xoff_tail.ctypes.data
        vdst_addr, vmask_addr = vdst.ctypes.data, vmask.ctypes.data

        def call(i, k0, k1, t0, count, x_addr, offsets_addr):
            r0 = i * kg + k0 * kr
            return (w_addrs[i] + k0 * taps * kr * item, x_addr, offsets_addr, y_addr + r0 * ldy * item, ldy,
                    k1 - k0, count, taps, b_addr + r0 * item, int(relu),
                    vdst_addr + t0 * nv * NSEG * 8, vmask_addr + t0 * nv * NSEG * 4)
        calls = []
        task_call = [0]
        for j, (i, t0, t1, k0, k1) in enumerate(tasks):
            stop = min(t1, full)
            if stop > t0:
                calls.append(call(i, k0, k1, t0, stop - t0,
                                  src_addr + (i * cg * sh * sw * plane + t0 * tile) * item, xoff_addr))
            if t1 > full:  # the last tile of a 1x1 conv, from its zero-padded copy
                calls.append(call(i, k0, k1, full, 1, tail_addr + i * cg * tile * item, tail_xoff_addr))
            if units is not None and (j + 1) % len(chunks) == 0:  # a channel task's last chunk
                task_call.append(len(calls))
        addr, calls = kern.address(blocked=part_elements > 0), np.array(calls, np.int64)
        part, part_bytes = work.ctypes.data + src_elements * item, part_elements * item
        if sparse is None:  # one kernel call a row
            return prep, decode, K.run_direct, (addr, calls, part, part_bytes), packed
        task_call = np.array(task_call, np.int64)
        unit = np.array([u[3:] for u in units], np.int64)
        flat = buf.reshape(-1)
        if sparse.row_entry is not None:
            return prep, None, K.run_direct_rows, (addr, calls, task_call, unit, part, part_bytes,
                                                   *sparse.row_kernel_args(), kr, flat), packed
        return prep, None, K.run_direct_blocks, (addr, calls, task_call, unit, part, part_bytes, *sparse.kernel_args(),
                                                 *sparse.huffman_args(), kr, flat), packed

    def _tables(self, layer, cg: int, geometry, nvec: int):
        """``(xoff, xoff_tail, vdst, vmask)`` of a direct conv (kept per shape): where each tap's run of the
        input starts (in the phase-split input; ``xoff_tail``: in a 1x1 conv's zero-padded last tile)
        and where the kernel stores each of ``nvec`` vectors (:func:`.direct_conv.store_map`)."""
        kh, kw = layer.kernel
        sh, sw = layer.stride
        key = (cg, kh, kw, sh, sw) + tuple(geometry)
        tables = self._xoff.get(key)
        if tables is None or tables[2].shape[0] < nvec:
            from .direct_conv import store_map
            _, hq, wq, _, _ = geometry
            plane = geometry[0] * hq * wq
            cc, rr, ss = np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij")
            phase = (cc * sh + rr % sh) * sw + ss % sw
            xoff = np.ascontiguousarray((phase * plane + (rr // sh) * wq + ss // sw).reshape(-1), np.int64)
            xoff_tail = np.ascontiguousarray(np.arange(cg, dtype=np.int64) * self._direct.tile)
            tables = self._xoff[key] = (xoff, xoff_tail) + store_map(*geometry, nvec, self._direct.vl)
        return tables

    def _geometry(self, layer, x, out):
        """``(n, hq, wq, p, q)`` of a direct conv: positions ``(i, r, c)`` of the (phase-split, padded) input
        and the outputs they map to (a 1x1 conv's: one plane mapped to itself)."""
        c, n, h, w = x.shape
        _, _, p, q = out.shape
        if self._pointwise(layer):
            return 1, 1, n * h * w, 1, n * h * w
        hq, wq = self._phase_hw(layer, (h, w))
        return n, hq, wq, p, q

    def _takes_sparse(self, layer, x, w2d, work) -> bool:
        """Whether a conv runs on the sparse kernel (:meth:`_sparse_launch`): compressed weights storing at
        most ``sparse_density`` of the layer, whose tap lists (8 bytes an entry, and the pointers of a list
        per row and block of input channels) fit
        in its decode buffer and whose row blocks start each group; the kernel's vectors must meet at most
        NSEG output rows (as the direct kernel's), its input fit the work buffer (padded) or be
        readable a vector past its end (1x1, read in place)."""
        kern = self._direct
        if kern is None or not isinstance(w2d, tuple) or layer.op != "conv2d":
            return False
        sw, buf = w2d
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
        if self._block_runs(sw, g, sw.rows // g) is None:
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

    def _sparse_launch(self, layer, x, out, sw: SparseWeights, buf, b, relu: bool, work):
        """The launch (as :meth:`_direct_launch`'s) of a conv on the sparse kernel: each task decodes a run of
        the layer's row blocks into tap lists in ``buf`` (:func:`cpu_kernels.run_sparse_blocks`: per entry
        its value and where its tap's run of the input starts, per row where its entries start), then
        computes those output channels, every entry read from its cache while ``SNV`` vectors of output
        positions stay in registers (:mod:`.direct_conv`), block of input channels by block where their
        window overflows L1 (:meth:`_sparse_channel_blocks`).  No dense weights, no zeros computed, and
        the decode only appends to lists (no zeroing, no scattered stores).

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
        hq, wq = geometry[1], geometry[2]
        plane = geometry[0] * hq * wq
        nvec = -(-plane // kern.tile) * kern.nv  # as many vectors as the direct kernel's tiles hold
        xoff, _, vdst, vmask = self._tables(layer, cg, geometry, nvec)
        if self._pointwise(layer):
            prep, src_addr = ("none",), x.ctypes.data
        else:
            src = work[:self._phase_split_elements(layer, c, n, h, w)]
            prep, src_addr = ("pad", x, *layer.pad, *layer.stride, hq, wq, src), src.ctypes.data
        phases = layer.stride[0] * layer.stride[1]
        ncb = self._sparse_channel_blocks(layer, cg, wq)
        e = sw.n_entries
        flat = buf.reshape(-1)
        val = flat[:e]
        off = flat[e:2 * e].view(np.int32)
        at = 2 * e + (-(2 * e + flat.ctypes.data // 4) % 2)  # the row pointers on an 8-byte boundary
        rowptr = flat[at:at + 2 * (k * ncb + 1)].view(np.int64)
        item = 4
        ldy = n * p * q
        runs = self._block_runs(sw, g, kg)
        vec_runs = self._useful_tiles(geometry, kern.vl)
        calls, task_call, task_block = [], [0], []
        for i, r0, r1, b0, b1 in runs:
            row = i * kg + r0
            for v0, v1 in vec_runs:
                calls.append((val.ctypes.data, src_addr + (i * cg * plane * phases + v0 * kern.vl) * item,
                              off.ctypes.data, out.ctypes.data + row * ldy * item, ldy, r1 - r0, v1 - v0,
                              rowptr.ctypes.data + row * ncb * 8, b.ctypes.data + row * item, int(relu),
                              vdst.ctypes.data + v0 * NSEG * 8, vmask.ctypes.data + v0 * NSEG * 4))
            task_call.append(len(calls))
            task_block.append((b0, b1))
        # per thread id: its partial sums (SNV vectors for each row of a task), the channel blocks and the
        # distance between their inputs
        threads = numba.config.NUMBA_NUM_THREADS
        rows = max(r1 - r0 for _, r0, r1, _, _ in runs) if ncb > 1 else 0
        part = self.empty(threads * rows * kern.snv * kern.vl).reshape(threads, -1)
        params = np.array([(part[t].ctypes.data, ncb, cg // ncb * phases * plane) for t in range(threads)], np.int64)
        args = (kern.sparse_address(), np.array(calls, np.int64), np.array(task_call, np.int64),
                np.array(task_block, np.int64), params.ctypes.data, params.strides[0], *sw.kernel_args(),
                *sw.huffman_args(), xoff, val, off, rowptr, ncb)
        return prep, None, K.run_sparse_blocks, args, (val, off, rowptr, xoff, part, params)

    def _sparse_channel_blocks(self, layer, cg: int, wq: int) -> int:
        """Into how many blocks of its ``cg`` input channels (a group's) the sparse kernel splits a conv's
        reduction: the fewest whose input window (a block's channels, for SNV vectors of positions and the
        kernel's reach beyond them, rows of the phase width ``wq``) fits SPARSE_WINDOW_BYTES, so it stays
        in L1 while every output channel reads it; at most one block a channel."""
        kern = self._direct
        (kh, kw), (sh, sw) = layer.kernel, layer.stride
        reach = ((kh - 1) // sh) * wq + (kw - 1) // sw
        per_channel = sh * sw * (kern.snv * kern.vl + reach) * 4
        for ncb in range(1, cg + 1):
            if cg % ncb == 0 and cg // ncb * per_channel <= SPARSE_WINDOW_BYTES:
                return ncb
        return cg

    def _channel_tasks(self, sw: SparseWeights | None, g: int, kg: int, kr: int):
        """The tasks of a direct conv split by output channels: ``(group, k0, k1, u0, u1)``, blocks ``k0 <=
        kb < k1`` of ``kr`` output channels of the group, about two tasks per thread, or None for fewer
        than two a thread (the layer then splits its positions).  A compressed layer ``sw`` decoded task by
        task decodes rows ``u0 <= r < u1`` (fixed-width streams, row pointers) or row blocks ``u0 <= b <
        u1`` (Huffman streams of at least ``HUFFMAN_TASK_ENTRIES`` entries a task, whose blocks and groups
        start on register blocks: store.ROW_ALIGN; shorter runs read slowly); else ``u0 = u1 = 0``, the
        layer decoded whole first."""
        units = self._channel_units(g, kg, kr)
        if units is None or sw is None:
            return units
        if sw.row_entry is not None:
            return [(i, k0, k1, i * kg + k0 * kr, i * kg + k1 * kr) for i, k0, k1, _, _ in units]
        runs = None
        if sw.n_entries >= 2 * self.threads * K.HUFFMAN_TASK_ENTRIES and not np.any(sw.block_row % kr):
            runs = self._block_runs(sw, g, kg)
        if runs is None or len(runs) < 2 * self.threads:
            return units  # decoded before, all at once
        return [(i, r0 // kr, r1 // kr, b0, b1) for i, r0, r1, b0, b1 in runs]

    def _channel_units(self, g: int, kg: int, kr: int):
        """Blocks ``k0 <= kb < k1`` of ``kr`` output channels of each group, about two a thread:
        ``(group, k0, k1, 0, 0)``, or None for fewer than two a thread (:meth:`_channel_tasks`)."""
        nkb = kg // kr
        per = max(1, -(-nkb // (2 * self.threads)))
        units = [(i, k0, min(nkb, k0 + per), 0, 0) for i in range(g) for k0 in range(0, nkb, per)]
        return units if len(units) >= 2 * self.threads else None

    def _block_runs(self, sw: SparseWeights, g: int, kg: int):
        """Runs of consecutive row blocks of a layer within each of its ``g`` groups of ``kg`` rows, about
        two a thread in each: ``(group, r0, r1, b0, b1)``, rows ``r0 <= r < r1`` counted from the group's
        first, blocks ``b0 <= b < b1``; None where a group does not start on a block boundary."""
        rows = sw.block_row
        bounds = np.arange(g + 1) * kg
        starts = np.searchsorted(rows, bounds)
        if np.any(rows[np.minimum(starts, rows.size - 1)] != bounds):
            return None
        runs = []
        for i in range(g):
            per = max(1, -(-int(starts[i + 1] - starts[i]) // (2 * self.threads)))
            for b0 in range(int(starts[i]), int(starts[i + 1]), per):
                b1 = min(int(starts[i + 1]), b0 + per)
                runs.append((i, int(rows[b0]) - i * kg, int(rows[b1]) - i * kg, b0, b1))
        return runs

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
        per = max(8, -(-kg // (2 * self.threads)))  # about two tasks per thread in each group
        chunks = [(i, k0, min(kg, k0 + per), 0, 0) for i in range(g) for k0 in range(0, kg, per)]
        sparse = None
        if isinstance(w2d, tuple):
            # each task decodes its own rows just before multiplying them (still in cache for its GEMM):
            # rows of fixed-width streams, or runs of row blocks of Huffman streams
            sparse, buf = w2d
            w2d = buf[: sparse.rows * sparse.row_len].reshape(sparse.rows, sparse.row_len)
            if sparse.row_entry is not None:
                args = sparse.row_kernel_args()
            elif (runs := self._block_runs(sparse, g, kg)) is not None:  # the groups start on block boundaries
                args = sparse.kernel_args() + sparse.huffman_args()
                chunks = runs
            else:  # decoded in row blocks, before
                w2d, sparse = self.decode(sparse, buf), None

        def one(t, slot):
            i, k0, k1, b0, b1 = chunks[t]
            r0, r1 = i * kg + k0, i * kg + k1
            if sparse is not None and sparse.row_entry is not None:
                K.decode_row_range(*args, r0, r1, buf)
            elif sparse is not None:
                K.decode_block_range(*args, b0, b1, buf)
            np.matmul(w2d[r0:r1], cols[i * lg:(i + 1) * lg], out=y[r0:r1])
            if act:
                K.bias_act(y[r0:r1], b[r0:r1], 0, m, relu)
        self._tasks(len(chunks), one)

    def _band(self, rows: int, n: int, p: int, q: int) -> int:
        """Output rows per im2col task: the column matrix fits COLS_BAND_ELEMENTS, and there are at least
        about four tasks per thread."""
        band = max(1, min(p, COLS_BAND_ELEMENTS // max(1, rows * q)))
        per_sample = -(-4 * self.threads // n)  # bands per sample for enough tasks
        return max(1, min(band, -(-p // per_sample)))

    def cols_elements(self, layer, in_shape, n: int, out_hw) -> int:
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
            *_, src_elements, part_elements = self._direct_layout(layer, c, n, h, w, k)
            # partial sums for every thread id the Numba loop may run on (its count can change later)
            return max(sparse, src_elements + numba.config.NUMBA_NUM_THREADS * part_elements)
        return max(sparse, self._im2col_elements(layer, c, n, h, w, p, q))

    def _im2col_elements(self, layer, c: int, n: int, h: int, w: int, p: int, q: int) -> int:
        """Work-buffer elements of a conv off the direct kernel (:meth:`cols_elements`)."""
        k = layer.out_channels
        pointwise = self._pointwise(layer)
        rows = c * layer.kernel[0] * layer.kernel[1]
        by_channels = rows * n * p * q if n * p * q <= SPLIT_CHANNELS_COLUMNS and not pointwise else 0
        if tuple(layer.kernel) + tuple(layer.stride) == (1, 1, 1, 1):  # unpadded: none; padded: the GEMM's result
            return 0 if pointwise else max(by_channels, k * n * h * w)
        return max(by_channels, self.threads * rows * self._band(rows, n, p, q) * q)

    def fc_features(self, x, feat_buf) -> np.ndarray:
        """The fc input as a (features, N) matrix in Caffe's flatten order (C, H, W)."""
        c, n, h, w = x.shape
        if h * w == 1:
            return x.reshape(c, n)
        f = feat_buf[: c * h * w * n].reshape(c * h * w, n)
        K.features_to_columns(x.reshape(c, n, h * w), f)
        return f

    def fc(self, x, out, w2d, bias, relu: bool, feat_buf) -> None:
        xf = self.fc_features(x, feat_buf)
        k, n = out.shape[0], out.shape[1]
        y = out.reshape(k, n)
        b = self._bias(bias, k)
        rows = max(1, -(-k // (2 * self.threads)))  # blocks of output rows: W is read once, in parallel

        def one(t, slot):
            k0, k1 = t * rows, min(k, (t + 1) * rows)
            np.matmul(w2d[k0:k1], xf, out=y[k0:k1])
            if bias is not None or relu:
                K.bias_act(y[k0:k1], b[k0:k1], 0, n, relu)
        self._tasks(-(-k // rows), one)

    def fc_sparse(self, x, out, sw: SparseWeights, bias, relu: bool, feat_buf) -> None:
        xf = self.fc_features(x, feat_buf)
        y = out.reshape(out.shape[0], out.shape[1])
        self.sparse_matmul(sw, xf, y)
        if bias is not None or relu:
            K.bias_act(y, self._bias(bias, y.shape[0]), 0, y.shape[1], relu)

    def maxpool(self, layer, x, out) -> None:
        c, n, h, w = x.shape
        p, q = out.shape[2], out.shape[3]
        if (tuple(layer.kernel) + tuple(layer.stride) + tuple(layer.pad) == (3, 3, 2, 2, 0, 0)
                and 2 * p + 1 <= h and 2 * q + 1 <= w):  # every window inside the input
            K.max_pool_3x3s2(x.reshape(c * n, h, w), out.reshape(c * n, p, q))
            return
        K.max_pool(x.reshape(c * n, h, w), *layer.kernel, *layer.stride, *layer.pad,
                   out.reshape(c * n, out.shape[2], out.shape[3]))

    def avgpool(self, layer, x, out) -> None:
        c, n, h, w = x.shape
        K.avg_pool(x.reshape(c * n, h, w), *layer.kernel, *layer.stride, *layer.pad,
                   out.reshape(c * n, out.shape[2], out.shape[3]))

    def global_avgpool(self, x, out) -> None:
        c, n, h, w = x.shape
        K.global_avg_pool(x.reshape(c * n, h * w), out.reshape(c * n))

    def lrn(self, layer, x, out) -> None:
        c = x.shape[0]
        K.lrn_across_channels(x.reshape(c, -1), layer.local_size, float(layer.alpha), float(layer.beta),
                              float(layer.k), out.reshape(c, -1))

    def relu(self, x, out) -> None:
        K.relu(x.reshape(-1), out.reshape(-1))

    def add(self, xs, out) -> None:
        K.add(xs[0].reshape(-1), xs[1].reshape(-1), out.reshape(-1))
        for x in xs[2:]:
            K.add(out.reshape(-1), x.reshape(-1), out.reshape(-1))

    def copy(self, src, dst) -> None:
        np.copyto(dst, src)

    def softmax(self, x, out) -> None:
        c = x.shape[0]
        K.softmax_channels(x.reshape(c, -1), out.reshape(c, -1))

    def flatten(self, x, out) -> None:
        c, n, h, w = x.shape
        K.features_to_columns(x.reshape(c, n, h * w), out.reshape(c * h * w, n))
