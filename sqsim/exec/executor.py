"""The functional executor: runs an IR graph on a float32 NCHW batch, on the CPU or a CUDA GPU, from dense
or compressed weights, and counts non-zero activations for the hardware models.

>>> import numpy as np
>>> from sqsim.ir import Graph, Layer
>>> from sqsim.weights import he_init
>>> g = Graph([Layer("data", "input", shape=(3, 8, 8)),
...            Layer("conv", "conv2d", ("data",), out_channels=4, kernel=(3, 3)),
...            Layer("relu", "relu", ("conv",))])
>>> ex = Executor(g, he_init(g))
>>> ex.run(np.ones((2, 3, 8, 8), np.float32))["relu"].shape
(2, 4, 6, 6)
"""
from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import GraphError, SqsimError
from ..ir import Graph
from ..weights import LayerWeights, check_layer_names, check_weights
from .kernels import DEVICES, HeldWeights, Scratch, make_backend
from .plan import Plan, build_plan
from .store import SparseWeights, check_sparse_against, sparse_from_model

__all__ = ["Executor", "ActivationCount", "measure_activation_density", "split_weights", "DEVICES"]


@dataclass(frozen=True)
class ActivationCount:
    """Non-zero and total elements of one layer's output over the samples run so far."""
    nonzero: int
    elements: int

    @property
    def density(self) -> float:
        """Fraction of output elements that are non-zero."""
        return self.nonzero / self.elements if self.elements else 0.0

    def __add__(self, other: "ActivationCount") -> "ActivationCount":
        return ActivationCount(self.nonzero + other.nonzero, self.elements + other.elements)


def split_weights(graph: Graph, weights, source: str = "weights", huffman_at_load: bool = False):
    """Sort what the executor was given into ``(dense, sparse)`` dicts, checked against ``graph``.

    Accepts ``{layer: LayerWeights}`` (dense), ``{layer: SparseWeights}``, a mix of both, or a
    :class:`sqsim.compress.CompressedModel` (see :func:`sqsim.exec.store.sparse_from_model`).
    """
    if not isinstance(weights, dict):
        weights = sparse_from_model(weights, huffman_at_load=huffman_at_load)
    sparse = {k: v for k, v in weights.items() if isinstance(v, SparseWeights)}
    dense = {k: v for k, v in weights.items() if not isinstance(v, SparseWeights)}
    for k, v in dense.items():
        if not isinstance(v, LayerWeights):
            raise SqsimError(f"{source}: layer {k!r}: expected LayerWeights or SparseWeights, got "
                             f"{type(v).__name__}")
    check_layer_names(graph, weights, source)
    if dense and not sparse:
        dense = check_weights(graph, dense, source)
    elif dense:
        dense = _check_dense_subset(graph, dense, source)
    if sparse:
        check_sparse_against(graph, sparse, source, partial=bool(dense))
    return dense, sparse


def _check_dense_subset(graph, dense, source):
    """Shape and bias checks of the dense layers of a mixed dense/compressed model."""
    out = {}
    for name, lw in dense.items():
        info = graph.info(name)
        w = np.asarray(lw.weight)
        if w.size != info.weights:
            raise GraphError(f"{source}: layer {name!r}: weight shape {tuple(w.shape)} does not match the "
                             f"architecture's {tuple(info.weight_shape)}")
        if bool(info.biases) != (lw.bias is not None):
            raise GraphError(f"{source}: layer {name!r}: the architecture {'has' if info.biases else 'has no'} "
                             f"bias but the weights {'have none' if lw.bias is None else 'have one'}")
        b = None if lw.bias is None else np.ascontiguousarray(lw.bias, np.float32).ravel()
        if b is not None and b.size != info.biases:
            raise GraphError(f"{source}: layer {name!r}: bias has {b.size} values; expected {info.biases}")
        out[name] = LayerWeights(np.ascontiguousarray(w, np.float32).reshape(info.weight_shape), b)
    return out


@dataclass(frozen=True, eq=False)
class _PlanEntry:
    """A plan with its views of the buffers, ``{tensor: array}`` (the same objects on every run: the backend
    keeps what it derives from them, e.g. the direct conv's launches), and its scratch buffers."""
    plan: Plan
    views: dict
    scratch: Scratch


