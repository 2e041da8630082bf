"""Figures (matplotlib, Agg backend, imported only when a plot is asked for).

* :func:`plot_report`: per-layer energy breakdown (stacked bars) and a roofline: each conv/fc
  layer at its operational intensity (MACs per DRAM byte) and attained MACs per cycle, under
  ``min(peak MACs/cycle, DRAM bytes/cycle x intensity)``.
* :func:`plot_comparison`: DRAM bytes and energy per inference for every (network, hardware).

Files are written atomically (rendered to memory, then renamed into place).
"""
from __future__ import annotations

import io

from ..errors import SqsimError
from ..paths import atomic_write_bytes


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_suffix(path) -> str:
    """The figure format a plot path asks for (png, pdf or svg; SqsimError otherwise)."""
    suffix = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else ""
    if suffix not in ("png", "pdf", "svg"):
        raise SqsimError(f"{path}: plot file must end in .png, .pdf or .svg")
    return suffix


def _save(fig, path) -> None:
    plt = _pyplot()
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format=plot_suffix(path), dpi=120, bbox_inches="tight")
        atomic_write_bytes(path, buf.getvalue())
    finally:
        plt.close(fig)   # also when the write fails: no figure left open


def plot_report(report, path) -> None:
    """Energy breakdown per layer and the roofline of ``report``, written to ``path``."""
    plot_suffix(path)
    plt = _pyplot()
    fig, (ax_e, ax_r) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    layers = list(report.layers)
    comps = []
    for c in layers:
        comps += [k for k in c.energy_breakdown_j if k not in comps]
    b = report.batch
    bottom = [0.0] * len(layers)
    x = range(len(layers))
    for comp in comps:
        vals = [c.energy_breakdown_j.get(comp, 0.0) / b * 1e6 for c in layers]
        ax_e.bar(x, vals, bottom=bottom, label=comp)
        bottom = [u + v for u, v in zip(bottom, vals)]
    ax_e.set_xticks(list(x))
    ax_e.set_xticklabels([c.name for c in layers], rotation=90, fontsize=7)
    ax_e.set_ylabel("energy per inference (µJ)")
    ax_e.set_title(f"{report.network} on {report.hardware}: energy by component")
    ax_e.legend(fontsize=8)

    hw = report.hw
    peak = hw.array.peak_macs_per_cycle
    bw = hw.dram.bytes_per_cycle(hw.clock_hz)
    pts = [(c.macs_effective / c.dram_bytes, c.macs_effective / c.cycles, c.name)
           for c in layers if c.mapping is not None and c.dram_bytes and c.cycles]
    if pts:
        lo = min(p[0] for p in pts) / 4
        hi = max(max(p[0] for p in pts) * 4, 4 * peak / bw)
        xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        ax_r.loglog(xs, [min(peak, bw * v) for v in xs], color="black", lw=1.5, label="roof")
        ax_r.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, color="tab:red", zorder=3, label="layers")
        for i_, p in enumerate(pts):
            if i_ % max(1, len(pts) // 12) == 0:
                ax_r.annotate(p[2], (p[0], p[1]), fontsize=6)
    ax_r.set_xlabel("operational intensity (MACs per DRAM byte)")
    ax_r.set_ylabel("MACs per cycle")
    ax_r.set_title(f"roofline: peak {peak} MACs/cycle, DRAM {bw:.3g} B/cycle")
    ax_r.legend(fontsize=8)
    _save(fig, path)


def plot_comparison(cmp, path) -> None:
    """DRAM bytes and energy per inference of every compared pair, written to ``path``."""
    plot_suffix(path)
    plt = _pyplot()
    rows = cmp.to_rows()
    labels = [f"{r['network']}\n{r['hardware']}" for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(8, 1.2 * len(rows) + 4), 5))
    a.bar(range(len(rows)), [r["dram_bytes"] / 1e6 for r in rows], color="tab:blue")
    a.set_ylabel("DRAM MB per inference")
    b.bar(range(len(rows)), [r["energy_j"] * 1e3 for r in rows], color="tab:orange")
    b.set_ylabel("energy per inference (mJ)")
    for ax in (a, b):
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
    _save(fig, path)
