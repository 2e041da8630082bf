"""Import an ONNX model as a sqsim graph with weights.

Nodes are read in topological order and turned into sqsim layers by one rule per op type
(:data:`IMPORTERS`).  Layer names are node names (the output tensor's name when a node has none).
Some nodes become no layer: Identity and the Flatten/Reshape in front of an fc (sqsim's fc flattens
its input) alias their input; BatchNormalization and the Add of a constant per-channel bias fold
into the conv/fc before them.  Shapes come from sqsim's shape inference as layers are created, so
each weight initializer is checked against the shape the network needs, and the message names the
node and the initializer.
"""
from __future__ import annotations

import heapq
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import FormatError, GraphError, UnsupportedOpError, short
from ..limits import check, check_file, check_memory
from ..ir.graph import Graph
from ..ir.layer import WEIGHTED_OPS, Compression, Layer
from ..ir.shapes import infer
from ..weights import LayerWeights, check_weights
from .external import model_folder, resolve_external_data, tensor_bytes
from .model import COMPRESSION_KEY, FLATTEN_LAYER_DOC, ROUNDING_DOC, OnnxModel
from .pooling import onnx_axis_matches_caffe, onnx_pool_size


class _Tensor(NamedTuple):
    """An activation tensor: the sqsim layer that computes it and its ONNX rank (4 NCHW, 2 NC)."""
    layer: str
    rank: int


# The attributes sqsim reads, with their ONNX types (a file may declare another type for the same name).
_ATTR_TYPES = {**dict.fromkeys(("kernel_shape", "strides", "pads", "dilations"), "INTS"),
               **dict.fromkeys(("group", "transA", "transB", "size", "axis", "ceil_mode", "count_include_pad",
                                "allowzero", "training_mode"), "INT"),
               **dict.fromkeys(("alpha", "beta", "epsilon", "bias", "ratio"), "FLOAT"), "auto_pad": "STRING"}
_ATTR_WORDS = {"INTS": "a list of integers", "INT": "an integer", "FLOAT": "a number", "STRING": "a string"}


def _array(t, where: str) -> np.ndarray:
    """A TensorProto's values, its declared size checked first; external data must have been read
    in already (:func:`~sqsim.onnx_io.external.resolve_external_data`), so no file is opened here."""
    from onnx import TensorProto, numpy_helper
    if t.data_location == TensorProto.EXTERNAL:
        raise FormatError(f"{where}: refers to external data that was not resolved inside the model's folder")
    try:
        nbytes = tensor_bytes(t)
    except ValueError as e:
        raise FormatError(f"{where}: {e}") from None
    check_memory(nbytes, where)
    try:
        a = numpy_helper.to_array(t)
    except (ValueError, TypeError) as e:
        raise FormatError(f"{where}: its data does not match its dims {short(list(t.dims))} ({e})") from None
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):   # weights, biases, scales: never NaN or infinite
        raise FormatError(f"{where}: contains NaN or infinity")
    return a


def _label(node) -> str:
    return node.name or (node.output[0] if len(node.output) else "<unnamed>")


def _f32(value) -> float:
    """An ONNX float32 attribute as the shortest decimal that reads back as the same float32
    (so a Caffe alpha of 1e-4 stays 1e-4 rather than 9.99999974738e-05)."""
    return float(str(np.float32(value)))


