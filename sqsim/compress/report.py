"""The per-layer size table (Deep Compression Table 4 layout) as plain data and as a rich table.

:func:`size_table` is the one source for ``sqsim compress``/``sqsim info`` output: a JSON-ready
dict with ``layers`` (one dict per conv/fc layer), ``totals`` and, for networks the papers
report, the papers' figures beside the measured ones (labelled as the paper's).
"""
from __future__ import annotations

from . import paper
from .accounting import ModelSize

MB = 1e6  # sqsim reports SI megabytes (10**6 bytes); MiB are 2**20


def _sizes(obj) -> ModelSize:
    if isinstance(obj, ModelSize):
        return obj
    return obj.sizes()


def size_table(model_or_sizes, graph=None) -> dict:
    """The size table of a :class:`~sqsim.compress.model.CompressedModel` (or a ModelSize).

    Returns
    -------
    dict
        ``network``, ``format``, ``layers`` (list of dicts: every :class:`LayerSize` field and
        derived size/rate, e.g. ``dense_bytes``, ``pq_bytes``, ``pqh_bytes``, ``nonzeros``,
        ``fillers``, ``pq_rate``; plus ``paper_pq_rate``/``paper_pqh_rate`` where the paper gives
        them), ``totals`` (the same keys for the sum), ``file_bytes``, ``overhead_bytes`` and
        ``paper`` (the paper's whole-network figures, or None).
    """
    sizes = _sizes(model_or_sizes)
    graph = graph if graph is not None else getattr(model_or_sizes, "graph", None)
    ref = paper.reference_for(graph) if graph is not None else None
    layers = []
    for s in sizes.layers:
        row = s.to_dict()
        if ref == "alexnet" and s.name in paper.ALEXNET_TABLE4:
            row["paper_pq_rate"] = paper.ALEXNET_TABLE4[s.name].pq_rate
            row["paper_pqh_rate"] = paper.ALEXNET_TABLE4[s.name].pqh_rate
        layers.append(row)
    totals = sizes.total.to_dict()
    totals["pq_mb"] = totals["pq_bytes"] / MB
    totals["pqh_mb"] = None if totals["pqh_bytes"] is None else totals["pqh_bytes"] / MB
    paper_figs = None
    if ref == "alexnet":
        paper_figs = {"source": paper.DEEP_COMPRESSION, **paper.ALEXNET_TABLE4_TOTAL}
        totals["paper_pq_rate"] = paper.ALEXNET_TABLE4_TOTAL["pq_rate"]
        totals["paper_pqh_rate"] = paper.ALEXNET_TABLE4_TOTAL["pqh_rate"]
    elif ref == "squeezenet_v1.0":
        paper_figs = {"source": paper.SQUEEZENET, **{f"{k}_mb": v for k, v in paper.SQUEEZENET_TABLE2_MB.items()}}
    return {"network": sizes.network, "format": sizes.format, "layers": layers, "totals": totals,
            "file_bytes": sizes.file_bytes, "overhead_bytes": sizes.overhead_bytes, "paper": paper_figs}


def size_table_rows(model_or_sizes) -> list[dict]:
    """The table's rows as plain dicts: one per conv/fc layer, then one named ``total``."""
    t = size_table(model_or_sizes)
    return t["layers"] + [t["totals"]]


def _b(v) -> str:
    return "-" if v is None else f"{v:,}"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _bits(row) -> str:
    w = "fp32" if row["weight_bits"] is None else str(row["weight_bits"])
    return w if row["index_bits"] is None else f"{w}/{row['index_bits']}"


