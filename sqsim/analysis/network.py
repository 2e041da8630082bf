"""Network-level analysis: per-layer costs of a whole graph on one accelerator, the on-chip fit of
its weights, and totals per inference and per batch.

Fit (SqueezeNet's argument, section 1 of the paper): the model's weights, as stored on this
hardware, fit on chip when ``weight bytes + activation working set <= capacity`` of the buffer
that holds the weights.  The activation working set is the largest, over conv/fc layers, of the
line-buffer tiles that stream a layer with weights resident: one output row of all output
channels plus the input rows its window covers, for all input channels (ZynqNet's image cache
holds such rows).  It counts only when activations share the weights' buffer.  When the model
fits (and ``policies.weights`` is ``per_batch`` or ``preloaded``), every layer keeps its weights
on chip: they are loaded once per batch (``per_batch``) or once before the first inference
(``preloaded``: no weight DRAM traffic per inference), and the rest of the buffer is what the
layer's activation tiles may use.  Otherwise weights stream from DRAM every batch, tiled with
everything else.  Only the layers the hardware runs (``runs``) count: EIE runs the fc layers,
and the conv layers are left to the host (not costed).

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
from .densities import resolve_densities
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
    policy : str
        ``policies.weights``: ``preloaded``, ``per_batch`` or ``streamed``.
    layers : tuple of str
        The weighted layers the verdict covers (those the hardware runs).
    level_bytes : dict
        ``{level: weight bytes kept there}`` (the weights' buffer; column pointers in their own
        SRAM when the hardware has one).  ``capacity_bytes`` and ``weight_bytes`` are the sums;
        ``margin_bytes`` the tightest level's.
    """
    weights_on_chip: bool
    fits: bool
    level: str
    capacity_bytes: float
    weight_bytes: float
    working_set_bytes: float
    working_set_layer: str
    margin_bytes: float
    policy: str = "per_batch"
    layers: tuple = ()
    level_bytes: dict = None

    @property
    def preloaded(self) -> bool:
        """Weights loaded before the first inference: no weight DRAM traffic per inference."""
        return self.weights_on_chip and self.policy == "preloaded"

    def to_dict(self) -> dict:
        return {"weights_on_chip": self.weights_on_chip, "fits": self.fits, "level": self.level,
                "capacity_bytes": self.capacity_bytes, "weight_bytes": self.weight_bytes,
                "working_set_bytes": self.working_set_bytes, "working_set_layer": self.working_set_layer,
                "margin_bytes": self.margin_bytes, "policy": self.policy, "preloaded": self.preloaded,
                "layers": list(self.layers)}


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


def run_weighted_layers(graph, hw) -> list:
    """The weighted layers the hardware runs (``hw.runs``)."""
    return [l for l in graph.weighted_layers() if l.op in hw.runs]


def storages(graph, hw, weights=None, dense: bool = False) -> dict[str, WeightStorage]:
    """Every weighted layer's :class:`WeightStorage` on ``hw`` (of those it runs): dense, from the
    graph's compression profiles, or from an actual compressed model (``weights``)."""
    return storages_and_sizes(graph, hw, weights, dense)[0]


def storages_and_sizes(graph, hw, weights=None, dense: bool = False) -> tuple[dict, dict]:
    """:func:`storages` and the accounting record each came from: ``({layer: WeightStorage},
    {layer: LayerSize or None})`` (None: dense)."""
    sizes = layer_sizes_from(weights, graph)
    out, records = {}, {}
    for layer in run_weighted_layers(graph, hw):
        info = graph.info(layer.name)
        if sizes is not None:
            size, source = sizes[layer.name], "model"
        elif dense or info.compression is None:
            size, source = None, "dense"
        else:
            from ..compress.accounting import profile_layer_bytes
            size, source = profile_layer_bytes(info), "profile"
        out[layer.name] = weight_storage(info, hw, size, source, layer.groups)
        records[layer.name] = size
    return out, records


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
    ptr = hw.pointer_level()
    shared = [op for op in ("inputs", "outputs") if hw.backing_level(op) is level]
    weight_bytes = float(sum(s.total_bytes for s in stores.values()))
    pointers = float(sum(s.pointers_total_bytes for s in stores.values())) if ptr is not None else 0.0
    ws, ws_layer = 0.0, ""
    layers = run_weighted_layers(graph, hw)
    for layer in layers:
        parts = working_set_bytes(graph.info(layer.name), layer, hw)
        b = float(sum(parts[op] for op in shared))
        if b > ws:
            ws, ws_layer = b, layer.name
    cap = level.total_capacity_bytes
    if ptr is not None:
        # column pointers in their own SRAM (EIE): the two SRAMs are one pool for the verdict.
        # (AlexNet's fc6-fc8 need 17,411 16-bit pointers per PE, 34.8 KB against EIE's 32 KB:
        # EIE must store them more compactly; its 128 KB matrix SRAM has 1.1 MB to spare.)
        cap += ptr.total_capacity_bytes
    margin = cap - weight_bytes - ws
    fits = margin >= 0
    return Fit(fits and hw.policies.weights != "streamed", fits, level.name, cap, weight_bytes, ws, ws_layer,
               margin, hw.policies.weights, tuple(l.name for l in layers),
               {level.name: weight_bytes - pointers, **({ptr.name: pointers} if ptr is not None else {})})


