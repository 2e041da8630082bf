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
WEIGHT_POLICIES = ("preloaded", "per_batch", "streamed")
ZERO_ACTIVATION_POLICIES = ("none", "gate", "skip")
FUSABLE = ("relu", "pool")
DRAM_COMPRESSIONS = ("none", "rlc")
# Layer kinds a hardware may run (``runs``); the IR's ops with a cost model.
LAYER_KINDS = ("conv2d", "fc", "maxpool", "avgpool", "global_avgpool", "lrn", "add", "softmax")
PRECISION_TYPES = ("fixed", "float")
# IEEE-style exponent widths of the float formats by total width (8: E4M3, 16: fp16, 32: fp32, 64: fp64);
# bfloat16 is ``{bits: 16, type: float, exp_bits: 8}``.
FLOAT_EXP_BITS = {8: 4, 16: 5, 32: 8, 64: 11}
PRECISION_NAMES = {"fp8": (8, "float", 4), "fp16": (16, "float", 5), "bf16": (16, "float", 8),
                   "fp32": (32, "float", 8), "fp64": (64, "float", 11)}
# How a value is rounded to an operand's format (docs/models.md, "Datapath emulation"): to nearest with
# ties to even, away from zero or up (+inf: add half an LSB, then drop the bits); ``truncate`` drops the
# bits (two's complement: toward -inf; a float's mantissa: toward zero); ``toward_zero``.
ROUNDING_MODES = ("nearest_even", "nearest_away", "nearest_up", "truncate", "toward_zero")
# What happens to a value beyond the format's range: fixed point saturates or wraps (two's complement);
# a float saturates to its largest finite value or becomes infinite (IEEE).
OVERFLOW_MODES = {"fixed": ("saturate", "wrap"), "float": ("saturate", "infinity")}
DEFAULT_OVERFLOW = {"fixed": "saturate", "float": "infinity"}
# Operands with per-layer fraction bits (dynamic fixed point); biases have the weights' width.
FRAC_OPERANDS = ("weights", "biases", "psums", "activations")
# Per-layer fraction bits may be negative (an LSB above 1: a wide range in few bits) down to this.
MIN_FRAC_BITS = -64


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
        Width of the MAC datapath (operands in memory: :class:`Precision`).
    clock_hz : float
    ramp_cycles_per_word : float
        Cycles a processing pass stalls per stationary word it loads into the PEs before its
        first MAC (row stationary: the filter rows of the pass; 0 for the other dataflows).
    queue_depth : int
        Depth of each PE's activation queue (EIE: 8); 0: load imbalance not modelled.
    """
    rows: int
    cols: int
    macs_per_pe_per_cycle: int = 1
    datapath_bits: int = 16
    clock_hz: float = 200e6
    ramp_cycles_per_word: float = 0.0
    queue_depth: int = 0

    def __post_init__(self):
        if isinstance(self.queue_depth, bool) or not isinstance(self.queue_depth, int) or not 0 <= self.queue_depth <= 4096:
            _fail("array.queue_depth", f"must be an integer in 0..4096, got {short(self.queue_depth)}")
        if isinstance(self.ramp_cycles_per_word, bool) or not isinstance(self.ramp_cycles_per_word, (int, float)) \
                or not 0 <= self.ramp_cycles_per_word < float("inf"):
            _fail("array.ramp_cycles_per_word", f"must be a finite number >= 0, got {short(self.ramp_cycles_per_word)}")
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


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class OperandPrecision:
    """The number format of one operand (weights, activations or partial sums) in memory.

    Attributes
    ----------
    bits : int
        Storage width per value, 1..64.  Byte counts are ``bits / 8`` per value (narrow values are
        packed).
    type : str
        ``fixed`` (two's-complement fixed point / integer) or ``float``.
    frac_bits : int or None
        Fixed point: bits after the binary point (0..bits); None: not specified (an integer grid
        chosen per layer by the quantiser).
    exp_bits : int or None
        Float: exponent bits (None: the IEEE width for ``bits``, :data:`FLOAT_EXP_BITS`; 8 with
        16 bits is bfloat16).
    rounding : str
        How values are rounded to this format (:data:`ROUNDING_MODES`; default ``nearest_even``).
    overflow : str or None
        Beyond the range: fixed ``saturate`` (default) or ``wrap``; float ``infinity`` (default)
        or ``saturate``.  None: the type's default.

    Byte counts read only ``bits``; rounding and overflow matter to the datapath emulation
    (:mod:`sqsim.exec.datapath`).
    """
    bits: int
    type: str = "fixed"
    frac_bits: int | None = None
    exp_bits: int | None = None
    rounding: str = "nearest_even"
    overflow: str | None = None

    def __post_init__(self):
        self._check_format()
        if self.rounding not in ROUNDING_MODES:
            raise SpecError(f"unknown rounding mode {self.rounding!r} (expected one of {', '.join(ROUNDING_MODES)})")
        if self.overflow is None:
            object.__setattr__(self, "overflow", DEFAULT_OVERFLOW[self.type])
        elif self.overflow not in OVERFLOW_MODES[self.type]:
            raise SpecError(f"unknown overflow mode {self.overflow!r} for type {self.type} (expected one of "
                            f"{', '.join(OVERFLOW_MODES[self.type])})")

    def _check_format(self):
        if not _is_int(self.bits) or not 1 <= self.bits <= 64:
            raise SpecError(f"bits must be an integer in 1..64, got {short(self.bits)}")
        if self.type not in PRECISION_TYPES:
            raise SpecError(f"type must be one of {', '.join(PRECISION_TYPES)}, got {short(self.type)}")
        if self.type == "fixed":
            if self.exp_bits is not None:
                raise SpecError("exp_bits applies to type float only")
            if self.frac_bits is not None and (not _is_int(self.frac_bits)
                                               or not MIN_FRAC_BITS <= self.frac_bits <= self.bits):
                raise SpecError(f"frac_bits must be an integer in {MIN_FRAC_BITS}..{self.bits}, "
                                f"got {short(self.frac_bits)}")
        else:
            if self.frac_bits is not None:
                raise SpecError("frac_bits applies to type fixed only (a float's fraction is its mantissa)")
            if self.exp_bits is None and self.bits not in FLOAT_EXP_BITS:
                raise SpecError(f"a float of {self.bits} bits needs exp_bits (standard widths: "
                                f"{', '.join(map(str, FLOAT_EXP_BITS))})")
            if self.exp_bits is not None and (not _is_int(self.exp_bits) or not 1 <= self.exp_bits < self.bits - 1):
                raise SpecError(f"exp_bits must be an integer in 1..{self.bits - 2}, got {short(self.exp_bits)}")

    @property
    def bytes(self) -> float:
        """Bytes per value (packed)."""
        return self.bits / 8

    @property
    def exponent_bits(self) -> int | None:
        if self.type != "float":
            return None
        return self.exp_bits if self.exp_bits is not None else FLOAT_EXP_BITS[self.bits]

    @property
    def label(self) -> str:
        """``int16``, ``fixed16.8``, ``fp16``, ``bf16``, ``fp32``, ``float16e6``."""
        if self.type == "fixed":
            return f"int{self.bits}" if self.frac_bits is None else f"fixed{self.bits}.{self.frac_bits}"
        for name, (b, _, e) in PRECISION_NAMES.items():
            if (b, e) == (self.bits, self.exponent_bits):
                return name
        return f"float{self.bits}e{self.exponent_bits}"

    def to_dict(self) -> dict:
        d = {"bits": self.bits, "type": self.type}
        if self.frac_bits is not None:
            d["frac_bits"] = self.frac_bits
        if self.type == "float":
            d["exp_bits"] = self.exponent_bits
        if self.rounding != "nearest_even":   # the defaults are left out (reports keep their keys)
            d["rounding"] = self.rounding
        if self.overflow != DEFAULT_OVERFLOW[self.type]:
            d["overflow"] = self.overflow
        return d


@dataclass(frozen=True)
class LayerFracs:
    """Fraction bits of one layer's operands (dynamic fixed point), None where not given.

    ``weights`` and ``biases`` (stored at the weights' width), ``psums`` (the accumulator's value
    as it leaves the array) and ``activations`` (the layer's output feature map).  Each lies in
    :data:`MIN_FRAC_BITS` .. the operand's width: more fraction bits than the width would put even
    the sign below the binary point; fewer than zero (an LSB above 1) hold a wide range in few bits.
    """
    weights: int | None = None
    biases: int | None = None
    psums: int | None = None
    activations: int | None = None

    def to_dict(self) -> dict:
        return {op: getattr(self, op) for op in FRAC_OPERANDS if getattr(self, op) is not None}


@dataclass(frozen=True)
class Precision:
    """Number formats per operand, apart from the datapath width (``array.datapath_bits``).

    Every byte count (DRAM traffic, on-chip buffers and tiles, the fit of the weights, activation
    residency) uses these widths: dense weights (and biases and codebook values) at ``weights``,
    feature maps at ``activations``, partial sums that leave the array (accumulating tiles in a
    buffer, partial sums spilled to DRAM and read back) at ``psums``.  Compressed weights keep
    their code and index widths.

    ``frac_bits``: per-layer fraction bits (``((layer, LayerFracs), ...)``, from the YAML's
    ``precision.frac_bits`` or a formats file written by ``sqsim calibrate``; ``frac_bits_source``
    names it).  They do not change any byte count; the datapath emulation reads them.
    """
    weights: OperandPrecision
    activations: OperandPrecision
    psums: OperandPrecision
    frac_bits: tuple = ()
    frac_bits_source: str | None = None

    def __post_init__(self):
        for layer, fr in self.frac_bits:
            for op in FRAC_OPERANDS:
                v = getattr(fr, op)
                if v is None:
                    continue
                fmt = self.operand(op)
                where = f"frac_bits.{layer}.{op}"
                if fmt.type != "fixed":
                    raise SpecError(f"{where}: fraction bits apply to fixed point, but {op} are {fmt.label}")
                if not _is_int(v) or not MIN_FRAC_BITS <= v <= fmt.bits:
                    raise SpecError(f"{where}: fraction bits must be an integer in {MIN_FRAC_BITS}..{fmt.bits} "
                                    f"(the {op}' width), got {v!r}")

    def operand(self, op: str) -> OperandPrecision:
        """The format of ``op`` (``biases``: the weights')."""
        return self.weights if op == "biases" else getattr(self, op)

    def layer_fracs(self, layer: str) -> LayerFracs:
        """The fraction bits given for ``layer`` (all None when none are)."""
        return dict(self.frac_bits).get(layer, LayerFracs())

    def to_dict(self) -> dict:
        d = {op: getattr(self, op).to_dict() for op in ("weights", "activations", "psums")}
        if self.frac_bits:
            d["frac_bits"] = {name: fr.to_dict() for name, fr in self.frac_bits}
        return d


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
    pointer_level : str or None
        The memory level the column pointers are read from (EIE: its pointer SRAM); None: the
        weights' buffer.
    """
    code_bits: int | None = None
    index_bits: int | None = None
    pointer_bits: int = 16
    pointer_level: str | None = None

    def __post_init__(self):
        for name in ("code_bits", "index_bits", "pointer_bits"):
            v = getattr(self, name)
            if name == "pointer_bits" and v is None:
                _fail("weight_format.pointer_bits", "must be an integer in 1..16, got None")
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 16):
                _fail(f"weight_format.{name}", f"must be an integer in 1..16, got {short(v)}")


@dataclass(frozen=True)
class Sparsity:
    """Which zeros the hardware exploits.

    Zero weights: the ``eie_sparse`` dataflow stores and processes only the stored entries (its
    compressed sparse columns); the dense arrays compute every weight, zero or not.

    zero_activations : ``skip`` (cycles, MACs and their energy only for non-zero input
        activations: EIE), ``gate`` (a zero input saves the MAC's and the weight read's energy,
        not the cycle: Eyeriss's data gating) or ``none``.
    skip_zero_activations, gate_zero_activations : the same as booleans (older spelling; they
        must agree with ``zero_activations`` when both are given).
    """
    skip_zero_activations: bool = False
    gate_zero_activations: bool = False
    zero_activations: str | None = None

    def __post_init__(self):
        if self.skip_zero_activations and self.gate_zero_activations:
            _fail("sparsity", "skip_zero_activations and gate_zero_activations exclude each other "
                              "(use zero_activations: skip | gate | none)")
        implied = "skip" if self.skip_zero_activations else "gate" if self.gate_zero_activations else None
        z = self.zero_activations
        if z is None:
            z = implied or "none"
        elif z not in ZERO_ACTIVATION_POLICIES:
            _fail("sparsity.zero_activations", f"unknown policy {short(z)} (expected one of "
                                               f"{', '.join(ZERO_ACTIVATION_POLICIES)})")
        elif implied is not None and implied != z:
            _fail("sparsity.zero_activations", f"{short(z)} contradicts {implied}_zero_activations: true")
        object.__setattr__(self, "zero_activations", z)
        object.__setattr__(self, "skip_zero_activations", z == "skip")
        object.__setattr__(self, "gate_zero_activations", z == "gate")


@dataclass(frozen=True)
class DramCompression:
    """How feature maps are coded on their way to and from DRAM.

    activations : ``none`` or ``rlc`` (run-length coding, :mod:`sqsim.hw.rlc`): feature maps the
        chip reads from or writes to DRAM take ``rlc_ratio(density)`` of their raw bytes (the
        network input too: the host writes it in the chip's format); partial sums travel raw.
    run_bits, word_bits : the RLC format (Eyeriss: 5-bit runs, 64-bit words of three pairs).
    """
    activations: str = "none"
    run_bits: int = 5
    word_bits: int = 64

    def __post_init__(self):
        if self.activations not in DRAM_COMPRESSIONS:
            _fail("dram_compression.activations", f"unknown coding {short(self.activations)} (expected one of "
                                                  f"{', '.join(DRAM_COMPRESSIONS)})")
        for name in ("run_bits", "word_bits"):
            v = getattr(self, name)
            if not _is_int(v) or not 1 <= v <= 1024:
                _fail(f"dram_compression.{name}", f"must be a positive integer, got {short(v)}")

    @property
    def rlc(self):
        from .rlc import RLC
        return RLC(self.run_bits, self.word_bits)


@dataclass(frozen=True)
class Policies:
    """Execution policies.

    keep_weights_on_chip : load every layer's weights once per batch when the whole model fits in
        the weight buffer next to the largest activation working set.
    weights : ``preloaded`` (loaded once before the first inference: no weight DRAM traffic per
        inference, as EIE and an FPGA holding the model do), ``per_batch`` (loaded once per
        batch) or ``streamed`` (tiled from DRAM with everything else).  Preloaded and per-batch
        weights stay on chip only when the model fits; otherwise they stream.  Default: from
        ``keep_weights_on_chip`` (true: ``per_batch``, false: ``streamed``).
    overlap_dram : ``true``: DRAM transfers overlap processing (a layer takes the longer of the
        two); ``false``: the array stops while feature maps are loaded from and stored to DRAM
        (Eyeriss; weights still prefetch in the background), so a layer's latency is its
        processing time plus that transfer time.  Both are reported.
    fuse : operations run on a producer's output before it is stored: ``relu`` (always: applied
        in place on the producer's output) and ``pool`` (a max/avg pool reading only conv
        outputs runs on a line buffer, so the pre-pool map never reaches DRAM).
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
    weights: str | None = None
    overlap_dram: bool = True
    fuse: tuple = ()

    def __post_init__(self):
        if _bad_count(self.batch, "batch"):
            _fail("policies.batch", f"must be {_count_range('batch')}, got {short(self.batch)}")
        if self.weights is None:
            object.__setattr__(self, "weights", "per_batch" if self.keep_weights_on_chip else "streamed")
        elif self.weights not in WEIGHT_POLICIES:
            _fail("policies.weights", f"unknown policy {short(self.weights)} (expected one of {', '.join(WEIGHT_POLICIES)})")
        elif not self.keep_weights_on_chip and self.weights != "streamed":
            _fail("policies.weights", f"{short(self.weights)} contradicts keep_weights_on_chip: false")
        object.__setattr__(self, "keep_weights_on_chip", self.weights != "streamed")
        fuse = self.fuse
        if isinstance(fuse, str):
            fuse = (fuse,)
        if not isinstance(fuse, (list, tuple)) or any(f not in FUSABLE for f in fuse):
            _fail("policies.fuse", f"expected a list of {', '.join(FUSABLE)}, got {short(self.fuse)}")
        object.__setattr__(self, "fuse", tuple(dict.fromkeys(fuse)))
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
    precision : Precision
        Number formats per operand (default: the datapath width).
    dram_compression : DramCompression
        Coding of feature maps to and from DRAM.
    runs : tuple of str
        The layer kinds the hardware executes (EIE: ``fc``); the others are left to the host and
        not costed.
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
    precision: Precision | None = None
    dram_compression: DramCompression = field(default_factory=DramCompression)
    runs: tuple = LAYER_KINDS

    def __post_init__(self):
        runs = self.runs
        if isinstance(runs, str):
            runs = (runs,)
        if not isinstance(runs, (list, tuple)) or not runs or any(k not in LAYER_KINDS for k in runs):
            _fail("runs", f"expected a non-empty list of layer kinds among {', '.join(LAYER_KINDS)}, got {short(self.runs)}")
        object.__setattr__(self, "runs", tuple(dict.fromkeys(runs)))
        if self.precision is None:   # default: every operand at the datapath width, fixed point
            word = OperandPrecision(self.array.datapath_bits)
            object.__setattr__(self, "precision", Precision(word, word, word))
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
        if self.weight_format.pointer_level is not None:
            lv = next((l for l in self.levels if l.name == self.weight_format.pointer_level), None)
            if lv is None or not lv.on_chip:
                _fail("weight_format.pointer_level", f"{short(self.weight_format.pointer_level)} is not an on-chip memory "
                                                     f"level (levels: {', '.join(l.name for l in self.levels)})")
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

    def pointer_level(self) -> MemoryLevel | None:
        """The on-chip level holding column pointers apart from the weights' buffer (None: they
        share the weights' buffer)."""
        name = self.weight_format.pointer_level
        if name is None or name == self.backing_level("weights").name:
            return None
        return self.level(name)

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
        """Bytes of one datapath word (``array.datapath_bits / 8``)."""
        return self.array.word_bytes

    @property
    def act_bytes(self) -> float:
        """Bytes per activation value in memory (``precision.activations``)."""
        return self.precision.activations.bytes

    @property
    def weight_value_bytes(self) -> float:
        """Bytes per uncompressed weight value (and bias, codebook value): ``precision.weights``."""
        return self.precision.weights.bytes

    @property
    def psum_bytes(self) -> float:
        """Bytes per partial sum outside the array (``precision.psums``)."""
        return self.precision.psums.bytes