def render_size_table(table: dict, console=None, title: str | None = None) -> None:
    """Print a :func:`size_table` dict with rich (paper columns when the table has them)."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # pipes and files: do not squeeze the columns to 80
            console = Console(width=200)
    has_paper = any("paper_pq_rate" in r for r in table["layers"])
    t = Table(title=title or f"{table['network']}: compressed size per layer", title_justify="left")
    for col in ("layer", "weights", "kept", "fillers", "bits w/i", "dense B", "pruned B", "P+Q B", "P+Q+H B",
                "P+Q rate", "P+Q+H rate"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    if has_paper:
        t.add_column("paper P+Q", justify="right", style="cyan")
        t.add_column("paper P+Q+H", justify="right", style="cyan")
    rows = table["layers"] + [table["totals"]]
    for i, r in enumerate(rows):
        cells = [r["name"], _b(r["weights"]), f"{100 * r['density']:.1f}%",
                 f"{r['fillers']:,}" + ("" if r["fillers_exact"] else "*"),
                 "-" if r["name"] == "total" else _bits(r), _b(r["dense_bytes"]), _b(r["pruned_bytes"]),
                 _b(r["pq_bytes"]), _b(r["pqh_bytes"]), _pct(r["pq_rate"]), _pct(r["pqh_rate"])]
        if has_paper:
            cells += [_pct(r.get("paper_pq_rate")), _pct(r.get("paper_pqh_rate"))]
        t.add_row(*cells, end_section=(i == len(rows) - 2), style="bold" if r["name"] == "total" else None)
    console.print(t)
    tot = table["totals"]
    lines = [f"P+Q {tot['pq_bytes']:,} B ({tot['pq_bytes'] / MB:.3f} MB, {tot['pq_bytes'] / 2 ** 20:.3f} MiB, "
             f"{tot['pq_bits_per_weight']:.2f} bits/weight)"]
    if tot["pqh_bytes"] is not None:
        lines.append(f"P+Q+H {tot['pqh_bytes']:,} B ({tot['pqh_bytes'] / MB:.3f} MB, "
                     f"{tot['pqh_bytes'] / 2 ** 20:.3f} MiB, {tot['pqh_bits_per_weight']:.2f} bits/weight)")
    if table["file_bytes"] is not None:
        lines.append(f"{table['format']} file {table['file_bytes']:,} B (container overhead "
                     f"{table['overhead_bytes']:,} B)")
    if any(not r["fillers_exact"] for r in table["layers"]):
        lines.append("* expected fillers for randomly placed kept weights")
    p = table.get("paper")
    if p and "pq_mb" in p:
        lines.append(f"paper ({p['source']}): P+Q {p['pq_mb']} MB ({100 * p['pq_rate']:.1f}%), "
                     f"P+Q+H {p['pqh_mb']} MB ({100 * p['pqh_rate']:.2f}%)")
    elif p:
        lines.append(f"paper ({p['source']}): fp32 {p['fp32_mb']} MB; 8-bit, 33% kept {p['pq_8bit_mb']} MB; "
                     f"6-bit + Huffman {p['pqh_6bit_mb']} MB")
    for line in lines:
        console.print(line, highlight=False)


def squeezenet_table2_rows(released_model) -> list[dict]:
    """SqueezeNet Table 2's compressed sizes beside sqsim's, from the released model's weights.

    Re-compresses the decoded released weights at each layer's measured density: 8-bit codes
    without Huffman (the paper's 0.66 MB) and 6-bit codes with Huffman (0.47 MB).  Each row:
    ``setting``, ``bytes`` (measured), ``paper_mb`` (the paper's printed figure).
    """
    from .pipeline import compress, resolve_profiles

    weights = released_model.decode()
    graph = released_model.graph
    sizes = released_model.sizes()
    eight = compress(graph, weights, huffman=False).sizes().total
    six = compress(resolve_profiles(graph, weight_bits=6), weights, huffman=True).sizes().total
    p = paper.SQUEEZENET_TABLE2_MB
    return [
        {"setting": "fp32 weights and biases", "bytes": sizes.total.dense_bytes, "paper_mb": p["fp32"]},
        {"setting": "released .net file (8-bit, pruned, no Huffman)", "bytes": sizes.file_bytes,
         "paper_mb": p["pq_8bit"]},
        {"setting": "sqsim: 8-bit, same densities, no Huffman (P+Q)", "bytes": eight.pq_bytes,
         "paper_mb": p["pq_8bit"]},
        {"setting": "sqsim: 6-bit, same densities, Huffman (P+Q+H)", "bytes": six.pqh_bytes,
         "paper_mb": p["pqh_6bit"]},
    ]


def render_comparison(rows: list[dict], title: str, console=None) -> None:
    """Print measured sizes beside the paper's (rows with ``setting``, ``bytes``, ``paper_mb``)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title=title, title_justify="left")
    for col in ("setting", "bytes", "MB (10^6 B)", "MiB", "paper MB"):
        t.add_column(col, justify="left" if col == "setting" else "right")
    for r in rows:
        t.add_row(r["setting"], f"{r['bytes']:,}", f"{r['bytes'] / MB:.3f}", f"{r['bytes'] / 2 ** 20:.3f}",
                  f"{r['paper_mb']}")
    console.print(t)
