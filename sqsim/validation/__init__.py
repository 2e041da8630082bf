"""Validation of the hardware models against measured silicon (``sqsim validate``).

Each reference is a data file in ``sqsim/validation/references/`` with its citation: the network,
hardware model, batch and activation densities the measurement used, the published figures per
layer and in total, and a tolerance per figure (relative, absolute, or ``none``: reported only).
This module only knows how to compute each kind of figure from an analysis
(:data:`FIGURES`); the numbers live in the data files.

>>> from sqsim.validation import reference_paths, validate
>>> v = validate(reference_paths())
>>> v.passed
True
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import SpecError

REFERENCES = Path(__file__).resolve().parent / "references"
REF_FIELDS = ("name", "citation", "notes", "network", "hardware", "dense", "batch", "overrides", "input_density",
              "layers", "total", "tolerance", "modules")


@dataclass(frozen=True)
class Tolerance:
    """``rel``: |modelled / published - 1| <= value; ``abs``: |modelled - published| <= value."""
    kind: str
    value: float

    def error(self, published: float, modelled: float) -> float:
        return modelled / published - 1.0 if self.kind == "rel" else modelled - published

    def ok(self, published: float, modelled: float) -> bool:
        return abs(self.error(published, modelled)) <= self.value + 1e-12

    def __str__(self) -> str:
        return f"±{100 * self.value:g}%" if self.kind == "rel" else f"±{self.value:g}"


@dataclass(frozen=True)
class Reference:
    """One measured reference (see the module docstring)."""
    name: str
    citation: str
    notes: str
    network: str
    hardware: str
    dense: bool
    batch: int
    overrides: tuple
    input_density: dict
    layers: dict
    total: dict
    tolerance: dict
    modules: dict
    path: str


def reference_paths() -> list[Path]:
    """The reference files sqsim ships, in name order."""
    return sorted(REFERENCES.glob("*.yaml"))


def load_reference(path) -> Reference:
    """Read and check a reference file (SpecError naming the file and field on a problem)."""
    from ..yamltext import read_yaml
    p = Path(path)
    doc = read_yaml(p, "reference", "invalid YAML")
    if not isinstance(doc, dict):
        raise SpecError(f"{p}: a reference is a mapping")
    unknown = sorted(set(doc) - set(REF_FIELDS))
    if unknown:
        raise SpecError(f"{p}: unknown field(s) {unknown} (expected: {', '.join(REF_FIELDS)})")
    for key in ("name", "citation", "network", "hardware", "layers", "tolerance"):
        if key not in doc:
            raise SpecError(f"{p}: missing field {key!r}")
    tol = {}
    for figure, spec in doc["tolerance"].items():
        if not isinstance(spec, dict) or set(spec) - {"layer", "total"}:
            raise SpecError(f"{p}: tolerance.{figure}: expected {{layer: ..., total: ...}}, got {spec!r}")
        if figure not in FIGURES and not figure.endswith("_pct"):
            raise SpecError(f"{p}: tolerance.{figure}: unknown figure (known: {', '.join(FIGURES)}, MODULE_pct)")
        tol[figure] = {scope: _tolerance(spec.get(scope, "none"), f"{p}: tolerance.{figure}.{scope}")
                       for scope in ("layer", "total")}
    figures = {f for vals in doc["layers"].values() for f in vals} | set(doc.get("total") or {})
    missing = sorted(figures - set(tol))
    if missing:
        raise SpecError(f"{p}: figure(s) {missing} have no tolerance (give one, or 'none')")
    return Reference(str(doc["name"]), " ".join(str(doc["citation"]).split()), " ".join(str(doc.get("notes", "")).split()),
                     str(doc["network"]), str(doc["hardware"]), bool(doc.get("dense", False)), int(doc.get("batch", 1)),
                     tuple(doc.get("overrides") or ()), dict(doc.get("input_density") or {}),
                     {k: dict(v) for k, v in doc["layers"].items()}, dict(doc.get("total") or {}), tol,
                     {k: list(v) for k, v in (doc.get("modules") or {}).items()}, str(p))


def _tolerance(spec, where: str) -> Tolerance | None:
    if spec in (None, "none"):
        return None
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("rel", "abs"):
        raise SpecError(f"{where}: expected {{rel: 0.1}}, {{abs: 2}} or none, got {spec!r}")
    kind, value = next(iter(spec.items()))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise SpecError(f"{where}: tolerance must be a number >= 0, got {value!r}")
    return Tolerance(kind, float(value))


# --- how each figure is computed from an analysis (per batch, the reference's layers) --------------

def _clock(r):
    return r.hw.clock_hz


def _onchip_energy(c) -> float:
    return sum(v for k, v in c.energy_breakdown_j.items() if k != "dram")


def _glb_bytes(r, c) -> float:
    return sum(c.level_reads_bytes.get(l.name, 0.0) + c.level_writes_bytes.get(l.name, 0.0)
               for l in r.hw.levels if l.kind == "sram")


FIGURES = {
    # name: (unit, per layer f(report, cost), total f(report, [costs]))
    "processing_latency_ms": ("ms", lambda r, c: 1e3 * c.processing_cycles / _clock(r),
                              lambda r, cs: 1e3 * sum(c.processing_cycles for c in cs) / _clock(r)),
    "total_latency_ms": ("ms", lambda r, c: 1e3 * c.serialized_cycles / _clock(r),
                         lambda r, cs: 1e3 * sum(c.serialized_cycles for c in cs) / _clock(r)),
    "active_pes": ("PEs", lambda r, c: c.active_pes,
                   lambda r, cs: sum(c.active_pes * c.processing_cycles for c in cs)
                   / sum(c.processing_cycles for c in cs)),
    "dram_mb": ("MB", lambda r, c: c.dram_bytes / 1e6, lambda r, cs: sum(c.dram_bytes for c in cs) / 1e6),
    "glb_mb": ("MB", lambda r, c: _glb_bytes(r, c) / 1e6, lambda r, cs: sum(_glb_bytes(r, c) for c in cs) / 1e6),
    "power_mw": ("mW", lambda r, c: 1e3 * _onchip_energy(c) / (c.serialized_cycles / _clock(r)),
                 lambda r, cs: 1e3 * sum(map(_onchip_energy, cs)) / (sum(c.serialized_cycles for c in cs) / _clock(r))),
    "actual_time_us": ("us", lambda r, c: 1e6 * c.cycles / _clock(r), lambda r, cs: 1e6 * sum(c.cycles for c in cs) / _clock(r)),
    "theoretical_time_us": ("us", lambda r, c: 1e6 * c.pe_mapping["balanced_cycles"] / _clock(r), None),
}


def _module_share(ref: Reference, figure: str, cs) -> float:
    module = figure[: -len("_pct")]
    if module not in ref.modules:
        raise SpecError(f"{ref.path}: {figure}: no module {module!r} under 'modules'")
    total = sum(map(_onchip_energy, cs))
    part = sum(c.energy_breakdown_j.get(k, 0.0) for c in cs for k in ref.modules[module])
    return 100.0 * part / total


@dataclass(frozen=True)
class Row:
    reference: str
    layer: str
    figure: str
    unit: str
    published: float
    modelled: float
    error: float | None
    tolerance: str
    status: str          # ok, FAIL or info

    def to_dict(self) -> dict:
        return {"reference": self.reference, "layer": self.layer, "figure": self.figure, "unit": self.unit,
                "published": self.published, "modelled": self.modelled, "error": self.error,
                "error_kind": "rel" if self.tolerance.endswith("%") else "abs" if self.tolerance != "none" else None,
                "tolerance": self.tolerance, "status": self.status}


@dataclass(frozen=True)
class Validation:
    rows: tuple
    references: tuple

    @property
    def failures(self) -> list:
        return [r for r in self.rows if r.status == "FAIL"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checked": sum(r.status != "info" for r in self.rows),
                "failed": len(self.failures),
                "references": [{"name": r.name, "citation": r.citation, "notes": r.notes, "network": r.network,
                                "hardware": r.hardware, "batch": r.batch, "file": r.path} for r in self.references],
                "rows": [r.to_dict() for r in self.rows]}


def analyze_reference(ref: Reference, overrides=()):
    """The analysis a reference is compared with."""
    from ..analysis import analyze
    from ..analysis.densities import DensityFile
    from ..hw import load_hw
    from ..ir import load
    from ..paths import REPO_ROOT
    graph = load(REPO_ROOT / ref.network)
    hw = load_hw(REPO_ROOT / ref.hardware, list(ref.overrides) + list(overrides))
    dens = DensityFile(ref.path, {k: float(v) for k, v in ref.input_density.items()}, {}) if ref.input_density else None
    return analyze(graph, hw, batch=ref.batch, act_density=dens, dense=ref.dense)


def check_reference(ref: Reference, overrides=()) -> list[Row]:
    """Published vs modelled for every figure of ``ref``."""
    r = analyze_reference(ref, overrides)
    rows = []
    costs = [r.layer(name) for name in ref.layers]

    def row(layer, figure, published, modelled, scope):
        tol = ref.tolerance[figure][scope]
        unit = FIGURES[figure][0] if figure in FIGURES else "%"
        if tol is None:
            return Row(ref.name, layer, figure, unit, published, modelled, None, "none", "info")
        return Row(ref.name, layer, figure, unit, published, modelled, tol.error(published, modelled), str(tol),
                   "ok" if tol.ok(published, modelled) else "FAIL")

    for name, figures in ref.layers.items():
        c = r.layer(name)
        for figure, published in figures.items():
            rows.append(row(name, figure, float(published), float(FIGURES[figure][1](r, c)), "layer"))
    for figure, published in ref.total.items():
        if figure.endswith("_pct"):
            modelled = _module_share(ref, figure, costs)
        else:
            modelled = FIGURES[figure][2](r, costs)
        rows.append(row("total", figure, float(published), float(modelled), "total"))
    return rows


def validate(paths=None, overrides=()) -> Validation:
    """Check every reference (default: all shipped ones)."""
    refs = [load_reference(p) for p in (paths or reference_paths())]
    rows = []
    for ref in refs:
        rows += check_reference(ref, overrides)
    return Validation(tuple(rows), tuple(refs))


def fit_ramp(ref: Reference | None = None, grid=None) -> tuple[float, float]:
    """Re-derive Eyeriss's one fitted parameter, ``array.ramp_cycles_per_word``: the value on
    ``grid`` (default 0.20..0.80 by 0.01) that minimises the largest relative error of the ten
    latencies of the reference (processing and total, CONV1-5).  Returns ``(value, that error)``."""
    import numpy as np
    if ref is None:
        ref = next(load_reference(p) for p in reference_paths() if load_reference(p).name == "eyeriss_alexnet")
    grid = np.round(np.arange(0.20, 0.8001, 0.01), 2) if grid is None else grid
    best = None
    for k in grid:
        rows = check_reference(ref, [f"array.ramp_cycles_per_word={float(k)}"])
        err = max(abs(r.modelled / r.published - 1) for r in rows
                  if r.layer != "total" and r.figure in ("processing_latency_ms", "total_latency_ms"))
        if best is None or err < best[1] - 1e-12:
            best = (float(k), err)
    return best
