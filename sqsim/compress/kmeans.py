"""Weight sharing: one-dimensional k-means over a layer's kept weights (Deep Compression
section 3), with linear centroid initialisation (evenly spaced between the smallest and largest
weight, the paper's best-performing initialisation).

The codebook has ``2**bits`` entries; entry 0 is reserved for zero (pruned weights and filler
entries), so k-means fits ``2**bits - 1`` centroids, stored ascending as codes 1..2**bits-1.
Linear initialisation makes the result a deterministic function of the weights (no random seed is
involved).  Each Lloyd iteration works on the sorted weights with prefix sums, so it costs
O(k log n) after one O(n log n) sort: no loop over weights.
"""
from __future__ import annotations

import numpy as np

MAX_ITERATIONS = 300


def kmeans_codebook(values: np.ndarray, bits: int, max_iterations: int = MAX_ITERATIONS):
    """Fit a ``2**bits``-entry codebook to ``values`` and assign each value a code.

    Parameters
    ----------
    values : ndarray of float32
        The kept (non-zero) weights of one layer, any order.
    bits : int
        Code width, 1..16.

    Returns
    -------
    codebook : ndarray of float32, shape (2**bits,)
        ``codebook[0] == 0``; ``codebook[1:]`` ascending centroids.
    codes : ndarray of uint8 or uint16
        For each value, a code in 1..2**bits-1 (the nearest centroid).
    """
    k = (1 << bits) - 1
    v = np.asarray(values, dtype=np.float32).ravel()
    dtype = np.uint8 if bits <= 8 else np.uint16
    codebook = np.zeros(k + 1, dtype=np.float32)
    if v.size == 0:
        return codebook, np.zeros(0, dtype=dtype)
    s = np.sort(v).astype(np.float64)
    prefix = np.concatenate(([0.0], np.cumsum(s)))
    centroids = np.linspace(s[0], s[-1], k)  # linear initialisation
    cuts = None
    for _ in range(max_iterations):
        bounds = (centroids[:-1] + centroids[1:]) / 2
        new_cuts = np.searchsorted(s, bounds, side="right")  # values <= bound go to the lower cluster
        if cuts is not None and np.array_equal(new_cuts, cuts):
            break
        cuts = new_cuts
        edges = np.concatenate(([0], cuts, [s.size]))
        counts = np.diff(edges)
        sums = prefix[edges[1:]] - prefix[edges[:-1]]
        # an empty cluster keeps its centroid (it may win members in a later iteration)
        centroids = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), centroids))
    bounds = (centroids[:-1] + centroids[1:]) / 2
    codes = np.searchsorted(bounds, v.astype(np.float64), side="left") + 1
    codebook[1:] = centroids
    return codebook, codes.astype(dtype)


def lookup_codes(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Codes of ``values`` that are exactly entries of ``codebook`` (already-quantised weights).

    The lowest code wins when a value appears twice.  Raises ValueError when a value is not in
    the codebook.
    """
    cb = np.asarray(codebook, dtype=np.float32)
    v = np.asarray(values, dtype=np.float32).ravel()
    order = np.argsort(cb, kind="stable")
    sorted_cb = cb[order]
    i = np.searchsorted(sorted_cb, v, side="left")
    i = np.minimum(i, cb.size - 1)
    if not np.array_equal(sorted_cb[i], v):
        bad = np.flatnonzero(sorted_cb[i] != v)
        raise ValueError(f"{bad.size} value(s) are not codebook entries (first: {v[bad[0]]!r})")
    codes = order[i]
    return codes.astype(np.uint8 if cb.size <= 256 else np.uint16)
