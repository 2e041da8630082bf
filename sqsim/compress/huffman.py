"""Canonical Huffman coding of code and index streams (Deep Compression section 4).

A code is described completely by its *lengths*: ``lengths[s]`` bits for symbol ``s``, 0 for a
symbol that does not occur.  Codes are assigned canonically (DEFLATE, RFC 1951 section 3.2.2):
shorter codes first, ties by symbol value, consecutive integers.  Bitstreams are written most
significant bit first; trailing bits of the last byte are zero.  Code lengths are limited to
:data:`MAX_CODE_BITS` (16) so a decoder can use one 2**16-entry lookup table; when an optimal code
would be longer, symbol counts are halved (rounding up) and the code rebuilt until it fits.

Encoding is vectorised numpy; decoding is sequential and runs in a Numba kernel
(:mod:`sqsim.compress._kernels`, imported on first use only).
"""
from __future__ import annotations

import heapq

import numpy as np

from .bitpack import symbol_dtype

MAX_CODE_BITS = 16


def code_lengths(counts: np.ndarray, max_bits: int = MAX_CODE_BITS) -> np.ndarray:
    """Huffman code lengths (uint8, one per symbol) for symbol ``counts``.

    Absent symbols get length 0; a single present symbol gets length 1.  Deterministic: merges
    break ties by creation order (leaves in symbol order first).
    """
    counts = np.asarray(counts, dtype=np.int64)
    present = np.flatnonzero(counts)
    lengths = np.zeros(counts.size, dtype=np.uint8)
    if present.size == 0:
        return lengths
    if present.size == 1:
        lengths[present] = 1
        return lengths
    if present.size > (1 << max_bits):
        raise ValueError(f"{present.size} symbols cannot be coded in at most {max_bits} bits")
    weights = counts[present]
    while True:
        depth = _tree_depths(weights)
        if depth.max() <= max_bits:
            lengths[present] = depth
            return lengths
        weights = (weights + 1) // 2  # flatten the distribution; ends at all-equal (depth log2 n)


