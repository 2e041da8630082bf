"""Read an OpenVINO IR v10 network (``.xml`` graph + ``.bin`` weight blob) as a sqsim graph.

Covers what the Model Optimizer writes for Caffe CNNs such as SqueezeNet v1.1
(``data/squeezenet_v1.1_openvino``): Parameter, Const, Convolution, Add, ReLU, MaxPool, AvgPool,
Concat, ReduceMean, SoftMax, Result, and the ShapeOf/Squeeze/Range subgraph that computes
ReduceMean's axes (folded to constants here, since every shape is static).

The Model Optimizer splits a Caffe conv into ``<name>/WithoutBiases`` (Convolution) and an Add of
the bias named ``<name>``; the reader folds the Add back into the conv's bias and gives the layer
the Add's name, so SqueezeNet's layers come out as ``conv1``, ``fire2/squeeze1x1``, ...,
``conv10``.  An Add of a per-channel constant right on the input is the folded mean subtraction
(``--mean_values``): it is returned as :attr:`OpenVinoModel.mean`, not made a layer.

Every layer's output shape as sqsim infers it is checked against the dims the XML declares, and
every constant against the length of the ``.bin`` file.  The XML is parsed with
``defusedxml`` when installed, else ``xml.etree`` after rejecting any DOCTYPE or ENTITY
declaration (no entity expansion).
"""
from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import FormatError, GraphError, UnsupportedOpError, short
from ..limits import check, check_file
from ..weights import LayerWeights, check_weights
from .graph import Graph
from .layer import Layer
from .shapes import infer

IR_VERSIONS = ("10",)
_DTYPES = {"f16": "<f2", "f32": "<f4", "f64": "<f8", "i64": "<i8", "i32": "<i4", "i8": "i1", "u8": "u1"}
_MO_SUFFIXES = ("/WithoutBiases", "/reduce")  # Model Optimizer's suffixes on a decomposed layer's nodes


class OpenVinoModel(NamedTuple):
    """A network read from OpenVINO IR.

    Attributes
    ----------
    graph : sqsim.ir.Graph
    weights : dict
        ``{layer name: LayerWeights}``, float32 (the blob's fp16 values, exactly).
    mean : numpy.ndarray or None
        Per input channel, the value the folded mean-Add subtracts from the input (in the input's
        channel order, BGR for Caffe models): feed ``image - mean`` to ``graph``.  None when the IR
        has no mean-Add.
    """
    graph: Graph
    weights: dict
    mean: np.ndarray | None


@dataclass
class _Node:
    id: str
    name: str
    type: str
    data: dict
    inputs: dict      # port id -> dims
    outputs: dict     # port id -> dims


class _Act(NamedTuple):
    """An activation: the sqsim layer computing it and its dims in the IR (batch included)."""
    layer: str
    dims: tuple


def _parse_xml(raw: bytes, source: str):
    if re.search(rb"<!\s*(DOCTYPE|ENTITY)", raw, re.IGNORECASE):
        raise FormatError(f"{source}: DOCTYPE/ENTITY declarations are not allowed in an OpenVINO IR file")
    try:
        from defusedxml.ElementTree import fromstring  # type: ignore
    except ImportError:
        from xml.etree.ElementTree import fromstring
    from xml.etree.ElementTree import ParseError
    try:
        return fromstring(raw)
    except ParseError as e:
        line, col = getattr(e, "position", (None, None))
        raise FormatError(f"{source}:{line}: malformed XML (column {col}): {e}") from None


def _dims(port, where: str) -> tuple:
    if not (port.get("id") or "").isdigit():
        raise FormatError(f"{where}: a port id must be a non-negative integer, got {short(port.get('id'))}")
    try:
        dims = port.findall("dim")
        if len(dims) > 8 or any(len((d.text or "").strip()) > 30 for d in dims):
            raise ValueError
        return tuple(int(d.text) for d in dims)
    except (TypeError, ValueError):
        raise FormatError(f"{where}: port {short(port.get('id'))} has a non-integer <dim> or more than 8") from None


def _ints(text: str | None, where: str, key: str) -> tuple:
    if text is None:
        raise FormatError(f"{where}: attribute {key!r} is required")
    try:
        vals = text.split(",")
        if len(vals) > 8 or any(len(v) > 30 for v in vals):
            raise ValueError
        return tuple(int(v) for v in vals if v.strip() != "")
    except ValueError:
        raise FormatError(f"{where}: attribute {key!r} must be at most 8 comma-separated integers, got "
                          f"{short(text)}") from None


