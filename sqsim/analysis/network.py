"""Network-level analysis: per-layer costs of a whole graph on one accelerator, the on-chip fit of
its weights, and totals per inference and per batch.

Fit (SqueezeNet's argument, section 1 of the paper): the model's weights, as stored on this
hardware, fit on chip when ``weight bytes + activation working set <= capacity`` of the buffer
that holds the weights.  The activation working set is the largest, over conv/fc layers, of the
line-buffer tiles that stream a layer with weights resident: one output row of all output
channels plus the input rows its window covers, for all input channels (ZynqNet's image cache
holds such rows).  It counts only when activations share the weights' buffer.  When the model
fits (and ``policies.keep_weights_on_chip``), every layer keeps its weights on chip: they are
loaded once per batch, and the rest of the buffer is what the layer's activation tiles may use.
Otherwise weights stream from DRAM every batch, tiled with everything else.

Activations (``policies.activations``): ``dram`` sends every layer's output through DRAM;
``on_chip`` keeps a tensor in the activation buffer when it fits next to the resident weights,
the other live resident tensors and the working sets of its lifetime
(:mod:`sqsim.analysis.residency`).  Each layer is then costed with its operands' residency and
the space they reserve.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import GraphError, SqsimError
from ..hw.cost import FUSED_OPS, VECTOR_OPS, layer_cost, vector_cost
from ..hw.loopnest import Mapping, dram_traffic
from ..hw.storage import WeightStorage, weight_storage
from ..hw.workload import DIMS, conv_shape
from ..ir.layer import WEIGHTED_OPS
from .residency import plan_activations

FP32_BYTES = 4


@dataclass(frozen=True)
class Fit:
    """Whether the model's weights stay on chip, and by how much.

    Attributes
    ----------
    weights_on_chip : bool
        Weights are kept on chip (they fit and the policy allows it).
    fits : bool
        ``margin_bytes >= 0``.
    level : str
        The buffer holding the weights.
    capacity_bytes, weight_bytes, working_set_bytes : float
        Its capacity, the model's weights as stored there, and the activation working set that
        shares it.
    working_set_layer : str
        The layer with the largest working set.
    margin_bytes : float
        ``capacity - weights - working set`` (negative: short by that much).
    """
    weights_on_chip: bool
    fits: bool
    level: str
    capacity_bytes: float
    weight_bytes: float
    working_set_bytes: float
    working_set_layer: str
    margin_bytes: float

    def to_dict(self) -> dict:
        return {"weights_on_chip": self.weights_on_chip, "fits": self.fits, "level": self.level,
                "capacity_bytes": self.capacity_bytes, "weight_bytes": self.weight_bytes,
                "working_set_bytes": self.working_set_bytes, "working_set_layer": self.working_set_layer,
                "margin_bytes": self.margin_bytes}


def layer_sizes_from(weights, graph):
    """``{layer: LayerSize}`` from a compressed model, a list/dict of LayerSize, or a model path."""
    if weights is None:
        return None
    if isinstance(weights, (str, Path)):
        from ..compress import load_model
        weights = load_model(weights, prototxt=graph)
    if hasattr(weights, "layer_sizes"):
        sizes = weights.layer_sizes()
    else:
        sizes = weights
    if isinstance(sizes, dict):
        sizes = list(sizes.values())
    out = {s.name: s for s in sizes}
    names = [l.name for l in graph.weighted_layers()]
    missing = [n for n in names if n not in out]
    if missing:
        raise SqsimError(f"compressed model has no layer(s) {missing} of network {graph.name!r} "
                         f"(it has {sorted(out)})")
    for n in names:
        s, info = out[n], graph.info(n)
        if s.weights != info.weights or s.biases != info.biases:
            raise SqsimError(f"layer {n!r}: compressed model has {s.weights} weights + {s.biases} biases, network "
                             f"{graph.name!r} has {info.weights} + {info.biases}")
    return out


def storages(graph, hw, weights=None, dense: bool = False) -> dict[str, WeightStorage]:
    """Every weighted layer's :class:`WeightStorage` on ``hw``: dense, from the graph's compression
    profiles, or from an actual compressed model (``weights``)."""
    sizes = layer_sizes_from(weights, graph)
    out = {}
    for layer in graph.weighted_layers():
        info = graph.info(layer.name)
        if sizes is not None:
            out[layer.name] = weight_storage(info, hw, sizes[layer.name], "model", layer.groups)
        elif dense or info.compression is None:
            out[layer.name] = weight_storage(info, hw, None, "dense", layer.groups)
        else:
            from ..compress.accounting import profile_layer_bytes
            out[layer.name] = weight_storage(info, hw, profile_layer_bytes(info), "profile", layer.groups)
    return out


def working_set_bytes(info, layer, hw) -> dict:
    """Line-buffer activation tiles of one layer (one sample): ``{operand: bytes}`` for inputs and
    outputs (one output row of every output channel of a group, and the input rows it needs)."""
    shape = conv_shape(info, 1, layer)
    tiles = {"N": 1, "K": shape.K, "C": shape.C, "P": 1, "Q": shape.Q, "R": shape.R, "S": shape.S}
    tr = dram_traffic(shape, Mapping("line_buffer", DIMS, tuple(tiles[d] for d in DIMS)))
    return {op: tr[op].max_tile_elements * hw.act_bytes for op in ("inputs", "outputs")}


def fit(graph, hw, stores: dict) -> Fit:
    """The on-chip fit of ``graph``'s weights on ``hw`` (see the module docstring)."""
    level = hw.backing_level("weights")
    shared = [op for op in ("inputs", "outputs") if hw.backing_level(op) is level]
    weight_bytes = float(sum(s.total_bytes for s in stores.values()))
    ws, ws_layer = 0.0, ""
    for layer in graph.weighted_layers():
        parts = working_set_bytes(graph.info(layer.name), layer, hw)
        b = float(sum(parts[op] for op in shared))
        if b > ws:
            ws, ws_layer = b, layer.name
    cap = level.total_capacity_bytes
    margin = cap - weight_bytes - ws
    fits = margin >= 0
    return Fit(fits and hw.policies.keep_weights_on_chip, fits, level.name, cap, weight_bytes, ws, ws_layer, margin)


