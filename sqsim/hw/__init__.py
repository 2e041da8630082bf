"""Analytic accelerator models: hardware spec records (YAML with unit strings and ``--set``
overrides), dataflows, the mapping search and per-layer cost functions.

Separation as in Timeloop/Accelergy: the *architecture* is a :class:`HardwareSpec`
(:func:`load_hw`), the *workload* is the IR's :class:`~sqsim.ir.LayerInfo` as a loop nest
(:mod:`sqsim.hw.workload`), the *mapping* comes from :func:`search_mapping`, and energy is action
counts times the energy table.  Per-layer costs are :class:`LayerCost` records that add up.

>>> from sqsim.hw import load_hw
>>> hw = load_hw("hwmodels/systolic.yaml", ["array.rows=16", "array.cols=16"])
>>> hw.array.pes
256
"""
from .loader import load_hw
from .spec import (DATAFLOW_NAMES, OPERANDS, ArraySpec, EnergyTable, HardwareSpec, MemoryLevel, Policies,
                   Sparsity, WeightFormat)

__all__ = ["load_hw", "HardwareSpec", "ArraySpec", "MemoryLevel", "EnergyTable", "WeightFormat", "Sparsity",
           "Policies", "DATAFLOW_NAMES", "OPERANDS", "LayerCost", "layer_cost", "vector_cost", "Mapping",
           "search_mapping", "dram_traffic", "weight_storage", "WeightStorage", "conv_shape", "ConvShape"]

_LAZY = {"LayerCost": "cost", "layer_cost": "cost", "vector_cost": "cost", "Mapping": "loopnest",
         "dram_traffic": "loopnest", "search_mapping": "search", "weight_storage": "storage",
         "WeightStorage": "storage", "conv_shape": "workload", "ConvShape": "workload"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'sqsim.hw' has no attribute {name!r}")
