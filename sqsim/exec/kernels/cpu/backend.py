"""The CPU :class:`~sqsim.exec.kernels.Backend`: numpy arrays, Numba kernels, llvmlite direct-conv kernels
and BLAS ``sgemm`` through numpy.

Creating a :class:`CpuBackend` is the explicit configure step of the CPU kernels: it chooses Numba's
threading layer and OpenMP's spin count (:func:`.threads.configure`) and the thread count, and compiles
the direct-conv kernels for the target CPU (:mod:`sqsim.cpu_target`).  Its task threads stop with
:meth:`CpuBackend.close` (the executor's ``close``).  Convolutions: :mod:`.conv` and :mod:`.direct`; the
other ops are Numba kernels (:mod:`.dense`) parallel over channels or positions.
"""
from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np

from ....errors import SqsimError
from . import dense as K
from .conv import SPARSE_CONV_DENSITY, CacheFigures, ConvOps
from .decode_dense import decode_into
from .direct import DirectOps
from .matmul import sparse_matmul
from .rows import sparse_matmul_rows
from .threads import TaskPool, configure

# Elements every buffer of the backend can be read past its end (one vector of the widest kernel).
VECTOR_SLACK = 16
CACHE_LINE = 64


def _direct_kernel():
    """The direct-conv kernel, or None where llvmlite cannot build it for this CPU (im2col + BLAS then)."""
    from .llvm import kernel
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


class CpuBackend(DirectOps, ConvOps):
    """Runs plan steps on numpy arrays; every method writes into the ``out`` view it is given.

    Parameters
    ----------
    threads : int, optional
        Numba threads (and task threads); default all of Numba's.
    direct : bool
        Use the direct-conv kernels where they apply (False: im2col + BLAS for every conv).
    caches : CacheFigures
        The cache sizes the convolution rules read.
    """
    name = "cpu"
    xp = np

    def __init__(self, threads: int | None = None, direct: bool = True, caches: CacheFigures = CacheFigures()):
        configure()
        if threads is not None:
            if not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
                raise SqsimError(f"threads must be in 1..{numba.config.NUMBA_NUM_THREADS}, got {threads}")
            numba.set_num_threads(threads)
        self.threads = numba.get_num_threads()
        self.caches = caches
        self._blas = _blas_controller()
        # Without threadpoolctl BLAS cannot be made single-threaded: let it parallelise each GEMM itself
        # rather than run two multi-threaded GEMMs at once.
        self._parallel_tasks = self.threads > 1 and self._blas is not None
        self._pool = TaskPool(self.threads if self._parallel_tasks else 1)
        self._zero_bias: dict[int, np.ndarray] = {}
        self._direct = _direct_kernel() if direct else None
        self._packed: dict = {}     # layer -> PackedWeights
        self._xoff: dict = {}       # shape -> ConvTables
        self._launches: dict = {}   # layer -> the direct conv's last two KeptLaunches (with their arrays)
        # compressed convs storing at most this fraction of their weights run on the sparse kernel (0: none)
        self.sparse_density = SPARSE_CONV_DENSITY

    # --- lifetime ----------------------------------------------------------------------------------
    @contextmanager
    def running(self):
        """Around a run: BLAS single-threaded (the task threads supply the parallelism)."""
        if self._blas is None:
            yield
            return
        with self._blas.limit(limits=1, user_api="blas"):
            yield

    def close(self) -> None:
        """Stop the task threads and drop the kept launches (a later call starts them again)."""
        self._pool.close()
        self._launches.clear()

    def _tasks(self, n_tasks: int, fn) -> None:
        """Run ``fn(task, slot)`` for every task on the task threads (:meth:`.threads.TaskPool.run`)."""
        self._pool.run(n_tasks, fn)

    # --- memory ------------------------------------------------------------------------------------
    def empty(self, n: int) -> np.ndarray:
        """``n`` float32, starting on a 64-byte cache line (numpy's large arrays start 16 bytes past one,
        so every 64-byte vector access of the kernels would straddle two lines), and readable for at least
        VECTOR_SLACK elements past its end (the sparse kernel's last vector of a 1x1 conv reads past its input)."""
        raw = np.empty(n + CACHE_LINE // 4 + VECTOR_SLACK, np.float32)
        skip = (-raw.ctypes.data % CACHE_LINE) // 4
        return raw[skip:skip + n]

    def upload_dense(self, w: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(w, np.float32)

    def upload_sparse(self, sw):
        return sw

    def to_host_nchw(self, view: np.ndarray) -> np.ndarray:
        # always a copy: at batch 1 the transposed view is already contiguous, and the next run writes it
        return view.transpose(1, 0, 2, 3).copy()

    def count_nonzero(self, view: np.ndarray) -> int:
        return int(np.count_nonzero(view))

    def synchronize(self) -> None:
        pass

    # --- weights -------------------------------------------------------------------------------------
    def decode(self, sw, buf: np.ndarray) -> np.ndarray:
        """Dense (K, L) view of a compressed layer, decoded into the reused ``buf``."""
        return decode_into(sw, buf)

    def sparse_matmul(self, sw, x: np.ndarray, y: np.ndarray) -> None:
        """``y = W @ x`` on the compressed W (row pointers for fixed-width streams, else row blocks)."""
        if sw.row_entry is not None:
            sparse_matmul_rows(*sw.row_kernel_args(), x, y)
        else:
            sparse_matmul(*sw.kernel_args(), *sw.huffman_args(), x, y)

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

    def fc_features(self, x, feat_buf) -> np.ndarray:
        """The fc input as a (features, N) matrix in Caffe's flatten order (C, H, W)."""
        c, n, h, w = x.shape
        if h * w == 1:
            return x.reshape(c, n)
        f = feat_buf[: c * h * w * n].reshape(c * h * w, n)
        K.features_to_columns(x.reshape(c, n, h * w), f)
        return f

    def fc(self, x, out, weights, relu: bool, scratch, on_sparse: bool = False) -> None:
        """Fully connected: blocks of output rows on the task threads (W read once, in parallel), or on the
        compressed form (``on_sparse``) without decoding it."""
        xf = self.fc_features(x, scratch.feat)
        k, n = out.shape[0], out.shape[1]
        y = out.reshape(k, n)
        bias = weights.bias
        b = self._bias(bias, k)
        if on_sparse:
            self.sparse_matmul(weights.sparse, xf, y)
            if bias is not None or relu:
                K.bias_act(y, b, 0, n, relu)
            return
        w2d = weights.dense if weights.sparse is None else self.decode(weights.sparse, scratch.decode)
        rows = max(1, -(-k // (2 * self.threads)))

        def one(t, slot):
            k0, k1 = t * rows, min(k, (t + 1) * rows)
            np.matmul(w2d[k0:k1], xf, out=y[k0:k1])
            if bias is not None or relu:
                K.bias_act(y[k0:k1], b[k0:k1], 0, n, relu)
        self._tasks(-(-k // rows), one)

    def maxpool(self, layer, x, out) -> None:
        c, n, h, w = x.shape
        p, q = out.shape[2], out.shape[3]
        if (tuple(layer.kernel) + tuple(layer.stride) + tuple(layer.pad) == (3, 3, 2, 2, 0, 0)
                and 2 * p + 1 <= h and 2 * q + 1 <= w):  # every window inside the input
            K.max_pool_3x3s2(x.reshape(c * n, h, w), out.reshape(c * n, p, q))
            return
        K.max_pool(x.reshape(c * n, h, w), *layer.kernel, *layer.stride, *layer.pad, out.reshape(c * n, p, q))

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
