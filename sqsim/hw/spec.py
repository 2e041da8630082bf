"""Hardware spec records: the architecture (compute array, memory levels), the energy table, the
dataflow and the policies of one accelerator, as frozen dataclasses that validate themselves.

Internally everything is SI: bytes, hertz, joules, bytes per second.  The YAML loader
(:mod:`sqsim.hw.loader`) parses unit strings into these records.  Timeloop/Accelergy-style
separation: this module says what the hardware *is*; the workload is the IR's
:class:`~sqsim.ir.LayerInfo`; the mapping comes from :mod:`sqsim.hw.search`; the per-action energy
costs are :class:`EnergyTable` and each :class:`MemoryLevel`'s access energies.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SpecError, short

OPERANDS = ("weights", "inputs", "outputs")
LEVEL_KINDS = ("dram", "sram", "regfile", "network")
DATAFLOW_NAMES = ("weight_stationary", "output_stationary", "input_stationary", "row_stationary", "eie_sparse")
ACTIVATION_POLICIES = ("dram", "on_chip")


def _fail(owner: str, msg: str):
    raise SpecError(f"{owner}: {msg}")


def _bad_count(v, limit: str = "dim") -> bool:
    """Not a positive integer within sqsim's limit ``limit`` (:mod:`sqsim.limits`)."""
    from ..limits import current
    return isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v > getattr(current(), limit)


def _count_range(limit: str = "dim") -> str:
    from ..limits import current
    return f"a positive integer up to {getattr(current(), limit):,}"


@dataclass(frozen=True)
class ArraySpec:
    """The compute array.

    Attributes
    ----------
    rows, cols : int
        PE grid (a 1-D array of ``pes`` PEs is ``rows=pes, cols=1``).
    macs_per_pe_per_cycle : int
    datapath_bits : int
        Width of activations and dense weights in the datapath (and in the buffers).
    clock_hz : float
    """
    rows: int
    cols: int
    macs_per_pe_per_cycle: int = 1
    datapath_bits: int = 16
    clock_hz: float = 200e6

    def __post_init__(self):
        for name in ("rows", "cols", "macs_per_pe_per_cycle", "datapath_bits"):
            v = getattr(self, name)
            if _bad_count(v):
                _fail(f"array.{name}", f"must be {_count_range()}, got {short(v)}")
        if self.datapath_bits % 8:
            _fail("array.datapath_bits", f"must be a multiple of 8, got {self.datapath_bits}")
        if not self.clock_hz > 0:
            _fail("clock", f"must be positive, got {short(self.clock_hz)}")

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.pes * self.macs_per_pe_per_cycle

    @property
    def word_bytes(self) -> int:
        return self.datapath_bits // 8


