"""GPU backend: CuPy arrays, cuBLAS GEMM (``cupy.matmul``) and the numba.cuda kernels of
:mod:`sqsim.exec.kernels.cuda.kernels`; the same plan and :class:`~sqsim.exec.kernels.Backend` protocol as
the CPU backend.

With ``NUMBA_ENABLE_CUDASIM=1`` (and no usable GPU) the backend runs the same kernels in Numba's CUDA
simulator on numpy arrays: slow, for testing the kernels and this module where there is no GPU.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ....errors import SqsimError


def _simulating() -> bool:
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def gpu_unavailable_reason() -> str | None:
    """Why ``device='gpu'`` cannot run here, or None when it can (CuPy importable and a CUDA GPU)."""
    if _simulating():
        return None
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install cupy-cuda12x, or the build matching your CUDA)"
    try:
        if not cupy.cuda.is_available():
            return "CuPy finds no usable CUDA GPU"
    except Exception as e:  # noqa: BLE001 - a broken driver install raises its own types
        return f"CuPy cannot reach a CUDA GPU ({e})"
    return None


@dataclass(frozen=True, eq=False)
class DeviceSparse:
    """A :class:`SparseWeights` with its arrays on the device and one checkpoint per row."""
    args: tuple
    rows: int
    row_len: int
    resident_bytes: int

    def kernel_args(self) -> tuple:
        return self.args


class GpuBackend:
    """Runs plan steps on the GPU; every method writes into the ``out`` view it is given."""
    name = "gpu"

    def __init__(self):
        reason = gpu_unavailable_reason()
        if reason:
            raise SqsimError(f"device 'gpu': {reason}; use --device cpu")
        from numba import cuda

        from . import kernels
        self.K = kernels
        self._cuda = cuda
        if _simulating():
            self.xp = np
        else:
            import cupy
            from numba import config
            self.xp = cupy
            # Every kernel and cuBLAS call goes to the legacy default stream, so launches are ordered;
            # do not synchronise the host on each CuPy array handed to a Numba kernel.
            config.CUDA_ARRAY_INTERFACE_SYNC = False
        self._zero_bias: dict[int, object] = {}
        self._views: dict = {}

    # --- memory ----------------------------------------------------------------------------------------
    def empty(self, n: int):
        return self.xp.empty(n, self.xp.float32)

    def upload_dense(self, w):
        return self.xp.asarray(np.ascontiguousarray(w, np.float32))

    def upload_sparse(self, sw) -> DeviceSparse:
        fine = sw.reblocked(sw.rows)  # a checkpoint per row: one thread per row
        args = tuple(self.xp.asarray(a) if isinstance(a, np.ndarray) else a for a in fine.kernel_args())
        nbytes = sum(int(a.nbytes) for a in args if hasattr(a, "nbytes"))
        return DeviceSparse(args, sw.rows, sw.row_len, nbytes)

    def to_host_nchw(self, view) -> np.ndarray:
        if self.xp is np:  # a copy: the next run writes the view (at batch 1 the transpose is contiguous)
            return view.transpose(1, 0, 2, 3).copy()
        return np.ascontiguousarray(self.xp.asnumpy(view).transpose(1, 0, 2, 3))

    def count_nonzero(self, view) -> int:
        return int(self.xp.count_nonzero(view))

    def synchronize(self) -> None:
        if self.xp is not np:
            self._cuda.synchronize()
            self.xp.cuda.Device().synchronize()

    @contextmanager
    def running(self):
        yield

    def close(self) -> None:
        self._views.clear()

    def _launch(self, kernel, n: int, *args):
        blocks, threads = self.K.grid(n)
        if self.xp is not np:  # hand Numba its own device-array views of CuPy arrays (cached: cheaper launches)
            args = tuple(self._device_view(a) if hasattr(a, "__cuda_array_interface__") else a for a in args)
        kernel[blocks, threads](*args)

    def _device_view(self, a):
        if hasattr(a, "copy_to_host"):
            return a  # already Numba's own device array (CuPy arrays have .get(), not .copy_to_host())
        key = (a.__cuda_array_interface__["data"][0], a.shape, a.strides, a.dtype.str)
        view = self._views.get(key)
        if view is None:
            if len(self._views) > 4096:
                self._views.clear()
            view = self._views[key] = self._cuda.as_cuda_array(a)
        return view

    # --- weights ---------------------------------------------------------------------------------------
    def decode(self, sw: DeviceSparse, buf):
        flat = buf[: sw.rows * sw.row_len]
        self._launch(self.K.decode_blocks, sw.rows, *sw.kernel_args(), flat)
        return flat.reshape(sw.rows, sw.row_len)

    def _bias(self, bias, k: int):
        if bias is not None:
            return bias
        if k not in self._zero_bias:
            self._zero_bias[k] = self.xp.zeros(k, self.xp.float32)
        return self._zero_bias[k]

    @staticmethod
    def work_elements(layer, in_shape, n: int, out_hw) -> int:
        """Size of the im2col buffer :meth:`conv2d` needs (the whole batch at once; none for a 1x1
        stride-1 unpadded conv, whose input is the column matrix)."""
        if tuple(layer.kernel) + tuple(layer.stride) + tuple(layer.pad) == (1, 1, 1, 1, 0, 0):
            return 0
        return in_shape[0] * layer.kernel[0] * layer.kernel[1] * n * out_hw[0] * out_hw[1]

    # --- ops -------------------------------------------------------------------------------------------
    def input(self, x: np.ndarray, out) -> None:
        xd = self.xp.asarray(np.ascontiguousarray(x, np.float32))
        if self.xp is not np:  # a fresh array each run: not for the view cache
            xd = self._cuda.as_cuda_array(xd)
        self._launch(self.K.nchw_to_cnhw, out.size, xd, out)

    def conv_columns(self, layer, x, out_shape, cols_buf):
        """The conv's input as GEMM columns ``(C*R*S, N*P*Q)``: ``x`` itself for a 1x1 stride-1 conv without
        padding, else im2col into ``cols_buf``."""
        c, n, h, w = x.shape
        p, q = out_shape[2], out_shape[3]
        kh, kw = layer.kernel
        (sh, sw), (ph, pw) = layer.stride, layer.pad
        if (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0):
            return x.reshape(c, n * h * w)
        cols = cols_buf[: c * kh * kw * n * p * q].reshape(c * kh * kw, n * p * q)
        self._launch(self.K.im2col, cols.size, x, kh, kw, sh, sw, ph, pw, p, q, cols)
        return cols

    def grouped_matmul(self, w2d, cols, y, groups: int) -> None:
        """``y = W @ cols`` one group at a time (group ``i``: rows ``i*K/g..``, column rows ``i*L/g..``)."""
        kg, lg = y.shape[0] // groups, cols.shape[0] // groups
        for i in range(groups):
            self.xp.matmul(w2d[i * kg:(i + 1) * kg], cols[i * lg:(i + 1) * lg], out=y[i * kg:(i + 1) * kg])

    def conv2d(self, layer, x, out, weights, relu: bool, scratch) -> None:
        w2d = weights.dense if weights.sparse is None else self.decode(weights.sparse, scratch.decode)
        bias, k = weights.bias, out.shape[0]
        cols = self.conv_columns(layer, x, out.shape, scratch.work)
        y = out.reshape(k, cols.shape[1])
        self.grouped_matmul(w2d, cols, y, layer.groups)
        if bias is not None or relu:
            self._launch(self.K.bias_act, y.size, y, self._bias(bias, k), relu)

    def fc_features(self, x, feat_buf):
        c, n, h, w = x.shape
        if h * w == 1:
            return x.reshape(c, n)
        f = feat_buf[: c * h * w * n].reshape(c * h * w, n)
        self._launch(self.K.features_to_columns, x.size, x.reshape(c, n, h * w), f)
        return f

    def fc(self, x, out, weights, relu: bool, scratch, on_sparse: bool = False) -> None:
        xf = self.fc_features(x, scratch.feat)
        y = out.reshape(out.shape[0], out.shape[1])
        bias = weights.bias
        if on_sparse:
            sw = weights.sparse
            self._launch(self.K.sparse_matmul, sw.rows, *sw.kernel_args(), xf, y)
        else:
            w2d = weights.dense if weights.sparse is None else self.decode(weights.sparse, scratch.decode)
            self.xp.matmul(w2d, xf, out=y)
        if bias is not None or relu:
            self._launch(self.K.bias_act, y.size, y, self._bias(bias, y.shape[0]), relu)

    def maxpool(self, layer, x, out) -> None:
        c, n, h, w = x.shape
        o = out.reshape(c * n, out.shape[2], out.shape[3])
        self._launch(self.K.max_pool, o.size, x.reshape(c * n, h, w), *layer.kernel, *layer.stride, *layer.pad, o)

    def avgpool(self, layer, x, out) -> None:
        c, n, h, w = x.shape
        o = out.reshape(c * n, out.shape[2], out.shape[3])
        self._launch(self.K.avg_pool, o.size, x.reshape(c * n, h, w), *layer.kernel, *layer.stride, *layer.pad, o)

    def global_avgpool(self, x, out) -> None:
        c, n, h, w = x.shape
        self._launch(self.K.global_avg_pool, c * n, x.reshape(c * n, h * w), out.reshape(c * n))

    def lrn(self, layer, x, out) -> None:
        c = x.shape[0]
        self._launch(self.K.lrn_across_channels, x.size, x.reshape(c, -1), layer.local_size, float(layer.alpha),
                     float(layer.beta), float(layer.k), out.reshape(c, -1))

    def relu(self, x, out) -> None:
        self._launch(self.K.relu, x.size, x.reshape(-1), out.reshape(-1))

    def add(self, xs, out) -> None:
        self._launch(self.K.add, out.size, xs[0].reshape(-1), xs[1].reshape(-1), out.reshape(-1))
        for x in xs[2:]:
            self._launch(self.K.add, out.size, out.reshape(-1), x.reshape(-1), out.reshape(-1))

    def copy(self, src, dst) -> None:
        dst[...] = src

    def softmax(self, x, out) -> None:
        c = x.shape[0]
        xm = x.reshape(c, -1)
        self._launch(self.K.softmax_channels, xm.shape[1], xm, out.reshape(c, -1))

    def flatten(self, x, out) -> None:
        c, n, h, w = x.shape
        self._launch(self.K.features_to_columns, x.size, x.reshape(c, n, h * w), out.reshape(c * h * w, n))
