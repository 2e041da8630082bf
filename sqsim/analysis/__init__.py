"""Network-level analysis on the hardware models: per-layer and total DRAM traffic, on-chip fit,
cycles, latency and energy; tables, JSON/CSV, plots and comparisons across networks and hardware.

Notebook API::

    from sqsim.ir import load
    from sqsim.hw import load_hw
    from sqsim.analysis import analyze, compare

    r = analyze(load("archs/squeezenet.yaml"), load_hw("hwmodels/fpga.yaml"), batch=1)
    r.summary(); r.to_dict(); r.to_rows(); r.to_frame()      # plain data / pandas
    c = compare(["archs/alexnet.yaml", "archs/squeezenet.yaml"], ["hwmodels/fpga.yaml"])
    c.to_rows()
"""
from __future__ import annotations

__all__ = ["analyze", "compare", "NetworkReport", "Comparison", "Fit"]


def __getattr__(name):
    if name in ("analyze", "Fit"):
        from . import network
        return getattr(network, name)
    if name == "NetworkReport":
        from .report import NetworkReport
        return NetworkReport
    if name in ("compare", "Comparison"):
        from . import comparison
        return getattr(comparison, name)
    raise AttributeError(f"module 'sqsim.analysis' has no attribute {name!r}")