def _int_attr(n, key: str, default: str) -> int:
    vals = _ints(n.data.get(key, default), f"layer {short(n.name)} ({n.type})", key)
    if len(vals) != 1:
        raise FormatError(f"layer {short(n.name)} ({n.type}): attribute {key!r} must be one integer")
    return vals[0]


class _Reader:
    def __init__(self, xml_path: Path, bin_path: Path):
        self.source = str(xml_path)
        check_file(xml_path, "text")
        check_file(bin_path, "binary")
        try:
            raw = xml_path.read_bytes()
        except OSError as e:
            raise FormatError(f"{xml_path}: cannot read ({e.strerror or e})") from None
        try:
            self.blob = bin_path.read_bytes()
        except OSError as e:
            raise FormatError(f"{bin_path}: cannot read the weights blob ({e.strerror or e})") from None
        self.bin_source = str(bin_path)
        root = _parse_xml(raw, self.source)
        if root.tag != "net":
            raise FormatError(f"{self.source}: root element is <{root.tag}>, expected <net> (OpenVINO IR)")
        if root.get("version") not in IR_VERSIONS:
            raise FormatError(f"{self.source}: IR version {root.get('version')!r} is not supported "
                              f"(sqsim reads IR v{', v'.join(IR_VERSIONS)})")
        self.net_name = root.get("name") or xml_path.stem
        self.nodes: dict[str, _Node] = {}
        layers_el = root.find("layers")
        if layers_el is None:
            raise FormatError(f"{self.source}: no <layers> element")
        check("layers", len(layers_el.findall("layer")), f"{self.source}: layers")
        for el in layers_el.findall("layer"):
            lid, name, typ = el.get("id"), el.get("name"), el.get("type")
            if lid is None or name is None or typ is None:
                raise FormatError(f"{self.source}: a <layer> lacks id, name or type ({dict(el.attrib)})")
            if lid in self.nodes:
                raise FormatError(f"{self.source}: duplicate layer id {lid!r}")
            where = f"{self.source}: layer {name!r} ({typ})"
            data = el.find("data")
            ins = {p.get("id"): _dims(p, where) for p in (el.find("input") if el.find("input") is not None else [])}
            outs = {p.get("id"): _dims(p, where) for p in (el.find("output") if el.find("output") is not None else [])}
            self.nodes[lid] = _Node(lid, name, typ, dict(data.attrib) if data is not None else {}, ins, outs)
        self.feeds: dict[tuple, tuple] = {}
        self.uses: dict[tuple, int] = {}
        edges_el = root.find("edges")
        for e in (edges_el.findall("edge") if edges_el is not None else []):
            src, dst = (e.get("from-layer"), e.get("from-port")), (e.get("to-layer"), e.get("to-port"))
            if src[0] not in self.nodes or src[1] not in self.nodes[src[0]].outputs:
                raise FormatError(f"{self.source}: an edge leaves layer id {src[0]!r} port {src[1]!r}: no such "
                                  f"layer or output port")
            if dst[0] not in self.nodes or dst[1] not in self.nodes[dst[0]].inputs:
                raise FormatError(f"{self.source}: an edge enters layer id {dst[0]!r} port {dst[1]!r}: no such "
                                  f"layer or input port")
            if dst in self.feeds:
                raise FormatError(f"{self.source}: layer {self.nodes[dst[0]].name!r} input port {dst[1]} is fed twice")
            self.feeds[dst] = src
            self.uses[src] = self.uses.get(src, 0) + 1
        for n in self.nodes.values():
            for port in n.inputs:
                if (n.id, port) not in self.feeds:
                    raise FormatError(f"{self.source}: layer {n.name!r} ({n.type}) input port {port} is not "
                                      f"connected")
        self.values: dict[tuple, object] = {}   # (layer id, port) -> np.ndarray (constant) or _Act
        self.layers: dict[str, Layer] = {}
        self.infos: dict = {}
        self.weights: dict[str, LayerWeights] = {}
        self.mean = None
        self.all_names = {n.name for n in self.nodes.values()}

    # --- helpers -------------------------------------------------------------------------------
    def where(self, n: _Node) -> str:
        return f"{self.source}: layer {n.name!r} ({n.type})"

    def order(self) -> list[_Node]:
        """Layers in a topological order, earliest id first where free."""
        key = {lid: (int(lid) if lid.isdigit() else 0, i) for i, lid in enumerate(self.nodes)}
        waiting = {lid: len({self.feeds[(lid, p)][0] for p in n.inputs}) for lid, n in self.nodes.items()}
        users: dict[str, set] = {}
        for (dst, _), (src, _) in self.feeds.items():
            users.setdefault(src, set()).add(dst)
        ready = [(key[k], k) for k, c in waiting.items() if c == 0]
        heapq.heapify(ready)
        out = []
        while ready:
            _, k = heapq.heappop(ready)
            out.append(self.nodes[k])
            for u in users.get(k, ()):
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, (key[u], u))
        if len(out) != len(self.nodes):
            stuck = [n.name for k, n in self.nodes.items() if waiting[k] > 0][:5]
            raise FormatError(f"{self.source}: the layers {stuck} form a cycle")
        return out

    def input(self, n: _Node, port_index: int):
        ports = sorted(n.inputs, key=int)
        if port_index >= len(ports):
            raise FormatError(f"{self.where(n)}: expected at least {port_index + 1} inputs, got {len(ports)}")
        return self.values[self.feeds[(n.id, ports[port_index])]]

    def act(self, n: _Node, i: int) -> _Act:
        v = self.input(n, i)
        if not isinstance(v, _Act):
            raise UnsupportedOpError(f"{self.where(n)}: input {i} is a constant; expected an activation")
        return v

    def const(self, n: _Node, i: int, what: str) -> np.ndarray:
        v = self.input(n, i)
        if isinstance(v, _Act):
            raise UnsupportedOpError(f"{self.where(n)}: {what} (input {i}) must be a constant")
        return v

    def out_port(self, n: _Node) -> str:
        if len(n.outputs) != 1:
            raise UnsupportedOpError(f"{self.where(n)}: expected one output port, got {len(n.outputs)}")
        return next(iter(n.outputs))

    def set_out(self, n: _Node, value) -> None:
        self.values[(n.id, self.out_port(n))] = value

    def only_use(self, n: _Node, i: int) -> bool:
        return self.uses.get(self.feeds[(n.id, sorted(n.inputs, key=int)[i])], 0) == 1

    def canonical(self, name: str) -> str:
        for suffix in _MO_SUFFIXES:
            base = name[: -len(suffix)] if name.endswith(suffix) else None
            if base and base not in self.all_names and base not in self.layers:
                return base
        return name

    def add(self, n: _Node, op: str, inputs: tuple[_Act, ...], name: str | None = None, **attrs) -> Layer:
        name = name or self.canonical(n.name)
        if name in self.layers:
            raise FormatError(f"{self.where(n)}: duplicate layer name {name!r}")
        try:
            layer = Layer(name=name, op=op, inputs=tuple(a.layer for a in inputs), **attrs)
            info = infer(layer, tuple(self.infos[a.layer].output_shape for a in inputs))
        except GraphError as e:
            raise GraphError(f"{self.where(n)}: {e}") from None
        dims = n.outputs[self.out_port(n)]
        self.check_dims(n, info.output_shape, dims)
        self.layers[name] = layer
        self.infos[name] = info
        self.set_out(n, _Act(name, dims))
        return layer

    def check_dims(self, n: _Node, shape: tuple, dims: tuple) -> None:
        per_sample = tuple(dims[1:])
        ok = per_sample == tuple(shape) or (len(per_sample) == 1 and per_sample[0] == math.prod(shape))
        if not ok:
            raise FormatError(f"{self.where(n)}: the IR declares output dims {list(dims)}, but sqsim infers "
                              f"{'x'.join(map(str, shape))} per sample")

    def per_channel(self, n: _Node, value: np.ndarray, channels: int, what: str) -> np.ndarray:
        dims = (1,) * (4 - value.ndim) + tuple(value.shape)
        if len(dims) != 4 or dims[0] != 1 or dims[1] != channels or dims[2:] != (1, 1):
            raise UnsupportedOpError(f"{self.where(n)}: {what} of shape {list(value.shape)} is not per channel "
                                     f"for {channels} channels (expected [1, {channels}, 1, 1])")
        return value.reshape(channels).astype(np.float32)

    # --- run -----------------------------------------------------------------------------------
    def run(self) -> OpenVinoModel:
        for n in self.order():
            rule = RULES.get(n.type)
            if rule is None:
                raise UnsupportedOpError(f"{self.where(n)}: layer type {short(n.type)} is not supported (sqsim reads "
                                         f"{', '.join(sorted(RULES))})")
            if rule in _FOLDING:
                try:
                    rule(self, n)
                except (ValueError, TypeError, IndexError, ZeroDivisionError) as e:  # numpy's shape errors
                    raise FormatError(f"{self.where(n)}: cannot fold this shape computation ({e})") from None
            else:
                rule(self, n)
        graph = Graph(list(self.layers.values()), name=self.net_name, source=self.source)
        weights = check_weights(graph, self.weights, source=self.source)
        return OpenVinoModel(graph, weights, self.mean)


