"""Expected Huffman-coded size of a *profiled* layer (a compression profile, no weights).

Deep Compression (Han, Mao, Dally, ICLR 2016, section 4) Huffman-codes the two streams of a
pruned, weight-shared layer: the quantised weights ("biased" towards a few codes, since the weight
distribution is bell-shaped) and the sparse relative indices ("heavily biased towards small
gaps").  A profile gives neither stream, so this module builds the expected symbol histogram of
each and codes it with the project's own length-limited canonical Huffman code
(:func:`sqsim.compress.huffman.code_lengths`), counting the bytes as the stored format does
(:mod:`sqsim.compress.accounting`: each payload rounded up to whole bytes, one code-length byte
per alphabet symbol for each table).

Index stream
    Magnitude pruning of i.i.d. weights keeps a uniformly random subset of ``k`` of the ``n``
    positions.  The gaps are exchangeable; the number of zeros ``g`` before a kept weight has
    ``P(g >= m) = C(n - m, k) / C(n, k) = prod_{i < m} (n - k - i) / (n - i)``, about
    ``(1 - d)**m`` at density ``d = k / n``: geometric.  As the encoder does
    (:func:`sqsim.compress.sparse.relative_indices`), a kept weight stores ``g mod M`` (``M =
    2**index_bits``) and the ``g // M`` fillers before it store ``M - 1``; so the expected count of
    symbol ``s`` is ``k * sum_j P(g = s + j M)``, plus the fillers at ``M - 1``.  The filler count is
    the one the fixed-width accounting uses (:func:`sqsim.compress.sparse.expected_fillers`,
    rounded), so the P+Q and P+Q+H sizes describe the same entries.

Code stream
    A deterministic He-normal sample of the layer's weights (``std = sqrt(2 / fan_in)``, fixed
    seed, the layer's own weight count up to :data:`MAX_SAMPLE`) is pruned to the profile's
    density by magnitude (:func:`sqsim.compress.prune.prune_positions`) and weight-shared by the
    project's k-means (:func:`sqsim.compress.kmeans.kmeans_codebook`) at ``weight_bits``; the code
    histogram (scaled to the layer's ``k`` kept weights when the sample is smaller) plus the
    fillers at code 0 is the code stream's histogram.  This is what ``sqsim compress --init he``
    does to a whole layer, so the model predicts that size (``tests/test_huffman_expected.py``:
    within 3 % per layer and in total on SqueezeNet and AlexNet); trained weights are more
    peaked and code smaller (Deep Compression Table 4), so for them this is an estimate.

fp32 values (pruned-only storage) are not entropy coded, as in the stored format.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .accounting import huffman_table_bytes

MAX_SAMPLE = 1 << 20     # weights in the He-normal sample of a layer (larger layers: a sample this size)
MIN_SAMPLE = 1 << 15     # a smaller layer is drawn ceil(MIN_SAMPLE / weights) times (mean of the draws)
MAX_DRAWS = 16
SAMPLE_SEED = 2016       # fixed: the model is a deterministic function of the profile
_TAIL = 1e-15            # gap probabilities below this (relative) are dropped


def _lengths(expected: np.ndarray) -> np.ndarray:
    """Code lengths of the project's Huffman builder for expected symbol counts (every symbol with
    a positive expectation gets a code: it can occur)."""
    from .huffman import code_lengths
    counts = np.where(expected > 0, np.maximum(np.rint(expected), 1), 0).astype(np.int64)
    return code_lengths(counts)


def coded_bytes(expected: np.ndarray) -> int:
    """Payload bytes of a stream with these expected symbol counts, Huffman-coded with the code
    its histogram gives: ``ceil(sum(count * length) / 8)``."""
    expected = np.asarray(expected, dtype=np.float64)
    if not expected.any():
        return 0
    bits = float(np.dot(expected, _lengths(expected)))
    return int(math.ceil(bits / 8 - 1e-9))


@functools.lru_cache(maxsize=4096)
def gap_histogram(weights: int, kept: int, index_bits: int) -> tuple:
    """Expected count of each relative-index symbol ``0..M-1`` over the ``kept`` entries that hold
    weights (fillers not included), for ``kept`` of ``weights`` positions chosen uniformly.

    Returns a tuple (cached; :func:`index_histogram` adds the fillers)."""
    n, k, m = int(weights), int(kept), 1 << index_bits
    out = np.zeros(m)
    if k <= 0:
        return tuple(out)
    if k >= n:
        out[0] = k
        return tuple(out)
    # P(g >= j) for j = 0..top, the exact product (n - k - i) / (n - i) over i < j
    d = k / n
    top = min(n - k, int(math.ceil(math.log(_TAIL) / math.log1p(-d))) + m)
    i = np.arange(top, dtype=np.float64)
    ge = np.concatenate(([1.0], np.exp(np.cumsum(np.log((n - k - i) / (n - i))))))
    if top == n - k:                                 # the whole support: P(g >= n - k + 1) = 0
        ge = np.concatenate((ge, [0.0]))
    p = ge[:-1] - ge[1:]                             # P(g = j), j = 0..len-1
    p = np.concatenate((p, np.zeros(-p.size % m)))
    out[:] = k * p.reshape(-1, m).sum(axis=0)        # symbol g mod M
    return tuple(out)


def index_histogram(weights: int, kept: int, index_bits: int, fillers: int) -> np.ndarray:
    """Expected relative-index symbol counts: the kept entries' gaps mod ``M`` and ``fillers``
    entries at ``M - 1``."""
    h = np.array(gap_histogram(weights, kept, index_bits))
    h[-1] += fillers
    return h


@functools.lru_cache(maxsize=4096)
def code_bytes(weights: int, kept: int, weight_bits: int, zeros: int) -> int:
    """Expected Huffman payload bytes of the code stream of a He-normal layer of ``weights``
    weights pruned by magnitude to ``kept`` and weight-shared at ``weight_bits``, with ``zeros``
    more entries at code 0 (fillers, or the pruned weights of dense code storage).

    Pruning by magnitude and k-means with linear initialisation are scale-invariant, so the He
    standard deviation ``sqrt(2 / fan_in)`` does not change the codes: the sample is standard
    normal.  A small layer's codes vary from one draw to the next (the linear initialisation spans
    the sample's extremes), so the estimate is the mean over ``ceil(MIN_SAMPLE / weights)`` draws
    (at most :data:`MAX_DRAWS`); a layer above :data:`MAX_SAMPLE` weights is represented by one
    sample of that size pruned to the same density, its counts scaled to ``kept``.
    """
    from .kmeans import kmeans_codebook
    from .prune import prune_positions
    n, k = int(weights), int(kept)
    size = min(n, MAX_SAMPLE)
    draws = max(1, min(MAX_DRAWS, -(-MIN_SAMPLE // size)))
    k_s = k if size == n else max(1, min(size, int(round(k * size / n))))
    rng = np.random.default_rng([SAMPLE_SEED, n, k, weight_bits])
    total = 0
    for _ in range(draws):
        w = rng.standard_normal(size, dtype=np.float32)
        pos = prune_positions(w, k_s)
        _, codes = kmeans_codebook(w[pos], weight_bits)
        h = np.bincount(codes.astype(np.int64), minlength=1 << weight_bits).astype(np.float64) * (k / pos.size)
        h[0] += zeros
        total += coded_bytes(h)
    return int(round(total / draws))


def expected_huffman(size):
    """``size`` (a profile's :class:`~sqsim.compress.accounting.LayerSize`) with its expected
    Huffman fields filled in: ``huffman_codes_bytes``, ``huffman_index_bytes``,
    ``huffman_table_bytes`` (so ``pqh_bytes`` is the expected P+Q+H size).

    The streams are the ones the fixed-width record counts: ``nonzeros`` kept weights and
    ``fillers`` filler entries (code 0, index ``M - 1``) for sparse storage; one code per weight
    for dense code storage.  fp32 values are not entropy coded (``huffman_codes_bytes ==
    codes_bytes``, no table for them), as :func:`~sqsim.compress.accounting.compressed_layer_size`
    counts an actual layer.

    Examples
    --------
    >>> from sqsim.ir import Compression, Graph, Layer
    >>> from sqsim.compress.accounting import profile_layer_bytes
    >>> g = Graph([Layer("data", "input", shape=(64, 13, 13)),
    ...            Layer("conv", "conv2d", ("data",), out_channels=64, kernel=(3, 3))])
    >>> s = expected_huffman(profile_layer_bytes(g.info("conv"), Compression(0.33, 6, 4)))
    >>> s.pq_bytes, s.pqh_bytes < s.pq_bytes, s.huffman_table_bytes
    (15745, True, 80)
    """
    from dataclasses import replace
    n, sparse = int(size.weights), size.index_bits is not None
    tables = 0
    if size.weight_bits is None:
        codes = size.codes_bytes
    else:
        codes = code_bytes(n, size.nonzeros, size.weight_bits, size.fillers if sparse else n - size.nonzeros)
        tables += huffman_table_bytes(size.weight_bits)
    index = 0
    if sparse:
        index = coded_bytes(index_histogram(n, size.nonzeros, size.index_bits, size.fillers))
        tables += huffman_table_bytes(size.index_bits)
    return replace(size, huffman_codes_bytes=codes, huffman_index_bytes=index, huffman_table_bytes=tables)
