"""Expanding a sweep spec into design points, validating every variant before any analysis.

Points are the cross product ``networks x compression x hardware``, where a hardware point is one
base model with one value of each of its ``set`` paths.  The ``set`` paths of a base split in two:

* *structural* paths (array shape, capacities, dataflow, precision, policies...): every
  combination is loaded and validated up front (:func:`sqsim.hw.loader.spec_from_dict`);
* *price* paths (``array.clock``, ``energy.*``, ``energy_unit`` and the levels' energies and
  bandwidths) change only the prices of a hardware (:mod:`sqsim.hw.pricing`): each value is
  loaded once per context (the structural overrides of its own section) and its prices are laid
  over the structural variant's, so ``n`` clocks x ``m`` bandwidths cost ``n + m`` loads, not
  ``n * m``.  A price path that changes a structure (row stationary's mapper reads the clock,
  DRAM bandwidth and read energies) or shares a price with another price path is structural.

Row order: network (outermost), compression, base model, structural paths, price paths (innermost),
each in spec order; ``sample: N`` picks N distinct points of that order at random (``seed``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import SqsimError, SpecError
from ..hw.loader import apply_overrides, spec_from_dict
from ..hw.pricing import price_names, price_vector, structure_key
from ..yamltext import load_yaml
from .spec import GENERATOR_DEFAULTS, GENERATOR_KEYS, SweepSpec, load_spec, product

PRICE_PATH = re.compile(r"^(array\.clock|energy\.(mac|codebook_lookup|index_decode)|energy_unit|"
                        r"memory\.[^.]+\.(read_energy|write_energy|energy_per_bit|bandwidth))$")
COMPRESSION_DEFAULTS = {"density_scale": 1.0, "weight_bits": None, "index_bits": None, "huffman": False,
                        "dense": False}


@dataclass
class Network:
    """One network of the sweep: its label (the graph's name), parameters, and the graph."""
    label: str
    graph: object
    params: dict = field(default_factory=dict)


@dataclass
class Base:
    """One base hardware model and its variants."""
    path: str
    name: str
    doc: dict
    line: int | None
    paths: list                      # [(set path, values, line)] that apply, spec order
    structural: list                 # set paths, structural
    price: list                      # set paths, price
    variants: list = field(default_factory=list)      # HardwareSpec per structural combination
    combos: list = field(default_factory=list)        # value indices of the structural paths per variant
    price_base: np.ndarray | None = None              # (variants, prices)
    overlays: dict = field(default_factory=dict)      # price path -> [(fields, matrix (values, fields))] per variant

    @property
    def n_price(self) -> int:
        return math.prod(len(self._values(p)) for p in self.price)

    def _values(self, path):
        return next(v for p, v, _ in self.paths if p == path)

    def load(self, overrides):
        from pathlib import Path
        doc = apply_overrides(self.doc, list(overrides), self.path)
        return spec_from_dict(doc, source=self.path, base_dir=Path(self.path).parent)


class SweepPlan:
    """The expanded sweep: networks, compression variants, hardware bases and their variants, the
    point order and the output columns.

    Parameters
    ----------
    spec : str, Path, dict or SweepSpec
    """

    def __init__(self, spec):
        self.spec: SweepSpec = load_spec(spec)
        s = self.spec
        self.networks = _networks(s)
        comp_axes = {k: v.value for k, v in s.compression.items()}
        self.compression_axes = list(comp_axes)
        self.compressions = [dict(COMPRESSION_DEFAULTS, **c) for c in product(comp_axes)] if comp_axes \
            else [dict(COMPRESSION_DEFAULTS)]
        self.set_paths = _set_paths(s)
        self.bases = [_base(s, path, own, line) for path, own, line in s.hardware]
        self._check_combinations()
        self.hw_counts = np.array([len(b.variants) * b.n_price for b in self.bases], dtype=np.int64)
        self.hw_offsets = np.concatenate([[0], np.cumsum(self.hw_counts)])
        self.total = len(self.networks) * len(self.compressions) * int(self.hw_offsets[-1])
        self.points = None
        if s.sample is not None and s.sample < self.total:
            rng = np.random.default_rng(s.seed)
            self.points = np.sort(rng.choice(self.total, size=s.sample, replace=False))
        self.energy_components = _energy_components(self.bases)

    @property
    def n_points(self) -> int:
        return self.total if self.points is None else len(self.points)

    def point_ids(self, start: int, stop: int) -> np.ndarray:
        """Global point indices of positions ``start:stop`` of the sweep (sampled or not)."""
        if self.points is None:
            return np.arange(start, min(stop, self.total), dtype=np.int64)
        return self.points[start:stop]

    def decode(self, ids: np.ndarray) -> dict:
        """``{network, compression, base, variant, price}`` index arrays of global point ids."""
        n_hw = int(self.hw_offsets[-1])
        hw = ids % n_hw
        rest = ids // n_hw
        comp = rest % len(self.compressions)
        net = rest // len(self.compressions)
        base = np.searchsorted(self.hw_offsets, hw, side="right") - 1
        local = hw - self.hw_offsets[base]
        n_price = np.array([b.n_price for b in self.bases], dtype=np.int64)[base]
        return {"network": net, "compression": comp, "base": base, "variant": local // n_price,
                "price": local % n_price}

    def price_indices(self, b: Base, price: np.ndarray) -> dict:
        """``{price path: value index}`` arrays of price combination indices (last path innermost)."""
        out = {}
        for p in reversed(b.price):
            n = len(b._values(p))
            out[p] = price % n
            price = price // n
        return out

    def hardware_overrides(self, ids) -> list[dict]:
        """The ``{set path: value}`` of each point (what ``load_hw(base, overrides)`` takes)."""
        d = self.decode(np.asarray(ids, dtype=np.int64))
        out = []
        for i in range(len(d["base"])):
            b = self.bases[d["base"][i]]
            ov = {p: b._values(p)[k] for p, k in zip(b.structural, b.combos[d["variant"][i]])}
            for p, k in self.price_indices(b, np.array([d["price"][i]])).items():
                ov[p] = b._values(p)[int(k[0])]
            out.append({p: ov[p] for p, _, _ in b.paths})
        return out

    def _check_combinations(self) -> None:
        """Every network has a layer every hardware variant runs (else the pair is impossible)."""
        for net in self.networks:
            ops = {l.op for l in net.graph}
            for b in self.bases:
                for hw, combo in zip(b.variants, b.combos):
                    if not ops & set(hw.runs):
                        what = ", ".join(f"{p}={b._values(p)[k]}" for p, k in zip(b.structural, combo))
                        raise SpecError(f"{self.spec.at(b.line)}: impossible combination: network {net.label!r} has "
                                        f"no layer that {b.path}{' with ' + what if what else ''} runs (it runs "
                                        f"{', '.join(hw.runs)}; set runs=[...] to run others)")


def _networks(s: SweepSpec) -> list[Network]:
    from ..ir import load
    from ..ir.generate import squeezenet
    out = []
    for kind, what, line in s.networks:
        if kind == "arch":
            try:
                g = load(what)
            except SqsimError as e:
                raise SpecError(f"{s.at(line)}: network {what}: {e}") from None
            out.append(Network(g.name, g, {"arch": what}))
            continue
        axes = {k: what[k].value for k in GENERATOR_KEYS if k in what}
        for combo in product(axes):
            params = dict(GENERATOR_DEFAULTS, **combo)
            comp = params.pop("compression")
            if comp not in ("table1", "none", None):
                s.fail(what["compression"].line, f"generator.compression must be table1 or none, got {comp!r}")
            if params["bypass"] in ("none", False):
                params["bypass"] = None
            try:
                g = squeezenet(**params, compression=None if comp in ("none", None) else comp)
            except SqsimError as e:
                bad = next((what[k].line for k in what if k in str(e)), line)
                raise SpecError(f"{s.at(bad)}: generator {params}: {e}") from None
            out.append(Network(g.name, g, dict(params, compression=comp or "none")))
    labels = [n.label for n in out]
    dup = sorted({l for l in labels if labels.count(l) > 1})
    if dup:
        raise SpecError(f"{s.at(s.lines.get('networks'))}: network(s) {dup} appear more than once")
    return out


def _set_paths(s: SweepSpec) -> list:
    return [(p, loc.value, loc.line) for p, loc in s.set.items()]


def _read_doc(s, path, line):
    from ..paths import read_text
    try:
        text = read_text(path, "hardware model")
    except SpecError as e:
        raise SpecError(f"{s.at(line)}: {e}") from None
    doc = load_yaml(text, path, "invalid YAML")
    if not isinstance(doc, dict):
        raise SpecError(f"{s.at(line)}: {path}: a hardware model must be a YAML mapping")
    return doc


def _applies(doc, path, value, source) -> str | None:
    """None when ``path`` names a field of this hardware model, else why not."""
    try:
        apply_overrides(doc, [(path, value)], source)
        return None
    except SpecError as e:
        return str(e)


def _base(s: SweepSpec, path: str, own: dict, line) -> Base:
    doc = _read_doc(s, path, line)
    paths = []
    for p, loc in list(s.set.items()) + list(own.items()):
        why = _applies(doc, p, loc.value[0], path)
        if why is None:
            if any(q == p for q, _, _ in paths):
                s.fail(loc.line, f"set path {p!r} given twice for {path}")
            paths.append((p, loc.value, loc.line))
        elif p in own:
            s.fail(loc.line, f"hardware {path}: {why}")
    for p, loc in s.set.items():       # a global path no hardware has
        if not any(_applies(_read_doc(s, hp, hl), p, loc.value[0], hp) is None for hp, _, hl in s.hardware):
            s.fail(loc.line, f"set path {p!r}: no hardware model has it "
                             f"({_applies(doc, p, loc.value[0], path)})")
    base = Base(path, "", doc, line, paths, [], [])
    try:
        base.name = base.load([]).name
    except SpecError as e:
        raise SpecError(f"{s.at(line)}: {e}") from None
    structural = [p for p, _, _ in paths if not PRICE_PATH.match(p)]
    price = [p for p, _, _ in paths if PRICE_PATH.match(p)]
    while True:
        base.structural, base.price = structural, price
        _load_variants(s, base)
        moved = _probe_prices(s, base)
        if moved is None:
            return base
        structural, price = structural + [moved], [p for p in price if p != moved]
        structural = [p for p, _, _ in paths if p in structural]      # keep spec order


def _line_of(base: Base, path: str):
    return next(l for p, _, l in base.paths if p == path)


def _load_variants(s: SweepSpec, base: Base) -> None:
    axes = {p: list(range(len(base._values(p)))) for p in base.structural}
    base.variants, base.combos = [], []
    for combo in product(axes):
        ov = [(p, base._values(p)[k]) for p, k in combo.items()]
        try:
            hw = base.load(ov)
        except SpecError as e:
            alone = next(((p, v) for p, v in ov if _fails(base, [(p, v)])), None)
            if alone is not None:
                where, what, why = _line_of(base, alone[0]), f"{alone[0]}={alone[1]}", ""
            else:
                where, what = _line_of(base, ov[0][0]) if ov else base.line, ", ".join(f"{p}={v}" for p, v in ov)
                why = "impossible combination: " if len(ov) > 1 else ""
            raise SpecError(f"{s.at(where)}: {why}hardware {base.path}{' with ' + what if what else ''}: {e}") from None
        base.variants.append(hw)
        base.combos.append(tuple(combo.values()))
    if base.price and any(_has_mapper_prices(hw) for hw in base.variants):
        base.structural, base.price = [p for p, _, _ in base.paths], []
        _load_variants(s, base)


def _has_mapper_prices(hw) -> bool:
    from ..hw.dataflows import get_dataflow
    return get_dataflow(hw.dataflow).mapper_prices is not None


def _fails(base, ov) -> bool:
    try:
        base.load(ov)
        return False
    except SpecError:
        return True


def _context(path: str, ov: list) -> tuple:
    """The structural overrides a price path's values can depend on: its own section's, and the
    energy unit and table."""
    prefix = path.rsplit(".", 1)[0] + "." if "." in path else path
    return tuple((p, repr(v)) for p, v in ov if p.startswith(prefix) or p in ("energy_unit", "energy_table"))


def _probe_prices(s: SweepSpec, base: Base) -> str | None:
    """Fill ``base.price_base`` and ``base.overlays``; return a price path that must become
    structural (it changes a structure, or another price path's prices), or None."""
    nf = len(price_names(base.variants[0]))
    base.price_base = np.array([price_vector(hw) for hw in base.variants]).reshape(len(base.variants), nf)
    base.overlays = {p: [] for p in base.price}
    seen: dict = {}
    owner: dict = {}
    for vi, combo in enumerate(base.combos):
        ov = [(p, base._values(p)[k]) for p, k in zip(base.structural, combo)]
        for p in base.price:
            ctx = _context(p, ov)
            if (p, ctx) not in seen:
                ctx_ov = [(q, v) for q, v in ov if any(q == c[0] for c in ctx)]
                try:
                    ref = base.load(ctx_ov)
                    rows = [base.load(ctx_ov + [(p, v)]) for v in base._values(p)]
                except SpecError as e:
                    raise SpecError(f"{s.at(_line_of(base, p))}: hardware {base.path}: {e}") from None
                key = structure_key(ref)
                if any(structure_key(h) != key for h in rows):
                    return p
                ref_pv = np.array(price_vector(ref))
                mat = np.array([price_vector(h) for h in rows])
                changed = np.flatnonzero(~np.all((mat == ref_pv) | (np.isnan(mat) & np.isnan(ref_pv)), axis=0))
                seen[(p, ctx)] = (changed, mat[:, changed])
            fields, mat = seen[(p, ctx)]
            for f in fields:
                if owner.setdefault(int(f), p) != p:
                    return p
            base.overlays[p].append((fields, mat))
    return None


def _energy_components(bases) -> list:
    out = ["mac", "decode"]
    for b in bases:
        for hw in b.variants:
            out += [l.name for l in hw.levels if l.name not in out]
    return out