class _Importer:
    def __init__(self, model, source: str):
        from onnx import helper
        self.helper = helper
        self.source = source
        g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if self.opset is None:
            raise FormatError(f"{source}: the model imports no version of the default ONNX opset")
        self._tensor_protos = {t.name: t for t in g.initializer}
        self._consts: dict[str, np.ndarray] = {}
        self.graph_output_names = [o.name for o in g.output]
        self.graph_inputs = [i for i in g.input if i.name not in self._tensor_protos]
        check("layers", len(g.node), f"{source}: nodes")
        for node in g.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                self._constant_node(node)
        self.nodes = self._sorted_nodes(list(g.node))
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for i, name in enumerate(node.input):
                if name:
                    self.consumers.setdefault(name, []).append((node, i))
        self.tensors: dict[str, _Tensor] = {}
        self.layers: dict[str, Layer] = {}     # insertion order = file order
        self.infos: dict = {}
        self.weights: dict[str, LayerWeights] = {}
        self.direct: dict[str, str] = {}       # layer -> the tensor its node wrote last (bias folding)
        self.batch = None

    # --- messages and lookups ---------------------------------------------------------------
    def where(self, node) -> str:
        return f"{self.source}: node {_label(node)!r} ({node.op_type})"

    def is_const(self, name: str) -> bool:
        return name in self._consts or name in self._tensor_protos

    def const_value(self, name: str) -> np.ndarray:
        if name not in self._consts:
            t = self._tensor_protos[name]
            self._consts[name] = _array(t, f"{self.source}: initializer {short(name)}")
        return self._consts[name]

    def const(self, node, i: int, what: str, required: bool = True) -> np.ndarray | None:
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            if required:
                raise GraphError(f"{self.where(node)}: missing input {i} ({what})")
            return None
        if not self.is_const(name):
            raise UnsupportedOpError(f"{self.where(node)}: {what} {name!r} must be a constant (an initializer "
                                     f"or Constant node); sqsim does not take it from the network")
        return self.const_value(name)

    def src(self, node, i: int = 0) -> _Tensor:
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            raise GraphError(f"{self.where(node)}: missing input {i}")
        if name not in self.tensors:
            raise UnsupportedOpError(f"{self.where(node)}: input {name!r} is a constant; sqsim layers take "
                                     f"activations computed by the network")
        return self.tensors[name]

    def attrs(self, node) -> dict:
        """The node's attributes as Python values, those sqsim reads checked for their type."""
        from onnx import AttributeProto
        out = {}
        for a in node.attribute:
            want = _ATTR_TYPES.get(a.name)
            if want is not None and a.type != getattr(AttributeProto, want):
                raise GraphError(f"{self.where(node)}: attribute {short(a.name)} must be {_ATTR_WORDS[want]}")
            try:
                out[a.name] = self.helper.get_attribute_value(a)
            except ValueError as e:
                raise GraphError(f"{self.where(node)}: attribute {short(a.name)}: {e}") from None
        return out

    def shape(self, tensor: _Tensor) -> tuple[int, int, int]:
        return self.infos[tensor.layer].output_shape

    # --- building ----------------------------------------------------------------------------
    def layer_name(self, node) -> str:
        base = node.name or node.output[0]
        name, i = base, 1
        while name in self.layers:
            name, i = f"{base}_{i}", i + 1
        return name

    def add(self, node, op: str, inputs: tuple[_Tensor, ...], rank: int, weights: LayerWeights | None = None,
            **attrs) -> Layer:
        name = self.layer_name(node)
        try:
            layer = Layer(name=name, op=op, inputs=tuple(t.layer for t in inputs), **attrs)
            info = infer(layer, tuple(self.shape(t) for t in inputs))
        except GraphError as e:
            raise GraphError(f"{self.where(node)}: {e}") from None
        self.layers[name] = layer
        self.infos[name] = info
        if weights is not None:
            self.weights[name] = weights
        self.tensors[node.output[0]] = _Tensor(name, rank)
        self.direct[name] = node.output[0]
        return layer

    def alias(self, node, tensor: _Tensor, rank: int | None = None) -> None:
        self.tensors[node.output[0]] = _Tensor(tensor.layer, tensor.rank if rank is None else rank)

    def foldable(self, node, tensor_name: str, ops=WEIGHTED_OPS) -> Layer | None:
        """The conv/fc layer writing ``tensor_name`` when ``node`` alone reads it (so its weights
        may absorb the node), else None."""
        t = self.tensors.get(tensor_name)
        if t is None or self.layers[t.layer].op not in ops or self.direct[t.layer] != tensor_name:
            return None
        if [n for n, _ in self.consumers.get(tensor_name, [])] != [node]:
            return None
        if tensor_name in self.graph_output_names:
            return None
        return self.layers[t.layer]

    def refold(self, node, layer: Layer, weight: np.ndarray, bias: np.ndarray) -> None:
        """Replace ``layer``'s weights after folding ``node`` into it; ``node``'s output is the layer's."""
        new = layer.replace(bias=True)
        self.layers[layer.name] = new
        self.infos[layer.name] = infer(new, self.infos[layer.name].input_shapes)
        self.weights[layer.name] = LayerWeights(np.ascontiguousarray(weight, dtype=np.float32),
                                                np.ascontiguousarray(bias, dtype=np.float32))
        rank = self.tensors[self.direct[layer.name]].rank
        self.tensors[node.output[0]] = _Tensor(layer.name, rank)
        self.direct[layer.name] = node.output[0]

    # --- graph structure ---------------------------------------------------------------------
    def _constant_node(self, node) -> None:
        a = {x.name: x for x in node.attribute}
        if "value" in a:
            value = _array(a["value"].t, self.where(node))
        elif "value_float" in a:
            value = np.array(a["value_float"].f, dtype=np.float32)
        elif "value_floats" in a:
            value = np.array(list(a["value_floats"].floats), dtype=np.float32)
        elif "value_int" in a:
            value = np.array(a["value_int"].i, dtype=np.int64)
        elif "value_ints" in a:
            value = np.array(list(a["value_ints"].ints), dtype=np.int64)
        else:
            raise UnsupportedOpError(f"{self.where(node)}: only dense numeric Constant values are supported "
                                     f"(got attribute(s) {sorted(a)})")
        self._consts[node.output[0]] = value

    def _sorted_nodes(self, nodes: list) -> list:
        """Nodes in a topological order (file order where free); dangling inputs and duplicate
        outputs are errors naming the node."""
        available = set(self._tensor_protos) | {i.name for i in self.graph_inputs}
        producer: dict[str, int] = {}
        for k, node in enumerate(nodes):
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                continue
            for out in node.output:
                if not out:
                    continue
                if out in producer or out in available or out in self._consts:
                    raise GraphError(f"{self.where(node)}: output {out!r} is also written by another node, "
                                     f"an initializer or a graph input")
                producer[out] = k
        available |= set(self._consts)
        deps = []
        for node in nodes:
            d = set()
            for name in node.input:
                if not name or name in available:
                    continue
                if name not in producer:
                    raise GraphError(f"{self.where(node)}: input {name!r} is not produced by any node, "
                                     f"initializer or graph input (dangling input)")
                d.add(producer[name])
            deps.append(d)
        # Kahn's algorithm taking the earliest ready node in file order, so a file that is
        # already sorted keeps its order (and an exported graph its layer order).
        skip = {k for k, n in enumerate(nodes) if n.op_type == "Constant" and n.domain in ("", "ai.onnx")}
        users: dict[int, list[int]] = {}
        waiting = {}
        for k, d in enumerate(deps):
            if k in skip:
                continue
            waiting[k] = len(d)
            for j in d:
                users.setdefault(j, []).append(k)
        ready = [k for k, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            k = heapq.heappop(ready)
            order.append(k)
            for u in users.get(k, []):
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) != len(waiting):
            stuck = [k for k in waiting if k not in set(order)]
            names = ", ".join(repr(_label(nodes[k])) for k in stuck[:5])
            raise GraphError(f"{self.source}: the nodes {names} form a cycle")
        for out in self.graph_output_names:
            if out not in producer and out not in available:
                raise GraphError(f"{self.source}: graph output {out!r} is not produced by any node")
        return [nodes[k] for k in order]

    def _input(self, value_info) -> None:
        t = value_info.type
        dims = list(t.tensor_type.shape.dim) if t.HasField("tensor_type") and t.tensor_type.HasField("shape") else None
        desc = "unknown" if dims is None else "[" + ", ".join(
            str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims) + "]"
        if dims is None or len(dims) != 4 or any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims[1:]):
            raise UnsupportedOpError(f"{self.source}: graph input {value_info.name!r} has shape {desc}; sqsim needs "
                                     f"a 4-D NCHW input with fixed channels, height and width")
        c, h, w = (d.dim_value for d in dims[1:])
        if dims[0].HasField("dim_value"):
            self.batch = dims[0].dim_value
        try:
            layer = Layer(value_info.name, "input", shape=(c, h, w))
        except GraphError as e:
            raise GraphError(f"{self.source}: graph input {value_info.name!r}: {e}") from None
        self.layers[layer.name] = layer
        self.infos[layer.name] = infer(layer, ())
        self.tensors[value_info.name] = _Tensor(layer.name, 4)
        self.direct[layer.name] = value_info.name

    def run(self, name: str) -> tuple[Graph, dict]:
        for vi in self.graph_inputs:
            self._input(vi)
        if not self.graph_inputs:
            raise UnsupportedOpError(f"{self.source}: the model has no graph input (all inputs are initializers)")
        for node in self.nodes:
            if node.domain not in ("", "ai.onnx"):
                raise UnsupportedOpError(f"{self.where(node)}: op {node.domain}::{node.op_type} is not supported "
                                         f"(sqsim imports default-domain ops: {', '.join(sorted(IMPORTERS))})")
            rule = IMPORTERS.get(node.op_type)
            if rule is None:
                raise UnsupportedOpError(f"{self.where(node)}: op type {node.op_type!r} is not supported "
                                         f"(sqsim imports: {', '.join(sorted(IMPORTERS))})")
            if not node.output or not node.output[0]:
                raise GraphError(f"{self.where(node)}: the node has no output")
            for i, out in enumerate(node.output[1:], start=1):
                if out and (out in self.consumers or out in self.graph_output_names):
                    raise UnsupportedOpError(f"{self.where(node)}: output {i} ({out!r}) is used; sqsim models "
                                             f"only a node's first output")
            rule(self, node)
        return Graph(list(self.layers.values()), name=name, source=self.source), self.weights