# --- one rule per layer type ----------------------------------------------------------------------
def _parameter(r: _Reader, n: _Node):
    dims = n.outputs[r.out_port(n)]
    if len(dims) != 4:
        raise UnsupportedOpError(f"{r.where(n)}: input dims {list(dims)}; sqsim needs a 4-D NCHW input")
    try:
        layer = Layer(n.name, "input", shape=tuple(dims[1:]))
    except GraphError as e:
        raise FormatError(f"{r.where(n)}: {e}") from None
    r.layers[layer.name] = layer
    r.infos[layer.name] = infer(layer, ())
    r.set_out(n, _Act(layer.name, dims))


def _const(r: _Reader, n: _Node):
    where = r.where(n)
    etype = n.data.get("element_type")
    if etype not in _DTYPES:
        raise UnsupportedOpError(f"{where}: element_type {etype!r} is not supported ({', '.join(_DTYPES)})")
    shape = _ints(n.data.get("shape"), where, "shape")
    offset, size = (_ints(n.data.get(k), where, k) for k in ("offset", "size"))
    if len(offset) != 1 or len(size) != 1 or offset[0] < 0 or size[0] < 0:
        raise FormatError(f"{where}: offset and size must be single non-negative integers")
    offset, size = offset[0], size[0]
    dtype = np.dtype(_DTYPES[etype])
    count = math.prod(shape)
    if size != count * dtype.itemsize:
        raise FormatError(f"{where}: size {size} bytes does not match shape {list(shape)} of {etype} "
                          f"({count * dtype.itemsize} bytes)")
    if offset + size > len(r.blob):
        raise FormatError(f"{r.bin_source}: truncated: constant {n.name!r} needs bytes [{offset}, {offset + size}) "
                          f"but the file has {len(r.blob)} bytes")
    r.set_out(n, np.frombuffer(r.blob, dtype=dtype, count=count, offset=offset).reshape(shape))


