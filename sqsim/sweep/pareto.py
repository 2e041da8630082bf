"""Pareto fronts of sweep results and their 2-D projections.

An objective is a column to minimise, or to maximise when prefixed with ``-`` (``-frames_per_s``).
Short names: ``energy`` (``energy_j``), ``latency`` (``latency_s``), ``dram`` (``dram_bytes``),
``model`` / ``model_bytes`` (``weight_bytes``), ``throughput`` (``-frames_per_s``).  A row is
Pareto-optimal when no other row is at least as good in every objective and better in one; rows
with an error or a missing objective are never optimal.
"""
from __future__ import annotations

import numpy as np

from ..errors import SqsimError

ALIASES = {"energy": "energy_j", "latency": "latency_s", "dram": "dram_bytes", "model": "weight_bytes",
           "model_bytes": "weight_bytes", "throughput": "-frames_per_s"}


def objectives(spec) -> list[tuple[str, float]]:
    """``[(column, sign)]`` of ``"energy,latency,dram_bytes"`` (or a list): sign -1 maximises."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    out = []
    for n in names:
        if not n:
            continue
        n = ALIASES.get(n, n)
        sign = -1.0 if n.startswith("-") else 1.0
        out.append((n.lstrip("-"), sign))
    if not out:
        raise SqsimError("no objectives given (e.g. energy,latency,dram_bytes)")
    return out


def check_objectives(columns, objs) -> None:
    missing = [c for c, _ in objs if c not in columns]
    if missing:
        num = [c for c in columns if c.endswith(("_j", "_s", "_bytes")) or c in ("utilisation", "frames_per_s")]
        raise SqsimError(f"unknown objective column(s) {missing} (aliases: {', '.join(ALIASES)}; "
                         f"columns: {', '.join(num)})")


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (n x k, minimised) that no other row dominates (NaN rows: False)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    ok = ~np.isnan(values).any(axis=1)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return np.zeros(n, dtype=bool)
    v = values[idx]
    order = np.lexsort(v.T[::-1])               # by the first objective, then the others
    v, idx = v[order], idx[order]
    # The first remaining row (lexicographic order) is dominated by nothing left; keep it and drop
    # every row it dominates, until none remain: O(n x front), vectorised.
    alive = np.arange(len(v))
    front = []
    while len(alive):
        i = alive[0]
        front.append(i)
        rest = alive[1:]
        r = v[rest]
        dominated = np.all(r >= v[i], axis=1) & np.any(r > v[i], axis=1)
        alive = rest[~dominated]
    mask = np.zeros(n, dtype=bool)
    mask[idx[front]] = True
    return mask


def pareto(df, objs="energy,latency,dram_bytes"):
    """Boolean Series: the Pareto-optimal rows of a sweep's DataFrame for ``objs``.

    >>> df["pareto"] = pareto(df, "energy,latency")    # doctest: +SKIP
    """
    import pandas as pd
    o = objectives(objs)
    check_objectives(df.columns, o)
    vals = np.column_stack([df[c].to_numpy(dtype=np.float64, na_value=np.nan) * s for c, s in o])
    if "error" in df.columns:
        vals[df["error"].notna().to_numpy()] = np.nan
    return pd.Series(pareto_mask(vals), index=df.index, name="pareto")


def plot_fronts(df, objs, path, mask=None, max_points: int = 200_000, seed: int = 0) -> None:
    """2-D projections of the points on each pair of objectives: designs whose weights fit on chip
    and those that do not in two colours, the Pareto-optimal ones (of all the objectives) ringed,
    each pair's own 2-D front as a step line.  At most ``max_points`` are drawn (a random subset;
    the optimal ones always)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..paths import atomic_write_bytes
    import io
    o = objectives(objs)
    check_objectives(df.columns, o)
    if mask is None:
        mask = pareto(df, objs).to_numpy()
    mask = np.asarray(mask, dtype=bool)
    ok = df["error"].isna().to_numpy() if "error" in df.columns else np.ones(len(df), bool)
    keep = np.flatnonzero(ok)
    if len(keep) > max_points:
        rng = np.random.default_rng(seed)
        keep = np.union1d(rng.choice(keep, max_points, replace=False), np.flatnonzero(mask & ok))
    fits = df["weights_on_chip"].to_numpy(dtype=bool, na_value=False)[keep] if "weights_on_chip" in df else None
    pairs = [(a, b) for i, a in enumerate(o) for b in o[i + 1:]] or [(o[0], o[0])]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4), squeeze=False)
    for ax, ((cx, sx), (cy, sy)) in zip(axes[0], pairs):
        x, y = df[cx].to_numpy(dtype=float)[keep], df[cy].to_numpy(dtype=float)[keep]
        if fits is not None:
            ax.scatter(x[~fits], y[~fits], s=6, c="0.7", label="weights off chip", rasterized=True)
            ax.scatter(x[fits], y[fits], s=6, c="tab:blue", label="weights fit on chip", rasterized=True)
        else:
            ax.scatter(x, y, s=6, c="tab:blue", rasterized=True)
        m = mask[keep]
        ax.scatter(x[m], y[m], s=30, facecolors="none", edgecolors="tab:red", label="Pareto-optimal (all objectives)")
        pm = pareto_mask(np.column_stack([x * sx, y * sy]))
        order = np.argsort(x[pm])
        ax.step(x[pm][order], y[pm][order], where="post", c="tab:red", lw=1)
        ax.set_xlabel(cx)
        ax.set_ylabel(cy)
        for axis, col in ((ax.set_xscale, x), (ax.set_yscale, y)):
            pos = col[np.isfinite(col) & (col > 0)]
            if len(pos) and pos.max() / pos.min() > 50:
                axis("log")
        for which, scale in (("x", ax.get_xscale()), ("y", ax.get_yscale())):
            if scale == "linear":
                ax.ticklabel_format(axis=which, style="sci", scilimits=(-2, 3))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="best")
    fig.suptitle(f"{len(df):,} design points, {int(mask.sum()):,} Pareto-optimal")
    fig.tight_layout()
    buf = io.BytesIO()
    fmt = str(path).rsplit(".", 1)[-1].lower()
    fig.savefig(buf, format=fmt if fmt in ("png", "pdf", "svg") else "png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