def _tree_depths(weights: np.ndarray) -> np.ndarray:
    """Leaf depths of a Huffman tree over ``weights`` (a loop over symbols, not over data)."""
    n = weights.size
    parent = np.zeros(2 * n - 1, dtype=np.int64)
    heap = [(int(w), i) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    nxt = n
    while len(heap) > 1:
        w1, a = heapq.heappop(heap)
        w2, b = heapq.heappop(heap)
        parent[a] = parent[b] = nxt
        heapq.heappush(heap, (w1 + w2, nxt))
        nxt += 1
    depth = np.zeros(2 * n - 1, dtype=np.int64)
    for node in range(2 * n - 3, -1, -1):  # parents are created after their children
        depth[node] = depth[parent[node]] + 1
    return depth[:n]


def kraft_sum(lengths: np.ndarray) -> float:
    """``sum 2**-len`` over present symbols; a prefix code needs <= 1 (== 1 when complete)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    used = lengths[lengths > 0]
    return float(np.sum(np.ldexp(1.0, -used))) if used.size else 0.0


def check_lengths(lengths: np.ndarray) -> str | None:
    """Why ``lengths`` is not a valid length-limited prefix code, or None when it is."""
    lengths = np.asarray(lengths)
    if lengths.size and int(lengths.max()) > MAX_CODE_BITS:
        return f"a code length of {int(lengths.max())} bits exceeds the limit of {MAX_CODE_BITS}"
    if kraft_sum(lengths) > 1.0:
        return "code lengths violate the Kraft inequality (not a prefix code)"
    return None


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code value (uint32) of each symbol; 0 for absent symbols."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.uint32)
    symbols = np.flatnonzero(lengths)
    if symbols.size == 0:
        return codes
    order = symbols[np.lexsort((symbols, lengths[symbols]))]  # by length, then symbol
    ls = lengths[order]
    # code of the i-th symbol in canonical order: (code of i-1, plus 1) shifted left by the
    # length increase; closed form: floor(sum_{j<i} 2**(L_i - L_j))
    scaled = np.ldexp(1.0, MAX_CODE_BITS - ls).astype(np.int64)          # 2**(16 - L)
    start = np.concatenate(([0], np.cumsum(scaled)[:-1]))                 # left-aligned starts
    codes[order] = (start >> (MAX_CODE_BITS - ls)).astype(np.uint32)
    return codes


def encoded_bits(counts: np.ndarray, lengths: np.ndarray) -> int:
    """Length in bits of a stream with these symbol counts under these code lengths."""
    return int(np.dot(np.asarray(counts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)))


def encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """Huffman-encode ``symbols`` with canonical code ``lengths``.

    Returns ``(data, nbits)``: the MSB-first bitstream as uint8 and its length in bits.

    Vectorised: each code, left-aligned in a 64-bit word, lands in the word holding its first
    bit and (when it straddles a boundary) spills into the next.  Codes occupy disjoint bits, so
    summing the contributions per word (``np.add.reduceat``) is the same as OR-ing them.
    """
    symbols = np.asarray(symbols)
    lengths = np.asarray(lengths, dtype=np.uint8)
    codes = canonical_codes(lengths)
    ls = lengths[symbols].astype(np.uint64)
    if symbols.size and ls.min() == 0:
        raise ValueError("a symbol to encode has no code (length 0)")
    ends = np.cumsum(ls, dtype=np.uint64)
    nbits = int(ends[-1]) if symbols.size else 0
    words = np.zeros((nbits + 63) // 64 + 1, dtype=np.uint64)
    if nbits:
        starts = ends - ls
        word, shift = starts >> np.uint64(6), starts & np.uint64(63)
        aligned = codes[symbols].astype(np.uint64) << (np.uint64(64) - ls)   # shift <= 63: L >= 1
        first = np.flatnonzero(np.diff(word, prepend=np.uint64(word[0] + 1)))  # word changes
        words[word[first]] = np.add.reduceat(aligned >> shift, first)
        spill = np.flatnonzero(shift + ls > np.uint64(64))                    # shift >= 49 there
        words[word[spill] + np.uint64(1)] += aligned[spill] << (np.uint64(64) - shift[spill])
    data = words.astype(">u8").view(np.uint8)[: (nbits + 7) // 8].copy()
    return data, nbits


class HuffmanDecodeError(ValueError):
    """The bitstream is not a valid encoding of the requested number of symbols."""


def decode_table(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Single-level lookup table over all 16-bit windows: ``(symbol, length)`` per window.

    A window whose prefix is no code (possible when the code is incomplete) has length 0.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    symbols = np.flatnonzero(lengths)
    order = symbols[np.lexsort((symbols, lengths[symbols]))]
    span = np.ldexp(1.0, MAX_CODE_BITS - lengths[order]).astype(np.int64)  # windows per code
    size = 1 << MAX_CODE_BITS
    table_symbol = np.zeros(size, dtype=np.uint16)
    table_length = np.zeros(size, dtype=np.uint8)
    used = int(span.sum())
    if used > size:
        raise HuffmanDecodeError("code lengths violate the Kraft inequality (not a prefix code)")
    table_symbol[:used] = np.repeat(order, span)   # canonical codes tile the table in order
    table_length[:used] = np.repeat(lengths[order], span)
    return table_symbol, table_length


def decode(data: np.ndarray, nbits: int, lengths: np.ndarray, count: int, bits: int) -> np.ndarray:
    """Decode ``count`` symbols of ``bits`` bits from an MSB-first Huffman bitstream.

    Checks that the stream holds exactly ``nbits`` bits of valid codes with zero padding.

    Raises
    ------
    HuffmanDecodeError
        An invalid code, a stream that ends early or has bits left over, or non-zero padding.
    """
    data = np.ascontiguousarray(data, dtype=np.uint8)
    if data.size != (nbits + 7) // 8:
        raise HuffmanDecodeError(f"{data.size} bytes do not hold exactly {nbits} bits")
    out = np.empty(count, dtype=np.uint16)
    if count:
        table_symbol, table_length = decode_table(lengths)
        from ._kernels import huffman_decode
        status = huffman_decode(data, nbits, count, table_symbol, table_length, out)
        if status < 0:
            raise HuffmanDecodeError(f"invalid code or stream ended early at symbol {-status - 1} of {count}")
        if status != nbits:
            raise HuffmanDecodeError(f"{count} symbols use {status} bits but the stream has {nbits}")
    elif nbits:
        raise HuffmanDecodeError(f"an empty stream must have 0 bits, has {nbits}")
    if nbits % 8 and (int(data[-1]) & ((1 << (8 - nbits % 8)) - 1)):
        raise HuffmanDecodeError("padding bits after the last code are not zero")
    return out.astype(symbol_dtype(bits), copy=False)