# --- one rule per op type -------------------------------------------------------------------------
def _ints(v, n, default):
    return list(v) if v is not None else [default] * n


def _finite_attrs(imp, node, a: dict, *names) -> None:
    for name in names:
        v = a.get(name, 0.0)
        if not isinstance(v, (int, float)) or not np.isfinite(v):
            raise GraphError(f"{imp.where(node)}: attribute {name} must be a finite number, got {short(v)}")


def _need_rank4(imp, node, t: _Tensor):
    if t.rank != 4:
        raise UnsupportedOpError(f"{imp.where(node)}: expects a 4-D NCHW input, got a 2-D one")


def _spatial_attrs(imp, node, a, kernel) -> tuple[tuple[int, int], list[int]]:
    """strides and [top, left, bottom, right] pads; dilations must be 1; auto_pad only NOTSET/VALID."""
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        raise UnsupportedOpError(f"{imp.where(node)}: auto_pad={auto_pad} is not supported (give explicit pads)")
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise UnsupportedOpError(f"{imp.where(node)}: dilations {list(a['dilations'])} are not supported (only 1)")
    strides = _ints(a.get("strides"), 2, 1)
    pads = [0, 0, 0, 0] if auto_pad == "VALID" else _ints(a.get("pads"), 4, 0)
    if len(strides) != 2 or len(pads) != 4 or len(kernel) != 2:
        raise UnsupportedOpError(f"{imp.where(node)}: only 2-D windows are supported (kernel {short(list(kernel))}, "
                                 f"strides {short(strides)}, pads {short(pads)})")
    if min(kernel) < 1 or min(strides) < 1 or min(pads) < 0:
        raise GraphError(f"{imp.where(node)}: kernel {list(kernel)} and strides {strides} must be positive, pads "
                         f"{pads} non-negative")
    return (strides[0], strides[1]), pads


