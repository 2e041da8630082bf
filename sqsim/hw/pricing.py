"""The pricing step, vectorised over design points (Timeloop/Accelergy's split of action counts and
energy per action).

A layer's cost (:func:`sqsim.hw.cost.layer_cost`) is action counts (MACs, decodes, DRAM and
on-chip bytes, the array's cycles) that depend on the layer, its weights and the hardware's
*structure*, priced by :func:`sqsim.hw.cost.price_layer` with the hardware's *prices*: energies
per action, the clock and the levels' bandwidths.  Design points that differ only in prices
share their action counts; this module prices many of them at once with numpy, performing the
same floating-point operations in the same order as :func:`~sqsim.hw.cost.price_layer` and the
report's totals (:class:`~sqsim.hw.cost.LayerCost` ``+`` and ``/ batch``), so every figure equals
``sqsim analyze``'s to the last bit.

* :func:`price_vector` / :func:`price_names`: a hardware's prices, one float each.
* :func:`structure_key`: the hardware with its prices set aside (row stationary's mapper ranks
  candidates by energy and time: what it reads stays in the key, ``Dataflow.mapper_prices``).
* :func:`action_table`: a network report's action counts as one float vector and a layout.
* :func:`price_points`: totals per inference of many points (rows of counts and prices).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .spec import EnergyTable

ENERGY_PRICES = ("mac", "codebook_lookup", "index_decode")


def price_names(hw) -> tuple[str, ...]:
    """Names of :func:`price_vector`'s entries: ``mac``, ``codebook_lookup``, ``index_decode``,
    ``clock``, then ``LEVEL:read``, ``LEVEL:write``, ``LEVEL:bandwidth`` per memory level."""
    out = list(ENERGY_PRICES) + ["clock"]
    for l in hw.levels:
        out += [f"{l.name}:read", f"{l.name}:write", f"{l.name}:bandwidth"]
    return tuple(out)


def price_vector(hw) -> tuple[float, ...]:
    """The hardware's prices in :func:`price_names` order (a level without a bandwidth: NaN)."""
    out = [hw.energy.mac_j, hw.energy.codebook_lookup_j, hw.energy.index_decode_j, hw.clock_hz]
    for l in hw.levels:
        bw = l.bandwidth_bytes_per_s
        out += [l.read_energy_j, l.write_energy_j, float("nan") if bw is None else bw]
    return tuple(float(v) for v in out)


def structure_key(hw):
    """``hw`` with every price neutralised (energies 0, clock 1 Hz, bandwidths 1 B/s where set),
    plus what its dataflow's mapper reads from the prices: two hardware specs with equal keys
    have equal action counts for every layer."""
    from .dataflows import get_dataflow
    levels = tuple(replace(l, read_energy_j=0.0, write_energy_j=0.0,
                           bandwidth_bytes_per_s=None if l.bandwidth_bytes_per_s is None else 1.0)
                   for l in hw.levels)
    neutral = replace(hw, array=replace(hw.array, clock_hz=1.0), energy=EnergyTable(0.0), levels=levels,
                      source=None, description="")
    df = get_dataflow(hw.dataflow)
    return neutral, (df.mapper_prices(hw) if df.mapper_prices is not None else ())


@dataclass(frozen=True)
class Layout:
    """What points priced together share: the levels, policies and, per layer, which actions are
    non-zero (they decide which energy components exist and the order they are summed in).

    Attributes
    ----------
    levels : tuple of (str, str)
        ``(name, bandwidth kind)`` from DRAM inward; kind ``bw`` (bandwidth / clock), ``inf``
        (keeps up) or ``banks`` (a fixed number of bytes per cycle).
    layers : tuple of tuple
        Per layer ``(decodes, coded, sparse, levels present, active)``: whether it decodes
        weights, the two decode prices that apply, the on-chip levels it touches (indices into
        ``levels``) and whether it reports active PEs.
    overlap_dram : bool
    batch : int
    """
    levels: tuple
    layers: tuple
    overlap_dram: bool
    batch: int


