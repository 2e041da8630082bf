"""Magnitude pruning (Han et al., "Learning both weights and connections", NIPS 2015; Deep
Compression section 2): keep the largest-magnitude weights of a layer, zero the rest."""
from __future__ import annotations

import numpy as np


def prune_positions(weight: np.ndarray, kept: int) -> np.ndarray:
    """Flat positions (ascending, int64) of the ``kept`` largest-magnitude weights.

    Weights that are exactly zero are never kept: code 0 already means zero, so storing one would
    waste an entry.  Fewer than ``kept`` positions come back when the blob has fewer non-zeros.
    Ties at the threshold magnitude are broken towards lower positions, so the result is
    deterministic.

    Parameters
    ----------
    weight : ndarray
        The layer's weight blob (any shape; flattened in C order, i.e. Caffe's out, in, kh, kw).
    kept : int
        Target count, normally ``Compression.kept(weight.size)`` (``ceil(n * density)``).
    """
    a = np.abs(np.asarray(weight, dtype=np.float32).ravel())
    n = a.size
    kept = min(int(kept), int(np.count_nonzero(a)))
    if kept <= 0:
        return np.zeros(0, dtype=np.int64)
    if kept == n:
        return np.arange(n, dtype=np.int64)
    threshold = np.partition(a, n - kept)[n - kept]  # the kept-th largest magnitude
    mask = a > threshold
    missing = kept - int(np.count_nonzero(mask))
    if missing:
        mask[np.flatnonzero(a == threshold)[:missing]] = True
    return np.flatnonzero(mask).astype(np.int64, copy=False)