def _conv(imp, node):
    x = imp.src(node, 0)
    _need_rank4(imp, node, x)
    w = imp.const(node, 1, "weight")
    wname = node.input[1]
    b = imp.const(node, 2, "bias", required=False)
    a = imp.attrs(node)
    if w.ndim != 4:
        raise GraphError(f"{imp.where(node)}: weight initializer {wname!r} has shape {list(w.shape)}; a 2-D conv "
                         f"needs (out, in/groups, kh, kw)")
    kernel = tuple(int(k) for k in w.shape[2:])
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != kernel:
        raise GraphError(f"{imp.where(node)}: kernel_shape {list(a['kernel_shape'])} does not match weight "
                         f"initializer {wname!r} of shape {list(w.shape)}")
    stride, pads = _spatial_attrs(imp, node, a, kernel)
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise UnsupportedOpError(f"{imp.where(node)}: asymmetric pads {pads} are not supported")
    layer = imp.add(node, "conv2d", (x,), 4, out_channels=int(w.shape[0]), bias=b is not None,
                    groups=int(a.get("group", 1)), kernel=kernel, stride=stride, pad=(pads[0], pads[1]))
    info = imp.infos[layer.name]
    if tuple(w.shape) != info.weight_shape:
        c = info.input_shapes[0][0]
        raise GraphError(f"{imp.where(node)}: weight initializer {wname!r} has shape {list(w.shape)}, but the "
                         f"input has {c} channels and group={layer.groups}, so (out, in/groups, kh, kw) = "
                         f"{list(info.weight_shape)} was expected")
    imp.weights[layer.name] = LayerWeights(np.ascontiguousarray(w, dtype=np.float32),
                                           _bias(imp, node, b, layer.out_channels, 2))


