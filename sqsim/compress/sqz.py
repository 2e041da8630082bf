"""sqsim's compressed-model container, ``.sqz`` (version 1).

All integers little-endian.  ::

    header   magic "SQSIMSQZ" | u16 version (1) | u16 flags (0) | u32 layers | u64 file bytes
             | u32 CRC32 of the 24 bytes before it
    section  u64 body bytes | body | u32 CRC32 of body          (1 graph section, then 1 per layer)
    trailer  SHA-256 of every byte before it (32 bytes)

The graph section's body is the network in sqsim's YAML format (:mod:`sqsim.ir.yaml_format`),
compression profiles included.  A layer section's body::

    u16 name bytes | name (UTF-8)
    u8 storage (0 dense_fp32, 1 sparse_fp32, 2 dense_codes, 3 sparse_codes)
    u8 weight_bits (0: fp32 values) | u8 index_bits (0: dense) | u8 flags (1: codes Huffman, 2: indices Huffman)
    u64 weights | u64 entries | u64 nonzeros | u64 fillers | u32 biases
    blocks, each "u64 length | bytes", in this order:
      codebook   float32[2**weight_bits]                   (codes storage)
      bias       float32[biases]                            (biases > 0)
      values     float32[entries], or codes packed at weight_bits, or for Huffman:
                 table u8[2**weight_bits] (code length per symbol), then nbits u64 in an
                 8-byte block, then the MSB-first payload
      index      (sparse storage) same as codes at index_bits

Reading checks, before any array is used: magic, version, header CRC, the file length, every
section's framing and CRC (errors name the layer), the SHA-256, then every field against the
embedded graph and the storage rules.  Huffman streams are decoded (and checked) when a layer's
arrays are first requested (:meth:`sqsim.compress.model.CompressedLayer.validate`).  Any failure
is a :class:`~sqsim.errors.FormatError`.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import FormatError, SqsimError
from ..limits import check, check_file
from ..paths import atomic_write_bytes
from .accounting import STORAGE_KINDS
from .bitpack import packed_bytes
from .huffman import check_lengths
from .model import CompressedLayer, CompressedModel, Stream, _readonly

MAGIC = b"SQSIMSQZ"
VERSION = 1
_HEADER = struct.Struct("<8sHHIQ")
_LAYER = struct.Struct("<BBBBQQQQI")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
SHA_BYTES = 32
FLAG_CODES_HUFFMAN = 1
FLAG_INDEX_HUFFMAN = 2


# --- writing --------------------------------------------------------------------------------------
def _block(data: bytes) -> bytes:
    return _U64.pack(len(data)) + data


def _stream_blocks(stream: Stream) -> list[bytes]:
    if stream.encoding == "huffman":
        return [_block(stream.huffman_lengths.tobytes()), _block(_U64.pack(stream.nbits)),
                _block(stream.data.tobytes())]
    return [_block(stream.data.tobytes())]


def _layer_body(cl: CompressedLayer) -> bytes:
    name = cl.name.encode("utf-8")
    flags = (FLAG_CODES_HUFFMAN if cl.values.encoding == "huffman" else 0) | \
            (FLAG_INDEX_HUFFMAN if cl.index is not None and cl.index.encoding == "huffman" else 0)
    parts = [_U16.pack(len(name)), name,
             _LAYER.pack(STORAGE_KINDS.index(cl.storage), cl.weight_bits or 0, cl.index_bits or 0, flags,
                         cl.weights, cl.entries, cl.nonzeros, cl.fillers, cl.biases)]
    if cl.codebook is not None:
        parts.append(_block(cl.codebook.astype("<f4").tobytes()))
    if cl.bias is not None:
        parts.append(_block(cl.bias.astype("<f4").tobytes()))
    parts += _stream_blocks(cl.values)
    if cl.index is not None:
        parts += _stream_blocks(cl.index)
    return b"".join(parts)


def frame(graph_yaml: bytes, layer_bodies: list[bytes]) -> bytes:
    """Assemble a complete ``.sqz`` file from section bodies (header, CRCs, length, SHA-256)."""
    sections = b"".join(_U64.pack(len(b)) + b + _U32.pack(zlib.crc32(b)) for b in [graph_yaml] + layer_bodies)
    total = _HEADER.size + 4 + len(sections) + SHA_BYTES
    header = _HEADER.pack(MAGIC, VERSION, 0, len(layer_bodies), total)
    body = header + _U32.pack(zlib.crc32(header)) + sections
    return body + hashlib.sha256(body).digest()


def dumps(model: CompressedModel) -> bytes:
    """The ``.sqz`` bytes of ``model``."""
    from ..ir.yaml_format import dumps as graph_dumps
    return frame(graph_dumps(model.graph).encode("utf-8"), [_layer_body(cl) for cl in model.layers.values()])


def save_sqz(model: CompressedModel, path) -> int:
    """Write ``model`` to ``path`` atomically; returns the file size."""
    data = dumps(model)
    atomic_write_bytes(path, data)
    return len(data)


# --- reading --------------------------------------------------------------------------------------
class _Cursor:
    """Bounds-checked reads from a byte buffer; every failure is a FormatError naming ``where``."""

    def __init__(self, buf: memoryview, where: str):
        self.buf, self.pos, self.where = buf, 0, where

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or n > len(self.buf) - self.pos:
            raise FormatError(f"{self.where}: {what} needs {n} bytes at offset {self.pos}, only "
                              f"{len(self.buf) - self.pos} left (truncated or corrupted)")
        chunk = self.buf[self.pos: self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, st: struct.Struct, what: str):
        return st.unpack(self.take(st.size, what))

    def block(self, what: str, expected: int | None = None) -> memoryview:
        (n,) = self.unpack(_U64, f"{what} length")
        if expected is not None and n != expected:
            raise FormatError(f"{self.where}: {what} has {n} bytes, expected {expected}")
        return self.take(n, what)

    def done(self):
        if self.pos != len(self.buf):
            raise FormatError(f"{self.where}: {len(self.buf) - self.pos} unexpected bytes at the end")


def _split_sections(buf: memoryview, source: str, n_layers: int) -> list[memoryview]:
    cur = _Cursor(buf[_HEADER.size + 4: len(buf) - SHA_BYTES], source)
    bodies = []
    for i in range(n_layers + 1):
        what = "graph section" if i == 0 else f"layer section {i}"
        (n,) = cur.unpack(_U64, f"{what} length")
        body = cur.take(n, what)
        (crc,) = cur.unpack(_U32, f"{what} CRC32")
        if zlib.crc32(body) != crc:
            name = "" if i == 0 else _peek_name(body)
            raise FormatError(f"{source}: {what}{name}: CRC32 mismatch (file corrupted)")
        bodies.append(body)
    cur.done()
    return bodies


def _peek_name(body: memoryview) -> str:
    try:
        (n,) = _U16.unpack(body[:2])
        return f" (layer {bytes(body[2:2 + n]).decode('utf-8')!r})"
    except (struct.error, UnicodeDecodeError):
        return ""


def _floats(view: memoryview, where: str, what: str) -> np.ndarray:
    a = np.frombuffer(view, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise FormatError(f"{where}: {what} contains NaN or infinity")
    return _readonly(a)


def _read_stream(cur: _Cursor, where: str, what: str, count: int, bits: int, huffman: bool) -> Stream:
    if not huffman:
        data = np.frombuffer(cur.block(what, packed_bytes(count, bits)), dtype=np.uint8).copy()
        return Stream(count, bits, "fixed", _readonly(data), count * bits)
    lengths = np.frombuffer(cur.block(f"{what} Huffman table", 1 << bits), dtype=np.uint8).copy()
    problem = check_lengths(lengths)
    if problem:
        raise FormatError(f"{where}: {what} Huffman table: {problem}")
    (nbits,) = _U64.unpack(cur.block(f"{what} bit count", 8))
    used = lengths[lengths > 0]
    if count and used.size == 0:
        raise FormatError(f"{where}: {what} Huffman table has no codes for {count} symbols")
    lo, hi = (int(used.min()) * count, int(used.max()) * count) if count else (0, 0)
    if not lo <= nbits <= hi:
        raise FormatError(f"{where}: {what} has {nbits} bits, impossible for {count} symbols with code lengths "
                          f"{int(used.min()) if used.size else 0}..{int(used.max()) if used.size else 0}")
    data = np.frombuffer(cur.block(what, (nbits + 7) // 8), dtype=np.uint8).copy()
    return Stream(count, bits, "huffman", _readonly(data), int(nbits), _readonly(lengths))


def _read_layer(body: memoryview, source: str, graph, expected_name: str) -> CompressedLayer:
    cur = _Cursor(body, f"{source}: layer section {expected_name!r}")
    (name_len,) = cur.unpack(_U16, "name length")
    try:
        name = bytes(cur.take(name_len, "name")).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{cur.where}: layer name is not UTF-8") from None
    if name != expected_name:
        raise FormatError(f"{source}: layer section for {name!r} where the embedded graph's next conv/fc layer "
                          f"is {expected_name!r}")
    where = cur.where = f"{source}: layer {name!r}"
    storage_i, wbits, ibits, flags, weights, entries, nonzeros, fillers, biases = cur.unpack(_LAYER, "layer header")
    info = graph.info(name)
    if storage_i >= len(STORAGE_KINDS):
        raise FormatError(f"{where}: unknown storage kind {storage_i} (expected 0..{len(STORAGE_KINDS) - 1})")
    storage = STORAGE_KINDS[storage_i]
    codes, sparse = storage.endswith("codes"), storage.startswith("sparse")
    if weights != info.weights or biases != info.biases:
        raise FormatError(f"{where}: {weights} weights and {biases} biases, the embedded graph says "
                          f"{info.weights} and {info.biases}")
    if flags & ~(FLAG_CODES_HUFFMAN | FLAG_INDEX_HUFFMAN) or (flags & FLAG_CODES_HUFFMAN and not codes) or \
            (flags & FLAG_INDEX_HUFFMAN and not sparse):
        raise FormatError(f"{where}: flags {flags:#x} are invalid for {storage} storage")
    if codes != (1 <= wbits <= 16) or (not codes and wbits):
        raise FormatError(f"{where}: weight_bits {wbits} is invalid for {storage} storage (expected "
                          f"{'1..16' if codes else '0'})")
    if sparse != (1 <= ibits <= 16) or (not sparse and ibits):
        raise FormatError(f"{where}: index_bits {ibits} is invalid for {storage} storage (expected "
                          f"{'1..16' if sparse else '0'})")
    if sparse and (nonzeros + fillers != entries or entries > weights):
        raise FormatError(f"{where}: {nonzeros} non-zeros + {fillers} fillers must equal {entries} entries "
                          f"<= {weights} weights")
    if not sparse and (entries != weights or fillers or nonzeros > weights):
        raise FormatError(f"{where}: dense storage needs entries == weights ({weights}) and no fillers, got "
                          f"{entries} entries, {fillers} fillers, {nonzeros} non-zeros")
    codebook = None
    if codes:
        codebook = _floats(cur.block("codebook", 4 << wbits), where, "codebook")
        if codebook[0] != 0:
            raise FormatError(f"{where}: codebook entry 0 must be 0.0, got {codebook[0]!r}")
    bias = _floats(cur.block("bias", 4 * biases), where, "bias") if biases else None
    if codes:
        values = _read_stream(cur, where, "code stream", entries, wbits, bool(flags & FLAG_CODES_HUFFMAN))
    else:
        data = np.frombuffer(cur.block("value stream", 4 * entries), dtype=np.uint8).copy()
        values = Stream(entries, 32, "fp32", _readonly(data), 32 * entries)
    index = _read_stream(cur, where, "index stream", entries, ibits, bool(flags & FLAG_INDEX_HUFFMAN)) \
        if sparse else None
    cur.done()
    return CompressedLayer(name, tuple(info.weight_shape), storage, wbits or None, ibits or None, nonzeros, fillers,
                           codebook, bias, values, index, where)


def loads(data: bytes, source: str = "<sqz>") -> CompressedModel:
    """Parse and check ``.sqz`` bytes (see the module docstring for what is checked)."""
    buf = memoryview(bytes(data))
    if len(buf) < _HEADER.size + 4 + SHA_BYTES:
        raise FormatError(f"{source}: {len(buf)} bytes is too short for an .sqz file")
    magic, version, flags, n_layers, file_bytes = _HEADER.unpack(buf[:_HEADER.size])
    if magic != MAGIC:
        raise FormatError(f"{source}: not an .sqz file (magic {bytes(magic)!r}, expected {MAGIC!r})")
    (crc,) = _U32.unpack(buf[_HEADER.size:_HEADER.size + 4])
    if zlib.crc32(buf[:_HEADER.size]) != crc:
        raise FormatError(f"{source}: header CRC32 mismatch (file corrupted)")
    if version != VERSION:
        raise FormatError(f"{source}: .sqz version {version} is not supported (this sqsim reads version {VERSION})")
    if flags:
        raise FormatError(f"{source}: unknown header flags {flags:#x}")
    if file_bytes != len(buf):
        raise FormatError(f"{source}: header says {file_bytes} bytes, file has {len(buf)} (truncated or extended)")
    bodies = _split_sections(buf, source, n_layers)
    if hashlib.sha256(buf[:-SHA_BYTES]).digest() != bytes(buf[-SHA_BYTES:]):
        raise FormatError(f"{source}: SHA-256 mismatch (file corrupted)")
    from ..ir.yaml_format import loads as graph_loads
    check("text_bytes", len(bodies[0]), f"{source}: embedded graph")
    try:
        graph = graph_loads(bytes(bodies[0]).decode("utf-8"), source=f"{source} (embedded graph)")
    except UnicodeDecodeError:
        raise FormatError(f"{source}: embedded graph is not UTF-8 text") from None
    except SqsimError as e:
        raise FormatError(f"{source}: embedded graph is invalid: {e}") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:  # defensive: YAML of odd shape
        raise FormatError(f"{source}: embedded graph is invalid: {type(e).__name__}: {e}") from None
    names = [l.name for l in graph.weighted_layers()]
    if len(names) != n_layers:
        raise FormatError(f"{source}: {n_layers} layer sections for {len(names)} conv/fc layers in the embedded graph")
    layers = [_read_layer(body, source, graph, name) for body, name in zip(bodies[1:], names)]
    return CompressedModel(graph, layers, format="sqz", source=source, file_bytes=len(buf))


def load_sqz(path) -> CompressedModel:
    """Read and check an ``.sqz`` file (FormatError on any problem)."""
    path = Path(path)
    check_file(path, "binary")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror})") from None
    return loads(data, str(path))
