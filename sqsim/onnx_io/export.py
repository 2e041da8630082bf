"""Export a sqsim graph and its dense weights to ONNX (default domain, opset 13).

Each sqsim layer becomes one node whose name and output tensor are the layer's name, so an import
restores the same graph.  Weights are initializers ``<layer>.weight`` / ``<layer>.bias`` in Caffe
layout (conv ``(out, in/groups, kh, kw)`` is ONNX's layout too; fc ``(out, in)`` goes to Gemm with
``transB=1``).  One rule per op, in :data:`EXPORTERS`.

Tensors after an fc are 2-D ``[N, K]`` in ONNX (Gemm's output) while sqsim calls them ``(K, 1, 1)``;
the exporter inserts a Flatten in front of an fc fed by a 4-D tensor and a Reshape to
``[N, K, 1, 1]`` in front of a 4-D-only op fed by a 2-D one.  Those helper nodes carry
:data:`~sqsim.onnx_io.model.AUXILIARY_DOC` as ``doc_string`` and fold away on import.
"""
from __future__ import annotations

import json

import numpy as np

from ..errors import FormatError, UnsupportedOpError
from ..paths import atomic_write_bytes
from ..weights import check_weights
from .model import AUXILIARY_DOC, COMPRESSION_KEY, FLATTEN_LAYER_DOC, ROUNDING_DOC
from .pooling import caffe_axis_to_onnx

OPSET = 13
IR_VERSION = 7  # the lowest IR version opset 13 needs: readable by every runtime that knows opset 13
BATCH = "N"     # symbolic batch dimension of inputs and outputs


class _Exporter:
    """Accumulates nodes and initializers; knows each layer's ONNX rank (4: NCHW, 2: NC)."""

    def __init__(self, graph, weights):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.graph, self.weights = graph, weights
        self.nodes, self.initializers, self.inputs = [], [], []
        self.rank: dict[str, int] = {}
        self.used = set(graph.order)   # every layer name is taken first: helpers get fresh names
        self._as_nchw: dict[str, str] = {}

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name

    def init(self, base: str, array) -> str:
        name = self.fresh(base)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op_type: str, inputs, layer, rank: int, **attrs) -> None:
        """The node of a sqsim layer: node name and output tensor are the layer name."""
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [layer.name], name=layer.name, **attrs))
        self.rank[layer.name] = rank

    def aux(self, op_type: str, inputs, base: str, doc: str = AUXILIARY_DOC, **attrs) -> str:
        name = self.fresh(base)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [name], name=name, doc_string=doc, **attrs))
        return name

    def nchw(self, src: str) -> str:
        """``src`` as a 4-D tensor (a 2-D ``[N, K]`` is reshaped to ``[N, K, 1, 1]``)."""
        if self.rank[src] == 4:
            return src
        if src not in self._as_nchw:
            shape = self.init(f"{src}/nchw.shape", np.array([0, -1, 1, 1], dtype=np.int64))
            self._as_nchw[src] = self.aux("Reshape", [src, shape], f"{src}/nchw")
        return self._as_nchw[src]

    def weight_inputs(self, layer) -> list[str]:
        lw = self.weights[layer.name]
        names = [self.init(f"{layer.name}.weight", lw.weight)]
        if lw.bias is not None:
            names.append(self.init(f"{layer.name}.bias", lw.bias))
        return names


# --- one rule per op --------------------------------------------------------------------------
def _input(ex, layer):
    from onnx import TensorProto
    c, h, w = layer.shape
    ex.inputs.append(ex.helper.make_tensor_value_info(layer.name, TensorProto.FLOAT, [BATCH, c, h, w]))
    ex.rank[layer.name] = 4


def _conv(ex, layer):
    ph, pw = layer.pad
    ex.node("Conv", [ex.nchw(layer.inputs[0])] + ex.weight_inputs(layer), layer, 4,
            kernel_shape=list(layer.kernel), strides=list(layer.stride), pads=[ph, pw, ph, pw],
            group=layer.groups, dilations=[1, 1])


def _fc(ex, layer):
    src = layer.inputs[0]
    if ex.rank[src] != 2:  # Caffe's InnerProduct flattens C,H,W in that order, as ONNX Flatten does
        src = ex.aux("Flatten", [src], f"{layer.name}/flatten", axis=1)
    ex.node("Gemm", [src] + ex.weight_inputs(layer), layer, 2, transB=1)


def _pool(ex, layer):
    info = ex.graph.info(layer.name)
    _, h, w = info.input_shapes[0]
    _, oh, ow = info.output_shape
    average = layer.op == "avgpool"
    # Prefer the layer's own rounding; the other one only when it gives the same windows.
    for flag in (layer.ceil_mode, not layer.ceil_mode):
        axes = [caffe_axis_to_onnx(size, k, s, p, o, flag, average)
                for size, k, s, p, o in zip((h, w), layer.kernel, layer.stride, layer.pad, (oh, ow))]
        if None not in axes:
            break
    else:
        raise UnsupportedOpError(
            f"layer {layer.name!r} ({layer.op}): ONNX pooling cannot reproduce these windows (input "
            f"{h}x{w}, kernel {layer.kernel}, stride {layer.stride}, pad {layer.pad}, "
            f"{'ceil' if layer.ceil_mode else 'floor'} rounding gives {oh}x{ow} with a window outside the input)")
    ah, aw = axes
    attrs = dict(kernel_shape=list(layer.kernel), strides=list(layer.stride),
                 pads=[ah.pad_begin, aw.pad_begin, ah.pad_end, aw.pad_end], ceil_mode=int(ah.ceil_mode))
    if average:
        attrs["count_include_pad"] = 1  # Caffe divides by the window including its padding
    ex.node("AveragePool" if average else "MaxPool", [ex.nchw(layer.inputs[0])], layer, 4, **attrs)
    if ah.ceil_mode != layer.ceil_mode:
        ex.nodes[-1].doc_string = ROUNDING_DOC[layer.ceil_mode]