def _bias(imp, node, b, n: int, i: int):
    if b is None:
        return None
    if b.size == n and b.ndim <= 2 and (b.ndim < 2 or b.shape[0] == 1):
        return np.ascontiguousarray(b.reshape(n), dtype=np.float32)
    raise GraphError(f"{imp.where(node)}: bias initializer {node.input[i]!r} has shape {list(b.shape)}; "
                     f"expected ({n},)")


def _gemm(imp, node):
    x = imp.src(node, 0)
    a = imp.attrs(node)
    if x.rank != 2:
        raise UnsupportedOpError(f"{imp.where(node)}: Gemm input must be 2-D (flatten it first)")
    if a.get("transA", 0):
        raise UnsupportedOpError(f"{imp.where(node)}: transA=1 is not supported")
    w = imp.const(node, 1, "weight")
    wname = node.input[1]
    c = imp.const(node, 2, "bias", required=False)
    if w.ndim != 2:
        raise GraphError(f"{imp.where(node)}: weight initializer {wname!r} has shape {list(w.shape)}; expected 2-D")
    _finite_attrs(imp, node, a, "alpha", "beta")
    w = (w if a.get("transB", 0) else w.T).astype(np.float32) * np.float32(a.get("alpha", 1.0))
    out = int(w.shape[0])
    if c is not None:
        c = np.full(out, c.reshape(()), dtype=np.float32) if c.size == 1 else _bias(imp, node, c, out, 2)
        c = c * np.float32(a.get("beta", 1.0))
    _fc(imp, node, x, w, c, wname)


def _matmul(imp, node):
    x = imp.src(node, 0)
    if x.rank != 2:
        raise UnsupportedOpError(f"{imp.where(node)}: MatMul as fc needs a 2-D input (flatten it first)")
    w = imp.const(node, 1, "weight")
    wname = node.input[1]
    if w.ndim != 2:
        raise GraphError(f"{imp.where(node)}: weight initializer {wname!r} has shape {list(w.shape)}; expected 2-D")
    _fc(imp, node, x, np.ascontiguousarray(w.T), None, wname)


def _fc(imp, node, x, w, b, wname):
    layer = imp.add(node, "fc", (x,), 2, out_channels=int(w.shape[0]), bias=b is not None)
    info = imp.infos[layer.name]
    if tuple(w.shape) != info.weight_shape:
        raise GraphError(f"{imp.where(node)}: weight initializer {wname!r} gives an fc of shape (out, in) = "
                         f"{list(w.shape)}, but the input has {info.weight_shape[1]} elements per sample")
    imp.weights[layer.name] = LayerWeights(np.ascontiguousarray(w, dtype=np.float32), b)


def _to_flat_or_nchw(imp, node, x: _Tensor, kind: str):
    """Flatten/Reshape: fold into the fc that reads it, keep as a flatten layer, or (2-D to
    ``[N, K, 1, 1]``) alias, since sqsim already calls an fc output ``(K, 1, 1)``."""
    if kind == "nchw":
        imp.alias(node, x, rank=4)
        return
    out = node.output[0]
    users = imp.consumers.get(out, [])
    into_fc = users and all(n.op_type in ("Gemm", "MatMul") and i == 0 for n, i in users)
    if node.doc_string != FLATTEN_LAYER_DOC and into_fc and out not in imp.graph_output_names:
        imp.alias(node, x, rank=2)  # sqsim's fc flattens C,H,W itself, in the same order
    elif x.rank == 2 and node.doc_string != FLATTEN_LAYER_DOC:
        imp.alias(node, x)
    else:
        imp.add(node, "flatten", (x,), 2)


