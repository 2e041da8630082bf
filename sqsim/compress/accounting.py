"""Exact byte accounting of compressed layers (Deep Compression Table 4 layout).

One record, :class:`LayerSize`, describes the storage of one conv/fc layer in four forms:

===============  ===========================================================================
dense            fp32 weights and biases: ``4 * (weights + biases)``
pruned (P)       sparse fp32 values (fillers included) + relative indices + fp32 biases
P+Q              codes at ``weight_bits`` + indices at ``index_bits`` + codebook
                 (``2**weight_bits`` fp32) + fp32 biases; each stream rounded up to whole bytes
P+Q+H            Huffman-coded code and index streams (payload rounded up to bytes) + their code
                 tables (one length byte per alphabet symbol, as ``.sqz`` stores them) + codebook
                 + biases
===============  ===========================================================================

Biases are never pruned or quantised (SqueezeNet Table 1, Deep Compression section 2).

Storage follows from a layer's :class:`~sqsim.ir.Compression` profile (:func:`storage_for`):

* no profile, or density 1 without ``weight_bits``: dense fp32;
* density < 1 without ``weight_bits``: pruned only (sparse fp32 values + indices);
* density 1 with ``weight_bits``: *dense quantised*: one code per weight and no index stream
  (a zero weight is code 0); with nothing pruned, relative indices would only add bits;
* density < 1 with ``weight_bits``: sparse codes + relative indices (``index_bits``, 4 when unset).

:func:`profile_layer_bytes` computes the record from the profile alone (no weights), with the
expected number of fillers for randomly placed kept weights (:func:`sqsim.compress.sparse.expected_fillers`);
:func:`compressed_layer_size` computes it from an actual compressed layer, with exact fillers and
Huffman sizes; ``profile_layer_bytes(..., huffman=True)`` adds the *expected* Huffman sizes of a
profile (:mod:`sqsim.compress.expected`).  Records add (``a + b``) so per-layer sizes sum to totals.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .bitpack import packed_bytes
from .sparse import DEFAULT_INDEX_BITS, expected_fillers

STORAGE_KINDS = ("dense_fp32", "sparse_fp32", "dense_codes", "sparse_codes")
FP32_BYTES = 4


def storage_for(compression) -> tuple[str, int | None, int | None]:
    """``(storage, weight_bits, index_bits)`` of a layer with this profile (None: no profile)."""
    if compression is None:
        return "dense_fp32", None, None
    sparse = compression.density < 1
    index_bits = (compression.index_bits or DEFAULT_INDEX_BITS) if sparse else None
    if compression.weight_bits is None:
        return ("sparse_fp32" if sparse else "dense_fp32"), None, index_bits
    return ("sparse_codes" if sparse else "dense_codes"), compression.weight_bits, index_bits


def huffman_table_bytes(bits: int) -> int:
    """Bytes of a stored canonical Huffman table: one code-length byte per symbol of the alphabet."""
    return 1 << bits


@dataclass(frozen=True)
class LayerSize:
    """Storage of one weighted layer, to the byte.

    Attributes
    ----------
    name, storage : str
        Layer name; one of :data:`STORAGE_KINDS`.
    weights, biases : int
        Parameter counts from the graph.
    nonzeros : int
        Weights stored as non-zero values (kept after pruning).
    fillers : int
        Filler entries (value zero) bridging gaps longer than ``2**index_bits - 1``.
    entries : int
        Stored entries: ``nonzeros + fillers`` for sparse storage, ``weights`` for dense.
    weight_bits, index_bits : int or None
        Code and relative-index widths (None: fp32 values / no index stream).
    codes_bytes : int
        The value stream at fixed width: ``ceil(entries * weight_bits / 8)``, or ``4 * entries``
        fp32 values when the layer is not quantised.
    index_bytes : int
        ``ceil(entries * index_bits / 8)``, 0 without an index stream.
    codebook_bytes, bias_bytes : int
        ``4 * 2**weight_bits`` (0 when not quantised) and ``4 * biases``.
    huffman_codes_bytes, huffman_index_bytes, huffman_table_bytes : int or None
        Huffman-coded value and index payloads and their tables; None when unknown (a size from
        a profile alone).  fp32 values are not entropy coded (``huffman_codes_bytes ==
        codes_bytes``).
    pruned_bytes : int
        Pruning only: sparse fp32 values (fillers included) + indices + biases; the dense size
        for dense storage.  Computed unless given (totals pass the layers' sum).
    fillers_exact : bool
        True when ``fillers`` was counted in actual data, False when it is the expectation for
        random placement.
    huffman_stored : bool
        Whether the file this size describes stores the Huffman streams (else fixed width).
    """
    name: str
    storage: str
    weights: int
    biases: int
    nonzeros: int
    fillers: int
    entries: int
    weight_bits: int | None
    index_bits: int | None
    codes_bytes: int
    index_bytes: int
    codebook_bytes: int
    bias_bytes: int
    huffman_codes_bytes: int | None = None
    huffman_index_bytes: int | None = None
    huffman_table_bytes: int | None = None
    fillers_exact: bool = True
    huffman_stored: bool = False
    pruned_bytes: int | None = None

    def __post_init__(self):
        if self.pruned_bytes is None:  # sparse fp32 values (fillers included) + indices + biases
            pruned = (FP32_BYTES * self.entries + self.index_bytes + self.bias_bytes if self.index_bits is not None
                      else self.dense_bytes)
            object.__setattr__(self, "pruned_bytes", pruned)
        if self.storage not in STORAGE_KINDS + ("mixed",):
            raise ValueError(f"LayerSize {self.name!r}: unknown storage {self.storage!r}")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", "int | None") and v is not None and v < 0:
                raise ValueError(f"LayerSize {self.name!r}: {f.name} must be >= 0, got {v}")
        if self.nonzeros + self.fillers > self.entries or self.entries > self.weights:
            raise ValueError(f"LayerSize {self.name!r}: nonzeros {self.nonzeros} + fillers {self.fillers} "
                             f"must fit in entries {self.entries} <= weights {self.weights}")

    # --- the four forms ---------------------------------------------------------------------
    @property
    def dense_bytes(self) -> int:
        return FP32_BYTES * (self.weights + self.biases)

    @property
    def sparse(self) -> bool:
        return self.index_bits is not None

    @property
    def pq_bytes(self) -> int:
        """Pruned + quantised: codes + indices + codebook + biases."""
        return self.codes_bytes + self.index_bytes + self.codebook_bytes + self.bias_bytes

    @property
    def total_bytes(self) -> int:
        """The layer's storage without entropy coding (== :attr:`pq_bytes`)."""
        return self.pq_bytes

    @property
    def pqh_bytes(self) -> int | None:
        """Pruned + quantised + Huffman: coded payloads + tables + codebook + biases."""
        if None in (self.huffman_codes_bytes, self.huffman_index_bytes, self.huffman_table_bytes):
            return None
        return (self.huffman_codes_bytes + self.huffman_index_bytes + self.huffman_table_bytes
                + self.codebook_bytes + self.bias_bytes)

    @property
    def stored_bytes(self) -> int:
        """Bytes the layer's payload takes in the file it came from."""
        return self.pqh_bytes if self.huffman_stored else self.pq_bytes

    # --- ratios -----------------------------------------------------------------------------
    @property
    def density(self) -> float:
        return self.nonzeros / self.weights if self.weights else 0.0

    @property
    def pq_rate(self) -> float:
        """P+Q size over dense size (Deep Compression Table 4's "compress rate")."""
        return self.pq_bytes / self.dense_bytes

    @property
    def pqh_rate(self) -> float | None:
        return None if self.pqh_bytes is None else self.pqh_bytes / self.dense_bytes

    @property
    def pq_bits_per_weight(self) -> float:
        """Storage bits per original weight, biases and codebook included."""
        return 8 * self.pq_bytes / self.weights

    @property
    def pqh_bits_per_weight(self) -> float | None:
        return None if self.pqh_bytes is None else 8 * self.pqh_bytes / self.weights

    @property
    def huffman_code_bits(self) -> float | None:
        """Average Huffman-coded bits per stored code (Deep Compression: about 4 in AlexNet's fc)."""
        if self.huffman_codes_bytes is None or self.weight_bits is None or not self.entries:
            return None
        return 8 * self.huffman_codes_bytes / self.entries

    @property
    def huffman_index_bits(self) -> float | None:
        if self.huffman_index_bytes is None or not self.sparse or not self.entries:
            return None
        return 8 * self.huffman_index_bytes / self.entries

    def __add__(self, other: "LayerSize") -> "LayerSize":
        def opt(a, b):
            return None if a is None or b is None else a + b

        def same(a, b):
            return a if a == b else None

        return LayerSize(
            name="total", storage=same(self.storage, other.storage) or "mixed",
            weights=self.weights + other.weights, biases=self.biases + other.biases,
            nonzeros=self.nonzeros + other.nonzeros, fillers=self.fillers + other.fillers,
            entries=self.entries + other.entries,
            weight_bits=same(self.weight_bits, other.weight_bits),
            index_bits=same(self.index_bits, other.index_bits),
            codes_bytes=self.codes_bytes + other.codes_bytes, index_bytes=self.index_bytes + other.index_bytes,
            codebook_bytes=self.codebook_bytes + other.codebook_bytes,
            bias_bytes=self.bias_bytes + other.bias_bytes,
            huffman_codes_bytes=opt(self.huffman_codes_bytes, other.huffman_codes_bytes),
            huffman_index_bytes=opt(self.huffman_index_bytes, other.huffman_index_bytes),
            huffman_table_bytes=opt(self.huffman_table_bytes, other.huffman_table_bytes),
            fillers_exact=self.fillers_exact and other.fillers_exact,
            huffman_stored=self.huffman_stored and other.huffman_stored,
            pruned_bytes=self.pruned_bytes + other.pruned_bytes)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict: the fields and the derived sizes and rates."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for p in ("density", "dense_bytes", "pq_bytes", "pqh_bytes", "stored_bytes", "pq_rate", "pqh_rate",
                  "pq_bits_per_weight", "pqh_bits_per_weight", "huffman_code_bits", "huffman_index_bits"):
            d[p] = getattr(self, p)
        return d