def input_densities(graph, act_density) -> dict:
    """Fraction of non-zero input activations of each conv/fc layer.

    ``act_density`` None: 1 everywhere; a number: that for every layer except those reading the
    network input (an image is dense); a dict ``{layer: fraction of non-zero outputs}`` (from
    :func:`sqsim.exec.measure_activation_density`): the producer's measured value.
    """
    out = {}
    inputs = {l.name for l in graph.inputs()}
    for layer in graph.weighted_layers():
        src = layer.inputs[0]
        if act_density is None:
            d = 1.0
        elif isinstance(act_density, dict):
            if src not in act_density:
                raise SqsimError(f"layer {layer.name!r}: no measured activation density for its input {src!r}")
            d = float(act_density[src])
        else:
            d = 1.0 if src in inputs else float(act_density)
        if not 0.0 <= d <= 1.0:
            raise SqsimError(f"layer {layer.name!r}: activation density must be in [0, 1], got {d}")
        out[layer.name] = d
    return out


def analyze(graph, hw, weights=None, batch: int | None = None, act_density=None, dense: bool = False):
    """Analyse ``graph`` on ``hw``.

    Parameters
    ----------
    graph : sqsim.ir.Graph
    hw : sqsim.hw.HardwareSpec
        (:func:`sqsim.hw.load_hw`)
    weights : CompressedModel, list/dict of LayerSize, path, or None
        An actual compressed model; None: the graph's compression profiles (or dense).
    batch : int, optional
        Default: the hardware's ``policies.batch``.
    act_density : float, dict or None
        Fraction of non-zero activations (see :func:`input_densities`).
    dense : bool
        Ignore compression profiles: uncompressed weights at the datapath width.

    Returns
    -------
    NetworkReport

    Examples
    --------
    >>> from sqsim.ir import load
    >>> from sqsim.hw import load_hw
    >>> r = analyze(load("archs/squeezenet.yaml"), load_hw("hwmodels/fpga.yaml"))
    >>> r.fit.weights_on_chip
    True
    """
    from .report import NetworkReport
    batch = hw.policies.batch if batch is None else batch
    if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
        raise SqsimError(f"batch must be a positive integer, got {batch!r}")
    if weights is not None and dense:
        raise SqsimError("give either a compressed model (weights) or dense=True, not both")
    stores = storages(graph, hw, weights, dense)
    densities = input_densities(graph, act_density)
    f = fit(graph, hw, stores)
    plan = plan_activations(graph, hw, batch, stores, f)
    costs = []
    for layer in graph:
        info = graph.info(layer.name)
        acts = plan.layers.get(layer.name)
        reserved = {}
        if acts is not None and acts.live_resident_bytes:
            reserved[plan.level] = acts.live_resident_bytes
        if layer.op in WEIGHTED_OPS:
            st = stores[layer.name]
            if f.weights_on_chip:
                reserved[f.level] = reserved.get(f.level, 0.0) + f.weight_bytes - st.total_bytes
            costs.append(layer_cost(info, layer, hw, st, batch, densities[layer.name],
                                    weights_resident=f.weights_on_chip, reserved_bytes=reserved,
                                    inputs_resident=all(acts.inputs_resident),
                                    outputs_resident=acts.output_resident))
        elif layer.op in VECTOR_OPS:
            costs.append(vector_cost(info, layer, hw, batch, inputs_resident=acts.inputs_resident,
                                     outputs_resident=acts.output_resident))
        elif layer.op not in FUSED_OPS:  # pragma: no cover - every IR op is one of the three
            raise GraphError(f"layer {layer.name!r}: op {layer.op!r} has no cost model")
    if not costs:
        raise SqsimError(f"network {graph.name!r} has no layer with a cost (no conv, fc or pooling)")
    total = costs[0]
    for c in costs[1:]:
        total = total + c
    if weights is not None:
        source = "model"
    elif dense or all(graph.info(l.name).compression is None for l in graph.weighted_layers()):
        source = "dense"
    else:
        source = "profile"
    return NetworkReport(network=graph.name, hardware=hw.name, hw=hw, batch=batch, weights_source=source,
                         layers=tuple(costs), total=total, fit=f, storages=stores,
                         input_densities=densities, dense_fp32_bytes=FP32_BYTES * graph.totals().params,
                         activations=plan)