def _flatten(imp, node):
    x = imp.src(node, 0)
    axis = imp.attrs(node).get("axis", 1)
    if axis < 0:
        axis += x.rank
    if axis != 1:
        raise UnsupportedOpError(f"{imp.where(node)}: Flatten with axis={axis} is not supported (only 1: keep "
                                 f"the batch axis)")
    _to_flat_or_nchw(imp, node, x, "flat")


def _reshape(imp, node):
    x = imp.src(node, 0)
    target = [int(v) for v in imp.const(node, 1, "shape").reshape(-1)]
    if imp.attrs(node).get("allowzero", 0) and 0 in target:
        raise UnsupportedOpError(f"{imp.where(node)}: allowzero=1 with a 0 in the shape is not supported")
    n = int(np.prod(imp.shape(x)))
    batch_ok = target[:1] and (target[0] == 0 or (imp.batch is not None and target[0] == imp.batch)
                               or (target[0] == -1 and -1 not in target[1:]))
    rest = target[1:]
    if batch_ok and len(rest) == 1 and rest[0] in (-1, n):
        _to_flat_or_nchw(imp, node, x, "flat")
    elif batch_ok and x.rank == 2 and len(rest) == 3 and rest[0] in (-1, n) and rest[1:] == [1, 1]:
        _to_flat_or_nchw(imp, node, x, "nchw")
    else:
        raise UnsupportedOpError(f"{imp.where(node)}: Reshape to {target} is not supported (sqsim supports "
                                 f"flattening to [N, C*H*W] before an fc)")


def _relu(imp, node):
    x = imp.src(node, 0)
    imp.add(node, "relu", (x,), x.rank)


def _identity(imp, node):
    imp.alias(node, imp.src(node, 0))


def _dropout(imp, node):
    x = imp.src(node, 0)
    if imp.opset < 12:
        ratio = imp.attrs(node).get("ratio", 0.5)
    else:
        r = imp.const(node, 1, "ratio", required=False)
        ratio = 0.5 if r is None else float(r.reshape(()))
        t = imp.const(node, 2, "training_mode", required=False)
        if t is not None and bool(t.reshape(())):
            raise UnsupportedOpError(f"{imp.where(node)}: training_mode=true is not supported (inference only)")
    imp.add(node, "dropout", (x,), x.rank, ratio=_f32(ratio))


def _softmax(imp, node):
    x = imp.src(node, 0)
    axis = imp.attrs(node).get("axis", 1 if imp.opset < 13 else -1)
    if axis < 0:
        axis += x.rank
    _, h, w = imp.shape(x)
    # Before opset 13 Softmax normalises over all axes from `axis` on: the channel softmax only
    # when nothing follows the channel axis.
    if axis != 1 or (imp.opset < 13 and x.rank == 4 and h * w != 1):
        raise UnsupportedOpError(f"{imp.where(node)}: only a softmax over the channel axis is supported "
                                 f"(axis={axis}, opset {imp.opset}, input rank {x.rank})")
    imp.add(node, "softmax", (x,), x.rank)


def _lrn(imp, node):
    x = imp.src(node, 0)
    _need_rank4(imp, node, x)
    a = imp.attrs(node)
    # ONNX LRN: y = x / (bias + alpha/size * sum x^2)^beta, Caffe's ACROSS_CHANNELS formula.
    imp.add(node, "lrn", (x,), 4, local_size=int(a["size"]), alpha=_f32(a.get("alpha", 1e-4)),
            beta=_f32(a.get("beta", 0.75)), k=_f32(a.get("bias", 1.0)))