class Executor:
    """Run a network on batches of images.

    The executor plans a run (:mod:`sqsim.exec.plan`) and hands every step to a backend
    (:class:`sqsim.exec.kernels.Backend`) that owns the arrays, kernels and threads of its device.  Close it
    (``close()``, or use it as a context manager) to stop the backend's threads at once; otherwise they
    stop when it is garbage collected.

    Parameters
    ----------
    graph : sqsim.ir.Graph
    weights : dict or compressed model
        ``{layer: LayerWeights}`` (dense, Caffe layout), ``{layer: SparseWeights}``, or a model from
        :func:`sqsim.compress.load_model`.  Compressed layers stay compressed in memory and are decoded
        when they run (into one reused buffer) or multiplied in sparse form (fc layers).
    device : {'cpu', 'gpu'}
    threads : int, optional
        CPU threads for the Numba kernels (default: all cores; BLAS follows its own settings).
    sparse_fc : {'auto', True, False}
        Multiply compressed fc layers on the sparse form: always, never, or when cheaper than decoding
        ('auto': when under half the weights are stored and the batch is at most 32).
    huffman_at_load : bool
        Decode Huffman-coded streams once, at load, to fixed width (Deep Compression's P+Q form, about
        30% larger, several times faster to decode per run) instead of when each layer runs.
    fuse : bool
        Fuse ReLUs into the conv/fc before them (never when collecting statistics).
    datapath : Datapath or HardwareSpec, optional
        Compute every layer as this datapath does (:mod:`sqsim.exec.datapath`: weights, activations and
        partial sums rounded to their formats, exact integer accumulation; a hardware model's ``precision``
        block).  Outputs are the values the datapath's codes stand for.

    Raises
    ------
    GraphError
        The weights do not match the graph (missing, extra or mis-shaped layers).
    SqsimError
        An unknown device, or ``device='gpu'`` without CuPy and a CUDA GPU.
    """

    def __init__(self, graph: Graph, weights, device: str = "cpu", *, threads: int | None = None,
                 sparse_fc="auto", fuse: bool = True, huffman_at_load: bool = False, source: str = "weights",
                 datapath=None):
        if not isinstance(graph, Graph):
            raise SqsimError(f"Executor: graph must be a sqsim.ir.Graph, got {type(graph).__name__}")
        if sparse_fc not in ("auto", True, False):
            raise SqsimError(f"Executor: sparse_fc must be 'auto', True or False, got {sparse_fc!r}")
        self.graph = graph
        self.device = device
        self.sparse_fc = sparse_fc
        self.fuse = fuse
        graph.input_shape  # noqa: B018  (raises GraphError when the network has several inputs)
        self.backend = make_backend(device, threads)
        dense, sparse = split_weights(graph, weights, source, huffman_at_load)
        self._w: dict[str, HeldWeights] = {}
        self.datapath = None
        if datapath is not None:
            from .datapath import Datapath
            from .kernels.emulated import EmulatedBackend
            self.datapath = datapath if isinstance(datapath, Datapath) else Datapath.from_hw(datapath)
            self.backend = EmulatedBackend(self.backend, graph, self.datapath, dense, sparse)
            self._w = dict(self.backend.held)
        for layer in graph.weighted_layers():
            if layer.name in self._w:
                continue
            info = graph.info(layer.name)
            rows, row_len = info.weight_shape[0], info.weights // info.weight_shape[0]
            if layer.name in dense:
                lw = dense[layer.name]
                self._w[layer.name] = HeldWeights(
                    dense=self.backend.upload_dense(lw.weight.reshape(rows, row_len)),
                    bias=None if lw.bias is None else self.backend.upload_dense(lw.bias),
                    rows=rows, row_len=row_len)
            else:
                sw = sparse[layer.name]
                self._w[layer.name] = HeldWeights(
                    sparse=self.backend.upload_sparse(sw),
                    bias=None if sw.bias is None else self.backend.upload_dense(sw.bias),
                    rows=rows, row_len=row_len, n_entries=sw.n_entries)
        self._plans: OrderedDict[tuple, _PlanEntry] = OrderedDict()
        self._decode_buf = None
        self._finalizer = weakref.finalize(self, self.backend.close)

    def close(self) -> None:
        """Stop the backend's threads and free the plans' buffers (the executor can still run: its next
        run plans and starts them again)."""
        self._plans.clear()
        self._finalizer()
        self._finalizer = weakref.finalize(self, self.backend.close)

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- public ----------------------------------------------------------------------------------------
    @property
    def compressed(self) -> bool:
        """True when any layer is held in compressed form."""
        return any(w.sparse is not None for w in self._w.values())

    def resident_weight_bytes(self) -> int:
        """Bytes of weights held (dense arrays, or compressed streams plus row pointers) and biases."""
        total = 0
        for name, w in self._w.items():
            if w.sparse is not None and self.datapath is None:
                total += w.sparse.resident_bytes
            else:
                total += int(w.dense.nbytes) + (int(w.bias.nbytes) if w.bias is not None else 0)
        return total

    def run(self, x, collect_stats: bool = False, outputs=None, progress=None):
        """Run a batch.

        Parameters
        ----------
        x : array of float32, shape (N, C, H, W)
            Matching the network's input layer.
        collect_stats : bool
            Also count non-zero elements of every layer's output.
        outputs : iterable of str, optional
            Layers whose outputs to return (default: the network's outputs).
        progress : object with ``at(n, m, layer)``, optional
            Told before each step (e.g. :class:`sqsim.exec.warmup.CompileProgress`, which shows where a
            first run compiles its kernels).

        Returns
        -------
        dict
            ``{layer: ndarray (N, C, H, W)}``; with ``collect_stats`` a pair
            ``(outputs, {layer: ActivationCount})``.

        Raises
        ------
        GraphError
            ``x`` does not have the network's input shape, or an unknown output layer is named.
        """
        x = self._check_input(x)
        wanted = tuple(self.graph.outputs()) if outputs is None else tuple(outputs)
        for name in wanted:
            self.graph.layer(name)
        entry = self._plan(x.shape[0], collect_stats, frozenset(wanted))
        counts = {} if collect_stats else None
        be = self.backend
        with be.running():
            steps = entry.plan.steps
            for i, step in enumerate(steps):
                if progress is not None:
                    progress.at(i + 1, len(steps), step.layer)
                if self.datapath is not None:
                    be.step(self.graph.layer(step.layer))
                self._run_step(step, entry, x)
                if counts is not None:
                    v = entry.views[step.layer]
                    counts[step.layer] = ActivationCount(be.count_nonzero(v), int(v.size))
            be.synchronize()
        result = {name: be.to_host_nchw(entry.views[name]) for name in wanted}
        if self.datapath is not None:  # the values the codes stand for
            result = {name: be.to_real(name, v) for name, v in result.items()}
        return (result, counts) if collect_stats else result

    def predict(self, x) -> np.ndarray:
        """The output of a single-output network, ``(N, C)`` when it is ``C x 1 x 1`` per sample."""
        outs = self.graph.outputs()
        if len(outs) != 1:
            raise GraphError(f"network {self.graph.name!r} has {len(outs)} outputs; use run()")
        y = self.run(x)[outs[0]]
        return y.reshape(y.shape[0], -1) if y.shape[2:] == (1, 1) else y

    # --- internals ---------------------------------------------------------------------------------------
    def _check_input(self, x):
        shape = tuple(self.graph.input_shape)
        name = self.graph.inputs()[0].name
        try:
            x = np.asarray(x)
        except Exception as e:  # noqa: BLE001 - anything numpy cannot convert is bad input
            raise GraphError(f"network {self.graph.name!r}: input is not an array ({e})") from None
        if x.ndim != 4 or tuple(x.shape[1:]) != shape or x.shape[0] < 1:
            raise GraphError(f"network {self.graph.name!r}: input layer {name!r} expects a batch of shape "
                             f"(N, {shape[0]}, {shape[1]}, {shape[2]}); got {tuple(x.shape)}")
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise GraphError(f"network {self.graph.name!r}: input must be real numbers, got dtype {x.dtype}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _use_sparse(self, name: str, n: int) -> bool:
        w = self._w[name]
        if w.sparse is None or self.graph.layer(name).op != "fc":
            return False
        if self.sparse_fc != "auto":
            return bool(self.sparse_fc)
        # Decoding writes every dense weight and the GEMM reads it all again; the sparse kernel reads each
        # stored entry once and does N multiply-adds with it.  AlexNet fc6/7/8 (9-25% stored): the sparse
        # form is faster at batch 1 and 16 alike (decode + GEMM of fc6 takes 2-4x longer, 1 thread).
        return w.n_entries < 0.5 * w.rows * w.row_len and n <= 32

    def _plan(self, n: int, stats: bool, keep: frozenset) -> _PlanEntry:
        """The plan for ``n`` samples with its views and scratch buffers (kept for the last two keys)."""
        key = (n, stats, keep)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        plan = build_plan(self.graph, n, keep=keep, stats=stats, fuse=self.fuse)
        be = self.backend
        bufs = [be.empty(s) for s in plan.buffer_sizes]
        cols = feat = dec = 1
        for step in plan.steps:
            layer = self.graph.layer(step.layer)
            info = self.graph.info(step.layer)
            if layer.op == "conv2d":
                cols = max(cols, be.work_elements(layer, info.input_shapes[0], n, info.output_shape[1:]))
            if layer.op == "fc":
                feat = max(feat, info.input_elements * n)
            if layer.op in ("conv2d", "fc") and self._w[step.layer].sparse is not None \
                    and not self._use_sparse(step.layer, n):
                dec = max(dec, info.weights)
        if self._decode_buf is None or self._decode_buf.size < dec:
            self._decode_buf = be.empty(dec)
        entry = _PlanEntry(plan, self._views(plan, bufs), Scratch(be.empty(cols), be.empty(feat), self._decode_buf))
        self._plans[key] = entry
        while len(self._plans) > 2:  # a new batch size replaces the oldest plan's buffers
            self._plans.popitem(last=False)
        return entry

    @staticmethod
    def _views(plan: Plan, buffers) -> dict:
        out = {}
        for name, (b, off) in plan.storage.items():
            shape = plan.shapes[name]
            size = int(np.prod(shape))
            out[name] = buffers[b][off: off + size].reshape(shape)
        return out

    def _run_step(self, step, entry: _PlanEntry, x_host) -> None:
        be = self.backend
        plan, views = entry.plan, entry.views
        layer = self.graph.layer(step.layer)
        op = layer.op
        out = views[step.output]
        if step.alias:
            return
        ins = [views[s] for s in step.inputs]
        if op == "input":
            be.input(x_host, out)
        elif op == "conv2d":
            be.conv2d(layer, ins[0], out, self._w[step.layer], step.relu, entry.scratch)
        elif op == "fc":
            be.fc(ins[0], out, self._w[step.layer], step.relu, entry.scratch,
                  on_sparse=self._use_sparse(step.layer, plan.batch))
        elif op == "concat":
            b, off = plan.storage[step.output]
            stride = int(np.prod(plan.shapes[step.output][1:]))
            c0 = 0
            for src, v in zip(step.inputs, ins):
                c = v.shape[0]
                if plan.storage[src] != (b, off + c0 * stride):
                    be.copy(v, out[c0:c0 + c])
                c0 += c
        elif op in ("maxpool", "avgpool", "lrn"):
            getattr(be, op)(layer, ins[0], out)
        elif op in ("global_avgpool", "relu", "softmax", "flatten"):
            getattr(be, op)(ins[0], out)
        elif op == "add":
            be.add(ins, out)
        else:  # pragma: no cover - every IR op is handled above or is an alias
            from ..errors import UnsupportedOpError
            raise UnsupportedOpError(f"layer {layer.name!r}: the executor has no kernel for op {op!r}")


def measure_activation_density(graph: Graph, model, images, *, batch_size: int = 16,
                               device: str = "cpu") -> dict[str, float]:
    """Fraction of non-zero elements in every layer's output, over ``images``.

    Parameters
    ----------
    graph : sqsim.ir.Graph
    model : weights or compressed model, or None
        Anything :class:`Executor` accepts; None runs synthetic He-normal weights
        (:func:`sqsim.weights.he_init`, seed 0), whose densities say little about a trained network.
    images : array (N, C, H, W) or iterable of arrays (C, H, W) / (n, C, H, W)
        Preprocessed inputs (see :mod:`sqsim.exec.preprocess`).
    batch_size : int
        Images per executor run.

    Returns
    -------
    dict
        ``{layer name: fraction non-zero}`` for every layer, the input included, in graph order.
    """
    if model is None:
        from ..weights import he_init
        model = he_init(graph, seed=0)
    ex = Executor(graph, model, device=device)
    totals: dict[str, ActivationCount] = {}

    def run(batch):
        _, counts = ex.run(batch, collect_stats=True)
        for k, v in counts.items():
            totals[k] = totals[k] + v if k in totals else v

    pending = []
    for chunk in _batches(images):
        for sample in chunk:
            pending.append(sample)
            if len(pending) == batch_size:
                run(np.stack(pending))
                pending = []
    if pending:
        run(np.stack(pending))
    if not totals:
        raise SqsimError("measure_activation_density: no images given")
    return {name: totals[name].density for name in graph.order if name in totals}


def _batches(images):
    if isinstance(images, np.ndarray):
        yield images if images.ndim == 4 else images[None]
        return
    for im in images:
        im = np.asarray(im, np.float32)
        yield im if im.ndim == 4 else im[None]
