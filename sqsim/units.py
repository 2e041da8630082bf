"""Unit strings -> SI floats.

A util module: imports nothing from sqsim but its errors. Internally sqsim works in bytes, seconds,
joules, hertz and bits; YAML files may say ``"2.5 MiB"``, ``"200 MHz"``, ``"5 pJ"``, ``"19.2 Mbit"``,
``"4.2 GB/s"`` or give plain numbers (taken as already SI).

>>> parse_quantity("2.5 MiB", "bytes")
2621440.0
>>> parse_quantity("200 MHz", "hertz")
200000000.0
>>> parse_quantity("5 pJ", "joules")
5e-12
"""
from __future__ import annotations

import math
import re

from .errors import SpecError

_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
       "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}
_BIN = {"Ki": 2.0 ** 10, "Mi": 2.0 ** 20, "Gi": 2.0 ** 30, "Ti": 2.0 ** 40}

# base unit symbol -> (dimension, factor to SI)
_BASE = {
    "B": ("bytes", 1.0), "byte": ("bytes", 1.0), "bytes": ("bytes", 1.0),
    "b": ("bytes", 1 / 8), "bit": ("bytes", 1 / 8), "bits": ("bytes", 1 / 8),
    "Hz": ("hertz", 1.0),
    "J": ("joules", 1.0),
    "s": ("seconds", 1.0),
    "W": ("watts", 1.0),
    "B/s": ("bytes_per_second", 1.0), "bit/s": ("bytes_per_second", 1 / 8),
    "b/s": ("bytes_per_second", 1 / 8), "bps": ("bytes_per_second", 1 / 8),
    "J/bit": ("joules_per_bit", 1.0), "J/b": ("joules_per_bit", 1.0),
    "J/B": ("joules_per_bit", 1 / 8), "J/byte": ("joules_per_bit", 1 / 8),
}

_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ/]*)\s*$")

DIMENSIONS = sorted({d for d, _ in _BASE.values()})

# The magnitudes sqsim accepts per dimension (besides 0), in SI: far wider than any real hardware,
# narrow enough that times, energies and cycle counts computed from them stay finite.
RANGES = {
    "bytes": (1 / 8, 2.0 ** 60),                 # one bit .. 1 EiB
    "hertz": (1e-3, 1e15),
    "joules": (1e-24, 1e3),
    "seconds": (1e-18, 1e9),
    "watts": (1e-15, 1e9),
    "bytes_per_second": (1e-3, 1e18),
    "joules_per_bit": (1e-24, 1e3),
    "number": (0.0, 1e30),
}
_SI_UNIT = {"bytes": "B", "hertz": "Hz", "joules": "J", "seconds": "s", "watts": "W", "bytes_per_second": "B/s",
            "joules_per_bit": "J/bit", "number": ""}


def check_range(value: float, dimension: str, what: str = "value", given=None) -> float:
    """``value`` (SI) if it is finite and 0 or inside :data:`RANGES` for ``dimension``, else SpecError."""
    from .errors import short
    shown = short(given if given is not None else value, 40)
    if not math.isfinite(value):
        raise SpecError(f"{what}: {shown} is not a finite {dimension} quantity")
    lo, hi = RANGES.get(dimension, (0.0, math.inf))
    if value != 0 and not lo <= abs(value) <= hi:
        unit = _SI_UNIT.get(dimension, "")
        raise SpecError(f"{what}: {shown} is outside the range sqsim accepts for {dimension} "
                        f"(0, or {lo:g} to {hi:g}{' ' + unit if unit else ''} in magnitude)")
    return value


def _split_unit(unit: str):
    if unit in _BASE:
        return 1.0, _BASE[unit]
    for prefixes in (_BIN, _SI):
        for p, f in prefixes.items():
            if p and unit.startswith(p) and unit[len(p):] in _BASE:
                return f, _BASE[unit[len(p):]]
    return None


def parse_quantity(value, dimension: str, what: str = "value") -> float:
    """Parse ``value`` (number or unit string) as a quantity of ``dimension``, returned in SI.

    Parameters
    ----------
    value : int, float or str
        ``3``, ``"64 KiB"``, ``"200 MHz"``, ``"0.64 nJ"``...  A bare number is taken as SI.
    dimension : str
        One of ``bytes``, ``hertz``, ``joules``, ``seconds``, ``watts``, ``bytes_per_second``,
        ``joules_per_bit``, or ``number`` (a plain number, k/M/G prefixes allowed).
    what : str
        Name of the field, used in error messages.

    Raises
    ------
    SpecError
        Unknown unit, a unit of the wrong dimension, not a number, not finite (``.inf``,
        ``1e400 KiB``), or outside :data:`RANGES` (``1e-300 B/s``).
    """
    return check_range(_parse(value, dimension, what), dimension, what, value)


def _parse(value, dimension: str, what: str) -> float:
    from .errors import short
    if isinstance(value, bool):
        raise SpecError(f"{what}: expected a {dimension} quantity, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    if not isinstance(value, str):
        raise SpecError(f"{what}: expected a number or unit string, got {short(value)}")
    m = _RE.match(value) if len(value) <= 200 else None
    if not m:
        raise SpecError(f"{what}: cannot parse {short(value, 40)} as a {dimension} quantity "
                        f"(expected e.g. '2.5 MiB', '200 MHz', '5 pJ')")
    number, unit = float(m.group(1)), m.group(2)
    if dimension == "number":
        if unit == "":
            return number
        if unit in _SI:
            return number * _SI[unit]
        raise SpecError(f"{what}: unknown multiplier {unit!r} in {value!r}")
    if unit == "":
        return number
    split = _split_unit(unit)
    if split is None:
        raise SpecError(f"{what}: unknown unit {unit!r} in {value!r} "
                        f"(expected a {dimension} unit such as {_example(dimension)})")
    factor, (dim, base) = split
    if dim != dimension:
        raise SpecError(f"{what}: {value!r} is in {dim}, expected {dimension} "
                        f"(e.g. {_example(dimension)})")
    return number * factor * base


def _example(dimension: str) -> str:
    return {"bytes": "'64 KiB'", "hertz": "'200 MHz'", "joules": "'5 pJ'", "seconds": "'1 ms'",
            "watts": "'590 mW'", "bytes_per_second": "'4.2 GB/s'",
            "joules_per_bit": "'20 pJ/bit'"}.get(dimension, "a number")


def format_si(value: float, unit: str, digits: int = 3) -> str:
    """Format ``value`` with an SI prefix: ``format_si(2.1e-3, 'J') == '2.1 mJ'``."""
    if value == 0:
        return f"0 {unit}"
    for p, f in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0),
                 ("m", 1e-3), ("µ", 1e-6), ("n", 1e-9), ("p", 1e-12), ("f", 1e-15)):
        if abs(value) >= f:
            return f"{value / f:.{digits}g} {p}{unit}"
    return f"{value:.{digits}g} {unit}"


def format_bytes(n: float) -> str:
    """Binary-prefixed size: ``format_bytes(675763) == '659.9 KiB'``."""
    for p, f in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(n) >= f:
            return f"{n / f:.1f} {p}"
    return f"{int(n)} B"
