"""Comparisons across networks and hardware models: one :class:`NetworkReport` per pair.

A network is given as an architecture file (or a Graph); ``PATH:dense`` analyses it without its
compression profile (uncompressed weights at the datapath width).  DRAM ratios are taken against
the *first* network on the same hardware: ``ratio = DRAM(first) / DRAM(this)``, so a network
moving 10x fewer bytes than the first shows ``10.0x``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..units import format_bytes


@dataclass(frozen=True)
class Entry:
    label: str
    graph: object
    dense: bool


def parse_network(spec) -> Entry:
    """``archs/x.yaml``, ``archs/x.yaml:dense`` or a Graph (compressed by its profile)."""
    from ..ir import load
    if not isinstance(spec, (str, Path)):
        return Entry(spec.name, spec, False)
    s = str(spec)
    dense = s.endswith(":dense")
    if dense:
        s = s[: -len(":dense")]
    g = load(s)
    return Entry(g.name + (" (dense)" if dense else ""), g, dense)


@dataclass(frozen=True)
class Comparison:
    """Reports for every (network, hardware) pair, networks outermost in the given order.
    ``skipped``: ``(network, hardware, reason)`` of pairs the hardware cannot run (a network with
    no layer of the kinds it runs, e.g. SqueezeNet on EIE, which runs fc layers only)."""
    reports: tuple
    labels: tuple
    skipped: tuple = ()

    def to_rows(self) -> list[dict]:
        rows = []
        first = {}
        for label, r in zip(self.labels, self.reports):
            first.setdefault(r.hardware, r.dram_bytes_per_inference)
            rows.append({"network": label, "hardware": r.hardware, "weights_source": r.weights_source,
                         "dense_fp32_bytes": r.dense_fp32_bytes, "weight_bytes": r.fit.weight_bytes,
                         "weights_on_chip": r.fit.weights_on_chip, "margin_bytes": r.fit.margin_bytes,
                         "dram_bytes": r.dram_bytes_per_inference,
                         "dram_ratio_vs_first": first[r.hardware] / r.dram_bytes_per_inference,
                         "energy_j": r.energy_j_per_inference, "latency_s": r.latency_s,
                         "frames_per_s": r.frames_per_s, "utilisation": r.total.utilisation,
                         "activation_policy": r.hw.policies.activations,
                         "activation_onchip_bytes": r.activations.resident_bytes / r.batch})
        return rows

    def to_dict(self) -> dict:
        return {"rows": self.to_rows(), "ratio_lines": self.ratio_lines(),
                "skipped": [{"network": n, "hardware": h, "reason": r} for n, h, r in self.skipped]}

    def ratio_lines(self) -> list[str]:
        """``first / other`` DRAM bytes per inference, per hardware model, said both ways
        (``... = 0.12x (squeezenet moves 8.3x fewer)``)."""
        lines = []
        by_hw: dict = {}
        for label, r in zip(self.labels, self.reports):
            by_hw.setdefault(r.hardware, []).append((label, r))
        for hw, items in by_hw.items():
            (l0, r0), rest = items[0], items[1:]
            for label, r in rest:
                ratio = r0.dram_bytes_per_inference / r.dram_bytes_per_inference
                if ratio < 1:
                    says = f"{1 / ratio:.1f}x fewer"
                elif ratio > 1:
                    says = f"{ratio:.1f}x more"
                else:
                    says = "the same"
                lines.append(f"{hw} (activations {r0.hw.policies.activations}): DRAM bytes per inference "
                             f"{l0} / {label} = {format_bytes(r0.dram_bytes_per_inference)} / "
                             f"{format_bytes(r.dram_bytes_per_inference)} = {ratio:.2f}x ({l0} moves {says})")
        for net, hw, why in self.skipped:
            lines.append(f"{hw}: {net} not compared ({why})")
        return lines


def compare(networks, hardware, batch: int | None = None, act_density=None, overrides=()) -> Comparison:
    """Analyse every network on every hardware model.

    Parameters
    ----------
    networks : list of path, ``path:dense`` or Graph
    hardware : list of path or HardwareSpec
    batch, act_density : as for :func:`sqsim.analysis.analyze`
    overrides : ``--set`` strings applied to every hardware file

    Examples
    --------
    >>> c = compare(["archs/squeezenet.yaml", "archs/squeezenet.yaml:dense"], ["hwmodels/fpga.yaml"])
    >>> [r["weights_on_chip"] for r in c.to_rows()]
    [True, False]
    """
    from ..errors import SqsimError
    from ..hw import HardwareSpec, load_hw
    from .network import analyze
    entries = [parse_network(n) for n in networks]
    hws = [h if isinstance(h, HardwareSpec) else load_hw(h, overrides) for h in hardware]
    reports, labels, skipped = [], [], []
    for e in entries:
        for hw in hws:
            if not any(l.op in hw.runs for l in e.graph if l.op in ("conv2d", "fc")):
                skipped.append((e.label, hw.name, f"{hw.name} runs {', '.join(hw.runs)} only"))
                continue
            reports.append(analyze(e.graph, hw, batch=batch, act_density=act_density, dense=e.dense))
            labels.append(e.label)
    if not reports:
        raise SqsimError("compare: no network has layers the hardware runs: " + "; ".join(
            f"{n} on {h}: {r}" for n, h, r in skipped))
    return Comparison(tuple(reports), tuple(labels), tuple(skipped))
