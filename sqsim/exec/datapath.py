"""The datapath a network is emulated on: number formats per layer and operand, from a hardware model's
``precision`` block (:class:`sqsim.hw.spec.Precision`), and the rounding every format applies.

The arithmetic (docs/models.md, "Datapath emulation", states it in full):

- weights (and the codebook values of compressed layers) are rounded to ``precision.weights`` with their
  layer's fraction bits ``fw``, biases to the weights' width with their own ``fb``; the network input and
  every feature map to ``precision.activations`` (fraction bits per *format group*: a conv's output, the
  ReLU and max pool after it and the concat that holds it share one feature map, so one format);
- a conv or fc output is the **exact** sum of the exact products (``W + A`` bits each, fraction ``fw + fa``)
  over the whole reduction plus the aligned bias, in any order (exact, so order does not matter);
  it is then rounded once to the psum format (``P`` bits, fraction ``fp``) and saturated or wrapped to
  ``P`` bits as it is written out of the accumulator, then rounded and saturated (or wrapped) to the
  output's activation format, then ReLU'd if a ReLU follows;
- an average pool is the exact window sum divided by the window's count, rounded once to the output
  format; an add aligns its inputs exactly and rounds once; max pool, ReLU and concat move codes;
- float formats (fp16, bf16, ...) round to nearest-even (or the mode given) at their mantissa width, with
  IEEE subnormals and overflow to infinity (or saturation).  A sum with a float operand is accumulated in
  float64 (order-dependent in its last bits, far below any psum format's) and rounded once.

Fixed-point weights and activations travel as integer *codes* (value = code * 2**-frac) in the
executor's float32 buffers, which hold integers up to 2**24 exactly; hence at most 24 bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import SpecError
from ..hw.spec import FRAC_OPERANDS, MIN_FRAC_BITS, ROUNDING_MODES, LayerFracs, OperandPrecision, Precision

# Kernel codes of the format kinds, rounding and overflow modes (the order of ROUNDING_MODES).
KIND_FIXED, KIND_FLOAT, KIND_REAL = 0, 1, 2
ROUND_CODE = {m: i for i, m in enumerate(ROUNDING_MODES)}
ROUND_TOWARD_ZERO = ROUND_CODE["toward_zero"]
OVERFLOW_CODE = {"saturate": 0, "wrap": 1, "infinity": 2}
# Fixed-point codes live in float32 buffers: exact integers up to 2**24.
MAX_CODE_BITS = 24
# A float format stored in float32 buffers: at most 8 exponent and 23 mantissa bits.
MAX_STORED_FLOAT = (8, 23)
# Sums of integer-valued float64 terms are exact while every partial sum stays below 2**53 (every integer
# of magnitude up to 2**53 is a double, and the sum of two doubles is the exact sum rounded, so it is exact
# when the exact sum is a double); float32 the same below 2**24.
EXACT_F64 = 2.0 ** 53
EXACT_F32 = 2.0 ** 24
# Layer ops whose output joins its input's feature map (and format); concat joins all its inputs.
SAME_FORMAT_OPS = ("relu", "dropout", "flatten", "maxpool")
WEIGHTED_OPS = ("conv2d", "fc")


@dataclass(frozen=True)
class NumberFormat:
    """One operand's number format at one layer.

    Attributes
    ----------
    kind : ``fixed``, ``float`` or ``real`` (not rounded: float32 as the host computes it, e.g. softmax).
    bits : int
    frac : int
        Fixed point: fraction bits (value = code * 2**-frac); 0 otherwise.
    exp_bits, man_bits : int
        Float: exponent and mantissa (stored fraction) bits.
    rounding, overflow : str
    """
    kind: str
    bits: int = 32
    frac: int = 0
    exp_bits: int = 0
    man_bits: int = 0
    rounding: str = "nearest_even"
    overflow: str = "saturate"

    @classmethod
    def of(cls, op: OperandPrecision, frac: int | None = None) -> "NumberFormat":
        if op.type == "fixed":
            return cls("fixed", op.bits, 0 if frac is None else int(frac), rounding=op.rounding, overflow=op.overflow)
        e = op.exponent_bits
        return cls("float", op.bits, 0, e, op.bits - 1 - e, op.rounding, op.overflow)

    @property
    def label(self) -> str:
        if self.kind == "fixed":
            return f"fixed{self.bits}.{self.frac}"
        if self.kind == "real":
            return "real"
        return OperandPrecision(self.bits, "float", exp_bits=self.exp_bits).label

    @property
    def scale(self) -> float:
        """Code units per unit value: ``2**frac`` (1 for floats)."""
        return math.ldexp(1.0, self.frac)

    @property
    def max_code(self) -> float:
        """The largest magnitude a code can have (fixed: ``2**(bits-1)``; float: its largest finite value)."""
        if self.kind == "fixed":
            return math.ldexp(1.0, self.bits - 1)
        if self.kind == "float":
            return (2.0 - math.ldexp(1.0, -self.man_bits)) * math.ldexp(1.0, (1 << (self.exp_bits - 1)) - 1)
        return float(np.finfo(np.float32).max)

    def params(self) -> np.ndarray:
        """The format as the kernels read it: ``[kind, bits, frac, exp_bits, man_bits, rounding, overflow]``
        (float64).  A float's ``truncate`` is toward zero (its mantissa is sign-magnitude)."""
        kind = {"fixed": KIND_FIXED, "float": KIND_FLOAT, "real": KIND_REAL}[self.kind]
        mode = ROUND_CODE[self.rounding]
        if self.kind == "float" and self.rounding == "truncate":
            mode = ROUND_TOWARD_ZERO
        return np.array([kind, self.bits, self.frac, self.exp_bits, self.man_bits, mode,
                         OVERFLOW_CODE[self.overflow]], np.float64)

    def quantize(self, values, frac_in: int = 0) -> np.ndarray:
        """Codes of ``values`` (float64 array, in units of ``2**-frac_in``) in this format (float64)."""
        return requantize(np.asarray(values, np.float64), frac_in, self)

    def to_real(self, codes) -> np.ndarray:
        """Values of codes (float32 in, float32 out: exact, a power-of-two scaling)."""
        codes = np.asarray(codes, np.float32)
        return codes * np.float32(math.ldexp(1.0, -self.frac)) if self.kind == "fixed" and self.frac else codes