def _pool(imp, node):
    x = imp.src(node, 0)
    _need_rank4(imp, node, x)
    a = imp.attrs(node)
    if "kernel_shape" not in a:
        raise GraphError(f"{imp.where(node)}: kernel_shape is required")
    kernel = tuple(int(k) for k in a["kernel_shape"])
    stride, pads = _spatial_attrs(imp, node, a, kernel)
    ceil = bool(a.get("ceil_mode", 0))
    average = node.op_type == "AveragePool"
    include_pad = bool(a.get("count_include_pad", 0))
    _, h, w = imp.shape(x)
    onnx_out = [onnx_pool_size(size, k, s, pb, pe, ceil)
                for size, k, s, pb, pe in zip((h, w), kernel, stride, pads[:2], pads[2:])]
    op = "avgpool" if average else "maxpool"
    # the file's own rounding first, unless sqsim's exporter noted the layer's (same windows)
    flags = (not ceil, ceil) if node.doc_string == ROUNDING_DOC[not ceil] else (ceil, not ceil)
    for flag in flags:
        # sqsim pools pad symmetrically; the begin pads fix the window positions
        cand = Layer("candidate", op, ("x",), kernel=kernel, stride=stride, pad=(pads[0], pads[1]), ceil_mode=flag)
        try:
            caffe_out = infer(cand, (imp.shape(x),)).output_shape[1:]
        except GraphError:
            continue
        if all(onnx_axis_matches_caffe(size, k, s, pb, pe, oo, co, average, include_pad)
               for size, k, s, pb, pe, oo, co in zip((h, w), kernel, stride, pads[:2], pads[2:], onnx_out, caffe_out)):
            imp.add(node, op, (x,), 4, kernel=kernel, stride=stride, pad=(pads[0], pads[1]), ceil_mode=flag)
            return
    raise UnsupportedOpError(f"{imp.where(node)}: pads {pads} with ceil_mode={int(ceil)}"
                             f"{f', count_include_pad={int(include_pad)}' if average else ''} on a {h}x{w} input "
                             f"give windows that sqsim's Caffe-style pooling (symmetric pad) cannot express")


def _global_avgpool(imp, node):
    x = imp.src(node, 0)
    _need_rank4(imp, node, x)
    imp.add(node, "global_avgpool", (x,), 4)


def _concat(imp, node):
    xs = tuple(imp.src(node, i) for i in range(len(node.input)))
    rank = xs[0].rank
    axis = imp.attrs(node).get("axis")
    if axis is not None and axis < 0:
        axis += rank
    if axis != 1 or any(t.rank != rank for t in xs):
        raise UnsupportedOpError(f"{imp.where(node)}: only concatenation along the channel axis (1) of "
                                 f"same-rank inputs is supported (axis={axis})")
    imp.add(node, "concat", xs, rank)


def _add(imp, node):
    names = [n for n in node.input if n]
    consts = [n for n in names if imp.is_const(n)]
    if not consts:
        xs = tuple(imp.src(node, i) for i in range(len(node.input)))
        if len({t.rank for t in xs}) != 1:
            raise UnsupportedOpError(f"{imp.where(node)}: inputs of different rank are not supported")
        imp.add(node, "add", xs, xs[0].rank)
        return
    if node.op_type != "Add" or len(names) != 2 or len(consts) != 1:
        raise UnsupportedOpError(f"{imp.where(node)}: only an Add of two activations, or of one activation and "
                                 f"a constant per-channel bias, is supported")
    (bname,), xname = consts, next(n for n in names if n not in consts)
    layer = imp.foldable(node, xname)
    if layer is None:
        raise UnsupportedOpError(f"{imp.where(node)}: adding constant {bname!r} is supported only as the bias "
                                 f"of a conv/fc whose output this Add alone reads")
    rank = imp.tensors[xname].rank
    b = imp.const_value(bname)
    n = layer.out_channels
    dims = [1] * (rank - b.ndim) + list(b.shape)
    per_channel = len(dims) == rank and dims[0] == 1 and dims[1] in (1, n) and all(d == 1 for d in dims[2:])
    if not per_channel:
        raise UnsupportedOpError(f"{imp.where(node)}: constant {bname!r} of shape {list(b.shape)} is not a "
                                 f"per-channel bias for {n} channels (expected (1, {n}"
                                 f"{', 1, 1' if rank == 4 else ''}))")
    lw = imp.weights[layer.name]
    bias = (lw.bias if lw.bias is not None else np.zeros(n, np.float32)) + np.broadcast_to(
        b.reshape(-1).astype(np.float32), (n,))
    imp.refold(node, layer, lw.weight, bias)


