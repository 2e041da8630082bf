"""Dataflows: how the compute array executes one group of a layer (cycles, MACs, and the accesses
to the on-chip buffer, the PE register files and the inter-PE network), one module per family.

A dataflow is a :class:`Dataflow`: its name, the DRAM-level loop orders it allows (see
:mod:`sqsim.hw.search`) and a pure ``activity(shape, hw, ctx) -> ArrayActivity``.  A new
accelerator is a YAML file plus, at most, one new module registering its dataflow here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

OPERANDS = ("weights", "inputs", "outputs")


@dataclass(frozen=True)
class ActivityContext:
    """What the array needs to know beyond the layer shape.

    Attributes
    ----------
    input_density : float
        Fraction of non-zero input activations (1: dense).
    weight_entries : float
        Stored weight entries of one group (non-zeros plus fillers; all weights when dense).
    weight_coded : bool
        Weights are weight-sharing codes (each use decodes through the codebook).
    weight_sparse : bool
        Weights carry relative indices (each use decodes an index).
    pointer_bytes : float
        Bytes per column pointer (sparse column-major formats; 0 otherwise).
    plan : object
        What the dataflow's own mapper chose (row stationary: :class:`RSPlan`); None otherwise.
    weight_density : float
        Non-zero weights over all weights (EIE's load balance; 1 when dense).
    """
    input_density: float = 1.0
    weight_entries: float = 0.0
    weight_coded: bool = False
    weight_sparse: bool = False
    pointer_bytes: float = 0.0
    plan: object = None
    weight_density: float = 1.0


@dataclass(frozen=True)
class ArrayActivity:
    """The array's work for one group of a layer over the whole batch.

    Counts are in elements of each operand (weights: dense-weight equivalents, so that times the
    stored bytes per weight gives bytes; outputs: partial sums).

    Attributes
    ----------
    compute_cycles : int
    macs : int
        Dense MACs.
    macs_effective : float
        MACs performed (and charged energy): fewer when zeros are skipped or gated.
    buffer_reads, buffer_writes : dict
        Between the operand's backing on-chip buffer and the array.
    register_accesses : dict
        PE-local register-file reads plus writes.
    network_transfers : dict
        Operand hops between PEs (or broadcast deliveries).
    decodes : float
        Weight entries decoded (codebook lookups; index decodes when sparse).
    extra_read_bytes : dict
        Further bytes read from an operand's buffer (e.g. EIE's column pointers).
    ramp_cycles : int
        Part of ``compute_cycles`` spent loading stationary data before passes start.
    active_pes : float or None
        PEs the mapping occupies.
    pe_mapping : dict or None
        The placement on the array, for reports.
    """
    compute_cycles: int
    macs: int
    macs_effective: float
    buffer_reads: dict = field(default_factory=dict)
    buffer_writes: dict = field(default_factory=dict)
    register_accesses: dict = field(default_factory=dict)
    network_transfers: dict = field(default_factory=dict)
    decodes: float = 0.0
    extra_read_bytes: dict = field(default_factory=dict)
    ramp_cycles: int = 0
    active_pes: float | None = None
    pe_mapping: dict | None = None

    def scaled(self, k: int) -> "ArrayActivity":
        """The activity of ``k`` identical groups run one after another."""
        def sc(d):
            return {op: v * k for op, v in d.items()}
        return ArrayActivity(self.compute_cycles * k, self.macs * k, self.macs_effective * k,
                             sc(self.buffer_reads), sc(self.buffer_writes), sc(self.register_accesses),
                             sc(self.network_transfers), self.decodes * k, sc(self.extra_read_bytes),
                             self.ramp_cycles * k, self.active_pes, self.pe_mapping)


@dataclass(frozen=True)
class Dataflow:
    """One dataflow: name, allowed DRAM-level loop orders, its activity function and, optionally,
    its own mapper ``mapper(shape, hw, buffers, dram_bytes, fixed_bytes, weights_resident,
    tile_bytes) -> (Mapping, plan)`` replacing the generic search (row stationary searches its PE
    placement and buffer tiles together), and ``minimal_tiles(shape, hw, weights_resident) ->
    {dim: tile}``, the smallest buffer tiles that mapper can use (default: every tiled loop at 1).
    A mapper that ranks candidates by energy or time also names ``mapper_prices(hw) -> tuple``:
    the energies, clock and bandwidths it reads, so that a sweep keys its searches on them
    (:func:`sqsim.hw.pricing.structure_key`)."""
    name: str
    orders: dict
    activity: Callable
    description: str = ""
    mapper: Callable | None = None
    minimal_tiles: Callable | None = None
    mapper_prices: Callable | None = None


def _registry() -> dict:
    from .eie_sparse import EIE_SPARSE
    from .row_stationary import ROW_STATIONARY
    from .systolic import INPUT_STATIONARY, OUTPUT_STATIONARY, WEIGHT_STATIONARY
    return {d.name: d for d in (OUTPUT_STATIONARY, WEIGHT_STATIONARY, INPUT_STATIONARY, ROW_STATIONARY,
                                EIE_SPARSE)}


_DATAFLOWS: dict | None = None


def get_dataflow(name: str) -> Dataflow:
    """The registered dataflow called ``name``."""
    global _DATAFLOWS
    if _DATAFLOWS is None:
        _DATAFLOWS = _registry()
    return _DATAFLOWS[name]


def dataflow_names() -> tuple[str, ...]:
    global _DATAFLOWS
    if _DATAFLOWS is None:
        _DATAFLOWS = _registry()
    return tuple(_DATAFLOWS)
