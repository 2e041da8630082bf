"""Fixed-width bit packing of small unsigned integers (codes and relative indices).

Values are packed least-significant bit first, each value's bits in ascending order, so a 4-bit
stream puts the first value in the low nibble of the first byte (the released Deep Compression
layout, REFERENCE.md section 3).  A stream of ``count`` values of ``bits`` bits takes
``ceil(count * bits / 8)`` bytes; unused high bits of the last byte are zero.
"""
from __future__ import annotations

import numpy as np


def packed_bytes(count: int, bits: int) -> int:
    """Bytes of a packed stream: ``ceil(count * bits / 8)``."""
    return (count * bits + 7) // 8


def symbol_dtype(bits: int):
    """Smallest unsigned dtype holding ``bits``-bit symbols (bits <= 16)."""
    return np.uint8 if bits <= 8 else np.uint16


def pack_fixed(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack ``values`` (each < 2**bits, bits in 1..16) into a uint8 array."""
    v = np.asarray(values)
    if bits == 8:
        return v.astype(np.uint8)
    if bits == 16:
        return v.astype("<u2").view(np.uint8)
    if bits == 4:
        v = v.astype(np.uint8)
        if v.size % 2:
            v = np.append(v, np.uint8(0))
        return v[0::2] | (v[1::2] << 4)
    shifts = np.arange(bits, dtype=np.uint32)
    matrix = ((v.astype(np.uint32)[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(matrix.ravel(), bitorder="little")


def unpack_fixed(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_fixed`; ``data`` must hold exactly ``packed_bytes(count, bits)`` bytes.

    Returns uint8 (bits <= 8) or uint16 values.
    """
    data = np.asarray(data, dtype=np.uint8)
    if data.size != packed_bytes(count, bits):
        raise ValueError(f"{data.size} bytes cannot hold exactly {count} values of {bits} bits")
    if bits == 8:
        return data.copy()
    if bits == 16:
        return data.view("<u2").astype(np.uint16)
    if bits == 4:
        out = np.empty(2 * data.size, dtype=np.uint8)
        out[0::2] = data & 15
        out[1::2] = data >> 4
        return out[:count]
    flat = np.unpackbits(data, bitorder="little")[: count * bits].reshape(count, bits)
    out = np.zeros(count, dtype=np.uint32)
    for j in range(bits):  # a loop over bit positions (<= 16), not over values
        out |= flat[:, j].astype(np.uint32) << j
    return out.astype(symbol_dtype(bits))


def padding_is_zero(data: np.ndarray, used_bits: int) -> bool:
    """True when the bits after the first ``used_bits`` (LSB-first order) are all zero."""
    if data.size == 0 or used_bits % 8 == 0:
        return True
    return int(data[-1]) >> (used_bits % 8) == 0
