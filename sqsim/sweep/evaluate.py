"""Evaluating design points: one analysis per *structure*, vectorised pricing per point.

A structure is (network, compression, hardware variant with its structural ``set`` values): it is
analysed once by :func:`sqsim.analysis.analyze` with the sweep's :class:`~.cache.LayerCache`
(so a layer seen in another structure, or a mapping search with the same inputs, is not
redone).  Its action counts (:func:`sqsim.hw.pricing.action_table`) are then priced for all of
its points at once (:func:`sqsim.hw.pricing.price_points`): the energies, clock and bandwidths
of each point.  Every column equals what ``sqsim analyze --format json`` reports for the point
(``totals``, ``fit``, ``model``, ``activations``), to the last bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SqsimError
from ..hw.pricing import action_table, price_points
from .cache import LayerCache

OPERANDS = ("weights", "inputs", "outputs")
# (column, kind): kind is float, int, bool or str
RESULT_COLUMNS = ([("batch", "int"), ("weight_bytes", "float"), ("dense_fp32_bytes", "float"),
                   ("compression_ratio", "float"), ("weights_on_chip", "bool"), ("fits", "bool"),
                   ("margin_bytes", "float"), ("capacity_bytes", "float"), ("working_set_bytes", "float"),
                   ("fit_level", "str"), ("weights_policy", "str"), ("preloaded", "bool"), ("dram_bytes", "float")]
                  + [(f"dram_{d}_{op}", "float") for d in ("reads", "writes") for op in OPERANDS]
                  + [("energy_j", "float")])
TIME_COLUMNS = [("latency_s", "float"), ("processing_latency_s", "float"), ("serialized_latency_s", "float"),
                ("frames_per_s", "float"), ("cycles", "float"), ("utilisation", "float"), ("macs", "float"),
                ("macs_effective", "float"), ("compute_cycles", "float"), ("ramp_cycles", "float"),
                ("active_pes", "float"), ("activations_onchip_bytes", "float"), ("error", "str")]


@dataclass
class Structure:
    """What one analysis gives all the points of a structure."""
    layout: object
    row: np.ndarray
    scalars: dict
    error: str | None = None


HUFFMAN_COLUMNS = [("stored_bytes", "float"), ("huffman_bytes", "float")]   # with a huffman axis


def _scalars(r, huffman: bool = False) -> dict:
    """A report's point-independent columns; ``huffman``: ``stored_bytes`` and the compression
    ratio as ``sqsim analyze --huffman`` gives them (the hardware figures do not change)."""
    b, t, f = r.batch, r.total, r.fit
    stored = r.stored_bytes(huffman)
    d = {"batch": b, "weight_bytes": f.weight_bytes, "dense_fp32_bytes": r.dense_fp32_bytes,
         "compression_ratio": r.dense_fp32_bytes / stored if stored else np.nan,
         "weights_on_chip": f.weights_on_chip, "fits": f.fits, "margin_bytes": f.margin_bytes,
         "capacity_bytes": f.capacity_bytes, "working_set_bytes": f.working_set_bytes, "fit_level": f.level,
         "weights_policy": f.policy, "preloaded": f.preloaded, "dram_bytes": float(t.dram_bytes) / b,
         "macs": t.macs / b, "macs_effective": float(t.macs_effective) / b,
         "compute_cycles": t.compute_cycles / b, "ramp_cycles": t.ramp_cycles / b,
         "activations_onchip_bytes": float(r.activations.resident_bytes) / b if r.activations is not None else 0.0,
         "_macs_effective_batch": t.macs_effective, "_peak": t.peak_macs_per_cycle}
    for op in OPERANDS:
        d[f"dram_reads_{op}"] = float(t.dram_reads_bytes.get(op, 0.0)) / b
        d[f"dram_writes_{op}"] = float(t.dram_writes_bytes.get(op, 0.0)) / b
    return d


def _huffman_scalars(r, huffman: bool) -> dict:
    hb = r.huffman_bytes
    return {"stored_bytes": r.stored_bytes(huffman), "huffman_bytes": np.nan if hb is None else hb}


class Evaluator:
    """Evaluates chunks of a :class:`~.plan.SweepPlan`'s points.

    Parameters
    ----------
    plan : SweepPlan
    cache : LayerCache, optional
        Shared per-layer costs (a new one by default).
    max_structures : int
        Structures kept between chunks (the oldest are dropped beyond it: memory stays bounded).
    max_layers : int
        Layer costs and mapping searches the layer cache keeps (the oldest half is dropped
        beyond it).
    """

    def __init__(self, plan, cache: LayerCache | None = None, max_structures: int = 20000,
                 max_layers: int = 50000):
        self.plan = plan
        self.cache = cache if cache is not None else LayerCache()
        self._graphs: dict = {}
        self._structs: dict = {}
        self.max_structures = max_structures
        self.max_layers = max_layers
        self.analyses = 0

    def graph(self, net: int, comp: int):
        """The network with the compression variant applied to its profiles."""
        key = (net, comp)
        g = self._graphs.get(key)
        if g is None:
            g = self._graphs[key] = compressed_graph(self.plan.networks[net].graph, self.plan.compressions[comp])
            if len(self._graphs) > 256:
                self._graphs.pop(next(iter(self._graphs)))
        return g

    def structure(self, net: int, comp: int, base: int, variant: int) -> Structure:
        key = (net, comp, base, variant)
        s = self._structs.get(key)
        if s is not None:
            return s
        from ..analysis.network import analyze
        plan = self.plan
        hw = plan.bases[base].variants[variant]
        graph = self.graph(net, comp)
        self.analyses += 1
        try:
            r = analyze(graph, hw, batch=plan.spec.batch, act_density=plan.spec.act_density,
                        dense=plan.compressions[comp]["dense"], cache=self.cache)
            layout, row = action_table(r, graph)
            huffman = plan.compressions[comp]["huffman"]
            scalars = _scalars(r, huffman)
            if "huffman" in plan.compression_axes:
                scalars.update(_huffman_scalars(r, huffman))
            s = Structure(layout, row, scalars)
        except SqsimError as e:
            s = Structure(None, None, {}, str(e))
        self._structs[key] = s
        if len(self._structs) > self.max_structures:
            for k in list(self._structs)[: self.max_structures // 2]:
                del self._structs[k]
        if len(self.cache) > self.max_layers:
            self.cache.trim(self.max_layers // 2)
        return s

    def evaluate(self, ids: np.ndarray) -> dict:
        """Columns (``{name: ndarray}``) of the points ``ids`` (global indices)."""
        plan = self.plan
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        d = plan.decode(ids)
        skey = np.stack([d["network"], d["compression"], d["base"], d["variant"]], axis=1)
        uniq, inv = np.unique(skey, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        structs = [self.structure(*map(int, u)) for u in uniq]
        cols = empty_columns(plan, n)
        groups: dict = {}
        for si, s in enumerate(structs):
            if s.error is not None:
                cols["error"][inv == si] = s.error
            else:
                groups.setdefault(s.layout, []).append(si)
        for layout, sis in groups.items():
            sel = np.flatnonzero(np.isin(inv, sis))
            rows = np.stack([structs[si].row for si in sis])
            pos = np.searchsorted(np.array(sis), inv[sel])
            V = rows[pos]
            P = self._prices(d, sel)
            out = price_points(layout, V, P)
            self._fill(cols, sel, out, [structs[si].scalars for si in sis], pos)
        _axis_columns(plan, d, cols)
        return cols

    def _prices(self, d: dict, sel: np.ndarray) -> np.ndarray:
        plan = self.plan
        bv = np.stack([d["base"][sel], d["variant"][sel]], axis=1)
        uniq, inv = np.unique(bv, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        P = None
        for ui, (bi, vi) in enumerate(uniq):
            b = plan.bases[int(bi)]
            m = inv == ui
            pv = np.repeat(b.price_base[int(vi)][None, :], int(m.sum()), axis=0)
            for p, k in plan.price_indices(b, d["price"][sel][m]).items():
                fields, mat = b.overlays[p][int(vi)]
                if len(fields):
                    pv[:, fields] = mat[k]
            if P is None:
                P = np.empty((len(sel), pv.shape[1]))
            P[m] = pv
        return P

    @staticmethod
    def _fill(cols: dict, sel, out: dict, scalars: list, pos) -> None:
        for name in scalars[0]:
            if name.startswith("_") or name not in cols:
                continue
            vals = np.array([s[name] for s in scalars], dtype=object if cols[name].dtype == object else None)
            cols[name][sel] = vals[pos]
        macs_eff = np.array([s["_macs_effective_batch"] for s in scalars], dtype=np.float64)[pos]
        peak = np.array([s["_peak"] for s in scalars], dtype=np.int64)[pos]
        b = np.array([s["batch"] for s in scalars], dtype=np.int64)[pos]
        cyc = out["cycles"]
        with np.errstate(divide="ignore", invalid="ignore"):
            cols["utilisation"][sel] = np.where(cyc != 0, macs_eff / np.where(cyc != 0, cyc * peak, 1), 0.0)
        cols["cycles"][sel] = cyc / b
        cols["energy_j"][sel] = out["energy_j"]
        for k in ("latency_s", "processing_latency_s", "serialized_latency_s", "frames_per_s", "active_pes"):
            cols[k][sel] = out[k]
        for k, v in out["energy_breakdown"].items():
            cols[f"energy_{k}_j"][sel] = v


def compressed_graph(graph, comp: dict):
    """``graph`` with a compression variant applied to each weighted layer's profile: densities
    scaled by ``density_scale`` (at most 1), ``weight_bits`` and ``index_bits`` replaced where not
    None.  Layers without a profile, and ``dense`` (the ``--dense`` flag), are left as they are."""
    from dataclasses import replace
    from ..ir.graph import Graph
    scale, wb, ib = comp["density_scale"], comp["weight_bits"], comp["index_bits"]
    if scale == 1.0 and wb is None and ib is None:
        return graph
    layers = []
    for layer in graph:
        c = layer.compression
        if c is not None:
            c = replace(c, density=min(1.0, c.density * scale),
                        weight_bits=wb if wb is not None else c.weight_bits,
                        index_bits=ib if ib is not None else c.index_bits)
            layer = layer.replace(compression=c)
        layers.append(layer)
    return Graph(layers, name=graph.name, source=graph.source)


def column_schema(plan) -> list:
    """``[(name, kind)]`` of every column, in order (kinds: float, int, bool, str)."""
    cols = [("point", "int"), ("network", "str")]
    if any(kind == "generator" for kind, _, _ in plan.spec.networks):
        cols += [(k, "float" if k in ("pct3x3", "sr") else "str" if k in ("bypass", "compression") else "int")
                 for k in ("base_e", "incr_e", "pct3x3", "freq", "sr", "bypass")]
    cols += [(k, {"density_scale": "float", "huffman": "bool", "dense": "bool"}.get(k, "int"))
             for k in plan.compression_axes]
    cols += [("hardware", "str"), ("hardware_file", "str")]
    seen = []
    for b in plan.bases:
        for p, vals, _ in b.paths:
            if p not in seen:
                seen.append(p)
    for p in seen:
        vals = [v for b in plan.bases for q, vs, _ in b.paths if q == p for v in vs]
        if all(isinstance(v, bool) for v in vals):
            kind = "bool"
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            kind = "int"
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            kind = "float"
        else:
            kind = "str"
        cols.append((p, kind))
    cols += RESULT_COLUMNS + (HUFFMAN_COLUMNS if "huffman" in plan.compression_axes else [])
    cols += [(f"energy_{k}_j", "float") for k in plan.energy_components] + TIME_COLUMNS
    return cols


def empty_columns(plan, n: int) -> dict:
    out = {}
    for name, kind in column_schema(plan):
        out[name] = np.full(n, np.nan) if kind in ("float", "int") else np.full(n, None, dtype=object)
    for k in plan.energy_components:
        out[f"energy_{k}_j"][:] = 0.0
    return out


def _axis_columns(plan, d: dict, cols: dict) -> None:
    nets, comps = d["network"], d["compression"]
    labels = np.array([n.label for n in plan.networks], dtype=object)
    cols["network"][:] = labels[nets]
    if "base_e" in cols:
        for k in ("base_e", "incr_e", "pct3x3", "freq", "sr", "bypass"):
            vals = np.array([n.params.get(k) for n in plan.networks], dtype=object)
            cols[k][:] = vals[nets]
    for k in plan.compression_axes:
        cols[k][:] = np.array([c[k] for c in plan.compressions], dtype=object)[comps]
    names = np.array([b.name for b in plan.bases], dtype=object)
    files = np.array([b.path for b in plan.bases], dtype=object)
    cols["hardware"][:] = names[d["base"]]
    cols["hardware_file"][:] = files[d["base"]]
    for bi, b in enumerate(plan.bases):
        m = d["base"] == bi
        if not m.any():
            continue
        var = d["variant"][m]
        for j, p in enumerate(b.structural):
            idx = np.array([c[j] for c in b.combos])[var]
            cols[p][m] = _objects(b._values(p))[idx]
        for p, k in plan.price_indices(b, d["price"][m]).items():
            cols[p][m] = _objects(b._values(p))[k]


def _objects(values) -> np.ndarray:
    """A 1-D object array of spec values (a list value, e.g. ``runs``, as ``[a, b]``)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = "[" + ", ".join(map(str, v)) + "]" if isinstance(v, (list, tuple)) else v
    return out


