"""Per-layer fraction bits (dynamic fixed point): the ``precision.frac_bits`` section of a hardware model,
and the formats files that ``sqsim calibrate`` writes and ``sqsim run --formats`` (or ``frac_bits: FILE``
in the hardware model) reads.

::

    precision:
      weights: 16
      activations: 16
      psums: 32
      frac_bits:                        # per layer: fraction bits of each fixed-point operand
        data:  {activations: 7}         # the network input
        conv1: {weights: 15, biases: 13, psums: 18, activations: 8}
      # or  frac_bits: formats.yaml     (a file, relative to the hardware model)

A formats file::

    sqsim_formats: 1
    widths: {weights: 16, psums: 32, activations: 16}   # the widths its fraction bits are for
    frac_bits: {conv1: {weights: 15, biases: 13, psums: 18, activations: 8}, ...}
    ranges: {conv1: {weights: 0.697, ...}, ...}        # optional: the ranges they were chosen for

Fraction bits are given for some widths (a formats file's ``widths``; inline, the hardware model's own
widths before ``--set``).  Run at other widths, each fraction moves with the width so that the integer
bits stay (``frac' = frac + bits' - bits``): dynamic fixed point keeps each layer's range, and a file
calibrated at 16 bits serves a sweep over widths.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import SpecError
from ..yamltext import located
from .spec import FRAC_OPERANDS, LayerFracs

FORMATS_VERSION = 1
FORMATS_FIELDS = ("sqsim_formats", "widths", "frac_bits", "ranges", "calibrated")


def parse_frac_bits(value, source: str, base_dir=None, at_widths: dict | None = None,
                    widths: dict | None = None) -> tuple[tuple, str | None]:
    """``(((layer, LayerFracs), ...), source)`` from a ``precision.frac_bits`` value: a mapping (layer ->
    {operand: bits}, for ``at_widths``) or the path of a formats file (relative to ``base_dir``), shifted
    to ``widths`` (operand -> bits of the fixed-point operands; None: no shift).

    Raises
    ------
    SpecError
        Not a mapping or a path, an unknown operand, a value that is not an integer; an unreadable or
        malformed formats file.  Messages name the file and line.
    """
    if isinstance(value, str):
        path = Path(value)
        if base_dir is not None and not path.is_absolute():
            path = Path(base_dir) / path
        return load_formats(path, widths)
    if not isinstance(value, dict):
        raise SpecError(f"{located(source, value)}: precision.frac_bits must be a mapping (layer -> "
                        f"{{operand: fraction bits}}) or the path of a formats file, got {value!r}")
    fracs = _entries(value, source, "precision.frac_bits")
    return shift_fracs(fracs, at_widths, widths), source


def _entries(mapping: dict, source: str, what: str) -> tuple:
    out = []
    for layer, entry in mapping.items():
        where = located(source, entry if isinstance(entry, dict) else mapping)
        if not isinstance(entry, dict):
            raise SpecError(f"{where}: {what}.{layer}: expected a mapping {{operand: fraction bits}} "
                            f"(operands: {', '.join(FRAC_OPERANDS)}), got {entry!r}")
        unknown = sorted(set(entry) - set(FRAC_OPERANDS))
        if unknown:
            raise SpecError(f"{where}: {what}.{layer}: unknown operand(s) {', '.join(map(repr, unknown))} "
                            f"(expected: {', '.join(FRAC_OPERANDS)})")
        for op, v in entry.items():
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpecError(f"{where}: {what}.{layer}.{op}: fraction bits must be an integer, got {v!r}")
        out.append((str(layer), LayerFracs(**entry)))
    return tuple(out)


def shift_fracs(fracs: tuple, at_widths: dict | None, widths: dict | None) -> tuple:
    """``fracs`` given for ``at_widths`` moved to ``widths`` (operand -> bits), keeping the integer bits."""
    if not at_widths or not widths:
        return fracs
    out = []
    for layer, fr in fracs:
        vals = {}
        for op in FRAC_OPERANDS:
            v = getattr(fr, op)
            key = "weights" if op == "biases" else op
            if v is not None and key in at_widths and key in widths:
                v += widths[key] - at_widths[key]
            vals[op] = v
        out.append((layer, LayerFracs(**vals)))
    return tuple(out)


def load_formats(path, widths: dict | None = None) -> tuple[tuple, str]:
    """Read a formats file: ``(((layer, LayerFracs), ...), path)``, shifted from the file's ``widths`` to
    ``widths`` (see the module docstring)."""
    from ..yamltext import read_yaml
    src = str(path)
    doc = read_yaml(path, "formats file", "invalid YAML")  # size-checked, UTF-8 (as every YAML input)
    if not isinstance(doc, dict) or "frac_bits" not in doc:
        raise SpecError(f"{src}: not a formats file (expected a mapping with 'frac_bits', as sqsim calibrate "
                        f"writes)")
    unknown = sorted(set(doc) - set(FORMATS_FIELDS))
    if unknown:
        raise SpecError(f"{located(src, doc)}: unknown field(s) {', '.join(map(repr, unknown))} "
                        f"(expected: {', '.join(FORMATS_FIELDS)})")
    version = doc.get("sqsim_formats", FORMATS_VERSION)
    if version != FORMATS_VERSION:
        raise SpecError(f"{located(src, doc)}: sqsim_formats {version!r} is not supported (expected {FORMATS_VERSION})")
    if not isinstance(doc["frac_bits"], dict):
        raise SpecError(f"{located(src, doc)}: frac_bits must be a mapping (layer -> {{operand: bits}})")
    at = doc.get("widths")
    if at is not None:
        if not isinstance(at, dict) or any(k not in ("weights", "psums", "activations") for k in at) \
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in at.values()):
            raise SpecError(f"{located(src, at if isinstance(at, dict) else doc)}: widths must map weights, psums, "
                            f"activations to positive bit counts, got {at!r}")
    fracs = _entries(doc["frac_bits"], src, "frac_bits")
    return shift_fracs(fracs, at, widths), src


def formats_text(fracs: dict, widths: dict, ranges: dict | None = None, calibrated: dict | None = None,
                 header: str = "") -> str:
    """The text of a formats file: ``fracs`` (layer -> {operand: bits}) for ``widths`` (operand -> bits),
    with the ``ranges`` (layer -> {operand: max |value|}) they were chosen for."""
    import yaml

    def flow(d):
        return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append(f"sqsim_formats: {FORMATS_VERSION}")
    if calibrated:
        lines.append("calibrated: " + yaml.safe_dump(calibrated, default_flow_style=True, width=1 << 16).strip())
    lines.append(f"widths: {flow(widths)}")
    lines.append("frac_bits:")
    lines += [f"  {yaml.safe_dump(layer).strip().removesuffix('...').strip()}: {flow(d)}"
              for layer, d in fracs.items()]
    if ranges:
        lines.append("ranges:   # max |value| per operand over the calibration images (weights: over the layer)")
        lines += [f"  {yaml.safe_dump(layer).strip().removesuffix('...').strip()}: "
                  f"{flow({k: float(f'{v:.6g}') for k, v in d.items()})}" for layer, d in ranges.items()]
    return "\n".join(lines) + "\n"
