"""The Deep Compression pipeline (Han, Mao, Dally, ICLR 2016): prune -> share weights -> encode.

:func:`compress` turns dense weights and a graph whose layers carry compression profiles into a
:class:`~sqsim.compress.model.CompressedModel`.  Per layer (see :func:`compress_layer`):

1. magnitude pruning to ``Compression.kept(weights)`` (= ``ceil(weights * density)``) positions;
2. k-means weight sharing of the kept weights (linear initialisation, ``2**weight_bits`` codebook,
   code 0 = zero);
3. relative sparse indices with fillers (``index_bits``);
4. optionally canonical Huffman coding of the code and index streams.

Every step is vectorised numpy (no Python loop over weights) and deterministic.
"""
from __future__ import annotations

import numpy as np

from ..errors import SpecError
from ..ir import Compression
from ..weights import LayerWeights, check_weights
from .accounting import storage_for
from .kmeans import kmeans_codebook, lookup_codes
from .model import CompressedLayer, CompressedModel, Stream
from .prune import prune_positions
from .sparse import DEFAULT_INDEX_BITS, relative_indices


def resolve_profiles(graph, density: float | None = None, weight_bits: int | None = None,
                     index_bits: int | None = None):
    """The graph with command-line style overrides applied to every conv/fc profile.

    A given value replaces that field in every weighted layer's profile; a layer without a profile
    gets one (density 1 unless given).  With no overrides the graph is returned unchanged.
    """
    if density is None and weight_bits is None and index_bits is None:
        return graph
    if density is not None and (isinstance(density, bool) or not 0 < density <= 1):
        raise SpecError(f"--density: must be in (0, 1], got {density}")
    for flag, v in (("--bits", weight_bits), ("--index-bits", index_bits)):
        if v is not None and not 1 <= v <= 16:
            raise SpecError(f"{flag}: must be an integer in 1..16, got {v}")
    profiles = {}
    for layer in graph.weighted_layers():
        c = layer.compression or Compression()
        profiles[layer.name] = Compression(
            c.density if density is None else float(density),
            c.weight_bits if weight_bits is None else weight_bits,
            c.index_bits if index_bits is None else index_bits)
    return graph.with_compression(profiles)


def encode_layer(info, positions: np.ndarray, codes: np.ndarray | None, values: np.ndarray | None,
                 codebook: np.ndarray | None, bias: np.ndarray | None, storage: str, weight_bits: int | None,
                 index_bits: int | None, huffman: bool = True, source: str = "") -> CompressedLayer:
    """Build the streams of one layer from kept ``positions`` and their ``codes`` (or fp32 ``values``).

    ``positions`` are ascending flat positions of the non-zero entries; zeros elsewhere.
    """
    n = info.weights
    make = Stream.coded if huffman else Stream.fixed
    kept = int(positions.size)
    if storage in ("sparse_codes", "sparse_fp32"):
        rel, slots = relative_indices(positions, index_bits)
        entry = np.zeros(rel.size, dtype=codes.dtype if codes is not None else np.float32)
        entry[slots] = codes if codes is not None else values
        index = make(rel, index_bits)
        fillers = int(rel.size) - kept
    else:
        entry = np.zeros(n, dtype=codes.dtype if codes is not None else np.float32)
        entry[positions] = codes if codes is not None else values
        index, fillers = None, 0
    stream = Stream.fp32(entry) if codes is None else make(entry, weight_bits)
    return CompressedLayer(info.name, tuple(info.weight_shape), storage, weight_bits, index_bits, kept, fillers,
                           None if codebook is None else np.asarray(codebook, dtype=np.float32),
                           None if bias is None else np.asarray(bias, dtype=np.float32).copy(),
                           stream, index, source)


