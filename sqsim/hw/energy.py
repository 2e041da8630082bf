"""The energy table (``hwmodels/energy/*.yaml``): energy per action with its source, shared by
every hardware model.

A hardware YAML names its table (``energy_table: energy/horowitz45.yaml``, relative to the YAML)
and refers to entries instead of repeating numbers::

    energy: {mac: {ref: int16_mac}}
    memory:
      - {name: dram, ..., energy_per_bit: {ref: dram}}                 # 640 pJ / 32 bits
      - {name: glb, ..., word_bits: 16, read_energy: {sram: 108 KiB}}   # by size, scaled to 16 bits
      - {name: act_regs, ..., read_energy: {ref: rf_read_32b, bits: 16}}

* ``{ref: NAME}``: the entry's energy; a memory access is scaled to the level's ``word_bits``
  (energy per bit constant): ``energy * word_bits / bits``.  ``bits: B`` scales to ``B`` bits
  instead, ``scale: S`` multiplies (e.g. a FIFO push and pop: 2 accesses).
* ``{sram: SIZE}``: the 64-bit read energy of an SRAM of that size, interpolated log-log between
  the table's ``sram_*`` points (Horowitz: 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ; a 128 KiB
  array: 20 * 5**(2/5) = 38.1 pJ), the smallest point for anything smaller (an upper bound),
  the largest's slope beyond it; then scaled to the word as above.
* ``{sum: [A, B]}`` in the table: the sum of two entries (a MAC = multiply + add).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import SpecError, short
from ..units import parse_quantity
from ..yamltext import read_yaml

ENTRY_FIELDS = ("energy", "bits", "size", "source", "sum")
REF_FIELDS = ("ref", "sram", "bits", "scale")


@dataclass(frozen=True)
class EnergyEntry:
    """One figure: ``energy_j`` per action of ``bits`` (None: not an access), for an array of
    ``size_bytes`` (None: not a memory), from ``source``."""
    name: str
    energy_j: float
    bits: int | None
    size_bytes: float | None
    size_label: str
    source: str


@dataclass(frozen=True)
class EnergyTableFile:
    path: str
    name: str
    entries: dict

    def entry(self, name: str, where: str) -> EnergyEntry:
        if name not in self.entries:
            raise SpecError(f"{where}: energy table {self.path} has no entry {short(name)} "
                            f"(entries: {', '.join(self.entries)})")
        return self.entries[name]

    def sram_64b(self, size_bytes: float) -> float:
        """64-bit read energy of an SRAM of ``size_bytes`` (module docstring)."""
        pts = sorted((e.size_bytes, e.energy_j * 64 / e.bits) for e in self.entries.values()
                     if e.name.startswith("sram_") and e.size_bytes and e.bits)
        if not pts:
            raise SpecError(f"energy table {self.path} has no sram_* entries to size an SRAM by")
        if size_bytes <= pts[0][0] or len(pts) == 1:
            return pts[0][1]
        for (s0, e0), (s1, e1) in zip(pts, pts[1:]):
            if size_bytes <= s1:
                break
        t = math.log(size_bytes / s0) / math.log(s1 / s0)
        return e0 * (e1 / e0) ** t


@lru_cache(maxsize=16)
def load_energy_table(path: str) -> EnergyTableFile:
    """Read and check an energy table file (cached: tables are read-only data)."""
    p = Path(path)
    doc = read_yaml(p, "energy table", "invalid YAML")
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), dict):
        raise SpecError(f"{p}: an energy table is a mapping with 'entries: {{name: {{energy, bits, source}}}}'")
    raw = doc["entries"]
    out: dict = {}

    def build(name, stack=()):
        if name in out:
            return out[name]
        spec = raw.get(name)
        where = f"{p}:{getattr(spec, 'line', None) or '?'}: entry {name!r}"
        if not isinstance(spec, dict):
            raise SpecError(f"{where}: expected a mapping {{energy, bits, size, source}}, got {short(spec)}")
        unknown = sorted(set(spec) - set(ENTRY_FIELDS))
        if unknown:
            raise SpecError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))} (expected: "
                            f"{', '.join(ENTRY_FIELDS)})")
        if not spec.get("source"):
            raise SpecError(f"{where}: every figure needs its 'source'")
        if "sum" in spec:
            parts = spec["sum"]
            if not isinstance(parts, list) or not parts or any(q not in raw for q in parts) or name in stack:
                raise SpecError(f"{where}: 'sum' must list other entries of this table, got {short(parts)}")
            energy = sum(build(q, stack + (name,)).energy_j for q in parts)
            bits = build(parts[0], stack + (name,)).bits
        else:
            if "energy" not in spec:
                raise SpecError(f"{where}: missing 'energy' (e.g. '5 pJ')")
            energy = parse_quantity(spec["energy"], "joules", f"{where}: energy")
            bits = spec.get("bits")
        if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or bits <= 0):
            raise SpecError(f"{where}: bits must be a positive integer, got {short(bits)}")
        if not energy >= 0:
            raise SpecError(f"{where}: energy must not be negative, got {short(energy)}")
        size = spec.get("size")
        size_bytes = None
        if size is not None:
            try:
                size_bytes = parse_quantity(size, "bytes", f"{where}: size")
            except SpecError:
                size_bytes = None          # a label such as 'register file' or 'DRAM'
        out[name] = EnergyEntry(name, energy, bits, size_bytes, str(size or ""), str(spec["source"]))
        return out[name]

    for name in raw:
        build(name)
    return EnergyTableFile(str(p), str(doc.get("name", p.stem)), out)


def resolve_energy(value: dict, table: EnergyTableFile | None, word_bits: int | None, where: str) -> float:
    """Joules of a ``{ref: ...}`` / ``{sram: ...}`` reference (module docstring); ``word_bits``:
    the memory level's access width (None for actions that are not memory accesses)."""
    unknown = sorted(set(value) - set(REF_FIELDS))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))} in an energy reference "
                        f"(expected {{ref: NAME}} or {{sram: SIZE}}, with optional bits, scale)")
    if table is None:
        raise SpecError(f"{where}: {short(dict(value))} refers to the energy table, but the model names none "
                        f"(add energy_table: energy/horowitz45.yaml)")
    if ("ref" in value) == ("sram" in value):
        raise SpecError(f"{where}: give exactly one of 'ref' (an entry name) and 'sram' (a size)")
    target = value.get("bits", word_bits)
    if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target <= 0):
        raise SpecError(f"{where}: bits must be a positive integer, got {short(target)}")
    scale = value.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale < float("inf"):
        raise SpecError(f"{where}: scale must be a finite number >= 0, got {short(scale)}")
    if "ref" in value:
        e = table.entry(str(value["ref"]), where)
        energy, bits = e.energy_j, e.bits
    else:
        size = parse_quantity(value["sram"], "bytes", f"{where}: sram")
        if not size > 0:
            raise SpecError(f"{where}: sram size must be positive, got {short(value['sram'])}")
        energy, bits = table.sram_64b(size), 64
    if target is not None and bits is not None:
        energy = energy * target / bits
    return energy * scale