# per layer, in each table row: mac_ops, decodes, compute, dram read sum, dram write sum, weight DRAM,
# feature-map DRAM, weight + feature-map DRAM, active PEs, then (reads, writes, moved) per present level
_PER_LAYER = 9


def action_table(report, graph) -> tuple[Layout, np.ndarray]:
    """The action counts of ``report`` (a :class:`~sqsim.analysis.report.NetworkReport` of
    ``graph``) that :func:`price_points` prices: ``(layout, row)``.  The row ends with each
    level's word bytes and bytes per cycle (for ``banks`` levels)."""
    from .cost import VECTOR_OPS, vector_ops
    hw = report.hw
    kinds = []
    for l in hw.levels:
        kinds.append((l.name, "bw" if l.bandwidth_bytes_per_s is not None else "inf" if l.banks is None else "banks"))
    onchip = [l.name for l in hw.levels[1:]]
    layers, row = [], []
    for c in report.layers:
        if c.op in VECTOR_OPS:
            layer = graph.layer(c.name)
            mac_ops, coded, sparse = vector_ops(graph.info(c.name), layer) * c.batch, False, False
        else:
            st = report.storages[c.name]
            mac_ops, coded, sparse = c.macs_effective, st.coded, st.sparse
        dr, dw = c.dram_reads_bytes, c.dram_writes_bytes
        w_dram = dr.get("weights", 0.0) + dw.get("weights", 0.0)
        fm_dram = sum(dr.values()) + sum(dw.values()) - w_dram
        present, lv = [], []
        for i, name in enumerate(onchip, start=1):
            r, w = c.level_reads_bytes.get(name, 0.0), c.level_writes_bytes.get(name, 0.0)
            if r or w:
                present.append(i)
                lv += [r, w, r + w]
        layers.append((bool(c.decodes), coded, sparse, tuple(present), c.active_pes is not None))
        row += [mac_ops, c.decodes, c.compute_cycles, sum(dr.values()), sum(dw.values()), w_dram, fm_dram,
                w_dram + fm_dram, c.active_pes if c.active_pes is not None else 0.0] + lv
    for l in hw.levels:
        row += [l.word_bytes, l.bytes_per_cycle(1.0) if l.bandwidth_bytes_per_s is None else 0.0]
    layout = Layout(tuple(kinds), tuple(layers), hw.policies.overlap_dram, report.batch)
    return layout, np.array(row, dtype=np.float64)