def _window_attrs(r: _Reader, n: _Node, kernel_key: str | None):
    where = r.where(n)
    strides = _ints(n.data.get("strides"), where, "strides")
    pb = _ints(n.data.get("pads_begin"), where, "pads_begin")
    pe = _ints(n.data.get("pads_end"), where, "pads_end")
    auto_pad = n.data.get("auto_pad", "explicit").lower()
    if auto_pad == "valid":
        pb = pe = (0, 0)
    # same_upper/same_lower: MO writes the resolved pads too; the output dims check verifies them
    kernel = _ints(n.data.get(kernel_key), where, kernel_key) if kernel_key else None
    if len(strides) != 2 or len(pb) != 2 or len(pe) != 2 or (kernel is not None and len(kernel) != 2):
        raise UnsupportedOpError(f"{where}: only 2-D windows are supported")
    return kernel, strides, pb, pe


def _convolution(r: _Reader, n: _Node):
    x = r.act(n, 0)
    w = r.const(n, 1, "weights")
    if w.ndim != 4:
        raise FormatError(f"{r.where(n)}: weights of shape {list(w.shape)}; expected [out, in, kh, kw]")
    _, strides, pb, pe = _window_attrs(r, n, None)
    if any(d != 1 for d in _ints(n.data.get("dilations", "1,1"), r.where(n), "dilations")):
        raise UnsupportedOpError(f"{r.where(n)}: dilations other than 1 are not supported")
    if pb != pe:
        raise UnsupportedOpError(f"{r.where(n)}: asymmetric pads {list(pb)} / {list(pe)} are not supported")
    layer = r.add(n, "conv2d", (x,), out_channels=int(w.shape[0]), bias=False, kernel=tuple(w.shape[2:]),
                  stride=strides, pad=pb)
    info = r.infos[layer.name]
    if tuple(w.shape) != info.weight_shape:
        raise FormatError(f"{r.where(n)}: weights of shape {list(w.shape)} do not fit an input of "
                          f"{info.input_shapes[0][0]} channels (expected {list(info.weight_shape)})")
    r.weights[layer.name] = LayerWeights(w.astype(np.float32), None)


