"""The emulated datapath as a :class:`~.backend.Backend`: a network computed the way a chip with the formats of
a :class:`~sqsim.exec.datapath.Datapath` computes it (weights, activations and partial sums rounded to their
widths, integer accumulation, rounding and overflow modes; docs/models.md, "Datapath emulation").

:class:`EmulatedBackend` wraps a device backend (CPU or GPU): the plan's buffers hold *codes* (a fixed-point
value times ``2**frac``, an integer; a float format's value), so the device's own max pool, ReLU, concat
copies, flatten and layout changes move them unchanged.  Conv, fc, average pools, adds, LRN, softmax and the
network input go to the device's emulation engine (``cpu/emulate.py``, ``cuda/emulate.py``), which rounds
as the datapath does.  The executor tells the backend which layer each op computes (:meth:`step`).

The weights are quantized once, here: dense weights and decoded compressed layers (the decoded values are
the codebook's, so this is the codebook rounded to the weight precision), biases to the weights' width with
their own fraction bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ...errors import SpecError
from ..datapath import EXACT_F32, EXACT_F64, Datapath, LayerDatapath, requantize
from .backend import HeldWeights

# The psum of a fixed-point layer is converted to int64 to wrap: it must stay below 2**62 after its shift.
EXACT_I64 = 2.0 ** 62
# An average pool's exact sum, times 2**max(d, 0), must stay below 2**52 (kernels/cpu/requant.avg_pool_q).
EXACT_AVG = 2.0 ** 52


@dataclass(frozen=True, eq=False)
class QuantLayer:
    """A conv/fc layer quantized to its formats.

    Attributes
    ----------
    fmt : LayerDatapath
    codes : ndarray float32 (K, L)
        Weight codes (integers for fixed point, rounded values for floats).
    bias : ndarray float64 (K,)
        Bias codes in the products' units (``2**-(fw + fa)``; exact: a power-of-two scaling).
    sparse : SparseWeights or None
        A compressed layer with its codebook quantized (for the device's float32 kernels).
    exact : bool
        Both operands fixed point: sums of integers, exact (bounds below).
    bound : float
        The largest magnitude a partial sum of products can reach: the largest row sum of ``|codes|``
        times the largest input code (fixed x fixed; else inf).
    f32_exact : bool
        Every partial sum is an integer below 2**24: float32 kernels compute it exactly.
    device : dict
        What the engine derived from it (float64 weights, CSR arrays, ...).
    """
    fmt: LayerDatapath
    codes: np.ndarray
    bias: np.ndarray
    sparse: object
    exact: bool
    bound: float
    f32_exact: bool
    device: dict

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.bias.nbytes + sum(getattr(a, "nbytes", 0) for a in self.device.values()))


def weight_ranges(graph, dense: dict, sparse: dict) -> tuple[dict, dict]:
    """``({layer: dense float32 (K, L) weights}, {layer: (max |weight|, max |bias|)})`` of the weighted layers
    (compressed ones decoded)."""
    if sparse:  # decoding runs parallel Numba kernels: the thread pools are configured before their first use
        from .cpu.threads import configure
        configure()
    mats, ranges = {}, {}
    for layer in graph.weighted_layers():
        info = graph.info(layer.name)
        rows = info.weight_shape[0]
        if layer.name in dense:
            lw = dense[layer.name]
            w, b = np.asarray(lw.weight, np.float32).reshape(rows, -1), lw.bias
        else:
            sw = sparse[layer.name]
            w, b = sw.to_dense().weight.reshape(rows, -1), sw.bias
        b = np.zeros(rows, np.float32) if b is None else np.asarray(b, np.float32)
        mats[layer.name] = (w, b)
        ranges[layer.name] = (float(np.abs(w).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
    return mats, ranges


def quantize_layer(name: str, fmt: LayerDatapath, w: np.ndarray, b: np.ndarray, sw) -> QuantLayer:
    """Weights ``w (K, L)`` and biases ``b`` in the layer's formats, with the exactness bounds of its sums.

    Raises
    ------
    SpecError
        Fixed-point sums that could leave float64's exact integers (2**53; 2**62 once shifted to the psum).
    """
    codes = requantize(w.astype(np.float64), 0, fmt.weights).astype(np.float32)
    bcodes = requantize(b.astype(np.float64), 0, fmt.biases)
    exact = fmt.weights.kind == "fixed" and fmt.inputs[0].kind == "fixed"
    prod = fmt.weights.frac + fmt.inputs[0].frac
    bias = bcodes * math.ldexp(1.0, prod - fmt.biases.frac) if fmt.biases.kind == "fixed" else \
        bcodes * math.ldexp(1.0, prod)
    bound = math.inf
    f32 = False
    if exact:
        row_l1 = float(np.abs(codes.astype(np.float64)).sum(axis=1).max(initial=0.0))
        bound = row_l1 * fmt.inputs[0].max_code
        # adding the bias, whose fraction may be finer than the products' by fb - (fw + fa) bits
        finer = math.ldexp(1.0, max(0, fmt.biases.frac - prod))
        total = (bound + float(np.abs(bias).max(initial=0.0))) * finer
        shift = math.ldexp(1.0, max(0, fmt.psums.frac - prod)) if fmt.psums.kind == "fixed" else 1.0
        if total >= EXACT_F64 or total * shift >= EXACT_I64:
            raise SpecError(f"layer {name!r}: with {fmt.weights.label} weights and {fmt.inputs[0].label} inputs "
                            f"a sum of products can reach 2**{math.log2(max(total, 1)):.1f}, beyond the integers "
                            f"float64 holds exactly (2**53): narrower weights or activations, or fewer fraction bits")
        f32 = bound < EXACT_F32
    qsw = None
    if sw is not None:
        qcb = requantize(np.asarray(sw.codebook, np.float64), 0, fmt.weights).astype(np.float32)
        qsw = replace(sw, codebook=qcb, bias=None)
    return QuantLayer(fmt, codes, bias.astype(np.float64), qsw, exact, bound, f32, {})


class EmulatedBackend:
    """A device backend running a network in a datapath's number formats (see the module docstring).

    Parameters
    ----------
    base : Backend
        The device backend (``cpu`` or ``gpu``) whose buffers and data-movement ops it uses.
    graph : sqsim.ir.Graph
    datapath : Datapath
    dense, sparse : dict
        The weights as :func:`sqsim.exec.executor.split_weights` sorts them.

    Attributes
    ----------
    layers : dict
        ``{layer: LayerDatapath}``, every layer's formats.
    held : dict
        ``{layer: HeldWeights}`` for the executor (``dense`` is the :class:`QuantLayer`).
    """

    def __init__(self, base, graph, datapath: Datapath, dense: dict, sparse: dict):
        self.base = base
        self.name = f"{base.name}-emulated"
        self.graph = graph
        self.datapath = datapath
        mats, ranges = weight_ranges(graph, dense, sparse)
        self.weight_ranges = ranges
        self.layers: dict[str, LayerDatapath] = datapath.resolve(graph, ranges)
        self.engine = _engine(base)
        self.held: dict[str, HeldWeights] = {}
        for layer in graph.weighted_layers():
            w, b = mats[layer.name]
            q = quantize_layer(layer.name, self.layers[layer.name], w, b, sparse.get(layer.name))
            self.engine.prepare(layer, q)
            self.held[layer.name] = HeldWeights(dense=q, sparse=q.sparse, rows=w.shape[0], row_len=w.shape[1],
                                                n_entries=q.sparse.n_entries if q.sparse is not None else 0)
        self._check_pools(graph)
        self._cur: LayerDatapath | None = None

    def _check_pools(self, graph) -> None:
        """Average pools: the exact sum times the output's extra fraction must stay below 2**52."""
        for name in graph.order:
            layer = graph.layer(name)
            if layer.op not in ("avgpool", "global_avgpool"):
                continue
            fin, fout = self.layers[name].inputs[0], self.layers[name].output
            if fin.kind != "fixed" or fout.kind != "fixed":
                continue
            info = graph.info(name)
            count = (info.input_shapes[0][1] * info.input_shapes[0][2] if layer.op == "global_avgpool"
                     else layer.kernel[0] * layer.kernel[1])
            if count * fin.max_code * math.ldexp(1.0, max(0, fout.frac - fin.frac)) >= EXACT_AVG:
                raise SpecError(f"layer {name!r}: average of {count} {fin.label} values into {fout.label} is beyond "
                                f"the exactly rounded range (2**52)")

    # --- what the executor asks besides the Backend protocol ---------------------------------------------
    def step(self, layer) -> None:
        """The layer the next op computes."""
        self._cur = self.layers[layer.name]

    def to_real(self, name: str, codes: np.ndarray) -> np.ndarray:
        """Values of a layer's output codes (host array)."""
        return self.layers[name].output.to_real(codes)

    # --- delegated: memory and data movement (codes move unchanged) ---------------------------------------
    def running(self):
        return self.base.running()

    def close(self) -> None:
        self.base.close()

    def empty(self, n: int):
        return self.base.empty(n)

    def upload_dense(self, w):
        return self.base.upload_dense(w)

    def upload_sparse(self, sw):
        return self.base.upload_sparse(sw)

    def to_host_nchw(self, view):
        return self.base.to_host_nchw(view)

    def count_nonzero(self, view) -> int:
        return self.base.count_nonzero(view)

    def synchronize(self) -> None:
        self.base.synchronize()

    def work_elements(self, layer, in_shape, n: int, out_hw) -> int:
        return self.base.work_elements(layer, in_shape, n, out_hw)

    def maxpool(self, layer, x, out) -> None:
        self.base.maxpool(layer, x, out)

    def relu(self, x, out) -> None:
        self.base.relu(x, out)

    def copy(self, src, dst) -> None:
        self.base.copy(src, dst)

    def flatten(self, x, out) -> None:
        self.base.flatten(x, out)

    # --- the datapath's arithmetic -----------------------------------------------------------------------
    def input(self, x_host, out) -> None:
        codes = requantize(np.asarray(x_host, np.float64), 0, self._cur.output).astype(np.float32)
        self.base.input(codes, out)

    def conv2d(self, layer, x, out, weights: HeldWeights, relu: bool, scratch) -> None:
        self.engine.conv(layer, x, out, weights.dense, relu, scratch)

    def fc(self, x, out, weights: HeldWeights, relu: bool, scratch, on_sparse: bool = False) -> None:
        self.engine.fc(x, out, weights.dense, relu, scratch)

    def avgpool(self, layer, x, out) -> None:
        self.engine.avgpool(layer, x, out, self._cur.inputs[0], self._cur.output)

    def global_avgpool(self, x, out) -> None:
        self.engine.global_avgpool(x, out, self._cur.inputs[0], self._cur.output)

    def add(self, xs, out) -> None:
        self.engine.add(xs, self._cur.inputs, self._cur.output, out)

    def lrn(self, layer, x, out) -> None:
        self.engine.lrn(layer, x, self._cur.inputs[0], self._cur.output, out)

    def softmax(self, x, out) -> None:
        """The host's softmax (float) of the input's values."""
        self.engine.softmax(x, self._cur.inputs[0], out)


def _engine(base):
    if base.name == "cpu":
        from .cpu.emulate import CpuEmulation
        return CpuEmulation(base)
    if base.name == "gpu":
        from .cuda.emulate import GpuEmulation
        return GpuEmulation(base)
    raise SpecError(f"no datapath emulation for device {base.name!r}")


__all__ = ["EmulatedBackend", "QuantLayer", "quantize_layer", "weight_ranges"]
