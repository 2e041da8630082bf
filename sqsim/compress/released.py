"""The released Deep Compression SqueezeNet format (``compressed_SqueezeNet.net``, REFERENCE.md
section 3; github.com/songhan/SqueezeNet-Deep-Compression).

Layout, all little-endian, for the L conv layers of the network in prototxt order::

    uint32[L]             stored entries (kept weights + fillers) per layer
    per layer:
      float32[256]        codebook (8-bit codes; entry 0 is 0.0)
      float32[out]        biases
      uint8[n]            one code per stored entry
      uint8[ceil(n / 2)]  4-bit relative indices, two per byte, low nibble first

Shapes come from the network definition (prototxt or graph), not from the file.  The file has no
checksum; the reader checks that its length matches the layer sizes exactly, that each layer's
indices stay inside its weight blob, that ``codebook[0] == 0``, that values are finite and that
unused padding bits are zero, and raises :class:`~sqsim.errors.FormatError` otherwise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FormatError, SqsimError
from ..limits import check_file
from ..paths import atomic_write_bytes
from .bitpack import packed_bytes
from .model import CompressedLayer, CompressedModel, Stream, _readonly

CODE_BITS = 8
INDEX_BITS = 4
CODEBOOK_ENTRIES = 1 << CODE_BITS


def _graph_of(prototxt_or_graph):
    from ..ir import Graph
    if isinstance(prototxt_or_graph, Graph):
        return prototxt_or_graph
    from ..ir import load
    return load(prototxt_or_graph)


def read_released(data: bytes, graph, source: str = "<released>") -> CompressedModel:
    """Parse released-format bytes for ``graph`` (its conv/fc layers in order are the file's layers).

    The result's graph carries each layer's measured profile (density = non-zeros / weights,
    8-bit codes, 4-bit indices).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    wl = graph.weighted_layers()
    nl = len(wl)
    if nl == 0:
        raise FormatError(f"{source}: network {graph.name!r} has no conv/fc layers")
    if buf.size < 4 * nl:
        raise FormatError(f"{source}: {buf.size} bytes cannot hold the header of {nl} layer counts "
                          f"({4 * nl} bytes) for network {graph.name!r}")
    counts = buf[: 4 * nl].view("<u4").astype(np.int64)
    expected = 4 * nl
    for layer, n in zip(wl, counts):
        info = graph.info(layer.name)
        if n > info.weights:
            raise FormatError(f"{source}: layer {layer.name!r}: header says {n} stored entries, more than its "
                              f"{info.weights} weights (corrupted file, or the wrong network definition)")
        expected += 4 * CODEBOOK_ENTRIES + 4 * info.biases + n + packed_bytes(int(n), INDEX_BITS)
    if expected != buf.size:
        raise FormatError(f"{source}: file has {buf.size} bytes but its header and network {graph.name!r} "
                          f"({nl} conv/fc layers) need exactly {expected} (truncated, corrupted, or the wrong "
                          f"network definition)")
    layers, off = [], 4 * nl
    for layer, n in zip(wl, counts):
        n = int(n)
        info = graph.info(layer.name)
        where = f"{source}: layer {layer.name!r}"

        def take(nbytes):
            nonlocal off
            chunk = buf[off: off + nbytes]
            off += nbytes
            return chunk

        codebook = take(4 * CODEBOOK_ENTRIES).view("<f4").astype(np.float32)
        bias = take(4 * info.biases).view("<f4").astype(np.float32) if info.biases else None
        codes = Stream(n, CODE_BITS, "fixed", _readonly(take(n).copy()), n * CODE_BITS)
        nidx = packed_bytes(n, INDEX_BITS)
        index = Stream(n, INDEX_BITS, "fixed", _readonly(take(nidx).copy()), n * INDEX_BITS)
        if not np.all(np.isfinite(codebook)):
            raise FormatError(f"{where}: codebook contains NaN or infinity")
        if codebook[0] != 0:
            raise FormatError(f"{where}: codebook entry 0 must be 0.0 (the pruned value), got {codebook[0]!r}")
        if bias is not None and not np.all(np.isfinite(bias)):
            raise FormatError(f"{where}: biases contain NaN or infinity")
        fillers = int(np.count_nonzero(codes.data == 0))
        cl = CompressedLayer(layer.name, tuple(info.weight_shape), "sparse_codes", CODE_BITS, INDEX_BITS,
                             n - fillers, fillers, _readonly(codebook), bias, codes, index, where)
        cl.validate()  # numpy only: indices inside the blob, zero padding
        layers.append(cl)
    from ..ir import Compression
    profiles = {cl.name: Compression(max(cl.nonzeros, 1) / cl.weights, CODE_BITS, INDEX_BITS) for cl in layers}
    graph = graph.with_compression(profiles)
    return CompressedModel(graph, layers, format="released", source=source, file_bytes=int(buf.size))


def load_released(net_path, prototxt_or_graph) -> CompressedModel:
    """Read a released Deep Compression ``.net`` file.

    Parameters
    ----------
    net_path : path-like
    prototxt_or_graph : path-like or sqsim.ir.Graph
        The network (its deploy prototxt, Deep Compression or canonical names, or any graph whose
        conv/fc layers come in the file's order).
    """
    net_path = Path(net_path)
    graph = _graph_of(prototxt_or_graph)
    check_file(net_path, "binary")
    try:
        data = net_path.read_bytes()
    except OSError as e:
        raise FormatError(f"{net_path}: cannot read ({e.strerror})") from None
    return read_released(data, graph, str(net_path))


def released_bytes(model: CompressedModel) -> bytes:
    """Serialise a model in the released format (every layer sparse, 8-bit codes, 4-bit indices)."""
    parts = []
    counts = []
    for cl in model.layers.values():
        if cl.storage != "sparse_codes" or cl.weight_bits != CODE_BITS or cl.index_bits != INDEX_BITS:
            raise SqsimError(f"layer {cl.name!r}: the released format stores sparse {CODE_BITS}-bit codes with "
                             f"{INDEX_BITS}-bit indices; this layer is {cl.storage} with weight_bits "
                             f"{cl.weight_bits}, index_bits {cl.index_bits}")
        counts.append(cl.entries)
        parts.append(cl.codebook.astype("<f4").tobytes())
        if cl.bias is not None:
            parts.append(cl.bias.astype("<f4").tobytes())
        codes = cl.values if cl.values.encoding == "fixed" else Stream.fixed(cl.code_array(), CODE_BITS)
        index = cl.index if cl.index.encoding == "fixed" else Stream.fixed(cl.index_array(), INDEX_BITS)
        parts.append(codes.data.tobytes())
        parts.append(index.data.tobytes())
    return np.asarray(counts, dtype="<u4").tobytes() + b"".join(parts)


def save_released(model: CompressedModel, path) -> int:
    """Write ``model`` in the released format, atomically; returns the number of bytes."""
    data = released_bytes(model)
    atomic_write_bytes(path, data)
    return len(data)