def _add(r: _Reader, n: _Node):
    a, b = r.input(n, 0), r.input(n, 1)
    if isinstance(a, _Act) and isinstance(b, _Act):
        r.add(n, "add", (a, b))
        return
    if not (isinstance(a, _Act) or isinstance(b, _Act)):
        raise UnsupportedOpError(f"{r.where(n)}: adding two constants is not supported")
    x, c, xi = (a, b, 0) if isinstance(a, _Act) else (b, a, 1)
    src = r.layers[x.layer]
    if not r.only_use(n, xi):
        raise UnsupportedOpError(f"{r.where(n)}: adding a constant is supported only as a conv bias or the input "
                                 f"mean, on a tensor nothing else reads")
    if src.op == "input":
        # Model Optimizer's --mean_values: input + (-mean)
        if r.mean is not None:
            raise UnsupportedOpError(f"{r.where(n)}: a second constant Add on the input is not supported")
        r.mean = -r.per_channel(n, c, src.shape[0], "mean")
        r.set_out(n, x)
        return
    if src.op != "conv2d":
        raise UnsupportedOpError(f"{r.where(n)}: adding a constant after a {src.op} layer is not supported")
    lw = r.weights.pop(src.name)
    bias = r.per_channel(n, c, src.out_channels, "bias") + (lw.bias if lw.bias is not None else 0)
    # the Add carries the Caffe layer's name (its Convolution is '<name>/WithoutBiases')
    name = n.name if n.name not in r.layers or n.name == src.name else src.name
    del r.layers[src.name]
    info = r.infos.pop(src.name)
    layer = src.replace(name=name, bias=True)
    r.layers[name] = layer
    r.infos[name] = infer(layer, info.input_shapes)
    r.check_dims(n, r.infos[name].output_shape, n.outputs[r.out_port(n)])
    r.weights[name] = LayerWeights(lw.weight, bias.astype(np.float32))
    r.set_out(n, _Act(name, n.outputs[r.out_port(n)]))


def _relu(r: _Reader, n: _Node):
    r.add(n, "relu", (r.act(n, 0),))


def _pool(r: _Reader, n: _Node):
    from ..onnx_io.pooling import onnx_axis_matches_caffe
    x = r.act(n, 0)
    kernel, strides, pb, pe = _window_attrs(r, n, "kernel")
    average = n.type == "AvgPool"
    include_pad = average and n.data.get("exclude-pad", "false").lower() != "true"
    ceil = n.data.get("rounding_type", "floor").lower() == "ceil"
    op = "avgpool" if average else "maxpool"
    _, h, w = r.infos[x.layer].output_shape
    dims = n.outputs[r.out_port(n)]
    for flag in (ceil, not ceil):
        cand = Layer("candidate", op, ("x",), kernel=kernel, stride=strides, pad=pb, ceil_mode=flag)
        try:
            caffe_out = infer(cand, ((r.infos[x.layer].output_shape),)).output_shape[1:]
        except GraphError:
            continue
        if all(onnx_axis_matches_caffe(size, k, s, b, e, o, co, average, include_pad)
               for size, k, s, b, e, o, co in zip((h, w), kernel, strides, pb, pe, dims[2:], caffe_out)):
            r.add(n, op, (x,), kernel=kernel, stride=strides, pad=pb, ceil_mode=flag)
            return
    raise UnsupportedOpError(f"{r.where(n)}: pads {list(pb)}/{list(pe)} with {'ceil' if ceil else 'floor'} "
                             f"rounding give windows sqsim's Caffe-style pooling cannot express")


