"""Numba kernels of the compression package (imported lazily: ``sqsim info`` never loads Numba).

Every kernel checks its reads against the buffer length and reports problems through its return
value; it never reads or writes out of bounds on malformed input.
"""
from __future__ import annotations

import numba
import numpy as np

from ..cpu_target import use_for_numba

use_for_numba()  # SQSIM_CPU_TARGET, before this module defines its kernel (see sqsim.cpu_target)


@numba.njit(cache=True, nogil=True)
def huffman_decode(data, nbits, count, table_symbol, table_length, out):  # pragma: no cover - jitted
    """Decode ``count`` symbols from MSB-first ``data`` with a 16-bit-window lookup table.

    Returns the number of bits consumed, or ``-(i + 1)`` when symbol ``i`` is an invalid code or
    runs past ``nbits``.
    """
    nbytes = data.size
    pos = 0
    for i in range(count):
        byte = pos >> 3
        b0 = np.int64(data[byte]) if byte < nbytes else np.int64(0)
        b1 = np.int64(data[byte + 1]) if byte + 1 < nbytes else np.int64(0)
        b2 = np.int64(data[byte + 2]) if byte + 2 < nbytes else np.int64(0)
        window = (((b0 << 16) | (b1 << 8) | b2) >> (8 - (pos & 7))) & 0xFFFF
        length = np.int64(table_length[window])
        if length == 0 or pos + length > nbits:
            return -(i + 1)
        out[i] = table_symbol[window]
        pos += length
    return pos