REAL = NumberFormat("real")


# --- rounding (numpy; the kernels' scalar versions are in kernels/cpu/requant.py) ------------------------
def round_mode(t, mode: int, xp=np):
    """``t`` rounded to integers by rounding mode ``mode`` (:data:`ROUND_CODE`), exactly for |t| < 2**53
    (``xp``: numpy, or CuPy for device arrays)."""
    if mode == ROUND_CODE["nearest_even"]:
        return xp.rint(t)
    if mode == ROUND_CODE["truncate"]:
        return xp.floor(t)
    if mode == ROUND_TOWARD_ZERO:
        return xp.trunc(t)
    r = xp.floor(t)
    f = t - r  # exact: t and floor(t) share their high bits
    if mode == ROUND_CODE["nearest_up"]:
        return r + (f >= 0.5)
    return r + ((f > 0.5) | ((f == 0.5) & (t > 0)))  # nearest_away


def requantize(x, frac_in: int, fmt: NumberFormat, xp=np):
    """Values ``x`` (float64, in units of ``2**-frac_in``) rounded to ``fmt``: codes (fixed), values
    (float, real); float64.  The same operations as the CPU kernels (:mod:`.kernels.cpu.requant`)."""
    p = fmt.params()
    mode, ovf = int(p[5]), int(p[6])
    if fmt.kind == "fixed":
        q = round_mode(x * math.ldexp(1.0, fmt.frac - frac_in), mode, xp)
        half = math.ldexp(1.0, fmt.bits - 1)
        if ovf == OVERFLOW_CODE["wrap"] and fmt.bits < 64:
            qi = q.astype(xp.int64)
            m = np.int64((1 << fmt.bits) - 1)
            h = np.int64(1 << (fmt.bits - 1))
            return (((qi + h) & m) - h).astype(xp.float64)
        return xp.clip(q, -half, half - 1)
    v = x * math.ldexp(1.0, -frac_in)
    if fmt.kind == "real":
        return v
    return round_float(v, fmt.exp_bits, fmt.man_bits, mode, ovf, xp)