def price_points(layout: Layout, V: np.ndarray, P: np.ndarray) -> dict:
    """Totals per inference of ``n`` design points sharing ``layout``.

    Parameters
    ----------
    V : ndarray, shape (n, m)
        Each point's :func:`action_table` row.
    P : ndarray, shape (n, f)
        Each point's :func:`price_vector`.

    Returns
    -------
    dict of ndarray
        ``energy_j``, ``energy_breakdown`` (``{component: joules}``, components absent from
        every point left out; absent at a point: 0), ``cycles``, ``processing_cycles``,
        ``serialized_cycles`` (per batch, integers), ``latency_s``, ``processing_latency_s``,
        ``serialized_latency_s``, ``frames_per_s``, ``active_pes`` (NaN when no layer reports
        it).
    """
    n = V.shape[0]
    nl = len(layout.levels)
    name = [k[0] for k in layout.levels]
    mac, cl, idx, f = P[:, 0], P[:, 1], P[:, 2], P[:, 3]
    read = [P[:, 4 + 3 * i] for i in range(nl)]
    write = [P[:, 5 + 3 * i] for i in range(nl)]
    band = [P[:, 6 + 3 * i] for i in range(nl)]
    tail = V.shape[1] - 2 * nl
    word = [V[:, tail + 2 * i] for i in range(nl)]
    bpc = []
    for i, (_, kind) in enumerate(layout.levels):        # MemoryLevel.bytes_per_cycle(clock)
        bpc.append(band[i] / f if kind == "bw" else np.full(n, np.inf) if kind == "inf" else V[:, tail + 2 * i + 1])
    bw = bpc[0]
    totals: dict = {}            # component -> running sum over the layers (LayerCost.__add__)
    decode_first = np.full(n, -1)
    cycles = np.zeros(n, dtype=np.int64)
    proc_sum = np.zeros(n, dtype=np.int64)
    ser_sum = np.zeros(n, dtype=np.int64)
    act = None                   # running active PEs of the total (None: no layer so far reports it)
    o = 0
    for li, (has_dec, coded, sparse, present, has_active) in enumerate(layout.layers):
        mac_ops, decodes, compute, dr_sum, dw_sum, w_dram, fm_dram, wf = (V[:, o + k] for k in range(8))
        active = V[:, o + 8]
        o += _PER_LAYER
        comps = {"mac": mac_ops * mac}
        if has_dec:                                          # price_layer: decode when non-zero
            dec = decodes * ((cl if coded else 0.0) + (idx if sparse else 0.0))
            first = (decode_first < 0) & (dec != 0)
            decode_first[first] = li
            comps["decode"] = dec
        comps[name[0]] = (dr_sum * read[0] + dw_sum * write[0]) / word[0]       # _level_energy
        terms = [compute, wf / bw]                                               # _cycles
        onchip_terms = []
        for i in present:
            r, w, moved = V[:, o], V[:, o + 1], V[:, o + 2]
            o += 3
            comps[name[i]] = (r * read[i] + w * write[i]) / word[i]
            onchip_terms.append(moved / bpc[i])
        processing = np.ceil(np.maximum.reduce(terms + onchip_terms)).astype(np.int64)
        core = np.maximum.reduce([compute, w_dram / bw] + onchip_terms)
        serialized = np.ceil(core + fm_dram / bw).astype(np.int64)
        for k, v in comps.items():                          # an absent decode (0) adds nothing
            totals[k] = v if k not in totals else totals[k] + v
        layer_cycles = processing if layout.overlap_dram else serialized
        if li == 0:
            if has_active:
                act = active
        else:                                                # LayerCost.__add__: weighted by processing cycles
            a = ([(act, proc_sum)] if act is not None else []) + ([(active, processing)] if has_active else [])
            if a:
                t = 0
                s = 0
                for v, w in a:
                    t = t + w
                    s = s + v * w
                with np.errstate(divide="ignore", invalid="ignore"):
                    act = np.where(t != 0, s / np.where(t != 0, t, 1), a[0][0])
        cycles = cycles + layer_cycles
        proc_sum = proc_sum + processing
        ser_sum = ser_sum + serialized
    b = layout.batch
    energy = _ordered_sum(totals, decode_first, layout)
    breakdown = {k: v / b for k, v in totals.items()}
    latency = cycles / b / f
    with np.errstate(divide="ignore"):
        fps = np.where(latency != 0, 1.0 / np.where(latency != 0, latency, 1.0), np.inf)
    return {"energy_j": energy / b, "energy_breakdown": breakdown, "cycles": cycles,
            "processing_cycles": proc_sum, "serialized_cycles": ser_sum, "latency_s": latency,
            "processing_latency_s": proc_sum / b / f, "serialized_latency_s": ser_sum / b / f,
            "frames_per_s": fps, "active_pes": act if act is not None else np.full(n, np.nan)}


def _ordered_sum(totals: dict, decode_first: np.ndarray, layout: Layout) -> np.ndarray:
    """``sum(total.energy_breakdown_j.values())``: the components in the order they first appear
    in the layers, which depends on the layer where a point's decode energy first is non-zero."""
    out = np.zeros(len(decode_first))
    for first in np.unique(decode_first):
        sel = decode_first == first
        order = []
        for li, (has_dec, _, _, present, _) in enumerate(layout.layers):
            keys = ["mac"] + (["decode"] if li == first else []) + [layout.levels[0][0]] + \
                [layout.levels[i][0] for i in present]
            order += [k for k in keys if k not in order]
        s = 0
        for k in order:
            s = s + totals[k][sel]
        out[sel] = s
    return out
