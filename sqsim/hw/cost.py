"""Per-layer cost: pure functions of (layer, weight storage, hardware) returning :class:`LayerCost`
records that add up (``a + b``) to network totals.

For a conv/fc layer (:func:`layer_cost`):

1. the workload is the IR's shape as a loop nest (:func:`~sqsim.hw.workload.conv_shape`);
2. the mapping search picks tiles and loop order minimising DRAM bytes within the free capacity
   of each operand's backing buffer (:func:`~sqsim.hw.search.search_mapping`), and
   :func:`~sqsim.hw.loopnest.dram_traffic` gives the exact DRAM reads and writes per operand;
3. the dataflow says what the array does (:mod:`sqsim.hw.dataflows`): cycles, MACs, buffer,
   register and network accesses, weight decodes;
4. accesses turn into bytes per memory level, energy = actions x energy per action (Accelergy
   style), cycles = max(compute, each level's bytes / its bandwidth).

A layer without weights that moves data (pooling, LRN, add, softmax) is a *vector* pass
(:func:`vector_cost`): it reads its inputs from DRAM and writes its outputs back.  ReLU, dropout,
flatten and concat are fused into their producers (no cost): concat inputs are written straight
into their slices of the output.

Resident activations (``policies.activations: on_chip``, decided by
:mod:`sqsim.analysis.residency`): an input or output that stays in the on-chip buffer costs no
DRAM traffic and takes no tile space (it is read or written in place; its space is reserved by the
caller); the array's accesses to that buffer stay.  :func:`minimal_working_set` is the smallest
on-chip space a layer can run in, which the allocator reserves next to the resident tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..errors import SqsimError
from .dataflows import OPERANDS, ActivityContext, get_dataflow
from .loopnest import Mapping, dram_traffic
from .search import Buffer, footprint_bytes, search_mapping
from .storage import WeightStorage
from .workload import DIMS, ConvShape, conv_shape

VECTOR_OPS = ("maxpool", "avgpool", "global_avgpool", "lrn", "add", "softmax")
FUSED_OPS = ("input", "relu", "dropout", "flatten", "concat")


def _add_dicts(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


@dataclass(frozen=True)
class LayerCost:
    """What one layer costs on one accelerator, for a whole batch.

    Attributes
    ----------
    name, op : str
    batch : int
    macs : int
        Dense MACs (the IR's count times the batch).
    macs_effective : float
        MACs performed and charged energy (fewer when zeros are skipped or gated).
    compute_cycles : int
        Cycles the array needs if memory keeps up (processing passes, their ramp-up included).
    cycles : int
        The layer's cycles under the hardware's ``policies.overlap_dram``: ``processing_cycles``
        (DRAM overlapped) or ``serialized_cycles`` (feature-map transfers serialised).
    bound : str
        ``compute`` or the level whose bandwidth set ``processing_cycles``.
    processing_cycles : int
        ``ceil(max(compute_cycles, bytes / bandwidth of each level, DRAM included))``.
    serialized_cycles : int
        ``ceil(max(compute_cycles, weight DRAM bytes / DRAM bandwidth, on-chip levels)
        + feature-map DRAM bytes / DRAM bandwidth)``: the array stops while inputs are loaded
        and outputs stored; weights prefetch in the background.
    ramp_cycles : int
        Part of ``compute_cycles`` spent loading stationary data before each pass's first MAC.
    active_pes : float or None
        PEs the mapping occupies (row stationary); None when the dataflow does not say.
    dram_reads_bytes, dram_writes_bytes : dict
        ``{operand: bytes}``.
    level_reads_bytes, level_writes_bytes : dict
        ``{on-chip level: bytes}`` (buffers, register files, the PE network).
    energy_breakdown_j : dict
        ``{component: joules}``: ``mac``, ``decode`` and one entry per memory level.
    decodes : float
        Weight entries decoded (codebook lookup + index decode each).
    peak_macs_per_cycle : int
    mapping : Mapping or None
        The chosen mapping (conv/fc); its traffic is for one group.
    traffic : dict or None
        ``{operand: OperandTraffic}`` of one group (elements).
    shape : ConvShape or None
    bytes_per_element : dict
        ``{operand: bytes}`` moved to or from DRAM per element (feature maps: coded).
    fixed_weight_bytes : float
        Codebook, biases and pointers read once per layer with the weights.
    resident_operands : tuple of str
        Activation operands (``inputs``, ``outputs``) that stay on chip: no DRAM traffic, no tile.
    fused_operands : tuple of str
        Activation operands exchanged through a fused line buffer (a conv's ``outputs``, the
        pool's ``inputs``): no DRAM traffic.
    pe_mapping : dict or None
        The dataflow's placement on the PE array (row stationary: ``n, p, q, e, r, t``...).
    """
    name: str
    op: str
    batch: int
    macs: int = 0
    macs_effective: float = 0.0
    compute_cycles: int = 0
    cycles: int = 0
    bound: str = "compute"
    dram_reads_bytes: dict = field(default_factory=dict)
    dram_writes_bytes: dict = field(default_factory=dict)
    level_reads_bytes: dict = field(default_factory=dict)
    level_writes_bytes: dict = field(default_factory=dict)
    energy_breakdown_j: dict = field(default_factory=dict)
    decodes: float = 0.0
    peak_macs_per_cycle: int = 1
    mapping: Mapping | None = None
    traffic: dict | None = None
    shape: ConvShape | None = None
    bytes_per_element: dict = field(default_factory=dict)
    fixed_weight_bytes: float = 0.0
    resident_operands: tuple = ()
    processing_cycles: int = 0
    serialized_cycles: int = 0
    ramp_cycles: int = 0
    active_pes: float | None = None
    fused_operands: tuple = ()
    pe_mapping: dict | None = None

    @property
    def dram_bytes(self) -> float:
        return sum(self.dram_reads_bytes.values()) + sum(self.dram_writes_bytes.values())

    @property
    def energy_j(self) -> float:
        return sum(self.energy_breakdown_j.values())

    @property
    def utilisation(self) -> float:
        """MACs performed over the array's peak in ``cycles``."""
        return self.macs_effective / (self.cycles * self.peak_macs_per_cycle) if self.cycles else 0.0

    def __add__(self, other: "LayerCost") -> "LayerCost":
        if self.batch != other.batch:
            raise ValueError(f"cannot add costs of batch {self.batch} and {other.batch}")
        # active PEs of a sum: the mean over processing time of the layers that report it
        a = [(c.active_pes, c.processing_cycles) for c in (self, other) if c.active_pes is not None]
        t = sum(w for _, w in a)
        active = (sum(v * w for v, w in a) / t if t else a[0][0]) if a else None
        return LayerCost(
            name="total", op="", batch=self.batch, macs=self.macs + other.macs,
            macs_effective=self.macs_effective + other.macs_effective,
            compute_cycles=self.compute_cycles + other.compute_cycles, cycles=self.cycles + other.cycles,
            bound="", dram_reads_bytes=_add_dicts(self.dram_reads_bytes, other.dram_reads_bytes),
            dram_writes_bytes=_add_dicts(self.dram_writes_bytes, other.dram_writes_bytes),
            level_reads_bytes=_add_dicts(self.level_reads_bytes, other.level_reads_bytes),
            level_writes_bytes=_add_dicts(self.level_writes_bytes, other.level_writes_bytes),
            energy_breakdown_j=_add_dicts(self.energy_breakdown_j, other.energy_breakdown_j),
            decodes=self.decodes + other.decodes,
            peak_macs_per_cycle=max(self.peak_macs_per_cycle, other.peak_macs_per_cycle),
            fixed_weight_bytes=self.fixed_weight_bytes + other.fixed_weight_bytes,
            processing_cycles=self.processing_cycles + other.processing_cycles,
            serialized_cycles=self.serialized_cycles + other.serialized_cycles,
            ramp_cycles=self.ramp_cycles + other.ramp_cycles, active_pes=active)


def operand_buffers(hw, reserved_bytes: dict | None = None) -> list[Buffer]:
    """One :class:`Buffer` per on-chip level that backs some operand (its tiles share it)."""
    reserved_bytes = reserved_bytes or {}
    groups: dict[str, list[str]] = {}
    for op in OPERANDS:
        groups.setdefault(hw.backing_level(op).name, []).append(op)
    return [Buffer(name, hw.level(name).total_capacity_bytes - reserved_bytes.get(name, 0.0), tuple(ops))
            for name, ops in groups.items()]


def feature_map_ratio(hw, density: float) -> float:
    """DRAM bytes of a feature map over its raw bytes: its RLC ratio at ``density`` when the
    hardware codes feature maps (``dram_compression.activations: rlc``), else 1."""
    if hw.dram_compression.activations != "rlc":
        return 1.0
    from .rlc import rlc_ratio
    return rlc_ratio(density, hw.precision.activations.bits, hw.dram_compression.rlc)


def layer_cost(info, layer, hw, storage: WeightStorage, batch: int = 1, input_density: float = 1.0,
               weights_resident: bool = False, reserved_bytes: dict | None = None,
               inputs_resident: bool = False, outputs_resident: bool = False, output_density: float = 1.0,
               outputs_fused: bool = False, weights_preloaded: bool = False, mapping_cache=None) -> LayerCost:
    """Cost of one conv/fc layer for a batch.

    Parameters
    ----------
    info : sqsim.ir.LayerInfo
    layer : sqsim.ir.Layer
    hw : sqsim.hw.HardwareSpec
    storage : WeightStorage
        The layer's weights on this hardware (:func:`~sqsim.hw.storage.weight_storage`).
    batch : int
    input_density, output_density : float
        Fraction of non-zero values of the input (gating, skipping, DRAM coding) and of the
        output (DRAM coding of what the layer stores).
    weights_resident : bool
        The model's weights stay on chip: this layer's tiles keep all of its weights.
    reserved_bytes : dict
        ``{level: bytes}`` taken by other data (the other layers' resident weights, the resident
        activation tensors live while this layer runs, its own resident operands and fused line
        buffers included).
    inputs_resident, outputs_resident : bool
        The input (output) tensor stays in the activation buffer: read (written) in place, no
        DRAM traffic and no tile; partial sums of a resident output accumulate in place.
    outputs_fused : bool
        The final outputs go to a fused pool's line buffer, not to DRAM (partial sums that do not
        fit still spill); the mapping produces whole output rows (tile Q = Q), so the rows a
        pool window still needs never exceed the line buffer.
    weights_preloaded : bool
        Resident weights were loaded before the first inference: no weight DRAM traffic here.
    mapping_cache : object, optional
        Shares mapping searches between calls (``sqsim.sweep``): ``hw_key(hw)`` (the hardware
        without the fields only pricing reads, :func:`sqsim.hw.pricing.structure_key`) and
        ``get(key, search) -> (mapping, plan)``, calling ``search()`` on a miss.  The key is
        every input of the search, so the result is the one the search would return.
    """
    shape = conv_shape(info, batch, layer)
    g = shape.groups
    dataflow = get_dataflow(hw.dataflow)
    tile = _onchip_bpe(hw, storage)
    resident = _resident(inputs_resident, outputs_resident)
    ratio_in = feature_map_ratio(hw, input_density)
    ratio_out = feature_map_ratio(hw, output_density)
    tile = {op: 0.0 if op in resident else b for op, b in tile.items()}
    moved = dict(tile, inputs=tile["inputs"] * ratio_in)   # DRAM bytes per element (outputs: partial sums)
    buffers = operand_buffers(hw, reserved_bytes)
    ctx = ActivityContext(input_density=input_density, weight_entries=storage.entries / g,
                          weight_coded=storage.coded, weight_sparse=storage.sparse,
                          pointer_bytes=storage.pointer_bytes, weight_density=storage.nonzeros / storage.weights)
    # column pointers in their own SRAM take no room in the weights' buffer
    fixed = {"weights": storage.fixed_bytes - (storage.pointers_total_bytes if hw.pointer_level() is not None else 0.0)}
    whole = ("Q",) if outputs_fused else ()
    if dataflow.mapper is not None:
        def search():
            return dataflow.mapper(shape, hw, buffers, moved, fixed, weights_resident, tile)
    else:
        def search():
            return search_mapping(shape, dataflow.orders, buffers, moved, fixed, weights_resident=weights_resident,
                                  dataflow=hw.dataflow, tile_bytes=tile, whole=whole), None
    if mapping_cache is None:
        mapping, plan = search()
    else:   # the search's inputs, exactly (the mapper's own: the hardware's structure and what it prices)
        key = (shape, mapping_cache.hw_key(hw) if dataflow.mapper is not None else hw.dataflow, tuple(buffers),
               tuple(moved.items()), tuple(fixed.items()), weights_resident, tuple(tile.items()), whole)
        mapping, plan = mapping_cache.get(key, search)
    if plan is not None:
        ctx = replace(ctx, plan=plan)
    traffic = dram_traffic(shape, mapping)
    plan = ctx.plan
    if plan is not None and hasattr(plan, "weight_dram_reads"):   # weights streamed past the buffer tiles
        w = traffic["weights"]
        reads = plan.weight_dram_reads(shape, weights_resident)
        mult = reads // shape.weights                       # reloads: image groups x strips (row stationary)
        trips = mapping.trips(shape)
        loops = tuple(d for d in ("N", "P") if trips[d] > 1) if mult > 1 else ()
        traffic = dict(traffic, weights=replace(w, reads=reads, multiplier=mult, multiplier_loops=loops))
    out = traffic["outputs"]
    spills = out.writes - shape.outputs                      # partial sums written before the final values
    final = 0.0 if outputs_fused else shape.outputs * hw.act_bytes * ratio_out
    w_dram = 0.0 if weights_preloaded else g * traffic["weights"].reads * moved["weights"] + storage.fixed_bytes
    dram_reads = {"weights": w_dram,
                  "inputs": g * traffic["inputs"].reads * moved["inputs"],
                  "outputs": g * out.reads * moved["outputs"]}
    dram_writes = {"weights": 0.0, "inputs": 0.0,
                   "outputs": 0.0 if outputs_resident else g * (spills * moved["outputs"] + final)}
    act = dataflow.activity(shape, hw, ctx).scaled(g)
    fills = {"weights": dram_reads["weights"], "inputs": g * traffic["inputs"].reads * tile["inputs"],
             "outputs": dram_reads["outputs"]}
    drains = {"outputs": 0.0 if outputs_resident else
              g * (spills * tile["outputs"] + (0.0 if outputs_fused else shape.outputs * hw.act_bytes))}
    reads, writes = _level_bytes(hw, storage, fills, drains, act, g * shape.outputs, outputs_fused)
    energy, timing = price_layer(hw, act.macs_effective, act.decodes, storage.coded, storage.sparse,
                                 act.compute_cycles, dram_reads, dram_writes, reads, writes)
    return LayerCost(info.name, info.op, batch, macs=act.macs, macs_effective=act.macs_effective,
                     compute_cycles=act.compute_cycles, dram_reads_bytes=dram_reads, dram_writes_bytes=dram_writes,
                     level_reads_bytes=reads, level_writes_bytes=writes, energy_breakdown_j=energy,
                     decodes=act.decodes, peak_macs_per_cycle=hw.array.peak_macs_per_cycle, mapping=mapping,
                     traffic=traffic, shape=shape, bytes_per_element=moved, fixed_weight_bytes=storage.fixed_bytes,
                     resident_operands=resident, ramp_cycles=act.ramp_cycles, active_pes=act.active_pes,
                     fused_operands=("outputs",) if outputs_fused else (), pe_mapping=act.pe_mapping, **timing)


def _onchip_bpe(hw, storage: WeightStorage) -> dict:
    """On-chip bytes per element of each operand: weights as stored per dense weight, inputs at
    the activation precision, outputs at the partial-sum precision (they accumulate)."""
    return {"weights": storage.bytes_per_weight, "inputs": hw.act_bytes, "outputs": hw.psum_bytes}


def _resident(inputs_resident: bool, outputs_resident: bool) -> tuple:
    return tuple(op for op, r in (("inputs", inputs_resident), ("outputs", outputs_resident)) if r)


def minimal_working_set(info, layer, hw, storage: WeightStorage | None = None, batch: int = 1,
                        weights_resident: bool = False, inputs_resident=(), outputs_resident: bool = False) -> dict:
    """The smallest on-chip space a layer can run in: ``{level: bytes}``.

    conv/fc: the footprint of its smallest tiles (every tiled loop at 1, R and S whole, K and C
    whole when the weights are resident; fixed weight bytes included), the same footprint the
    mapping search checks, so a layer whose minimal working set fits always has a mapping.
    Vector layers: the line buffers a streaming pass needs (:func:`vector_staging_elements`).
    Resident operands take nothing (their tensors are reserved separately).

    Parameters
    ----------
    inputs_resident : sequence of bool
        Per input tensor (conv/fc have one).
    """
    inputs_resident = tuple(inputs_resident) or (False,) * len(info.input_shapes)
    out: dict = {}
    if info.op in VECTOR_OPS:
        stage_in, stage_out = vector_staging_elements(info, layer)
        lin, lout = hw.backing_level("inputs").name, hw.backing_level("outputs").name
        for n, r in zip(stage_in, inputs_resident):
            if not r:
                out[lin] = out.get(lin, 0.0) + n * hw.act_bytes
        if not outputs_resident:
            out[lout] = out.get(lout, 0.0) + stage_out * hw.act_bytes
        return out
    shape = conv_shape(info, batch, layer)
    resident = _resident(all(inputs_resident), outputs_resident)
    bpe = {op: 0.0 if op in resident else b for op, b in _onchip_bpe(hw, storage).items()}
    df = get_dataflow(hw.dataflow)
    if df.minimal_tiles is not None:
        t = df.minimal_tiles(shape, hw, weights_resident)
        tiles = tuple(t[d] for d in DIMS)
    else:
        whole = ("R", "S") + (("K", "C") if weights_resident else ())
        tiles = tuple(shape.dim(d) if d in whole else 1 for d in DIMS)
    fp = footprint_bytes(shape, Mapping("minimal", DIMS, tiles), bpe, {"weights": storage.fixed_bytes})
    for op in OPERANDS:
        if fp[op]:
            level = hw.backing_level(op).name
            out[level] = out.get(level, 0.0) + fp[op]
    return out


def vector_staging_elements(info, layer) -> tuple[tuple[int, ...], int]:
    """Line buffers of a streaming vector pass, in elements of one sample: per input, the rows one
    output row reads (all channels: the pooling kernel's height for max/avg pooling, one row for
    LRN, add and softmax, and for global pooling, which accumulates row by row), and one output
    row of all channels.  This is what lets the pass read each input and write each output once.
    """
    rows = layer.kernel[0] if info.op in ("maxpool", "avgpool") else 1
    stage_in = tuple(c * min(rows, h) * w for c, h, w in info.input_shapes)
    k, _, q = info.output_shape
    return stage_in, k * q


def vector_ops(info, layer) -> int:
    """Element operations of a vector layer per sample: a compare/add per pooling window tap,
    ``local_size`` multiply-adds per LRN output, one op per input element otherwise."""
    if info.op in ("maxpool", "avgpool"):
        return info.output_elements * layer.kernel[0] * layer.kernel[1]
    if info.op == "lrn":
        return info.output_elements * layer.local_size
    return info.input_elements


def vector_cost(info, layer, hw, batch: int = 1, inputs_resident=(), outputs_resident: bool = False,
                input_densities=(), output_density: float = 1.0, inputs_fused=()) -> LayerCost:
    """Cost of a pooling / LRN / add / softmax layer: a streaming pass on the array's PEs.

    Each input is read once from its buffer and each output written once to its buffer; a spilled
    input is first filled from DRAM (read once), a spilled output is then written to DRAM (once).
    Resident tensors (``inputs_resident`` per input, ``outputs_resident``) are read and written in
    place; an input in a fused line buffer (``inputs_fused``, a pool after its convs) is read
    from it.  Feature maps coded in DRAM (RLC) move ``feature_map_ratio(density)`` of their raw
    bytes (``input_densities`` per input).  Each
    element operation costs one MAC's energy and one PE slot.
    """
    if info.op not in VECTOR_OPS:
        raise SqsimError(f"layer {info.name!r}: op {info.op!r} is not a vector layer")
    act_bytes = hw.act_bytes
    n_in = len(info.input_shapes)
    inputs_resident = tuple(inputs_resident) or (False,) * n_in
    inputs_fused = tuple(inputs_fused) or (False,) * n_in
    densities = tuple(input_densities) or (1.0,) * n_in
    in_bytes = [c * h * w * batch * act_bytes for c, h, w in info.input_shapes]
    out_bytes = info.output_elements * batch * act_bytes
    spilled = [not (r or f) for r, f in zip(inputs_resident, inputs_fused)]
    fill = sum(b for b, s in zip(in_bytes, spilled) if s)
    coded_in = sum(b * feature_map_ratio(hw, d) for b, s, d in zip(in_bytes, spilled, densities) if s)
    dram_reads = {"weights": 0.0, "inputs": float(coded_in), "outputs": 0.0}
    dram_writes = {"weights": 0.0, "inputs": 0.0,
                   "outputs": 0.0 if outputs_resident else float(out_bytes) * feature_map_ratio(hw, output_density)}
    ops = vector_ops(info, layer) * batch
    reads: dict = {}
    writes: dict = {}
    lin, lout = hw.backing_level("inputs").name, hw.backing_level("outputs").name
    writes[lin] = writes.get(lin, 0.0) + float(fill)                   # fills of spilled inputs (decoded)
    reads[lin] = reads.get(lin, 0.0) + float(sum(in_bytes))           # the pass reads every input once
    writes[lout] = writes.get(lout, 0.0) + float(out_bytes)           # and writes every output once
    reads[lout] = reads.get(lout, 0.0) + (0.0 if outputs_resident else float(out_bytes))   # spills
    compute = math.ceil(ops / hw.array.peak_macs_per_cycle)
    energy, timing = price_layer(hw, ops, 0.0, False, False, compute, dram_reads, dram_writes, reads, writes)
    return LayerCost(info.name, info.op, batch, macs=0, macs_effective=0.0, compute_cycles=compute,
                     dram_reads_bytes=dram_reads, dram_writes_bytes=dram_writes,
                     level_reads_bytes=reads, level_writes_bytes=writes, energy_breakdown_j=energy,
                     peak_macs_per_cycle=hw.array.peak_macs_per_cycle,
                     bytes_per_element={"inputs": act_bytes, "outputs": act_bytes},
                     resident_operands=_resident(all(inputs_resident), outputs_resident),
                     fused_operands=("inputs",) if any(inputs_fused) else (), **timing)


def _level_bytes(hw, storage, fills: dict, drains: dict, act, outputs: int, outputs_fused: bool) -> tuple[dict, dict]:
    """Bytes read from and written to each on-chip level (and the network).

    ``fills``: bytes DRAM writes into each operand's backing buffer (decoded); ``drains``: bytes
    read out of the outputs' buffer towards DRAM (partial-sum spills and final values);
    ``outputs``: final output values (whose last write into the buffer is at the activation
    precision; earlier partial sums at the partial-sum precision).  A fused output's final values
    go to the line buffer in the outputs' buffer instead (the pool reads them there).
    """
    reads: dict = {}
    writes: dict = {}

    def add(d, level, v):
        if v:
            d[level] = d.get(level, 0.0) + v

    value = {"weights": hw.weight_value_bytes, "inputs": hw.act_bytes, "outputs": hw.psum_bytes}
    stored = {"weights": storage.bytes_per_weight, "inputs": hw.act_bytes, "outputs": hw.psum_bytes}
    for op in OPERANDS:
        back = hw.backing_level(op).name
        add(writes, back, fills.get(op, 0.0))                # fills from DRAM (partial sums refilled too)
        add(reads, back, drains.get(op, 0.0))                # towards DRAM
        add(reads, back, act.buffer_reads.get(op, 0) * stored[op])
        w = act.buffer_writes.get(op, 0)
        if op == "outputs":                                  # the last write of each output is its final value
            last = min(w, outputs)
            add(writes, back, (w - last) * hw.psum_bytes + last * hw.act_bytes)
        else:
            add(writes, back, w * stored[op])
        reg = hw.register_level(op)
        if reg is not None and reg.name != back:
            acc = act.register_accesses.get(op, 0) * value[op]
            if op == "outputs":                        # read-modify-write of partial sums
                add(reads, reg.name, acc / 2)
                add(writes, reg.name, acc / 2)
            else:
                add(reads, reg.name, acc)
    extra = act.extra_read_bytes.get("weights", 0.0)
    if extra:
        ptr = hw.weight_format.pointer_level or hw.backing_level("weights").name
        add(reads, ptr, extra)
    net = hw.network_level()
    if net is not None:
        add(reads, net.name, sum(n * value[op] for op, n in act.network_transfers.items()))
    return reads, writes


def price_layer(hw, mac_ops, decodes: float, coded: bool, sparse: bool, compute: int, dram_reads: dict,
                dram_writes: dict, reads: dict, writes: dict) -> tuple[dict, dict]:
    """The pricing step of a layer (Accelergy's split): its action counts times the energy per
    action, and its cycles from the clock and the levels' bandwidths.

    Everything else a layer's cost holds is an action count that no energy, clock or bandwidth
    changes (row stationary's mapper excepted: :func:`sqsim.hw.pricing.structure_key`).
    :func:`sqsim.hw.pricing.price_points` is this function vectorised over design points, with
    the same operations in the same order (equal to the last bit).

    Parameters
    ----------
    mac_ops : int or float
        MACs charged energy (``macs_effective``; a vector layer's element operations).
    decodes : float
        Weight entries decoded; each costs a codebook lookup when ``coded`` and an index decode
        when ``sparse``.
    compute : int
        The array's cycles.
    dram_reads, dram_writes, reads, writes : dict
        DRAM bytes per operand; on-chip bytes per level.

    Returns
    -------
    (energy, timing) : dict, dict
        ``{component: joules}`` (``mac``, ``decode`` when non-zero, then one per level) and
        :func:`_cycles`'s ``processing_cycles``, ``serialized_cycles``, ``bound``, ``cycles``.
    """
    decode_j = decodes * ((hw.energy.codebook_lookup_j if coded else 0.0)
                          + (hw.energy.index_decode_j if sparse else 0.0))
    energy = {"mac": mac_ops * hw.energy.mac_j}
    if decode_j:
        energy["decode"] = decode_j
    energy.update(_level_energy(hw, dram_reads, dram_writes, reads, writes))
    return energy, _cycles(hw, compute, dram_reads, dram_writes, reads, writes)


def _level_energy(hw, dram_reads, dram_writes, reads, writes) -> dict:
    """Energy per level: accesses (bytes / word bytes) x energy per access."""
    dram = hw.dram
    out = {dram.name: (sum(dram_reads.values()) * dram.read_energy_j
                       + sum(dram_writes.values()) * dram.write_energy_j) / dram.word_bytes}
    for level in hw.levels[1:]:
        r, w = reads.get(level.name, 0.0), writes.get(level.name, 0.0)
        if r or w:
            out[level.name] = (r * level.read_energy_j + w * level.write_energy_j) / level.word_bytes
    return out


def _cycles(hw, compute: int, dram_reads, dram_writes, reads, writes) -> dict:
    """Processing and serialised cycles, the latency under ``policies.overlap_dram`` and its bound.

    processing = ceil(max(compute, every level's bytes / its bytes per cycle, DRAM included));
    serialized = ceil(max(compute, weight DRAM bytes / DRAM bandwidth, on-chip levels)
                      + feature-map DRAM bytes / DRAM bandwidth).
    """
    f = hw.clock_hz
    bw = hw.dram.bytes_per_cycle(f)
    w_dram = dram_reads.get("weights", 0.0) + dram_writes.get("weights", 0.0)
    fm_dram = sum(dram_reads.values()) + sum(dram_writes.values()) - w_dram
    terms = {"compute": float(compute), hw.dram.name: (w_dram + fm_dram) / bw}
    for level in hw.levels[1:]:
        moved = reads.get(level.name, 0.0) + writes.get(level.name, 0.0)
        if moved:
            terms[level.name] = moved / level.bytes_per_cycle(f)
    bound = max(terms, key=terms.get)
    processing = math.ceil(terms[bound])
    core = max([float(compute), w_dram / bw] + [v for k, v in terms.items() if k not in ("compute", hw.dram.name)])
    serialized = math.ceil(core + fm_dram / bw)
    return {"processing_cycles": processing, "serialized_cycles": serialized, "bound": bound,
            "cycles": processing if hw.policies.overlap_dram else serialized}
