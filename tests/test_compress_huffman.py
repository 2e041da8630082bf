"""Canonical Huffman coding: round trips, prefix property, optimality, length limit, bad streams."""
from __future__ import annotations

import heapq

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqsim.compress import huffman
from sqsim.compress.huffman import HuffmanDecodeError

PROPS = settings(max_examples=200, deadline=None, derandomize=True)

symbol_lists = st.integers(1, 10).flatmap(
    lambda bits: st.tuples(st.just(bits), st.lists(st.integers(0, (1 << bits) - 1), max_size=400)))


def optimal_cost(counts):
    """Reference: the cost of an optimal prefix code is the sum of all merge weights."""
    heap = [int(c) for c in counts if c]
    if len(heap) == 1:
        return heap[0]  # a lone symbol still needs one bit
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


def codewords(lengths):
    codes = huffman.canonical_codes(lengths)
    return {s: format(int(codes[s]), f"0{int(lengths[s])}b") for s in np.flatnonzero(lengths)}


@PROPS
@given(symbol_lists)
def test_round_trip(case):
    bits, symbols = case
    symbols = np.array(symbols, dtype=np.uint16)
    counts = np.bincount(symbols.astype(np.int64), minlength=1 << bits)
    lengths = huffman.code_lengths(counts)
    data, nbits = huffman.encode(symbols, lengths)
    assert nbits == huffman.encoded_bits(counts, lengths) and data.size == (nbits + 7) // 8
    assert np.array_equal(huffman.decode(data, nbits, lengths, symbols.size, bits), symbols)


@PROPS
@given(symbol_lists)
def test_optimal_prefix_free_and_canonical(case):
    bits, symbols = case
    counts = np.bincount(np.array(symbols, dtype=np.int64), minlength=1 << bits)
    lengths = huffman.code_lengths(counts)
    assert np.array_equal(lengths > 0, counts > 0)
    if symbols:
        assert huffman.encoded_bits(counts, lengths) == optimal_cost(counts)
        assert huffman.kraft_sum(lengths) <= 1.0
    words = codewords(lengths)
    ws = sorted(words.values())
    assert all(not b.startswith(a) for a, b in zip(ws, ws[1:]))             # prefix-free
    order = sorted(words, key=lambda s: (len(words[s]), s))                  # canonical: by (length, symbol)
    assert [int(words[s], 2) << (16 - len(words[s])) for s in order] == \
        sorted(int(words[s], 2) << (16 - len(words[s])) for s in order)


def test_length_limit_on_fibonacci_counts():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    counts = np.array(fib, dtype=np.int64)       # an optimal code would need 29 bits
    lengths = huffman.code_lengths(counts)
    assert lengths.max() <= huffman.MAX_CODE_BITS and huffman.kraft_sum(lengths) <= 1
    symbols = np.repeat(np.arange(30), np.minimum(counts, 50)).astype(np.uint16)
    data, nbits = huffman.encode(symbols, lengths)
    assert np.array_equal(huffman.decode(data, nbits, lengths, symbols.size, 5), symbols)


def test_full_sixteen_bit_alphabet():
    symbols = np.arange(1 << 16, dtype=np.uint16)
    counts = np.bincount(symbols, minlength=1 << 16)
    lengths = huffman.code_lengths(counts)
    assert set(lengths.tolist()) == {16}
    data, nbits = huffman.encode(symbols, lengths)
    assert np.array_equal(huffman.decode(data, nbits, lengths, symbols.size, 16), symbols)


def test_bad_streams_raise():
    lengths = np.array([1, 2, 0, 0], dtype=np.uint8)   # codes 0, 10; "11" is no code
    data, nbits = huffman.encode(np.array([0, 1, 0]), lengths)
    with pytest.raises(HuffmanDecodeError, match="ended early|invalid"):
        huffman.decode(data, nbits, lengths, 4, 2)          # one symbol too many
    with pytest.raises(HuffmanDecodeError, match="bits"):
        huffman.decode(data, nbits + 1, lengths, 3, 2)      # bits left over
    with pytest.raises(HuffmanDecodeError, match="invalid"):
        huffman.decode(np.array([0xFF], np.uint8), 8, lengths, 1, 2)
    with pytest.raises(HuffmanDecodeError, match="padding"):
        huffman.decode(np.array([data[0] | 1], np.uint8), nbits, lengths, 3, 2)
    assert huffman.check_lengths(np.array([1, 1, 1], np.uint8)) is not None   # Kraft sum 1.5
    assert huffman.check_lengths(np.array([17, 1], np.uint8)) is not None