def compress_layer(info, weights: LayerWeights, compression: Compression | None = None,
                   huffman: bool = True, keep_zeros: bool = False) -> CompressedLayer:
    """Prune, weight-share and encode one layer according to ``compression`` (default: its profile).

    The layer's storage follows :func:`sqsim.compress.accounting.storage_for`: with density 1 and
    ``weight_bits`` every weight gets a code and there is no index stream.  Weights that are already
    pruned (exact zeros) stay pruned: where the profile keeps every weight (density 1) but the blob
    holds zeros, the layer stores only its non-zeros, with relative indices (``index_bits``, default
    4), as Deep Compression stores every layer of its released SqueezeNet (a decoded model compressed
    again without ``--density`` keeps its sparsity and its size).  ``keep_zeros`` stores a code for
    every weight, zeros included, as the profile says (an explicit density of 1).
    """
    if compression is None:
        compression = info.compression
    storage, weight_bits, index_bits = storage_for(compression)
    flat = np.asarray(weights.weight, dtype=np.float32).ravel()
    if storage == "dense_fp32" and compression is None:
        positions = np.flatnonzero(flat)
        return encode_layer(info, positions, None, flat[positions], None, weights.bias, storage, None, None,
                            huffman)
    kept = compression.kept(flat.size) if storage.startswith("sparse") else flat.size
    positions = prune_positions(flat, kept)
    kept_values = flat[positions]
    codebook = codes = values = None
    if weight_bits is None:
        values = kept_values
    else:
        codebook, codes = kmeans_codebook(kept_values, weight_bits)
    if storage.startswith("dense") and positions.size < flat.size and not keep_zeros:  # already pruned
        storage, index_bits = "sparse" + storage[5:], compression.index_bits or DEFAULT_INDEX_BITS
    return encode_layer(info, positions, codes, values, codebook, weights.bias, storage, weight_bits, index_bits,
                        huffman)


def compress(graph, weights: dict, huffman: bool = True, source: str = "weights",
             keep_zeros: bool = False) -> CompressedModel:
    """Compress dense ``weights`` (``{layer: LayerWeights}``) by the graph's compression profiles.

    Parameters
    ----------
    graph : sqsim.ir.Graph
        Layers without a profile are stored dense fp32 (use :func:`resolve_profiles` to override).
    weights : dict
        Checked with :func:`sqsim.weights.check_weights` (names and shapes must match).
    huffman : bool
        Huffman-code the code and index streams (P+Q+H) or store them at fixed width (P+Q).
    keep_zeros : bool
        Store the zeros of already-pruned weights in layers whose profile keeps every weight (density
        1) as codes, as the profile says; by default such a layer stores only its non-zeros where that
        is smaller (see :func:`compress_layer`).
    """
    weights = check_weights(graph, weights, source)
    layers = [compress_layer(graph.info(l.name), weights[l.name], huffman=huffman, keep_zeros=keep_zeros)
              for l in graph.weighted_layers()]
    return CompressedModel(graph, layers, format="memory")


def encode_quantised(graph, weights: dict, codebooks: dict, index_bits: int = 4, huffman: bool = False,
                     source: str = "weights") -> CompressedModel:
    """Encode already pruned and quantised dense weights with known codebooks (no k-means).

    Every non-zero weight must be an entry of its layer's codebook; zeros are pruned.  All layers
    get sparse code storage.  This is how a decoded released model is written back exactly.
    """
    weights = check_weights(graph, weights, source)
    layers = []
    for layer in graph.weighted_layers():
        info, lw = graph.info(layer.name), weights[layer.name]
        codebook = np.asarray(codebooks[layer.name], dtype=np.float32)
        bits = int(codebook.size).bit_length() - 1
        if codebook.size != 1 << bits or codebook[0] != 0:
            raise ValueError(f"layer {layer.name!r}: a codebook needs 2**bits entries with entry 0 == 0")
        flat = lw.weight.ravel()
        positions = np.flatnonzero(flat)
        try:
            codes = lookup_codes(flat[positions], codebook)
        except ValueError as e:
            raise ValueError(f"layer {layer.name!r}: {e}") from None
        layers.append(encode_layer(info, positions, codes, None, codebook, lw.bias, "sparse_codes", bits,
                                   index_bits, huffman))
    return CompressedModel(graph, layers, format="memory")
