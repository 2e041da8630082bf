"""Relative sparse indices with filler entries (Deep Compression section 2, Figure 2).

A pruned layer stores only its kept weights, in flat (Caffe C-order) position order.  Each stored
entry carries the number of zeros since the previous entry, in ``index_bits`` bits, so at most
``M - 1`` with ``M = 2**index_bits``.  A run of ``g`` zeros before a kept weight is bridged by
``g // M`` filler entries, each holding relative index ``M - 1`` and the value zero (code 0),
standing for ``M - 1`` zeros plus itself; the kept weight then carries ``g % M``.  Decoding:
``positions = cumsum(rel + 1) - 1``.  Zeros after the last kept weight are not stored (the
weight count comes from the network graph).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .bitpack import symbol_dtype

DEFAULT_INDEX_BITS = 4  # Compression.index_bits None means 4 where sparse storage is used


def relative_indices(positions: np.ndarray, index_bits: int):
    """Encode ascending flat ``positions`` as relative indices with fillers.

    Returns
    -------
    rel : ndarray (uint8 or uint16)
        One relative index per stored entry (fillers included).
    slots : ndarray of int64
        For each position, the entry that holds it; every other entry is a filler.
    """
    m = 1 << index_bits
    positions = np.asarray(positions, dtype=np.int64)
    gaps = np.diff(positions, prepend=np.int64(-1)) - 1  # zeros before each kept weight
    fillers = gaps >> index_bits                          # gaps // M
    slots = np.cumsum(fillers + 1) - 1
    entries = int(slots[-1]) + 1 if slots.size else 0
    rel = np.full(entries, m - 1, dtype=symbol_dtype(index_bits))
    rel[slots] = gaps & (m - 1)                           # gaps % M
    return rel, slots


def absolute_positions(rel: np.ndarray) -> np.ndarray:
    """Flat position of every stored entry: ``cumsum(rel + 1) - 1`` (int64)."""
    return np.cumsum(np.asarray(rel, dtype=np.int64) + 1) - 1


@functools.lru_cache(maxsize=4096)
def expected_fillers(weights: int, kept: int, index_bits: int) -> float:
    """Expected filler entries when ``kept`` of ``weights`` positions are chosen uniformly at random.

    A filler is needed for every full ``M = 2**index_bits`` zeros in a gap, so the count for a gap
    ``g`` is ``g // M`` and ``E[fillers] = sum over the kept entries of sum_{j>=1} P(g >= j M)``.
    For a uniformly random k-subset of n positions the gaps are exchangeable, and the number of
    subsets whose gap before a given kept weight is at least m is ``C(n - m, k)`` (stars and bars),
    so::

        E[fillers] = k * sum_{j >= 1, n - jM >= k} C(n - jM, k) / C(n, k)

    Magnitude pruning of i.i.d. weights (e.g. He-initialised) keeps such a random subset.
    Terms fall off geometrically (about ``(1 - k/n)**M`` per step); the sum stops when a term is
    below 1e-12 of the total.
    """
    n, k = int(weights), int(kept)
    if k <= 0 or k >= n:
        return 0.0
    m = 1 << index_bits
    log_denominator = math.lgamma(n + 1) - math.lgamma(n - k + 1)  # log (C(n, k) * k!)
    total, j = 0.0, 1
    while n - j * m >= k:
        r = n - j * m
        term = math.exp(math.lgamma(r + 1) - math.lgamma(r - k + 1) - log_denominator)
        total += term
        if term < 1e-12 * total:
            break
        j += 1
    return k * total
