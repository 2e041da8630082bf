"""Activation residency (``policies.activations``): which activation tensors stay in the on-chip
buffer between layers, and which spill to DRAM.

Tensors.  A *tensor* is what one allocation holds: a costed layer's output (conv, fc, pooling,
LRN, add, softmax) together with its free aliases, for the whole batch.  ReLU, dropout and
flatten work in place (their output *is* their input's tensor); a concat's inputs are written
straight into their slices of its output, so a concat and all its inputs are one tensor (named
after the concat), allocated whole when its first slice is produced.  The network input is a
tensor too (the image, in DRAM).  A tensor lives from its first producer to its last reader in
the graph's order (``first``..``last``, indices into ``graph.order``).

Policy ``dram``: every tensor goes through DRAM (written once, read by each reader).

Policy ``on_chip``: a greedy, first-come-first-served allocator in the graph's (topological)
order, in the spirit of nn_dataflow's and ZigZag's "fits or spills" decisions.  When a tensor's
first producer runs, it stays on chip if, at every costed layer ``m`` of its lifetime::

    resident weights in the level (other layers' + m's own weight tile, when weights are kept on chip)
    + the resident tensors live at m (decided earlier)
    + this tensor
    + m's minimal working set (its smallest tiles; line buffers for vector layers)
    <= capacity of the activation buffer

Operands not yet decided count as spilled (their staging tiles are in the working set); a later
decision checks its own lifetime with everything decided before it, so the buffer is never
over-full.  Otherwise the tensor spills: written to DRAM once, read by each reader.  Decisions are
never revisited (no eviction, no reordering).  The network input always comes from DRAM and the
network's outputs always go to DRAM.  The mapping search of each layer then uses whatever space
is left (``reserved`` = resident weights + live resident tensors).

Layers the hardware does not run (``runs``, e.g. EIE runs only fc layers) are left to the host:
their outputs come from DRAM like the network input, and what they read goes to DRAM.

Fusion (``policies.fuse: [pool]``, under either policy): a tensor produced only by conv layers
and read only by one max/avg pool never exists whole.  The convs' final outputs stream into a
*line buffer* from which the pool reads: ``batch x channels x min(kernel rows, rows) x width``
values at the activation precision (the pool window's rows of every channel, full width), held
in the outputs' buffer from the first producer to the pool and decided before every other
tensor.  The pool's output is an ordinary tensor.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from ..hw.cost import VECTOR_OPS, minimal_working_set
from ..ir.layer import WEIGHTED_OPS
from ..units import format_bytes

ALIAS_OPS = ("relu", "dropout", "flatten")     # in place: the output is the input's tensor
COSTED_OPS = tuple(WEIGHTED_OPS) + VECTOR_OPS  # layers that write a new tensor (and have a working set)


@dataclass(frozen=True)
class Tensor:
    """One activation allocation.

    Attributes
    ----------
    name : str
        The concat holding it, else its producer (or the network input layer).
    layers : tuple of str
        Layers whose outputs are this tensor, a slice of it or an alias of it.
    producers : tuple of str
        Costed layers writing it (empty for the network input).
    readers : tuple of str
        Costed layers reading it.
    size_bytes : float
        For the whole batch, at the activation precision.
    first, last : int
        Lifetime: index (in ``graph.order``) of its first producer and of its last reader.
    resident : bool
        Stays in the activation buffer for its whole lifetime.
    reason : str
        Why it is resident or spilled.
    fused_into : str or None
        The pool whose line buffer holds it (``size_bytes`` is then the line buffer's).
    host : bool
        Produced outside the hardware (the network input, or a layer it does not run).
    """
    name: str
    layers: tuple[str, ...]
    producers: tuple[str, ...]
    readers: tuple[str, ...]
    size_bytes: float
    first: int
    last: int
    resident: bool = False
    reason: str = ""
    fused_into: str | None = None
    host: bool = False

    def live_at(self, index: int) -> bool:
        return self.first <= index <= self.last


@dataclass(frozen=True)
class LayerActivations:
    """The activation operands of one costed layer.

    Attributes
    ----------
    layer : str
    inputs : tuple of str
        The tensor each input belongs to.
    inputs_resident : tuple of bool
    output : str
        The tensor its output belongs to.
    output_resident : bool
    live_resident_bytes : float
        Resident tensors and fused line buffers live while it runs (its own operands included),
        whole batch: the space they reserve.
    inputs_fused : tuple of bool
        Per input: read from a fused line buffer (a pool after its convs).
    output_fused : bool
        Its output goes to a fused pool's line buffer.
    reserved : dict
        ``{level: bytes}`` of ``live_resident_bytes`` (resident tensors in the activation buffer,
        line buffers in the outputs' buffer).
    """
    layer: str
    inputs: tuple[str, ...]
    inputs_resident: tuple[bool, ...]
    output: str
    output_resident: bool
    live_resident_bytes: float
    inputs_fused: tuple = ()
    output_fused: bool = False
    reserved: dict = None


@dataclass(frozen=True)
class ActivationPlan:
    """Where every activation tensor of a network lives on one accelerator.

    Attributes
    ----------
    policy : str
        ``dram`` or ``on_chip``.
    level : str or None
        The on-chip buffer holding resident activations (None when inputs and outputs have
        different buffers).
    capacity_bytes : float
        Its capacity.
    tensors : tuple of Tensor
        In allocation order.
    layers : dict
        ``{costed layer: LayerActivations}``.
    order : tuple of str
        The graph's layer order (``Tensor.first``/``last`` index it).
    """
    policy: str
    level: str | None
    capacity_bytes: float
    tensors: tuple[Tensor, ...]
    layers: dict
    order: tuple = ()

    def tensor(self, name: str) -> Tensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def resident_bytes(self) -> float:
        """Bytes of the tensors that stayed on chip (whole batch; fused line buffers not included)."""
        return sum(t.size_bytes for t in self.tensors if t.resident and not t.fused_into)

    @property
    def spilled_bytes(self) -> float:
        return sum(t.size_bytes for t in self.tensors if not t.resident)

    def tensor_dict(self, t: Tensor) -> dict:
        """One tensor as plain data (``from``/``to``: its first producer and last reader)."""
        return {"name": t.name, "size_bytes": t.size_bytes, "resident": t.resident, "reason": t.reason,
                "from": self.order[t.first], "to": self.order[t.last], "producers": list(t.producers),
                "readers": list(t.readers), "fused_into": t.fused_into}

    def layer_dict(self, name: str) -> dict | None:
        """The JSON ``activations`` object of one costed layer (sizes for the whole batch)."""
        a = self.layers.get(name)
        if a is None:
            return None
        return {"input_resident": all(a.inputs_resident), "output_resident": a.output_resident,
                "input_fused": any(a.inputs_fused), "output_fused": a.output_fused,
                "inputs": [{"tensor": n, "resident": r, "size_bytes": self.tensor(n).size_bytes}
                           for n, r in zip(a.inputs, a.inputs_resident)],
                "output": {"tensor": a.output, "resident": a.output_resident,
                           "size_bytes": self.tensor(a.output).size_bytes},
                "live_resident_bytes": a.live_resident_bytes}


def group_tensors(graph) -> dict[str, str]:
    """``{layer: tensor name}`` for every layer: aliases join their input's tensor, a concat
    absorbs its inputs' tensors (see the module docstring)."""
    tensor_of: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for layer in graph:
        if layer.op in ALIAS_OPS:
            t = tensor_of[layer.inputs[0]]
        elif layer.op == "concat":
            t = layer.name
            members[t] = []
            for src in dict.fromkeys(tensor_of[i] for i in layer.inputs):
                for m in members.pop(src):
                    tensor_of[m] = t
                    members[t].append(m)
        else:
            t = layer.name
            members[t] = []
        tensor_of[layer.name] = t
        members[t].append(layer.name)
    return tensor_of


def tensors(graph, word_bytes: float, batch: int = 1, runs=None) -> list[Tensor]:
    """The network's tensors (undecided), in order of their first producer.  ``runs``: the layer
    kinds the hardware runs (default all); tensors written by other layers are host tensors."""
    tensor_of = group_tensors(graph)
    index = {n: i for i, n in enumerate(graph.order)}
    runs = COSTED_OPS if runs is None else tuple(runs)
    ran = {l.name for l in graph if l.op in COSTED_OPS and l.op in runs}
    out = []
    for name in dict.fromkeys(tensor_of[n] for n in graph.order):
        layers = tuple(n for n in graph.order if tensor_of[n] == name)
        writers = [n for n in layers if graph.layer(n).op in COSTED_OPS + ("input",)]
        readers = tuple(l.name for l in graph if l.name in ran and any(tensor_of[i] == name for i in l.inputs))
        size = sum(graph.info(n).output_elements for n in writers) * batch * word_bytes
        first = min(index[n] for n in writers)
        last = max([index[n] for n in readers + tuple(writers)])
        producers = tuple(n for n in writers if n in ran)
        out.append(Tensor(name, layers, producers, readers, float(size), first, last,
                          host=len(producers) < len(writers)))
    return sorted(out, key=lambda t: t.first)


def fusable(graph, t: Tensor, runs) -> str | None:
    """The pool ``t`` can be fused into (``policies.fuse: [pool]``), or None: every writer is a run
    conv, its only reader a run max/avg pool, and it is not a network output."""
    if t.host or not t.producers or len(t.readers) != 1:
        return None
    pool = graph.layer(t.readers[0])
    if pool.op not in ("maxpool", "avgpool") or pool.op not in runs:
        return None
    if any(graph.layer(n).op != "conv2d" for n in t.producers) or set(t.layers) & set(graph.outputs()):
        return None
    return pool.name


def line_buffer_bytes(graph, pool: str, batch: int, act_bytes: float) -> float:
    """A fused pool's line buffer: its window's rows of every input channel, full width."""
    c, h, w = graph.info(pool).input_shapes[0]
    return float(batch * c * min(graph.layer(pool).kernel[0], h) * w * act_bytes)


def plan_activations(graph, hw, batch: int, stores: dict, fit) -> ActivationPlan:
    """Decide every tensor's residency (see the module docstring).

    Parameters
    ----------
    graph : sqsim.ir.Graph
    hw : sqsim.hw.HardwareSpec
    batch : int
    stores : dict
        ``{weighted layer: WeightStorage}``.
    fit : sqsim.analysis.network.Fit
        Whether weights are resident (and where).
    """
    tensor_of = group_tensors(graph)
    runs = hw.runs
    ts = {t.name: t for t in tensors(graph, hw.act_bytes, batch, runs)}
    level = hw.activation_level()
    cap = level.total_capacity_bytes if level is not None else 0.0
    on_chip = hw.policies.activations == "on_chip" and level is not None
    outputs = set(graph.outputs())
    order = graph.order
    costed = [i for i, n in enumerate(order) if graph.layer(n).op in COSTED_OPS and graph.layer(n).op in runs]
    weights_shared = fit.weights_on_chip and level is not None and fit.level == level.name
    resident: dict[str, bool] = {}          # decided tensors
    fused: dict[str, str] = {}
    if "pool" in hw.policies.fuse:
        for t in ts.values():
            pool = fusable(graph, t, runs)
            if pool is not None:
                fused[t.name] = pool
                ts[t.name] = replace(t, size_bytes=line_buffer_bytes(graph, pool, batch, hw.act_bytes),
                                     fused_into=pool)
                resident[t.name] = True

    @lru_cache(maxsize=None)
    def working_set(name: str, ins: tuple, out: bool) -> float:
        if level is None:
            return 0.0
        layer = graph.layer(name)
        ws = minimal_working_set(graph.info(name), layer, hw, stores.get(name), batch,
                                 weights_resident=fit.weights_on_chip, inputs_resident=ins, outputs_resident=out)
        own = stores[name].total_bytes if name in stores else 0.0
        reserved = fit.weight_bytes - own if weights_shared else 0.0
        return reserved + ws.get(level.name, 0.0)

    def occupancy(i: int, extra: str) -> float:
        """Bytes needed in the activation buffer while layer ``i`` runs, with tensor ``extra`` resident."""
        name = order[i]
        def res(t):
            return t == extra or resident.get(t, False)
        live = sum(t.size_bytes for t in ts.values() if t.live_at(i) and res(t.name))
        ins = tuple(res(tensor_of[s]) for s in graph.layer(name).inputs)
        return live + working_set(name, ins, res(tensor_of[name]) and tensor_of[name] not in fused)

    decided = []
    for t in sorted(ts.values(), key=lambda t: t.first):
        if t.name in fused:
            p = graph.layer(fused[t.name])
            c, h, w = graph.info(p.name).input_shapes[0]
            why, keep = (f"fused into {p.name}'s line buffer ({min(p.kernel[0], h)} rows x {w} x {c} channels"
                         f"{f' x {batch} images' if batch > 1 else ''})"), True
        elif any(graph.layer(n).op == "input" for n in t.layers):
            why, keep = "network input: read from DRAM", False
        elif t.host:
            why, keep = "produced on the host (a layer the hardware does not run): read from DRAM", False
        elif any(n in outputs for n in t.layers) or not t.readers:
            why, keep = "network output: written to DRAM", False
        elif not on_chip:  # (the spec refuses on_chip without an activation buffer)
            why, keep = f"policy {hw.policies.activations}", False
        else:
            need = [(occupancy(i, t.name), i) for i in costed if t.live_at(i)]
            worst, at = max(need)
            keep = worst <= cap
            why = (f"fits: {format_bytes(cap - worst)} left at the tightest layer {order[at]}" if keep else
                   f"does not fit while {order[at]} runs: needs {format_bytes(worst)} of {format_bytes(cap)}")
        resident[t.name] = keep
        decided.append(replace(t, resident=keep, reason=why))

    final = {t.name: t for t in decided}
    layers = {}
    out_level = hw.backing_level("outputs").name
    for i in costed:
        name = order[i]
        ins = tuple(tensor_of[s] for s in graph.layer(name).inputs)
        reserved: dict = {}
        for t in decided:
            if t.resident and t.live_at(i):
                lv = out_level if t.fused_into else level.name
                reserved[lv] = reserved.get(lv, 0.0) + t.size_bytes
        out_t = final[tensor_of[name]]
        layers[name] = LayerActivations(
            name, ins, tuple(final[s].resident and not final[s].fused_into for s in ins), tensor_of[name],
            out_t.resident and not out_t.fused_into, sum(reserved.values()),
            inputs_fused=tuple(bool(final[s].fused_into) for s in ins), output_fused=bool(out_t.fused_into),
            reserved=reserved)
    return ActivationPlan(hw.policies.activations, level.name if level is not None else None, cap,
                          tuple(decided), layers, tuple(order))
