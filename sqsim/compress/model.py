"""In-memory compressed models: :class:`Stream`, :class:`CompressedLayer`, :class:`CompressedModel`.

A compressed layer holds its streams exactly as a file stores them (fixed-width packed or
Huffman-coded bytes) and decodes them on demand, checking them as it goes: the first call to
:meth:`CompressedLayer.code_array`, :meth:`~CompressedLayer.index_array` or
:meth:`~CompressedLayer.positions` validates the streams (valid codes, exact lengths, positions
inside the weight blob, filler and non-zero counts as recorded) and raises
:class:`~sqsim.errors.FormatError` naming the file and layer otherwise.  Decoded arrays are cached
and read-only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError
from ..weights import LayerWeights
from . import huffman
from .accounting import STORAGE_KINDS, ModelSize, compressed_layer_size
from .bitpack import packed_bytes, padding_is_zero, unpack_fixed
from .sparse import absolute_positions

ENCODINGS = ("fixed", "huffman", "fp32")


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Stream:
    """One stored stream of a layer: codes, relative indices, or fp32 values.

    Attributes
    ----------
    count : int
        Number of symbols (values).
    bits : int
        Symbol width: ``weight_bits`` or ``index_bits`` (32 for fp32 values).
    encoding : str
        ``"fixed"`` (packed LSB-first at ``bits`` each, see :mod:`sqsim.compress.bitpack`),
        ``"huffman"`` (canonical, MSB-first, see :mod:`sqsim.compress.huffman`) or ``"fp32"``
        (little-endian float32).
    data : ndarray of uint8
        The stored bytes.
    nbits : int
        Meaningful bits in ``data`` (``count * bits`` for fixed-width and fp32).
    huffman_lengths : ndarray of uint8 or None
        Canonical code length per symbol (``2**bits`` entries) for Huffman streams.
    """
    count: int
    bits: int
    encoding: str
    data: np.ndarray
    nbits: int
    huffman_lengths: np.ndarray | None = None

    @property
    def payload_bytes(self) -> int:
        return int(self.data.size)

    @classmethod
    def fixed(cls, symbols: np.ndarray, bits: int) -> "Stream":
        from .bitpack import pack_fixed
        return cls(int(symbols.size), bits, "fixed", _readonly(pack_fixed(symbols, bits)), int(symbols.size) * bits)

    @classmethod
    def coded(cls, symbols: np.ndarray, bits: int) -> "Stream":
        """Huffman-code ``symbols`` with a canonical code built for their histogram."""
        counts = np.bincount(np.asarray(symbols, dtype=np.int64), minlength=1 << bits)
        lengths = huffman.code_lengths(counts)
        data, nbits = huffman.encode(symbols, lengths)
        return cls(int(symbols.size), bits, "huffman", _readonly(data), nbits, _readonly(lengths))

    @classmethod
    def fp32(cls, values: np.ndarray) -> "Stream":
        data = np.ascontiguousarray(values, dtype="<f4").view(np.uint8).ravel()
        return cls(int(values.size), 32, "fp32", _readonly(data.copy()), 32 * int(values.size))

    def decode(self) -> np.ndarray:
        """The symbols (uint8/uint16) or float32 values; raises ValueError when malformed."""
        if self.encoding == "fp32":
            if self.data.size != 4 * self.count:
                raise ValueError(f"{self.data.size} bytes do not hold {self.count} float32 values")
            return self.data.view("<f4").astype(np.float32)
        if self.encoding == "fixed":
            if self.data.size != packed_bytes(self.count, self.bits):
                raise ValueError(f"{self.data.size} bytes do not hold {self.count} values of {self.bits} bits")
            if not padding_is_zero(self.data, self.count * self.bits):
                raise ValueError("unused padding bits are not zero")
            return unpack_fixed(self.data, self.bits, self.count)
        return huffman.decode(self.data, self.nbits, self.huffman_lengths, self.count, self.bits)


@dataclass(frozen=True, eq=False)
class CompressedLayer:
    """The compressed weights of one conv/fc layer.

    Attributes
    ----------
    name : str
    weight_shape : tuple of int
        Caffe layout, from the graph.
    storage : str
        One of :data:`~sqsim.compress.accounting.STORAGE_KINDS`.
    weight_bits, index_bits : int or None
    nonzeros, fillers : int
        As recorded by the file (checked against the streams when they are decoded).
    codebook : ndarray of float32 or None
        ``2**weight_bits`` shared values, ``codebook[0] == 0``; None for fp32 storage.
    bias : ndarray of float32 or None
    values : Stream
        Codes (``*_codes`` storage) or fp32 values (``*_fp32``), one per stored entry.
    index : Stream or None
        Relative indices (sparse storage only).
    source : str
        Where it came from, for error messages (``"model.sqz: layer 'conv1'"``).
    """
    name: str
    weight_shape: tuple
    storage: str
    weight_bits: int | None
    index_bits: int | None
    nonzeros: int
    fillers: int
    codebook: np.ndarray | None
    bias: np.ndarray | None
    values: Stream
    index: Stream | None
    source: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.storage not in STORAGE_KINDS:
            raise ValueError(f"layer {self.name!r}: unknown storage {self.storage!r}")

    @property
    def weights(self) -> int:
        return int(np.prod(self.weight_shape))

    @property
    def biases(self) -> int:
        return 0 if self.bias is None else int(self.bias.size)

    @property
    def entries(self) -> int:
        return self.values.count

    @property
    def sparse(self) -> bool:
        return self.index is not None

    def _fail(self, msg: str):
        raise FormatError(f"{self.source or 'layer ' + repr(self.name)}: {msg}")

    def _decode(self, key: str, stream: Stream, what: str) -> np.ndarray:
        if key not in self._cache:
            try:
                self._cache[key] = _readonly(stream.decode())
            except ValueError as e:
                self._fail(f"{what} stream: {e}")
        return self._cache[key]

    def code_array(self) -> np.ndarray:
        """One code per stored entry (uint8 for <= 8 bits, else uint16); code 0 is zero."""
        if self.weight_bits is None:
            raise TypeError(f"layer {self.name!r} stores fp32 values, not codes")
        self.validate()
        return self._cache["values"]

    def value_array(self) -> np.ndarray:
        """One float32 value per stored entry (``codebook[codes]`` or the fp32 values)."""
        self.validate()
        if self.weight_bits is None:
            return self._cache["values"]
        if "entry_values" not in self._cache:
            self._cache["entry_values"] = _readonly(self.codebook[self._cache["values"]])
        return self._cache["entry_values"]

    def index_array(self) -> np.ndarray:
        """Relative index per stored entry (zeros since the previous entry); None when dense."""
        self.validate()
        return self._cache.get("index")

    def positions(self) -> np.ndarray:
        """Flat position (int64, Caffe C order) of every stored entry, fillers included."""
        self.validate()
        return self._cache["positions"]

    def validate(self) -> None:
        """Decode and check every stream once; raises FormatError naming file and layer."""
        if self._cache.get("valid"):
            return
        from ..limits import check_memory   # symbols, values and positions of every entry, before decoding
        check_memory(16 * self.entries, f"{self.source or self.name}: decoding {self.entries:,} stored entries")
        vals = self._decode("values", self.values, "value" if self.weight_bits is None else "code")
        zero = vals == 0
        n_zero = int(np.count_nonzero(zero))
        if self.index is not None:
            rel = self._decode("index", self.index, "index")
            if rel.size != vals.size:
                self._fail(f"{rel.size} relative indices for {vals.size} stored values")
            pos = absolute_positions(rel)
            if pos.size and pos[-1] >= self.weights:
                self._fail(f"relative indices run past the end of the weight blob "
                           f"(position {int(pos[-1])} >= {self.weights} weights)")
            if n_zero != self.fillers or vals.size - n_zero != self.nonzeros:
                self._fail(f"streams hold {vals.size - n_zero} non-zero values and {n_zero} fillers, the "
                           f"header says {self.nonzeros} and {self.fillers}")
        else:
            if vals.size != self.weights:
                self._fail(f"{vals.size} stored values for a dense layer of {self.weights} weights")
            pos = np.arange(self.weights, dtype=np.int64)
            if vals.size - n_zero != self.nonzeros:
                self._fail(f"streams hold {vals.size - n_zero} non-zero values, the header says {self.nonzeros}")
        if self.weight_bits is None and not np.all(np.isfinite(vals)):
            self._fail("fp32 values contain NaN or infinity")
        self._cache["positions"] = _readonly(pos)
        self._cache["valid"] = True

    def dense_weight(self) -> np.ndarray:
        """The decoded weight blob (float32, ``weight_shape``): zeros except at stored positions."""
        vals = self.value_array()
        if self.index is None:
            return vals.reshape(self.weight_shape).copy()
        w = np.zeros(self.weights, dtype=np.float32)
        w[self.positions()] = vals
        return w.reshape(self.weight_shape)

    def decode(self) -> LayerWeights:
        return LayerWeights(self.dense_weight(), None if self.bias is None else self.bias.copy())

    def size(self):
        """Exact :class:`~sqsim.compress.accounting.LayerSize` of this layer."""
        if "size" not in self._cache:
            self._cache["size"] = compressed_layer_size(self)
        return self._cache["size"]

    def with_encoding(self, huffman_coded: bool) -> "CompressedLayer":
        """The same layer with its code and index streams re-encoded (Huffman or fixed width)."""
        make = Stream.coded if huffman_coded else Stream.fixed
        values = self.values
        if self.weight_bits is not None:
            values = make(self.code_array(), self.weight_bits)
        index = None if self.index is None else make(self.index_array(), self.index_bits)
        return CompressedLayer(self.name, self.weight_shape, self.storage, self.weight_bits, self.index_bits,
                               self.nonzeros, self.fillers, self.codebook, self.bias, values, index, self.source)


class CompressedModel:
    """A network graph and the compressed weights of its conv/fc layers.

    Parameters
    ----------
    graph : sqsim.ir.Graph
        Its compression profiles describe how the layers were compressed.
    layers : dict or list of CompressedLayer
        One per weighted layer of ``graph``, in graph order.
    format : str
        ``"sqz"``, ``"released"`` or ``"memory"``.
    source : str, optional
        File path, for messages.
    file_bytes : int, optional
        Size of the file it was read from or written to.
    """

    def __init__(self, graph, layers, format: str = "memory", source: str | None = None,
                 file_bytes: int | None = None):
        self.graph = graph
        layers = list(layers.values()) if isinstance(layers, dict) else list(layers)
        names = [l.name for l in graph.weighted_layers()]
        if [l.name for l in layers] != names:
            raise ValueError(f"compressed layers {[l.name for l in layers]} do not match the graph's weighted "
                             f"layers {names}")
        for cl in layers:
            info = graph.info(cl.name)
            if tuple(cl.weight_shape) != tuple(info.weight_shape) or cl.biases != info.biases:
                raise ValueError(f"layer {cl.name!r}: compressed shape {cl.weight_shape} + {cl.biases} biases does "
                                 f"not match the graph's {info.weight_shape} + {info.biases}")
        self.layers = {l.name: l for l in layers}
        self.format = format
        self.source = source
        self.file_bytes = file_bytes

    def __repr__(self) -> str:
        t = self.sizes().total if self.layers else None
        return (f"CompressedModel({self.graph.name!r}, {len(self.layers)} layers, "
                f"{t.nonzeros if t else 0:,} non-zeros, format={self.format!r})")

    def __getitem__(self, name: str) -> CompressedLayer:
        try:
            return self.layers[name]
        except KeyError:
            from ..errors import GraphError
            raise GraphError(f"network {self.graph.name!r} has no compressed layer {name!r} (conv/fc layers: "
                             f"{', '.join(self.layers)})") from None

    def validate(self) -> None:
        """Decode and check every layer's streams (FormatError on the first bad one)."""
        for layer in self.layers.values():
            layer.validate()

    def decode(self) -> dict:
        """Dense weights ``{layer name: LayerWeights}`` (Caffe layout, float32)."""
        from ..limits import check_memory   # the dense weights, before any is allocated
        weights = sum(layer.weights for layer in self.layers.values())
        check_memory(4 * weights, f"{self.source or self.graph.name}: decoding {weights:,} dense float32 weights")
        return {name: layer.decode() for name, layer in self.layers.items()}

    def layer_sizes(self) -> list:
        """Exact :class:`~sqsim.compress.accounting.LayerSize` per layer, in graph order."""
        return [layer.size() for layer in self.layers.values()]

    def sizes(self, file_bytes: int | None = None, format: str | None = None) -> ModelSize:
        """Per-layer sizes, totals, and the file's overhead beyond the layer payloads.

        ``file_bytes``/``format`` describe a file the model was just written to (default: the
        file it was read from, if any).
        """
        layers = tuple(self.layer_sizes())
        file_bytes = self.file_bytes if file_bytes is None else file_bytes
        overhead = 0 if file_bytes is None else file_bytes - sum(s.stored_bytes for s in layers)
        return ModelSize(self.graph.name, layers, format or self.format, overhead, file_bytes)

    def measured_profiles(self) -> dict:
        """``{layer: Compression}`` with each layer's measured density (non-zeros / weights) and bits."""
        from ..ir import Compression
        out = {}
        for name, cl in self.layers.items():
            density = max(cl.nonzeros, 1) / cl.weights if cl.sparse else 1.0  # a profile needs density > 0
            out[name] = Compression(density, cl.weight_bits, cl.index_bits) if cl.storage != "dense_fp32" else None
        return out

    def with_encoding(self, huffman_coded: bool) -> "CompressedModel":
        """The same model with every code and index stream Huffman-coded (or fixed width)."""
        return CompressedModel(self.graph, [l.with_encoding(huffman_coded) for l in self.layers.values()])

    def save_sqz(self, path) -> int:
        """Write the model as ``.sqz`` (atomically); returns the file size in bytes."""
        from .sqz import save_sqz
        return save_sqz(self, path)