def _sizes(name, storage, weights, biases, nonzeros, fillers, weight_bits, index_bits, **extra) -> LayerSize:
    """The fixed-width parts of a LayerSize, shared by the profile and the measured paths."""
    entries = nonzeros + fillers if index_bits is not None else weights
    codes = packed_bytes(entries, weight_bits) if weight_bits is not None else FP32_BYTES * entries
    return LayerSize(
        name=name, storage=storage, weights=weights, biases=biases, nonzeros=nonzeros, fillers=fillers,
        entries=entries, weight_bits=weight_bits, index_bits=index_bits, codes_bytes=codes,
        index_bytes=packed_bytes(entries, index_bits) if index_bits is not None else 0,
        codebook_bytes=FP32_BYTES * (1 << weight_bits) if weight_bits is not None else 0,
        bias_bytes=FP32_BYTES * biases, **extra)


def profile_layer_bytes(info, compression=None, *, fillers: int | None = None, huffman: bool = False) -> LayerSize:
    """Storage of a layer from its compression profile alone (no weights).

    Parameters
    ----------
    info : sqsim.ir.LayerInfo
        The layer (a conv2d or fc); its weight and bias counts come from the graph.
    compression : sqsim.ir.Compression, optional
        The profile; default ``info.compression``.  None there too: dense fp32.
    fillers : int, optional
        The exact number of fillers, when known.  Default: the expectation for kept weights at
        uniformly random positions, rounded to the nearest integer (see
        :func:`sqsim.compress.sparse.expected_fillers`).
    huffman : bool
        Also fill in the expected Huffman-coded sizes (:func:`sqsim.compress.expected.expected_huffman`),
        so that ``pqh_bytes`` is the expected P+Q+H size.

    Returns
    -------
    LayerSize
        ``nonzeros = compression.kept(weights)`` (``ceil(weights * density)``); Huffman sizes None
        unless ``huffman``.

    Examples
    --------
    >>> from sqsim.ir import Compression, Graph, Layer
    >>> g = Graph([Layer("data", "input", shape=(3, 8, 8)),
    ...            Layer("conv", "conv2d", ("data",), out_channels=4, kernel=(3, 3))])
    >>> s = profile_layer_bytes(g.info("conv"), Compression(0.5, 8, 4), fillers=0)
    >>> s.nonzeros, s.codes_bytes, s.index_bytes, s.codebook_bytes, s.bias_bytes, s.pq_bytes
    (54, 54, 27, 1024, 16, 1121)
    """
    if compression is None:
        compression = info.compression
    if info.weights <= 0:
        raise ValueError(f"layer {info.name!r} ({info.op}) has no weights to account for")
    storage, weight_bits, index_bits = storage_for(compression)
    kept = info.weights if storage == "dense_fp32" else compression.kept(info.weights)
    exact = True
    if index_bits is None:
        fillers = 0
    elif fillers is None:
        fillers = int(round(expected_fillers(info.weights, kept, index_bits)))
        exact = False
    size = _sizes(info.name, storage, info.weights, info.biases, kept, int(fillers), weight_bits, index_bits,
                  fillers_exact=exact)
    if huffman:
        from .expected import expected_huffman
        size = expected_huffman(size)
    return size