def to_csv_text(plan, cols: dict, ids, header: bool = True) -> str:
    """The CSV text ``to_frame(plan, cols, ids).to_csv(index=False)`` gives, without pandas (the
    command line's ``.csv`` path does not pay for importing it): floats as numpy prints them
    (shortest round-trip repr), integers and booleans as Python prints them, missing values empty,
    minimal quoting, ``\n`` line ends."""
    import csv
    import io
    schema = column_schema(plan)
    out = []
    for name, kind in schema:
        v = cols[name] if name != "point" else np.asarray(ids, dtype=np.int64)
        if kind == "float":
            f = np.asarray(v, dtype=np.float64)
            text = f.astype(str).astype(object)
            text[np.isnan(f)] = ""
        elif kind in ("int", "bool"):
            f = np.asarray(v, dtype=np.float64)
            text = np.empty(len(f), dtype=object)
            for i, x in enumerate(f.tolist()):
                text[i] = "" if x != x else (str(int(x)) if kind == "int" else str(x != 0))
        else:
            text = np.array(["" if x is None else str(x) for x in v] + [None], dtype=object)[:-1]
        out.append(text)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow([n for n, _ in schema])
    w.writerows(zip(*out))
    return buf.getvalue()


def to_frame(plan, cols: dict, ids=None):
    """A pandas DataFrame with the plan's column types."""
    import pandas as pd
    data = {}
    for name, kind in column_schema(plan):
        v = cols[name] if name != "point" else np.asarray(ids, dtype=np.int64)
        if kind == "float":
            data[name] = pd.array(np.asarray(v, dtype=np.float64), dtype="float64")
        elif kind in ("int", "bool"):                   # None / NaN: missing
            f = np.asarray(v, dtype=np.float64)
            na = np.isnan(f)
            vals = np.where(na, 0, f)
            data[name] = (pd.arrays.IntegerArray(vals.astype(np.int64), na) if kind == "int"
                          else pd.arrays.BooleanArray(vals != 0, na))
        else:
            data[name] = pd.array([None if x is None else str(x) for x in v], dtype=object)
    return pd.DataFrame(data)