def _batchnorm(imp, node):
    xname = node.input[0]
    imp.src(node, 0)
    a = imp.attrs(node)
    if a.get("training_mode", 0):
        raise UnsupportedOpError(f"{imp.where(node)}: training_mode=1 is not supported (inference only)")
    layer = imp.foldable(node, xname)
    if layer is None:
        raise UnsupportedOpError(f"{imp.where(node)}: BatchNormalization is supported only right after a "
                                 f"conv/fc whose output it alone reads (it is folded into that layer)")
    n = layer.out_channels
    params = []
    for i, what in enumerate(("scale", "B", "mean", "var"), start=1):
        v = imp.const(node, i, what)
        if v.shape != (n,):
            raise GraphError(f"{imp.where(node)}: {what} initializer {node.input[i]!r} has shape "
                             f"{list(v.shape)}; expected ({n},)")
        params.append(v.astype(np.float64))
    scale, shift, mean, var = params
    # y = scale * (conv(x) + b - mean) / sqrt(var + eps) + shift, folded into the conv's w and b
    _finite_attrs(imp, node, a, "epsilon")
    if not np.all(var + float(a.get("epsilon", 1e-5)) > 0):
        raise GraphError(f"{imp.where(node)}: var + epsilon must be positive for every channel")
    s = scale / np.sqrt(var + float(a.get("epsilon", 1e-5)))
    lw = imp.weights[layer.name]
    b = lw.bias.astype(np.float64) if lw.bias is not None else np.zeros(n)
    w = lw.weight * s.reshape((n,) + (1,) * (lw.weight.ndim - 1))
    imp.refold(node, layer, w, (b - mean) * s + shift)


IMPORTERS = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Relu": _relu,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_avgpool,
    "LRN": _lrn,
    "Concat": _concat,
    "Add": _add,
    "Sum": _add,
    "Dropout": _dropout,
    "Softmax": _softmax,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "BatchNormalization": _batchnorm,
    "Identity": _identity,
}


def _compression(model, graph_layers: dict, source: str) -> dict:
    props = {p.key: p.value for p in model.metadata_props}
    if COMPRESSION_KEY not in props:
        return {}
    try:
        doc = json.loads(props[COMPRESSION_KEY])
        if not isinstance(doc, dict):
            raise ValueError("not a mapping")
        out = {}
        for name, d in doc.items():
            if name not in graph_layers or graph_layers[name].op not in WEIGHTED_OPS:
                raise ValueError(f"layer {name!r} is not a conv/fc layer of the model")
            if not isinstance(d, dict) or set(d) - {"density", "weight_bits", "index_bits"}:
                raise ValueError(f"layer {name!r}: expected density, weight_bits, index_bits")
            out[name] = Compression(**d)
        return out
    except (ValueError, TypeError) as e:
        raise FormatError(f"{source}: metadata {COMPRESSION_KEY!r} is malformed ({e})") from None


def model_from_proto(model, source: str = "<onnx model>") -> OnnxModel:
    """Convert an ``onnx.ModelProto`` into a sqsim graph and weights.

    Raises
    ------
    UnsupportedOpError
        An op sqsim does not model (the message names the node and its op type), or a supported op
        used in a way sqsim cannot express (asymmetric conv pads, dilation, a softmax not over
        channels, a BatchNormalization not after a conv).
    GraphError
        A dangling input, a cycle, an initializer of the wrong shape (named), a shape mismatch.
    FormatError
        Initializer data inconsistent with its dims, or malformed sqsim metadata.
    """
    imp = _Importer(model, source)
    graph, weights = imp.run(model.graph.name or Path(source).stem)
    profiles = _compression(model, imp.layers, source)
    if profiles:
        graph = graph.with_compression(profiles)
    weights = check_weights(graph, weights, source=source)
    return OnnxModel(graph=graph, weights=weights, source=source)


def load_onnx(path) -> OnnxModel:
    """Read an ``.onnx`` file: the graph (layer names = node names) and its weights.

    Raises
    ------
    FormatError
        Unreadable, truncated or not an ONNX protobuf.
    UnsupportedOpError, GraphError
        As :func:`model_from_proto`.
    """
    import onnx
    path = Path(path)
    check_file(path, "binary")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FormatError(f"{path}: cannot read ONNX file ({e.strerror or e})") from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf DecodeError and friends: the file is not a model
        raise FormatError(f"{path}: not a readable ONNX model ({type(e).__name__}: {short(str(e), 200)})") from None
    if not model.graph.node and not model.graph.input:
        raise FormatError(f"{path}: not an ONNX model (no graph)")
    # every external-data reference (initializers, Constant nodes, subgraphs), from the model's folder only
    resolve_external_data(model, model_folder(path), str(path))
    return model_from_proto(model, source=str(path))
