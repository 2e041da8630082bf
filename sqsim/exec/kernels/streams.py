"""The compressed-weight streams the kernels read: their layout, decoding tables and bit fields, named once.

A layer's codes and relative indices (Deep Compression, REFERENCE.md sections 2-3) are each a *stream*
``(data, table)``: ``data`` holds the symbols' bits most significant bit first, followed by
``STREAM_PAD`` zero bytes (the readers load up to 8 bytes at a time); ``table`` says how to read it:

- fixed width: ``table = [-b, 0]``, ``b`` bits per symbol (:func:`fixed_table`; the files' LSB-first
  streams are repacked MSB first, the same size);
- canonical Huffman code (:mod:`sqsim.compress.huffman`): a two-level table (:func:`code_table`):
  ``table[0] = T1``, ``table[1] = T2``; ``table[TABLE_HEAD + w]`` for the first ``T1`` bits ``w`` is an
  *entry* ``symbol << ENTRY_SYMBOL_SHIFT | length`` for codes of at most ``T1`` bits, else minus the
  start of a ``2**T2``-entry sub-table indexed by the next ``T2`` bits;
- absent (a layer without an index stream, or with per-entry values): ``ABSENT = [0, 0, 0]``, which
  reads symbol 0 of 0 bits forever.

Huffman streams of at most 256 symbols may also have a *multi-symbol table* (:func:`multi_table`),
indexed by the next ``W`` bits (``mt[0] = W``): ``mt[1 + v]`` packs the up to three whole codes the
window begins with::

    bits 0-3   MT_LENGTH   total length of those codes (bits)
    bits 4-5   MT_COUNT    how many (0: the first code is longer than W; read it by the two-level table)
    bits 8-31  the symbols, 8 bits each, first in bits 8-15 (MT_SYMBOLS_SHIFT)

and the bit offset of the stream every ``SEG_ENTRIES`` entries, so that segments decode independently.
"""
from __future__ import annotations

import numpy as np

from ...errors import FormatError

STREAM_PAD = 8  # zero bytes after each stream: the readers load up to 8 bytes at a time
ABSENT = np.zeros(3, np.int32)  # the table of an absent stream: T1 = T2 = 0, one entry "symbol 0, 0 bits"
EMPTY_I32 = np.zeros(0, np.int32)

# Two-level tables: table[0] = T1 (or -bits at fixed width), table[1] = T2, first level from TABLE_HEAD.
TABLE_HEAD = 2
ENTRY_SYMBOL_SHIFT = 8   # entry = symbol << 8 | code length
ENTRY_LENGTH_MASK = 255
LUT_BITS = 8             # first-level width: T1 = min(longest code, LUT_BITS)
MAX_CODE_BITS = 16

# Multi-symbol tables: entry = symbols << 8 | count << 4 | length (see the module docstring).
MT_LENGTH_MASK = 15
MT_COUNT_SHIFT = 4
MT_COUNT_MASK = 3
MT_COUNT_FIELD = MT_COUNT_MASK << MT_COUNT_SHIFT  # non-zero where the window holds a whole code
MT_SYMBOLS_SHIFT = 8
MT_MAX_SYMBOLS = 3
MULTI_TABLE_BITS = (12, 11, 10, 9, 8, 7, 6)  # widths tried for a stream's multi-symbol table, widest first
MULTI_TABLE_SHARE = 4  # ... the widest whose table is at most 1/4 of the stream's bytes
SEG_ENTRIES = 256  # entries between the segment checkpoints of streams with multi-symbol tables

# Row blocks: a layer's rows are split into at most CPU_BLOCKS blocks that decode independently (each
# starts at a checkpoint), on multiples of ROW_ALIGN rows where the row count is one: whole register
# blocks of the direct-conv kernel (4 or 8 rows), so a conv task decodes its blocks in the kernel's
# layout on its own.  The CPU backend splits dense layers on the same grid, so that a compressed layer
# and its decoded weights run the same kernel calls.
CPU_BLOCKS = 16
ROW_ALIGN = 8


