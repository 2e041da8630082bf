"""Compute kernels behind the :class:`~.backend.Backend` protocol: :mod:`.cpu` (Numba and llvmlite) and
:mod:`.cuda` (CuPy and numba.cuda); :mod:`.streams` is the compressed-stream format they all read.

Importing this package is cheap: a backend's kernels load when the backend is made.
"""
from __future__ import annotations

from .backend import Backend, HeldWeights, Scratch

DEVICES = ("cpu", "gpu")

__all__ = ["Backend", "HeldWeights", "Scratch", "DEVICES", "make_backend"]


def make_backend(device: str, threads: int | None = None) -> Backend:
    """The backend for ``device`` (one of :data:`DEVICES`).

    Raises
    ------
    SqsimError
        An unknown device, ``threads`` out of range, or ``'gpu'`` without CuPy and a CUDA GPU.
    """
    from ...errors import SqsimError
    if device == "cpu":
        from .cpu.backend import CpuBackend
        return CpuBackend(threads)
    if device == "gpu":
        from .cuda.backend import GpuBackend
        return GpuBackend()
    raise SqsimError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
