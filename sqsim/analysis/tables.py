"""Tables (rich), CSV and JSON text of analysis reports and comparisons: formatting only."""
from __future__ import annotations

import csv
import io
import json

from ..units import format_bytes, format_si


def _b(x: float) -> str:
    return format_bytes(x) if x else "0"


def _j(x: float) -> str:
    return format_si(x, "J") if x else "0"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_report(report, console) -> None:
    """Per-layer table with a total row, then the summary (sizes, fit, DRAM, energy, latency)."""
    from rich.table import Table
    hw = report.hw
    title = (f"{report.network} on {hw.name} ({hw.dataflow}, {hw.array.rows}x{hw.array.cols} PEs, "
             f"{format_si(hw.clock_hz, 'Hz')}), batch {report.batch}, weights: {report.weights_source}")
    t = Table(title=title, title_justify="left")
    for col, just in (("layer", "left"), ("op", "left"), ("MACs", "right"), ("cycles", "right"),
                      ("util", "right"), ("bound", "left"), ("DRAM W", "right"), ("DRAM in", "right"),
                      ("DRAM out", "right"), ("DRAM total", "right"), ("energy", "right"), ("tiles K/C/P/Q", "left")):
        t.add_column(col, justify=just, no_wrap=True)
    b = report.batch
    for c in list(report.layers) + [report.total]:
        total = c is report.total
        m = c.mapping
        tiles = f"{m.tile['K']}/{m.tile['C']}/{m.tile['P']}/{m.tile['Q']}" if m else ""
        if m and m.weights_resident:
            tiles += " W*"
        out = c.dram_reads_bytes.get("outputs", 0) + c.dram_writes_bytes.get("outputs", 0)
        res_in, res_out = (None, None) if total else residency(report, c.name)
        t.add_row("total" if total else c.name, c.op, f"{c.macs / b:,.0f}", f"{c.cycles / b:,.0f}",
                  _pct(c.utilisation), c.bound, _b(c.dram_reads_bytes.get("weights", 0) / b),
                  _resident_or_bytes(res_in, c.dram_reads_bytes.get("inputs", 0) / b),
                  _resident_or_bytes(res_out, out / b), _b(c.dram_bytes / b),
                  _j(c.energy_j / b), tiles, end_section=(c is report.layers[-1]))
    console.print(t)
    for line in summary_lines(report):
        console.print(line, highlight=False, soft_wrap=True)


def residency(report, name: str) -> tuple:
    """``(inputs resident, output resident)`` of a layer: each True, False or, for several inputs
    of which only some are resident, ``"some"``; ``(None, None)`` without a plan."""
    a = report.activations.layers.get(name) if report.activations is not None else None
    if a is None:
        return None, None
    ins = all(a.inputs_resident) or ("some" if any(a.inputs_resident) else False)
    return ins, a.output_resident


def _resident_or_bytes(resident, x: float) -> str:
    """A DRAM cell: ``on chip`` for a resident tensor (no DRAM traffic), else the bytes."""
    if resident is True:
        return "on chip"
    return _b(x) + (" +chip" if resident == "some" else "")


def activation_line(report) -> str | None:
    """Where the activation tensors live (the summary's activations line)."""
    p = report.activations
    if p is None:
        return None
    b = report.batch
    n_res = sum(t.resident for t in p.tensors)
    if p.policy != "on_chip":
        fused = [t for t in p.tensors if t.fused_into]
        return (f"activations (policy {p.policy}): every layer's output goes through DRAM"
                + (f" except the fused ones ({', '.join(f'{t.name} -> {t.fused_into}' for t in fused)}: "
                   f"line buffers of {format_bytes(sum(t.size_bytes for t in fused) / b)})" if fused else "")
                + f"; 0 of {format_bytes(p.spilled_bytes / b)} of activation tensors stay on chip")
    spilled = ", ".join(f"{t.name} {format_bytes(t.size_bytes / b)}"
                        + (" (network input)" if t.reason.startswith("network input") else
                           " (network output)" if t.reason.startswith("network output") else
                           " (host)" if t.host else "")
                        for t in p.tensors if not t.resident)
    fused = [t for t in p.tensors if t.fused_into]
    if fused:
        spilled += "; fused (line buffers): " + ", ".join(f"{t.name} -> {t.fused_into} {format_bytes(t.size_bytes / b)}"
                                                         for t in fused)
    return (f"activations (policy on_chip, in {p.level} {format_bytes(p.capacity_bytes)}): {n_res} of "
            f"{len(p.tensors)} tensors, {format_bytes(p.resident_bytes / b)} of "
            f"{format_bytes((p.resident_bytes + p.spilled_bytes) / b)}, stay on chip; spilled to DRAM: "
            f"{spilled or 'none'}")