def code_table(lengths, lut_bits: int = LUT_BITS) -> np.ndarray:
    """The two-level decoding table of a canonical prefix code given its code lengths (layout: the module docstring).

    Codes are assigned as :mod:`sqsim.compress.huffman` does (by length, then symbol; consecutive
    integers; RFC 1951 section 3.2.2).  The first level indexes ``T1 = min(longest, lut_bits)`` bits;
    each first-level prefix of longer codes gets a sub-table over the remaining ``longest - T1`` bits.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    symbols = np.flatnonzero(lengths)
    if symbols.size == 0:
        raise ValueError("a prefix code needs at least one symbol")
    max_len = int(lengths.max())
    if max_len > MAX_CODE_BITS:
        raise ValueError(f"code length {max_len} exceeds {MAX_CODE_BITS} bits")
    t1 = min(max_len, lut_bits)
    t2 = max_len - t1
    from ...compress.huffman import canonical_codes
    codes = canonical_codes(lengths).astype(np.int64)
    first = np.zeros(1 << t1, np.int64)
    subtables: dict[int, np.ndarray] = {}
    for sym in symbols:  # one pass over the alphabet (<= 2**16 symbols), not over data
        length, code = int(lengths[sym]), int(codes[sym])
        ent = (int(sym) << ENTRY_SYMBOL_SHIFT) | length
        if length <= t1:
            lo = code << (t1 - length)
            first[lo: lo + (1 << (t1 - length))] = ent
        else:
            prefix = code >> (length - t1)
            sub = subtables.setdefault(prefix, np.zeros(1 << t2, np.int64))
            lo = (code << (max_len - length)) & ((1 << t2) - 1)
            sub[lo: lo + (1 << (max_len - length))] = ent
    start = TABLE_HEAD + (1 << t1)
    parts = [np.array([t1, t2], np.int64), first]
    for prefix, sub in subtables.items():
        first[prefix] = -start
        parts.append(sub)
        start += sub.size
    return np.concatenate(parts).astype(np.int32)


def multi_table(lengths, stream_bytes: int):
    """The multi-symbol decoding table of a canonical prefix code (layout:
    :func:`sqsim.exec.kernels.cpu.huffman.read_multi`: each W-bit window's whole codes, up to 3), or None where
    the code has over 256 symbols or even a 6-bit table (260 bytes) would exceed 1/4 of the stream's
    bytes (small streams keep the two-level table only).  A stream's table is the widest of
    ``MULTI_TABLE_BITS`` within that share.  With the segment checkpoints, SqueezeNet v1.0 (Table 1
    profile, synthetic weights) holds 73 KiB more than its 462 KiB of streams, two-level tables and
    block checkpoints; AlexNet's fc6 16 KiB of tables and 133 KiB of checkpoints on 4.2 MB of streams.
    Narrower tables leave more codes to the two-level table; without one, a stream is read one symbol
    per lookup, one chain per stream (AlexNet's fc6: 5.6 against 1.4 ns an entry on one thread)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size > 256 or not lengths.any():
        return None
    w = next((w for w in MULTI_TABLE_BITS if 4 * ((1 << w) + 1) * MULTI_TABLE_SHARE <= stream_bytes), None)
    if w is None:
        return None
    from ...compress.huffman import canonical_codes
    codes = canonical_codes(lengths).astype(np.int64)
    top = 16  # every code as a range of 16-bit prefixes
    sym16 = np.zeros(1 << top, np.int64)
    len16 = np.zeros(1 << top, np.int64)
    for sym in np.flatnonzero(lengths):
        length, lo = int(lengths[sym]), int(codes[sym]) << (top - int(lengths[sym]))
        sym16[lo: lo + (1 << (top - length))] = sym
        len16[lo: lo + (1 << (top - length))] = length
    v = np.arange(1 << w, dtype=np.int64)
    used = np.zeros_like(v)  # bits taken by whole codes so far
    count = np.zeros_like(v)
    packed = np.zeros_like(v)
    going = np.ones(v.size, bool)
    for i in range(MT_MAX_SYMBOLS):  # the i-th code of each window, if all of it lies inside the window's w bits
        idx = ((v << used) & ((1 << w) - 1)) << (top - w)  # bits past the window read as 0: a code is
        sym, length = sym16[idx], len16[idx]              # accepted only if it ends inside the window
        going &= (length > 0) & (length <= w - used)
        packed[going] |= sym[going] << (MT_SYMBOLS_SHIFT + 8 * i)
        used[going] += length[going]
        count[going] += 1
    table = packed | (count << MT_COUNT_SHIFT) | np.where(count > 0, used, 0)
    return np.concatenate([[w], table]).astype(np.uint32).view(np.int32)  # s2 may set the sign bit


def block_rows(rows: int, blocks: int = CPU_BLOCKS, align: int = ROW_ALIGN) -> np.ndarray:
    """First row of each of at most ``blocks`` blocks of about equal rows, and the row count (int64,
    ``blocks + 1``): on multiples of ``align`` rows where ``rows`` is one, else on any row."""
    step = align if rows % align == 0 else 1
    nb = max(1, min(int(blocks), rows // step))
    return (np.arange(nb + 1, dtype=np.int64) * (rows // step)) // nb * step


def fixed_table(bits: int) -> np.ndarray:
    """The table of a fixed-width stream of ``bits`` bits per symbol (MSB first): ``[-bits, 0]``."""
    return ABSENT if bits == 0 else np.array([-bits, 0], np.int32)


def padded(data) -> np.ndarray:
    """A stream's bytes followed by its ``STREAM_PAD`` zero bytes."""
    return np.concatenate([np.asarray(data, np.uint8).ravel(), np.zeros(STREAM_PAD, np.uint8)])


def msb_stream(symbols, bits: int) -> np.ndarray:
    """Symbols of ``bits`` bits each, packed MSB first (the readers' bit order), plus padding."""
    v = np.asarray(symbols, np.int64)
    bitmat = ((v[:, None] >> np.arange(bits - 1, -1, -1)) & 1).astype(np.uint8)
    return np.concatenate([np.packbits(bitmat.ravel()), np.zeros(STREAM_PAD, np.uint8)])


def fixed_stream(symbols, bits: int) -> tuple:
    """``(data, table, largest symbol)`` of a fixed-width stream of ``symbols`` (``bits`` 0: absent)."""
    if bits == 0:
        return padded([]), ABSENT, 0
    symbols = np.asarray(symbols, np.int64)
    return msb_stream(symbols, bits), fixed_table(bits), int(symbols.max()) if symbols.size else 0


def lsb_symbols(packed, bits: int, n: int, where: str) -> np.ndarray:
    """The ``n`` values of an LSB-first packed stream (checking its length)."""
    need = (n * bits + 7) // 8
    packed = np.asarray(packed, np.uint8).ravel()
    if packed.size < need:
        raise FormatError(f"{where}: {packed.size} bytes hold fewer than {n} values of {bits} bits")
    bitmat = np.unpackbits(packed[:need], bitorder="little")[: n * bits].reshape(n, bits)
    return (bitmat.astype(np.int64) << np.arange(bits)).sum(axis=1)


def _msb_stream(symbols, bits: int) -> np.ndarray:
    """Symbols of ``bits`` bits each, packed MSB first (the kernels' bit order), plus padding."""
    v = np.asarray(symbols, np.int64)
    bitmat = ((v[:, None] >> np.arange(bits - 1, -1, -1)) & 1).astype(np.uint8)
    return np.concatenate([np.packbits(bitmat.ravel()), np.zeros(STREAM_PAD, np.uint8)])


def _padded(data) -> np.ndarray:
    return np.concatenate([np.asarray(data, np.uint8).ravel(), np.zeros(STREAM_PAD, np.uint8)])
