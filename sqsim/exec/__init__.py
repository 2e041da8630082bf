"""Functional executor: runs an IR graph from dense or compressed weights (Numba and llvmlite on the CPU,
CuPy on a GPU) and measures activation sparsity for the hardware models.

Importing this package is cheap; Numba, CuPy and Pillow load when first used.

Public API
----------
Executor(graph, weights, device='cpu', *, threads=None, sparse_fc='auto')
    ``.run(x) -> {layer: array}``, ``.run(x, collect_stats=True) -> (outputs, {layer: ActivationCount})``,
    ``.predict(x)``, ``.resident_weight_bytes()``, ``.close()`` (also a context manager).
measure_activation_density(graph, model, images) -> {layer: fraction non-zero}
ActivationCount, SparseWeights, DEVICES
warmup(progress=None) -> compile the CPU kernels ahead (:mod:`sqsim.exec.warmup`)

Structure: the executor (:mod:`.executor`) plans a run (:mod:`.plan`) and hands each step to a backend
behind the :class:`~.kernels.Backend` protocol (:mod:`.kernels`: ``cpu`` and ``cuda``); compressed layers
are held as :class:`~.store.SparseWeights`, whose streams :mod:`.kernels.streams` describes.
"""
from __future__ import annotations

from .kernels import DEVICES

__all__ = ["Executor", "ActivationCount", "SparseWeights", "measure_activation_density", "DEVICES", "warmup"]


def __getattr__(name):
    if name in ("Executor", "ActivationCount", "measure_activation_density"):
        from . import executor
        return getattr(executor, name)
    if name == "SparseWeights":
        from .store import SparseWeights
        return SparseWeights
    if name == "warmup":
        from .warmup import warmup
        return warmup
    raise AttributeError(f"module 'sqsim.exec' has no attribute {name!r}")