def huffman_bytes(symbols: np.ndarray, bits: int) -> int:
    """Payload bytes of ``symbols`` Huffman-coded with a code built for their own histogram."""
    from .huffman import code_lengths, encoded_bits
    counts = np.bincount(np.asarray(symbols, dtype=np.int64), minlength=1 << bits)
    return (encoded_bits(counts, code_lengths(counts)) + 7) // 8


def compressed_layer_size(layer) -> LayerSize:
    """Exact storage of a :class:`~sqsim.compress.model.CompressedLayer` (fillers counted,
    Huffman sizes from the actual streams or, for fixed-width streams, from the code the
    symbols' histogram gives)."""
    values, index = layer.values, layer.index
    if values.encoding == "fp32":
        huff_codes, tables = values.payload_bytes, 0
    elif values.encoding == "huffman":
        huff_codes, tables = values.payload_bytes, huffman_table_bytes(layer.weight_bits)
    else:
        huff_codes, tables = huffman_bytes(layer.code_array(), layer.weight_bits), \
            huffman_table_bytes(layer.weight_bits)
    huff_index = 0
    if index is not None:
        tables += huffman_table_bytes(layer.index_bits)
        huff_index = index.payload_bytes if index.encoding == "huffman" else \
            huffman_bytes(layer.index_array(), layer.index_bits)
    stored_huffman = values.encoding == "huffman" or (index is not None and index.encoding == "huffman")
    return _sizes(layer.name, layer.storage, layer.weights, layer.biases, layer.nonzeros, layer.fillers,
                  layer.weight_bits, layer.index_bits, huffman_codes_bytes=huff_codes,
                  huffman_index_bytes=huff_index, huffman_table_bytes=tables, fillers_exact=True,
                  huffman_stored=stored_huffman)


