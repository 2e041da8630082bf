"""Run-length coding of feature maps on their way to and from DRAM (Eyeriss, Chen et al. JSSC 2017).

Eyeriss packs a feature map into 64-bit words of three ``(run, level)`` pairs: a 5-bit run of
zeros followed by a 16-bit value, plus one spare bit (3 x 21 + 1 = 64).  A run longer than the
largest 5-bit count (31) is cut: the 32nd value is stored as a level even when it is zero.  In
general, with ``run_bits`` and values of ``value_bits``::

    pairs per word  k = floor((word_bits - 1) / (run_bits + value_bits))        (Eyeriss: 3)
    a pair ends at the first non-zero value or after M = 2**run_bits values     (Eyeriss: 32)

For zeros drawn independently with probability ``z = 1 - density`` (a closed form for random
zeros; real feature maps cluster their zeros, which this form does not see), the values one pair
covers are ``L = min(first non-zero position, M)`` with ``E[L] = (1 - z**M) / density``, so::

    pairs per value  = density / (1 - z**M)             (1 / M when the map is all zeros)
    bytes per value  = pairs per value / k * word_bits / 8

A dense 16-bit map costs 8/3 bytes per value (4/3 of its raw size); at 38.7% zeros 0.82 of raw,
at 80% zeros 0.27.  :func:`rlc_encode` is the encoder itself (``tests/test_hw_rlc.py`` checks the
closed form against it on random maps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RLC:
    """An RLC format: ``run_bits`` per run, ``word_bits`` per DRAM word."""
    run_bits: int = 5
    word_bits: int = 64

    def pairs_per_word(self, value_bits: float) -> int:
        return int((self.word_bits - 1) // (self.run_bits + value_bits))

    @property
    def max_segment(self) -> int:
        """Values one pair can cover: a run of ``2**run_bits - 1`` zeros and one value."""
        return 1 << self.run_bits


def rlc_bytes_per_value(density: float, value_bits: float, fmt: RLC = RLC()) -> float:
    """Expected RLC bytes per value of a map with independently random zeros (module docstring)."""
    k = fmt.pairs_per_word(value_bits)
    if k < 1:
        raise ValueError(f"an RLC word of {fmt.word_bits} bits cannot hold a {fmt.run_bits}-bit run and a "
                         f"{value_bits}-bit value")
    m = fmt.max_segment
    if density <= 0.0:
        pairs = 1.0 / m
    else:
        pairs = density / (1.0 - (1.0 - density) ** m)
    return pairs / k * fmt.word_bits / 8


def rlc_ratio(density: float, value_bits: float, fmt: RLC = RLC()) -> float:
    """RLC bytes over raw bytes (``value_bits / 8`` per value)."""
    return rlc_bytes_per_value(density, value_bits, fmt) / (value_bits / 8)


def rlc_encode(values, fmt: RLC = RLC()) -> list[tuple[int, int]]:
    """The ``(run, level)`` pairs of a flattened map (the last pair may carry a zero level)."""
    flat = np.asarray(values).ravel()
    m = fmt.max_segment
    pairs: list[tuple[int, int]] = []
    run = 0
    for v in flat.tolist():
        if v != 0 or run == m - 1:
            pairs.append((run, v))
            run = 0
        else:
            run += 1
    if run:
        pairs.append((run - 1, 0))
    return pairs


def rlc_decode(pairs, fmt: RLC = RLC()) -> np.ndarray:
    """Inverse of :func:`rlc_encode` (the round trip is tested)."""
    out: list = []
    for run, v in pairs:
        out.extend([0] * run)
        out.append(v)
    return np.asarray(out)


def rlc_size_bytes(values, value_bits: int, fmt: RLC = RLC()) -> int:
    """Bytes of a map's RLC stream: whole words of ``pairs_per_word`` pairs."""
    return math.ceil(len(rlc_encode(values, fmt)) / fmt.pairs_per_word(value_bits)) * fmt.word_bits // 8
