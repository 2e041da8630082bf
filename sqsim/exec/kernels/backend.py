"""The :class:`Backend` protocol: what the executor asks of a device, and the records it passes.

The executor (:mod:`sqsim.exec.executor`) plans a run (:mod:`sqsim.exec.plan`: steps, fused ReLUs,
buffers) and hands each step to a backend, which writes the step's output into the view it is given.
A backend owns its arrays (numpy on the CPU, CuPy on a GPU), its compiled kernels and its threads; it
decides *how* each op runs (which kernel, how it splits the work), never *what* is computed: every
backend computes the network's float32 result (REFERENCE.md; Caffe's pooling and LRN rules).

Activations are ``(C, N, H, W)`` views (CNHW: a channel range is one contiguous block).  Weights of a
conv/fc layer come as :class:`HeldWeights`: dense ``(K, L)`` or compressed (the backend's form of a
:class:`sqsim.exec.store.SparseWeights`, decoded into ``Scratch.decode`` or computed on directly).

A new kind of backend (another device, or another arithmetic such as bit-accurate fixed point)
implements these methods and registers in :func:`sqsim.exec.kernels.make_backend`.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, eq=False)
class HeldWeights:
    """One conv/fc layer as a backend holds it.

    Attributes
    ----------
    dense : backend array ``(K, L)`` or None
        Dense weights (Caffe order per row).
    bias : backend array ``(K,)`` or None
    sparse : backend object or None
        The compressed form (:meth:`Backend.upload_sparse` of a ``SparseWeights``).
    rows, row_len, n_entries : int
        ``K``, ``L`` and the stored entries of the compressed form (0 for dense).
    """
    dense: Any = None
    bias: Any = None
    sparse: Any = None
    rows: int = 0
    row_len: int = 0
    n_entries: int = 0

    @property
    def compressed(self) -> bool:
        return self.sparse is not None


@dataclass(frozen=True, eq=False)
class Scratch:
    """The reused work buffers of a plan (flat float32 backend arrays).

    Attributes
    ----------
    work : the conv work buffer (im2col columns, the direct kernels' padded input and partial sums),
        at least :meth:`Backend.work_elements` for every conv of the plan;
    feat : an fc layer's input as a ``(features, N)`` matrix;
    decode : a compressed layer decoded to dense weights (or to the sparse conv kernel's tap lists).
    """
    work: Any
    feat: Any
    decode: Any


@runtime_checkable
class Backend(Protocol):
    """The operations the executor calls (every op writes into the ``out`` view it is given)."""
    name: str

    # --- lifetime and memory -------------------------------------------------------------------------
    def running(self) -> AbstractContextManager:
        """Context around one run (e.g. BLAS limited to one thread while the backend's tasks run)."""

    def close(self) -> None:
        """Release threads and other resources (the executor calls it when it is closed)."""

    def empty(self, n: int) -> Any:
        """``n`` uninitialised float32 elements."""

    def upload_dense(self, w) -> Any:
        """A host float32 array as the backend's array."""

    def upload_sparse(self, sw) -> Any:
        """A ``SparseWeights`` in the backend's compressed form."""

    def to_host_nchw(self, view) -> Any:
        """A CNHW view as a new host ``(N, C, H, W)`` numpy array (a copy: the next run overwrites views)."""

    def count_nonzero(self, view) -> int: ...

    def synchronize(self) -> None:
        """Wait until every op issued so far has finished."""

    def work_elements(self, layer, in_shape, n: int, out_hw) -> int:
        """Elements of ``Scratch.work`` that conv ``layer`` needs on ``n`` samples of ``in_shape``."""

    # --- ops -----------------------------------------------------------------------------------------
    def input(self, x_host, out) -> None:
        """The NCHW host batch into the CNHW ``out``."""

    def conv2d(self, layer, x, out, weights: HeldWeights, relu: bool, scratch: Scratch) -> None: ...

    def fc(self, x, out, weights: HeldWeights, relu: bool, scratch: Scratch, on_sparse: bool) -> None:
        """Fully connected; ``on_sparse``: multiply the compressed form without decoding it."""

    def maxpool(self, layer, x, out) -> None: ...

    def avgpool(self, layer, x, out) -> None: ...

    def global_avgpool(self, x, out) -> None: ...

    def lrn(self, layer, x, out) -> None: ...

    def relu(self, x, out) -> None: ...

    def add(self, xs, out) -> None: ...

    def copy(self, src, dst) -> None: ...

    def softmax(self, x, out) -> None: ...

    def flatten(self, x, out) -> None: ...