def input_densities(graph, act_density) -> dict:
    """Fraction of non-zero input activations of each conv/fc layer.

    ``act_density`` None: 1 everywhere; a number: that for every layer except those reading the
    network input (an image is dense); a dict ``{layer: fraction of non-zero outputs}`` (from
    :func:`sqsim.exec.measure_activation_density`): the producer's measured value; a
    :class:`~sqsim.analysis.densities.DensityFile`: as :mod:`sqsim.analysis.densities` resolves it.
    """
    d = resolve_densities(graph, act_density)
    return {l.name: d.input_density(graph, l.name) for l in graph.weighted_layers()}


def analyze(graph, hw, weights=None, batch: int | None = None, act_density=None, dense: bool = False,
            cache=None):
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
    act_density : float, dict, DensityFile or None
        Fraction of non-zero activations (:mod:`sqsim.analysis.densities`): a number, measured
        ``{layer: output density}``, or a density file (``{layer: input density}``).
    dense : bool
        Ignore compression profiles: uncompressed weights at the datapath width.
    cache : sqsim.sweep.LayerCache, optional
        Shares per-layer costs and mapping searches between analyses (the report is the same
        as without it).

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
    stores, sizes = storages_and_sizes(graph, hw, weights, dense)
    dens = resolve_densities(graph, act_density)
    f = fit(graph, hw, stores)
    plan = plan_activations(graph, hw, batch, stores, f)
    costs, not_run = [], []
    densities = {}
    conv_cost, vec_cost = (cache.layer_cost, cache.vector_cost) if cache is not None else (layer_cost, vector_cost)
    for layer in graph:
        info = graph.info(layer.name)
        if layer.op in FUSED_OPS:
            continue
        if layer.op not in WEIGHTED_OPS + VECTOR_OPS:  # pragma: no cover - every IR op is one of the three
            raise GraphError(f"layer {layer.name!r}: op {layer.op!r} has no cost model")
        if layer.op not in hw.runs:
            not_run.append(layer.name)
            continue
        acts = plan.layers[layer.name]
        reserved = dict(acts.reserved)
        stored = dens.stored_density(graph, layer.name)
        if layer.op in WEIGHTED_OPS:
            st = stores[layer.name]
            densities[layer.name] = dens.input_density(graph, layer.name)
            if f.weights_on_chip:
                ptr = hw.pointer_level()
                own_ptr = st.pointers_total_bytes if ptr is not None else 0.0
                reserved[f.level] = reserved.get(f.level, 0.0) + f.level_bytes[f.level] - (st.total_bytes - own_ptr)
            costs.append(conv_cost(info, layer, hw, st, batch, densities[layer.name],
                                    weights_resident=f.weights_on_chip, reserved_bytes=reserved,
                                    inputs_resident=all(acts.inputs_resident),
                                    outputs_resident=acts.output_resident, output_density=stored,
                                    outputs_fused=acts.output_fused,
                                    weights_preloaded=f.preloaded))
        else:
            costs.append(vec_cost(info, layer, hw, batch, inputs_resident=acts.inputs_resident,
                                     outputs_resident=acts.output_resident,
                                     input_densities=[dens.outputs[s] for s in layer.inputs], output_density=stored,
                                     inputs_fused=acts.inputs_fused))
    if not costs:
        raise SqsimError(f"network {graph.name!r} has no layer that {hw.name} runs (it runs "
                         f"{', '.join(hw.runs)}; set runs=[...] to run others)")
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
                         activations=plan, densities=dens, not_run=tuple(not_run), sizes=sizes)