def _global_avgpool(ex, layer):
    ex.node("GlobalAveragePool", [ex.nchw(layer.inputs[0])], layer, 4)


def _lrn(ex, layer):
    # Caffe ACROSS_CHANNELS: b = a / (k + alpha/n * sum a^2)^beta; ONNX LRN divides alpha by size
    # the same way (y = x / (bias + alpha/size * square_sum)^beta), so the parameters carry over.
    ex.node("LRN", [ex.nchw(layer.inputs[0])], layer, 4, size=layer.local_size, alpha=float(layer.alpha),
            beta=float(layer.beta), bias=float(layer.k))


def _same_rank(ex, layer, op_type, **attrs):
    srcs = list(layer.inputs)
    rank = max(ex.rank[s] for s in srcs)
    if rank == 4:
        srcs = [ex.nchw(s) for s in srcs]
    ex.node(op_type, srcs, layer, rank, **attrs)


def _relu(ex, layer):
    _same_rank(ex, layer, "Relu")


def _dropout(ex, layer):
    # Inference-mode Dropout is the identity; kept (with its ratio) so an import restores the layer.
    src = layer.inputs[0]
    ratio = ex.init(f"{layer.name}.ratio", np.array(layer.ratio, dtype=np.float32))
    ex.node("Dropout", [src, ratio], layer, ex.rank[src])


def _softmax(ex, layer):
    _same_rank(ex, layer, "Softmax", axis=1)  # opset >= 13: along the channel axis only


def _flatten(ex, layer):
    ex.nodes.append(ex.helper.make_node("Flatten", [layer.inputs[0]], [layer.name], name=layer.name,
                                        doc_string=FLATTEN_LAYER_DOC, axis=1))
    ex.rank[layer.name] = 2


def _concat(ex, layer):
    _same_rank(ex, layer, "Concat", axis=1)


def _add(ex, layer):
    _same_rank(ex, layer, "Add" if len(layer.inputs) == 2 else "Sum")


EXPORTERS = {
    "input": _input,
    "conv2d": _conv,
    "fc": _fc,
    "maxpool": _pool,
    "avgpool": _pool,
    "global_avgpool": _global_avgpool,
    "lrn": _lrn,
    "relu": _relu,
    "dropout": _dropout,
    "softmax": _softmax,
    "flatten": _flatten,
    "concat": _concat,
    "add": _add,
}


def _output_info(ex, name):
    from onnx import TensorProto
    c, h, w = ex.graph.info(name).output_shape
    dims = [BATCH, c, h, w] if ex.rank[name] == 4 else [BATCH, c * h * w]
    return ex.helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def export_onnx(graph, weights: dict, path=None):
    """Export ``graph`` with dense ``weights`` as an ONNX model.

    Parameters
    ----------
    graph : sqsim.ir.Graph
    weights : dict
        ``{layer name: LayerWeights}`` for every conv2d/fc layer (checked against the graph).
    path : str or Path, optional
        Where to write the ``.onnx`` file (atomically).  None: only return the model.

    Returns
    -------
    onnx.ModelProto
        Opset 13, batch dimension ``N`` symbolic, passing ``onnx.checker.check_model``.

    Raises
    ------
    GraphError
        Weights missing or of the wrong shape for a layer.
    UnsupportedOpError
        A pooling layer whose Caffe windows ONNX cannot express (a window wholly outside the input).
    """
    import onnx
    from .. import __version__

    weights = check_weights(graph, weights, source=f"weights for network {graph.name!r}")
    ex = _Exporter(graph, weights)
    for layer in graph:
        EXPORTERS[layer.op](ex, layer)
    outputs = [_output_info(ex, n) for n in graph.outputs()]
    onnx_graph = ex.helper.make_graph(ex.nodes, graph.name, ex.inputs, outputs, initializer=ex.initializers,
                                      doc_string=f"exported by sqsim {__version__}"
                                                 + (f" from {graph.source}" if graph.source else ""))
    model = ex.helper.make_model(onnx_graph, opset_imports=[ex.helper.make_opsetid("", OPSET)],
                                 producer_name="sqsim", producer_version=__version__)
    model.ir_version = IR_VERSION
    profiles = {l.name: l.compression.to_dict() for l in graph if l.compression is not None}
    if profiles:
        ex.helper.set_model_props(model, {COMPRESSION_KEY: json.dumps(profiles, sort_keys=True)})
    try:
        data = model.SerializeToString()
    except ValueError as e:  # protobuf refuses messages over 2 GiB
        raise FormatError(f"{path or 'ONNX export'}: the ONNX model of {graph.name!r} is too large to "
                          f"serialise ({e})") from None
    onnx.checker.check_model(data)  # serialised once, for the checker and for the file
    if path is not None:
        atomic_write_bytes(path, data)
    return model