@dataclass(frozen=True)
class ModelSize:
    """Per-layer sizes of a whole network plus the file's own overhead.

    Attributes
    ----------
    network : str
    layers : tuple of LayerSize
        In the graph's order of weighted layers.
    format : str
        ``"profile"`` (from compression profiles), ``"sqz"``, ``"released"`` (Deep Compression's
        ``.net``) or ``"memory"`` (not written to a file).
    overhead_bytes : int
        File bytes outside the layers' payloads (headers, embedded graph, lengths, checksums).
    file_bytes : int or None
        Size of the file (``sum of stored_bytes + overhead_bytes``), None when not from a file.
    """
    network: str
    layers: tuple
    format: str = "profile"
    overhead_bytes: int = 0
    file_bytes: int | None = None

    @property
    def total(self) -> LayerSize:
        it = iter(self.layers)
        total = next(it)
        for s in it:
            total = total + s
        return total if len(self.layers) > 1 else _renamed_total(total)


def _renamed_total(s: LayerSize) -> LayerSize:
    from dataclasses import replace
    return replace(s, name="total")


def profile_sizes(graph) -> ModelSize:
    """:func:`profile_layer_bytes` of every weighted layer of ``graph`` (its own profiles)."""
    return ModelSize(graph.name, tuple(profile_layer_bytes(graph.info(l.name)) for l in graph.weighted_layers()))
