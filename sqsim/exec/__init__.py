"""Functional executor: runs an IR graph from dense or compressed weights (Numba on the CPU, CuPy on a GPU)
and measures activation sparsity for the hardware models.

Importing this package is cheap; Numba, CuPy and Pillow load when first used.

Public API
----------
Executor(graph, weights, device='cpu', *, threads=None, sparse_fc='auto')
    ``.run(x) -> {layer: array}``, ``.run(x, collect_stats=True) -> (outputs, {layer: ActivationCount})``,
    ``.predict(x)``, ``.resident_weight_bytes()``.
measure_activation_density(graph, model, images) -> {layer: fraction non-zero}
ActivationCount, SparseWeights
"""
from __future__ import annotations

__all__ = ["Executor", "ActivationCount", "SparseWeights", "measure_activation_density", "DEVICES"]

DEVICES = ("cpu", "gpu")


def __getattr__(name):
    if name in ("Executor", "ActivationCount", "measure_activation_density"):
        from . import executor
        return getattr(executor, name)
    if name == "SparseWeights":
        from .store import SparseWeights
        return SparseWeights
    raise AttributeError(f"module 'sqsim.exec' has no attribute {name!r}")