def _concat(r: _Reader, n: _Node):
    axis = _int_attr(n, "axis", "0")
    xs = tuple(r.act(n, i) for i in range(len(n.inputs)))
    if axis < 0:
        axis += len(xs[0].dims)
    if axis != 1:
        raise UnsupportedOpError(f"{r.where(n)}: only concatenation along channels (axis 1) is supported")
    r.add(n, "concat", xs)


def _softmax(r: _Reader, n: _Node):
    x = r.act(n, 0)
    axis = _int_attr(n, "axis", "1")
    if axis < 0:
        axis += len(x.dims)
    if axis != 1:
        raise UnsupportedOpError(f"{r.where(n)}: only a softmax over channels (axis 1) is supported")
    r.add(n, "softmax", (x,))


def _reduce_mean(r: _Reader, n: _Node):
    x = r.act(n, 0)
    if len(x.dims) != 4:
        raise UnsupportedOpError(f"{r.where(n)}: only a mean over the spatial axes of a 4-D input is supported")
    axes = {int(a) % 4 for a in r.const(n, 1, "axes").reshape(-1)}
    if axes != {2, 3}:
        raise UnsupportedOpError(f"{r.where(n)}: only a mean over the spatial axes (2, 3) is supported, got "
                                 f"{sorted(axes)}")
    r.add(n, "global_avgpool", (x,))


# Shape arithmetic: every shape is static, so these fold to constants.
def _shape_of(r: _Reader, n: _Node):
    v = r.input(n, 0)
    r.set_out(n, np.array(v.dims if isinstance(v, _Act) else v.shape, dtype=np.int64))


def _squeeze(r: _Reader, n: _Node):
    v = r.const(n, 0, "data")
    axes = tuple(int(a) % max(v.ndim, 1) for a in r.const(n, 1, "axes").reshape(-1)) if len(n.inputs) > 1 else None
    r.set_out(n, np.squeeze(v, axis=axes))


def _unsqueeze(r: _Reader, n: _Node):
    v = r.const(n, 0, "data")
    r.set_out(n, np.expand_dims(v, tuple(int(a) for a in r.const(n, 1, "axes").reshape(-1))))


def _range(r: _Reader, n: _Node):
    start, stop, step = (float(r.const(n, i, what).reshape(())) for i, what in enumerate(("start", "stop", "step")))
    if not all(math.isfinite(v) for v in (start, stop, step)) or step == 0:
        raise FormatError(f"{r.where(n)}: start, stop and step must be finite, step non-zero")
    count = max(0, math.ceil((stop - start) / step))
    check("tensor_elements", count, f"{r.where(n)}: values", "")
    dtype = np.result_type(*(r.const(n, i, "") for i in range(3)))
    r.set_out(n, np.arange(start, stop, step, dtype=dtype))


_FOLDING = (_shape_of, _squeeze, _unsqueeze, _range)


def _result(r: _Reader, n: _Node):
    r.act(n, 0)  # the network's output; sqsim's graph outputs are the layers nobody reads


RULES = {
    "Parameter": _parameter,
    "Const": _const,
    "Convolution": _convolution,
    "Add": _add,
    "ReLU": _relu,
    "MaxPool": _pool,
    "AvgPool": _pool,
    "Concat": _concat,
    "SoftMax": _softmax,
    "ReduceMean": _reduce_mean,
    "ShapeOf": _shape_of,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Range": _range,
    "Result": _result,
}


def load_openvino(xml_path, bin_path=None) -> OpenVinoModel:
    """Read an OpenVINO IR v10 network.

    Parameters
    ----------
    xml_path : path-like
        The ``.xml`` graph.
    bin_path : path-like, optional
        The weights blob; default: ``xml_path`` with suffix ``.bin``.

    Returns
    -------
    OpenVinoModel
        ``(graph, weights, mean)``; see :class:`OpenVinoModel`.

    Raises
    ------
    FormatError
        Unreadable, malformed or truncated XML/blob, a DOCTYPE/ENTITY declaration, inconsistent dims.
    UnsupportedOpError
        A layer type or attribute sqsim does not model (named).
    """
    xml_path = Path(xml_path)
    bin_path = Path(bin_path) if bin_path is not None else xml_path.with_suffix(".bin")
    return _Reader(xml_path, bin_path).run()