def round_float(v, exp_bits: int, man_bits: int, mode: int, ovf: int, xp=np):
    """``v`` rounded to a float of ``exp_bits`` exponent and ``man_bits`` mantissa bits (IEEE-style:
    subnormals, largest exponent ``2**(exp_bits-1) - 1``), overflowing to infinity or saturating."""
    v = xp.asarray(v, xp.float64)
    emax = (1 << (exp_bits - 1)) - 1
    emin = 1 - emax
    _, e = xp.frexp(v)              # |v| = m * 2**e, 0.5 <= m < 1: v's exponent is e - 1
    e = xp.maximum(e - 1, emin)     # below the normal range: the subnormal quantum
    with np.errstate(invalid="ignore", over="ignore"):
        q = xp.ldexp(round_mode(xp.ldexp(v, man_bits - e), mode, xp), e - man_bits)
    big = (2.0 - math.ldexp(1.0, -man_bits)) * math.ldexp(1.0, emax)
    over = xp.abs(q) > big
    q = xp.where(over, xp.copysign(big if ovf == OVERFLOW_CODE["saturate"] else math.inf, q), q)
    return xp.where(xp.isfinite(v), q, v)


def lrn_f64(v: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """Caffe LRN across channels of ``v (C, M)`` in float64: ``v / (k + alpha/size * sum of squares over the
    window [c - (size-1)/2, c + (size-1)/2] clipped to the channels) ** beta``."""
    c = v.shape[0]
    half = (size - 1) // 2
    sq = np.concatenate([np.zeros((1, v.shape[1])), np.cumsum(v * v, axis=0)])
    lo = np.clip(np.arange(c) - half, 0, c)
    hi = np.clip(np.arange(c) + half + 1, 0, c)
    return v / (k + alpha / size * (sq[hi] - sq[lo])) ** beta


def frac_for_range(max_abs: float, bits: int) -> int:
    """Dynamic fixed point (Ristretto, Gysel et al. 2016): the fraction bits of a signed ``bits``-bit format
    with the fewest integer bits that hold ``max_abs``, ``bits - 1 - ceil(log2(max_abs))`` (at most ``bits``:
    a range below 2**-1 keeps ``bits`` fraction bits; at least :data:`MIN_FRAC_BITS`)."""
    if not max_abs > 0 or not math.isfinite(max_abs):
        return bits
    m, e = math.frexp(max_abs)          # max_abs = m * 2**e, 0.5 <= m < 1
    int_bits = e - 1 if m == 0.5 else e  # ceil(log2(max_abs))
    return max(MIN_FRAC_BITS, min(bits, bits - 1 - int_bits))


# --- per-layer formats -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerDatapath:
    """The formats of one layer: its output feature map's, and a conv/fc's weights, biases and psums."""
    name: str
    op: str
    output: NumberFormat
    inputs: tuple = ()
    weights: NumberFormat | None = None
    biases: NumberFormat | None = None
    psums: NumberFormat | None = None

    @property
    def product_frac(self) -> int:
        """Fraction bits of a product (``fw + fa``; 0 with a float operand)."""
        return self.weights.frac + self.inputs[0].frac


@dataclass(frozen=True)
class Datapath:
    """Number formats of a datapath: per-operand widths and modes (:class:`~sqsim.hw.spec.Precision`) and
    per-layer fraction bits.

    Build one from a hardware model (:meth:`from_hw`), add calibrated fractions (:meth:`with_fracs`,
    :func:`sqsim.exec.calibrate.calibrate`), and pass it to ``Executor(graph, weights, datapath=...)``.

    Fraction bits of a layer and operand, in order: the per-layer value (``precision.frac_bits``, a formats
    file, :meth:`with_fracs`); the operand's own ``frac_bits``; else weights and biases from their range
    (dynamic fixed point), psums as many as the products have while keeping the output's integer bits
    (``min(fw + fa, fo + P - A)``); activations have no default (calibrate, or give them).
    """
    precision: Precision
    source: str = "datapath"

    @classmethod
    def from_hw(cls, hw, formats=None, overrides=()) -> "Datapath":
        """The datapath of a hardware model (a :class:`~sqsim.hw.spec.HardwareSpec` or a YAML path, with
        ``--set`` style ``overrides``), with the per-layer fractions of a ``formats`` file on top."""
        if not hasattr(hw, "precision"):
            from ..hw import load_hw
            hw = load_hw(hw, overrides)
        dp = cls(hw.precision, hw.source or hw.name)
        if formats is not None:
            from ..hw.formats import load_formats
            fracs, _ = load_formats(formats, dp.fixed_widths())
            dp = dp.with_fracs(fracs, source=str(formats))
        return dp

    def fixed_widths(self) -> dict:
        """Widths of the fixed-point operands (``weights``, ``activations``, ``psums``)."""
        p = self.precision
        return {op: getattr(p, op).bits for op in ("weights", "activations", "psums")
                if getattr(p, op).type == "fixed"}

    def with_fracs(self, fracs, source: str | None = None) -> "Datapath":
        """Per-layer fraction bits added (they override those given): ``{layer: {operand: bits}}`` or
        ``((layer, LayerFracs), ...)``."""
        if isinstance(fracs, dict):
            fracs = tuple((k, v if isinstance(v, LayerFracs) else LayerFracs(**v)) for k, v in fracs.items())
        merged = dict(self.precision.frac_bits)
        for name, fr in fracs:
            old = merged.get(name, LayerFracs())
            merged[name] = LayerFracs(**{op: getattr(fr, op) if getattr(fr, op) is not None else getattr(old, op)
                                         for op in FRAC_OPERANDS})
        src = source or self.precision.frac_bits_source
        try:
            prec = replace(self.precision, frac_bits=tuple(merged.items()), frac_bits_source=src)
        except SpecError as e:
            raise SpecError(f"{src or self.source}: precision.{e}") from None
        return Datapath(prec, self.source)

    def check_emulable(self) -> None:
        """Raise SpecError naming the hardware model when a format cannot be emulated."""
        p = self.precision
        for op in ("weights", "activations"):
            f = getattr(p, op)
            if f.type == "fixed" and f.bits > MAX_CODE_BITS:
                raise SpecError(f"{self.source}: precision.{op}: {f.bits}-bit fixed point cannot be emulated "
                                f"(values travel as float32 codes: at most {MAX_CODE_BITS} bits)")
            if f.type == "float" and (f.exponent_bits > MAX_STORED_FLOAT[0] or
                                      f.bits - 1 - f.exponent_bits > MAX_STORED_FLOAT[1]):
                raise SpecError(f"{self.source}: precision.{op}: {f.label} cannot be emulated (values travel as "
                                f"float32: at most {MAX_STORED_FLOAT[0]} exponent and {MAX_STORED_FLOAT[1]} "
                                f"mantissa bits)")

    # --- resolution on a graph ---------------------------------------------------------------------------
    def groups(self, graph) -> dict[str, str]:
        """``{layer: root}``: layers whose outputs share one feature map (and format) map to one root (the
        first of them in graph order)."""
        parent: dict[str, str] = {}

        def find(a):
            parent.setdefault(a, a)
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        def union(a, b):
            ra, rb = find(a), find(b)
            if ra != rb:
                first, second = sorted((ra, rb), key=graph.order.index)
                parent[second] = first
        for name in graph.order:
            layer = graph.layer(name)
            find(name)
            if layer.op in SAME_FORMAT_OPS or layer.op == "concat":
                for src in layer.inputs:
                    union(src, name)
        return {n: find(n) for n in graph.order}

    def activation_fracs(self, graph, ranges: dict | None = None) -> dict[str, int | None]:
        """Fraction bits of every format group root (None where neither given nor calibrated); a group's
        given values must agree."""
        p = self.precision
        groups = self.groups(graph)
        given: dict[str, tuple[int, str]] = {}
        for name in graph.order:
            v = p.layer_fracs(name).activations
            if v is None:
                continue
            root = groups[name]
            if root in given and given[root][0] != v:
                raise SpecError(f"{p.frac_bits_source or self.source}: layers {given[root][1]!r} and {name!r} share "
                                f"one feature map but are given {given[root][0]} and {v} activation fraction bits")
            given.setdefault(root, (v, name))
        out = {}
        for root in dict.fromkeys(groups.values()):
            if root in given:
                out[root] = given[root][0]
            elif p.activations.frac_bits is not None:
                out[root] = p.activations.frac_bits
            elif ranges is not None and root in ranges:
                out[root] = frac_for_range(ranges[root], p.activations.bits)
            else:
                out[root] = None
        return out

    def resolve(self, graph, weight_ranges: dict) -> dict[str, LayerDatapath]:
        """Every layer's formats.  ``weight_ranges``: ``{layer: (max |weight|, max |bias|)}`` of the weighted
        layers (the defaults of their fraction bits).

        Raises
        ------
        SpecError
            A format the emulation cannot hold, a feature map with no fraction bits (naming the layers
            and how to give them), fractions of one feature map that disagree.
        """
        self.check_emulable()
        p = self.precision
        groups = self.groups(graph)
        act_fracs = self.activation_fracs(graph)
        act_fixed = p.activations.type == "fixed"
        missing = [r for r, v in act_fracs.items() if v is None and act_fixed and graph.layer(r).op != "softmax"]
        if missing:
            raise SpecError(f"{self.source}: no activation fraction bits for {len(missing)} feature map(s) "
                            f"({', '.join(repr(m) for m in missing[:6])}{', ...' if len(missing) > 6 else ''}): give "
                            f"them in precision.frac_bits, or calibrate them (sqsim calibrate, "
                            f"sqsim.exec.calibrate)")
        out: dict[str, LayerDatapath] = {}
        for name in graph.order:
            layer = graph.layer(name)
            if layer.op == "softmax":
                fmt = REAL
            else:
                fmt = NumberFormat.of(p.activations, act_fracs[groups[name]] if act_fixed else None)
            ins = tuple(out[s].output for s in layer.inputs)
            if layer.op in WEIGHTED_OPS:
                out[name] = self._weighted(name, layer.op, fmt, ins, weight_ranges[name])
            else:
                out[name] = LayerDatapath(name, layer.op, fmt, ins)
        return out

    def _weighted(self, name: str, op: str, fmt: NumberFormat, ins: tuple, ranges) -> LayerDatapath:
        p = self.precision
        given = p.layer_fracs(name)
        w_op = p.weights

        def pick(v, own, rng, bits):
            if v is not None:
                return v
            if own is not None:
                return own
            return frac_for_range(rng, bits)
        fw = fb = None
        if w_op.type == "fixed":
            fw = pick(given.weights, w_op.frac_bits, ranges[0], w_op.bits)
            fb = pick(given.biases, w_op.frac_bits, ranges[1], w_op.bits)
        wf = NumberFormat.of(w_op, fw)
        bf = NumberFormat.of(w_op, fb)
        fp = None
        if p.psums.type == "fixed":
            fp = given.psums if given.psums is not None else p.psums.frac_bits
            if fp is None:
                prod = wf.frac + ins[0].frac
                fp = prod if fmt.kind != "fixed" else min(prod, fmt.frac + p.psums.bits - fmt.bits)
                fp = max(MIN_FRAC_BITS, min(p.psums.bits, fp))
        return LayerDatapath(name, op, fmt, ins, wf, bf, NumberFormat.of(p.psums, fp))

    def summary(self) -> str:
        """One line: the operand formats, modes and where the fractions came from."""
        p = self.precision

        def one(op):
            f = getattr(p, op)
            modes = "" if (f.rounding, f.overflow) == ("nearest_even", "saturate") else f" {f.rounding}/{f.overflow}"
            return f"{op} {f.label}{modes}"
        src = f"; per-layer fractions from {p.frac_bits_source}" if p.frac_bits else ""
        return ", ".join(one(op) for op in ("weights", "activations", "psums")) + src


def range_fracs(graph, datapath: Datapath, ranges: dict) -> dict[str, dict[str, int]]:
    """Per-layer fraction bits from calibration ``ranges`` (``{layer: {operand: max |value|}}``, see
    :func:`sqsim.exec.calibrate.calibrate`): every fixed-point operand the ranges cover, dynamic fixed
    point (:func:`frac_for_range`); a feature map shared by several layers takes the largest range."""
    p = datapath.precision
    groups = datapath.groups(graph)
    group_max: dict[str, float] = {}
    for name, r in ranges.items():
        if "activations" in r and name in groups:
            root = groups[name]
            group_max[root] = max(group_max.get(root, 0.0), r["activations"])
    out: dict[str, dict[str, int]] = {}
    for name in graph.order:
        d = {}
        r = ranges.get(name, {})
        for op in ("weights", "biases", "psums"):
            f = p.operand(op)
            if op in r and f.type == "fixed":
                d[op] = frac_for_range(r[op], f.bits)
        if groups[name] == name and name in group_max and p.activations.type == "fixed" \
                and graph.layer(name).op != "softmax":
            d["activations"] = frac_for_range(group_max[name], p.activations.bits)
        if d:
            out[name] = d
    return out


__all__ = ["Datapath", "LayerDatapath", "NumberFormat", "REAL", "frac_for_range", "lrn_f64", "range_fracs",
           "requantize", "round_float", "round_mode", "EXACT_F32", "EXACT_F64", "MAX_CODE_BITS"]