@dataclass(frozen=True)
class MemoryLevel:
    """One level of the memory hierarchy (DRAM, an on-chip buffer, register files, the PE network).

    Attributes
    ----------
    name : str
    kind : str
        ``dram``, ``sram``, ``regfile`` or ``network`` (inter-PE transfers; no capacity).
    holds : tuple of str
        Operands stored at this level (``weights``, ``inputs``, ``outputs``); DRAM holds all.
    capacity_bytes : float or None
        Per instance; None for DRAM and the network.
    instances : int
        Copies (per-PE register files: one per PE).  Total capacity = ``capacity_bytes * instances``.
    word_bits : int
        Access width; an access moves one word.
    banks : int or None
    bandwidth_bytes_per_s : float or None
        Sustained bandwidth.  None: ``word_bits/8 * banks * instances`` bytes per cycle when
        ``banks`` is given, else unlimited (the level is assumed to keep up with the array, as
        SCALE-Sim's SRAMs do).
    read_energy_j, write_energy_j : float
        Energy per access of one word.
    """
    name: str
    kind: str
    holds: tuple[str, ...] = OPERANDS
    capacity_bytes: float | None = None
    instances: int = 1
    word_bits: int = 8
    banks: int | None = None
    bandwidth_bytes_per_s: float | None = None
    read_energy_j: float = 0.0
    write_energy_j: float = 0.0

    def __post_init__(self):
        owner = f"memory level {short(self.name)}"
        if self.kind not in LEVEL_KINDS:
            _fail(owner, f"unknown kind {short(self.kind)} (expected one of {', '.join(LEVEL_KINDS)})")
        for op in self.holds:
            if op not in OPERANDS:
                _fail(owner, f"unknown operand {short(op)} in 'holds' (expected {', '.join(OPERANDS)})")
        if self.kind in ("sram", "regfile"):
            if self.capacity_bytes is None:
                _fail(owner, "capacity is required for an on-chip buffer")
            if not self.capacity_bytes > 0:
                _fail(owner, f"capacity must be positive, got {short(self.capacity_bytes)} bytes")
            if not self.holds:
                _fail(owner, "an on-chip buffer must hold at least one operand ('holds')")
        for name in ("instances", "word_bits", "banks"):
            v = getattr(self, name)
            if name == "banks" and v is None:
                continue
            if _bad_count(v):
                _fail(owner, f"{name} must be {_count_range()}, got {short(v)}")
        if self.bandwidth_bytes_per_s is not None and not self.bandwidth_bytes_per_s > 0:
            _fail(owner, f"bandwidth must be positive, got {short(self.bandwidth_bytes_per_s)}")
        if self.kind == "dram" and self.bandwidth_bytes_per_s is None:
            _fail(owner, "DRAM needs a bandwidth (e.g. '4.2 GB/s')")
        for name in ("read_energy_j", "write_energy_j"):
            if getattr(self, name) < 0:
                _fail(owner, f"{name[:-2]} must not be negative, got {short(getattr(self, name))}")

    @property
    def on_chip(self) -> bool:
        return self.kind in ("sram", "regfile")

    @property
    def total_capacity_bytes(self) -> float:
        return (self.capacity_bytes or 0.0) * self.instances

    @property
    def word_bytes(self) -> float:
        return self.word_bits / 8

    def bytes_per_cycle(self, clock_hz: float) -> float:
        """Sustained bandwidth in bytes per array clock cycle (``inf``: not a bottleneck)."""
        if self.bandwidth_bytes_per_s is not None:
            return self.bandwidth_bytes_per_s / clock_hz
        if self.banks is None:
            return float("inf")
        return self.word_bytes * self.banks * self.instances


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action outside the memory levels (the levels carry their own access energies).

    Attributes
    ----------
    mac_j : float
        One multiply-accumulate at the datapath width.
    codebook_lookup_j : float
        Decoding one weight-sharing code into its value (a small-table read).
    index_decode_j : float
        Decoding one relative sparse index (an add of the index to a running position).
    """
    mac_j: float
    codebook_lookup_j: float = 0.0
    index_decode_j: float = 0.0

    def __post_init__(self):
        for name in ("mac_j", "codebook_lookup_j", "index_decode_j"):
            if getattr(self, name) < 0:
                _fail(f"energy.{name[:-2]}", f"must not be negative, got {short(getattr(self, name))}")


@dataclass(frozen=True)
class WeightFormat:
    """How the hardware stores weights.

    Attributes
    ----------
    code_bits, index_bits : int or None
        A fixed on-chip format (EIE: 4-bit codes + 4-bit relative indices).  None: weights are
        stored as the compression profile (or the compressed model) says; dense layers at the
        datapath width.
    pointer_bits : int
        Width of a column pointer in sparse-column storage (EIE: 16).
    """
    code_bits: int | None = None
    index_bits: int | None = None
    pointer_bits: int = 16

    def __post_init__(self):
        for name in ("code_bits", "index_bits", "pointer_bits"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 16):
                _fail(f"weight_format.{name}", f"must be an integer in 1..16, got {short(v)}")


@dataclass(frozen=True)
class Sparsity:
    """Which zeros the hardware exploits.

    Zero weights: the ``eie_sparse`` dataflow stores and processes only the stored entries (its
    compressed sparse columns); the dense arrays compute every weight, zero or not.

    skip_zero_activations : cycles and MACs only for non-zero input activations (EIE).
    gate_zero_activations : a zero input activation saves the MAC's and the weight read's energy,
        not the cycle (Eyeriss's data gating).
    """
    skip_zero_activations: bool = False
    gate_zero_activations: bool = False


@dataclass(frozen=True)
class Policies:
    """Execution policies.

    keep_weights_on_chip : load every layer's weights once per batch when the whole model fits in
        the weight buffer next to the largest activation working set.
    batch : default batch size (the CLI's ``--batch`` overrides it).
    activations : where activation tensors live between layers.  ``dram``: every layer reads its
        inputs from and writes its outputs to DRAM (as SCALE-Sim and nn_dataflow assume).
        ``on_chip``: a tensor stays in the on-chip buffer that holds activations when, as it is
        produced, it fits next to the resident weights, the other live resident tensors and the
        working set of every layer of its lifetime; otherwise it spills to DRAM (a greedy,
        first-come-first-served allocator in topological order:
        :mod:`sqsim.analysis.residency`).  Needs one on-chip level holding both inputs and
        outputs.
    """
    keep_weights_on_chip: bool = True
    batch: int = 1
    activations: str = "dram"

    def __post_init__(self):
        if _bad_count(self.batch, "batch"):
            _fail("policies.batch", f"must be {_count_range('batch')}, got {short(self.batch)}")
        if self.activations not in ACTIVATION_POLICIES:
            _fail("policies.activations", f"unknown policy {short(self.activations)} "
                                          f"(expected one of {', '.join(ACTIVATION_POLICIES)})")


@dataclass(frozen=True)
class HardwareSpec:
    """A whole accelerator.

    Attributes
    ----------
    name : str
    array : ArraySpec
    levels : tuple of MemoryLevel
        From DRAM inward: ``levels[0]`` is the DRAM.
    energy : EnergyTable
    dataflow : str
        One of :data:`DATAFLOW_NAMES`.
    weight_format, sparsity, policies
    source : str or None
        The YAML file it came from.
    """
    name: str
    array: ArraySpec
    levels: tuple[MemoryLevel, ...]
    energy: EnergyTable
    dataflow: str
    weight_format: WeightFormat = field(default_factory=WeightFormat)
    sparsity: Sparsity = field(default_factory=Sparsity)
    policies: Policies = field(default_factory=Policies)
    description: str = ""
    source: str | None = None

    def __post_init__(self):
        if self.dataflow not in DATAFLOW_NAMES:
            _fail("dataflow", f"unknown dataflow {short(self.dataflow)} (expected one of {', '.join(DATAFLOW_NAMES)})")
        if not self.levels:
            _fail("memory", "no memory levels: need a DRAM level and at least one on-chip buffer")
        names = [l.name for l in self.levels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            _fail("memory", f"duplicate level name(s) {dup}")
        drams = [l for l in self.levels if l.kind == "dram"]
        if len(drams) != 1 or self.levels[0].kind != "dram":
            _fail("memory", f"the first level must be the one DRAM level (missing level 'dram'?); got kinds "
                            f"{[l.kind for l in self.levels]}")
        if not any(l.on_chip for l in self.levels):
            _fail("memory", "missing level: no on-chip buffer (kind sram or regfile)")
        for op in OPERANDS:
            if self.backing_level(op) is None:
                _fail("memory", f"operand {short(op)} has no on-chip buffer: no sram/regfile level lists it in "
                                f"'holds'")
        if self.policies.activations == "on_chip" and self.activation_level() is None:
            _fail("policies.activations", f"on_chip needs one on-chip buffer holding both inputs and outputs, "
                                          f"so that a layer's output can be read in place by its consumers; "
                                          f"here inputs are backed by {short(self.backing_level('inputs').name)} "
                                          f"and outputs by {short(self.backing_level('outputs').name)} (use 'dram')")

    # --- derived views ------------------------------------------------------------------------
    @property
    def dram(self) -> MemoryLevel:
        return self.levels[0]

    def level(self, name: str) -> MemoryLevel:
        for l in self.levels:
            if l.name == name:
                return l
        raise SpecError(f"hardware {short(self.name)} has no memory level {short(name)}")

    def backing_level(self, operand: str) -> MemoryLevel | None:
        """The outermost on-chip level holding ``operand``: what DRAM fills and tiles are sized for."""
        for l in self.levels[1:]:
            if l.on_chip and operand in l.holds:
                return l
        return None

    def activation_level(self) -> MemoryLevel | None:
        """The on-chip buffer where activation tensors can stay between layers: the backing level
        of both inputs and outputs (None when they are backed by different levels)."""
        level = self.backing_level("inputs")
        return level if level is not None and level is self.backing_level("outputs") else None

    def register_level(self, operand: str) -> MemoryLevel | None:
        """The innermost regfile level holding ``operand`` (None when the hardware has none)."""
        for l in reversed(self.levels):
            if l.kind == "regfile" and operand in l.holds:
                return l
        return None

    def network_level(self) -> MemoryLevel | None:
        for l in self.levels:
            if l.kind == "network":
                return l
        return None

    @property
    def clock_hz(self) -> float:
        return self.array.clock_hz

    @property
    def word_bytes(self) -> int:
        return self.array.word_bytes