def summary_lines(report) -> list[str]:
    """The summary under the table, one fact per line."""
    f = report.fit
    hw = report.hw
    lines = [f"model: {format_bytes(report.dense_fp32_bytes)} dense fp32; {format_bytes(f.weight_bytes)} as stored "
             f"on {hw.name} ({report.weights_source}; {report.dense_fp32_bytes / f.weight_bytes:.1f}x smaller)"]
    verdict = "fits" if f.fits else "does NOT fit"
    ws = (f" + activation working set {format_bytes(f.working_set_bytes)} ({f.working_set_layer})"
          if f.working_set_layer else " (activations have their own buffers)")
    lines.append(f"on-chip fit: weights {format_bytes(f.weight_bytes)}{ws} vs {f.level} "
                 f"{format_bytes(f.capacity_bytes)}: {verdict}, margin {'+' if f.margin_bytes >= 0 else '-'}"
                 f"{format_bytes(abs(f.margin_bytes))}"
                 + ("" if f.weights_on_chip or not f.fits else " (policy: weights streamed)")
                 + (" -> weights preloaded before the first inference (no weight DRAM traffic per inference)"
                    if f.preloaded else " -> weights loaded once per batch" if f.weights_on_chip
                    else " -> weights streamed from DRAM"))
    if report.not_run:
        lines.append(f"not run on {hw.name} (runs {', '.join(hw.runs)}; left to the host, not costed): "
                     + ", ".join(report.not_run))
    t = report.total
    b = report.batch
    rd = {op: t.dram_reads_bytes.get(op, 0.0) / b for op in ("weights", "inputs", "outputs")}
    wr = t.dram_writes_bytes.get("outputs", 0.0) / b
    lines.append(f"DRAM per inference: {format_bytes(report.dram_bytes_per_inference)} (reads: weights "
                 f"{_b(rd['weights'])}, inputs {_b(rd['inputs'])}, partial sums {_b(rd['outputs'])}; writes "
                 f"{_b(wr)})")
    acts = activation_line(report)
    if acts:
        lines.append(acts)
    parts = sorted(t.energy_breakdown_j.items(), key=lambda kv: -kv[1])
    tot = t.energy_j
    lines.append(f"energy per inference: {_j(report.energy_j_per_inference)} = "
                 + ", ".join(f"{k} {_j(v / b)} ({100 * v / tot:.0f}%)" for k, v in parts))
    lines.append(f"latency {format_si(report.latency_s, 's')} per inference, {report.frames_per_s:,.1f} frames/s, "
                 f"utilisation {_pct(t.utilisation)} of {hw.array.peak_macs_per_cycle} MACs/cycle")
    if t.processing_cycles != t.serialized_cycles:
        f = hw.clock_hz * b
        lines.append(f"latency with DRAM overlapped (processing) {format_si(t.processing_cycles / f, 's')}, with "
                     f"feature-map transfers serialised {format_si(t.serialized_cycles / f, 's')} per inference "
                     f"(policies.overlap_dram: {str(hw.policies.overlap_dram).lower()})"
                     + (f"; ramp-up {format_si(t.ramp_cycles / f, 's')}" if t.ramp_cycles else ""))
    if b > 1:
        lines.append(f"per batch of {b}: {t.cycles:,} cycles = {format_si(t.cycles / hw.clock_hz, 's')}, "
                     f"DRAM {format_bytes(t.dram_bytes)}, energy {_j(t.energy_j)}")
    return lines


def rows_csv(rows: list[dict]) -> str:
    """CSV text of a list of flat dicts (header from the first row's keys)."""
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def to_json(data) -> str:
    return json.dumps(data, indent=1, allow_nan=False) + "\n"


def render_comparison(cmp, console) -> None:
    """Side-by-side table of every (network, hardware) pair, with DRAM ratios to the first network."""
    from rich.table import Table
    t = Table(title="sqsim compare (per inference)", title_justify="left")
    for col, just in (("network", "left"), ("hardware", "left"), ("weights", "right"), ("on chip", "left"),
                      ("margin", "right"), ("DRAM", "right"), ("DRAM first/this", "right"), ("energy", "right"),
                      ("latency", "right"), ("frames/s", "right"), ("util", "right")):
        t.add_column(col, justify=just, no_wrap=True)
    for row in cmp.to_rows():
        t.add_row(row["network"], row["hardware"], format_bytes(row["weight_bytes"]),
                  "yes" if row["weights_on_chip"] else "no",
                  ("+" if row["margin_bytes"] >= 0 else "-") + format_bytes(abs(row["margin_bytes"])),
                  format_bytes(row["dram_bytes"]), f"{row['dram_ratio_vs_first']:.1f}x",
                  _j(row["energy_j"]), format_si(row["latency_s"], "s"), f"{row['frames_per_s']:,.1f}",
                  _pct(row["utilisation"]))
    console.print(t)
    for line in cmp.ratio_lines():
        console.print(line, highlight=False, soft_wrap=True)
