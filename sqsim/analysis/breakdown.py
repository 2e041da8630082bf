"""Energy grouped by component class (DRAM, SRAM, register file, PE network, MAC, decode) so that
reports from different hardware models, whose memory levels have different names, can be stacked
side by side."""
from __future__ import annotations

CATEGORIES = ("DRAM", "SRAM", "RF", "network", "MAC", "decode")
_KIND = {"dram": "DRAM", "sram": "SRAM", "regfile": "RF", "network": "network"}


def energy_by_category(report) -> dict[str, float]:
    """Energy per inference (J) of a :class:`~sqsim.analysis.NetworkReport` by component class.

    Memory levels are classed by their ``kind`` in the hardware spec; ``mac`` and ``decode``
    (codebook lookups and index decoding) keep their own classes.
    """
    kinds = {level.name: _KIND[level.kind] for level in report.hw.levels}
    per_inference = 1.0 / report.batch
    out = dict.fromkeys(CATEGORIES, 0.0)
    for component, joules in report.total.energy_breakdown_j.items():
        cat = {"mac": "MAC", "decode": "decode"}.get(component) or kinds.get(component)
        if cat is None:
            raise KeyError(f"energy component {component!r} of {report.hardware!r} is not a memory level of "
                           f"the hardware spec nor 'mac'/'decode'")
        out[cat] += joules * per_inference
    return out
