"""Compressed weights as the executor holds them: :class:`SparseWeights`.

A layer stays in the form its file stores it (Deep Compression, Han et al. ICLR 2016; REFERENCE.md
section 3): a codebook, one code per stored entry and one relative index per entry, each stream either
packed at a fixed width or canonical-Huffman coded.  Entry e sits ``rel_e`` zeros after the previous one
(``position = cumsum(rel + 1) - 1`` over the flattened Caffe blob) and holds ``codebook[code_e]``.
Huffman streams are kept byte for byte; fixed-width streams are repacked most significant bit first (the
kernels' bit order; same size).  Each stream has a small decoding table (:func:`code_table`).

To decode (or multiply) in parallel without a second copy, the executor records a *checkpoint* at the
first row of each of a few row blocks: the first entry, the position before it and the bit offset of
each stream.  That is 40 bytes per block (16 blocks on the CPU).  Fixed-width streams are randomly
addressable (entry e's symbol starts at bit ``e * bits``), so for them the executor also keeps *row
pointers*: each row's first entry and the position before it (8 bytes per row: 32 KiB for AlexNet's
fc6, against 4.9 MB of streams); the CPU kernels then decode or multiply rows independently.
Huffman-coded streams of at most 256 symbols and at least about 1 KiB also keep a *multi-symbol table*
(0.25-16 KiB, at most 1/4 of the stream) and the stream's bit offset every 256 entries (4 bytes), so the
CPU kernels read up to three symbols per lookup and eight segments of a stream at once
(:func:`sqsim.exec.cpu_kernels.read_lanes`).  Resident weight memory is the compressed size plus these
(plus one decode buffer for the largest decoded layer).

Variants of the same record: per-entry fp32 values instead of codes (pruned-only storage: ``code_bits``
0, ``codebook`` holds the values) and no index stream (dense code storage: ``index_bits`` 0, every
relative index 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ..errors import FormatError, GraphError
from ..weights import check_layer_names

STREAM_PAD = 8  # zero bytes after each stream: the kernels read up to 8 bytes at a time
ABSENT = np.zeros(3, np.int32)  # the table of an absent stream: T1 = T2 = 0, one entry "symbol 0, 0 bits"
CPU_BLOCKS = 16
# Block boundaries fall on multiples of this many rows where a layer's rows allow: whole register blocks
# of the direct-conv kernel (4 or 8 rows), so a conv task decodes its blocks in the kernel's layout
# on its own, zeroing them first (cpu_kernels.run_direct_blocks).
ROW_ALIGN = 8
SERIAL_DECODE_ENTRIES = 1 << 12


def _kernels():
    """The Numba kernels (imported on first use: importing this module does not load Numba)."""
    global _K
    if _K is None:
        from . import cpu_kernels
        _K = cpu_kernels
    return _K


_K = None


def pack_fixed(values, bits: int) -> np.ndarray:
    """Pack unsigned integers of ``bits`` bits each, LSB first (4-bit: low nibble first), the layout of the
    released SqueezeNet and :mod:`sqsim.compress.bitpack`."""
    v = np.asarray(values, dtype=np.int64).ravel()
    if v.size and (v.min() < 0 or v.max() >= (1 << bits)):
        raise ValueError(f"values must fit in {bits} bits")
    if bits == 8:
        return v.astype(np.uint8)
    return np.packbits(((v[:, None] >> np.arange(bits)) & 1).astype(np.uint8).ravel(), bitorder="little")


def _lsb_symbols(packed, bits: int, n: int, where: str) -> np.ndarray:
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


def code_table(lengths, lut_bits: int = 8) -> np.ndarray:
    """The two-level decoding table of a canonical prefix code given its code lengths (layout:
    :mod:`sqsim.exec.cpu_kernels`).

    Codes are assigned as :mod:`sqsim.compress.huffman` does (by length, then symbol; consecutive
    integers; RFC 1951 section 3.2.2).  The first level indexes ``T1 = min(longest, lut_bits)`` bits;
    each first-level prefix of longer codes gets a sub-table over the remaining ``longest - T1`` bits.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    symbols = np.flatnonzero(lengths)
    if symbols.size == 0:
        raise ValueError("a prefix code needs at least one symbol")
    max_len = int(lengths.max())
    if max_len > 16:
        raise ValueError(f"code length {max_len} exceeds 16 bits")
    t1 = min(max_len, lut_bits)
    t2 = max_len - t1
    from ..compress.huffman import canonical_codes
    codes = canonical_codes(lengths).astype(np.int64)
    first = np.zeros(1 << t1, np.int64)
    subtables: dict[int, np.ndarray] = {}
    for sym in symbols:  # one pass over the alphabet (<= 2**16 symbols), not over data
        length, code = int(lengths[sym]), int(codes[sym])
        ent = (int(sym) << 8) | length
        if length <= t1:
            lo = code << (t1 - length)
            first[lo: lo + (1 << (t1 - length))] = ent
        else:
            prefix = code >> (length - t1)
            sub = subtables.setdefault(prefix, np.zeros(1 << t2, np.int64))
            lo = (code << (max_len - length)) & ((1 << t2) - 1)
            sub[lo: lo + (1 << (max_len - length))] = ent
    start = 2 + (1 << t1)
    parts = [np.array([t1, t2], np.int64), first]
    for prefix, sub in subtables.items():
        first[prefix] = -start
        parts.append(sub)
        start += sub.size
    return np.concatenate(parts).astype(np.int32)


huffman_table = code_table

MULTI_TABLE_BITS = (12, 11, 10, 9, 8, 7, 6)  # widths tried for a stream's multi-symbol table, widest first
MULTI_TABLE_SHARE = 4  # ... the widest whose table is at most 1/4 of the stream's bytes
SEG_ENTRIES = 256  # entries between the segment checkpoints of streams with multi-symbol tables (cpu_kernels)
EMPTY_I32 = np.zeros(0, np.int32)


def multi_table(lengths, stream_bytes: int):
    """The multi-symbol decoding table of a canonical prefix code (layout:
    :func:`sqsim.exec.cpu_kernels.read_multi`: each W-bit window's whole codes, up to 3), or None where
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
    from ..compress.huffman import canonical_codes
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
    for i in range(3):  # the i-th code of each window, if all of it lies inside the window's w bits
        idx = ((v << used) & ((1 << w) - 1)) << (top - w)  # bits past the window read as 0: a code is
        sym, length = sym16[idx], len16[idx]              # accepted only if it ends inside the window
        going &= (length > 0) & (length <= w - used)
        packed[going] |= sym[going] << (8 + 8 * i)
        used[going] += length[going]
        count[going] += 1
    table = packed | (count << 4) | np.where(count > 0, used, 0)
    return np.concatenate([[w], table]).astype(np.uint32).view(np.int32)  # s2 may set the sign bit


def fixed_table(bits: int) -> np.ndarray:
    """The table of a fixed-width stream of ``bits`` bits per symbol (MSB first): ``[-bits, 0]``."""
    return ABSENT if bits == 0 else np.array([-bits, 0], np.int32)


def _stream(symbols, bits: int) -> tuple:
    """``(data, table, largest symbol)`` of a fixed-width stream of ``symbols``."""
    if bits == 0:
        return _padded([]), ABSENT, 0
    symbols = np.asarray(symbols, np.int64)
    return _msb_stream(symbols, bits), fixed_table(bits), int(symbols.max()) if symbols.size else 0


@dataclass(frozen=True, eq=False)
class SparseWeights:
    """One conv or fc layer in compressed form, with row-block checkpoints (see the module docstring).

    Attributes
    ----------
    name : str
    weight_shape : tuple of int
        Caffe layout: conv ``(out, in/groups, kh, kw)``, fc ``(out, in)``.
    codebook : ndarray of float32
        Shared values (``2**code_bits``), or one value per entry when ``code_bits`` is 0.
    code_data, code_table : the code stream (bits MSB first + padding) and its decoding table.
    code_bits : int
        Bits per code at fixed width (0: per-entry values, no code stream).
    rel_data, rel_table : the relative-index stream and its table (absent for a dense layer).
    index_bits : int
        Bits per relative index at fixed width (0: no index stream, every index 0).
    huffman : bool
        Whether either stream is Huffman coded.
    n_entries : int
        Stored entries (kept weights plus fillers).
    block_row : ndarray of int64 (blocks + 1)
        First row of each block, and the row count: at most ``blocks`` blocks of about equal rows, on
        multiples of ``ROW_ALIGN`` rows where the row count is one (then ``min(blocks, rows / ROW_ALIGN)``).
    block_entry, block_prev, block_code_bit, block_rel_bit : ndarray of int64
        Checkpoint of each block: first entry (and the end), position before it, stream bit offsets.
    bias : ndarray of float32 or None
    row_entry, row_prev : ndarray of int32 (int64 for layers of 2**31 weights or more) (rows + 1, rows),
        or None for Huffman streams
        Row pointers of fixed-width streams: each row's first entry (and the end), and the position
        before it; the CPU kernels then decode or multiply every row on its own (8 bytes per row).
    rel_mtable, code_mtable, seg_rel_bit, seg_code_bit : ndarray (empty where not used)
        Multi-symbol decoding tables of both Huffman streams (:func:`multi_table`) and the bit offset
        of each stream at every ``SEG_ENTRIES``-th entry (int32, or int64 for streams of 2**31 bits or
        more): the CPU kernels then decode eight segments of a stream at once.  Kept where every stream
        the layer has (codes, and relative indices unless it has none) is Huffman coded and large
        enough (see :func:`multi_table`); else all four arrays are empty.
    """
    name: str
    weight_shape: tuple
    codebook: np.ndarray
    code_data: np.ndarray
    code_table: np.ndarray
    code_bits: int
    rel_data: np.ndarray
    rel_table: np.ndarray
    index_bits: int
    n_entries: int
    block_row: np.ndarray
    block_entry: np.ndarray
    block_prev: np.ndarray
    block_code_bit: np.ndarray
    block_rel_bit: np.ndarray
    bias: np.ndarray | None
    huffman: bool = False
    row_entry: np.ndarray | None = None
    row_prev: np.ndarray | None = None
    rel_mtable: np.ndarray = field(default_factory=lambda: EMPTY_I32)
    code_mtable: np.ndarray = field(default_factory=lambda: EMPTY_I32)
    seg_rel_bit: np.ndarray = field(default_factory=lambda: EMPTY_I32)
    seg_code_bit: np.ndarray = field(default_factory=lambda: EMPTY_I32)

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def from_symbols(cls, name: str, weight_shape, codebook, codes, rel, bias=None, *, code_bits: int,
                     index_bits: int, blocks: int = CPU_BLOCKS) -> "SparseWeights":
        """From one code and one relative index per entry (fixed-width streams).

        ``codes`` None stores per-entry values: ``codebook`` then holds one float32 per entry.
        ``rel`` None means a dense layer (one entry per weight).
        """
        n = int(np.size(rel)) if rel is not None else int(np.size(codes if codes is not None else codebook))
        if codes is not None and np.size(codes) != n:
            raise FormatError(f"layer {name!r}: {np.size(codes)} codes but {n} relative indices")
        for nm, arr, bits in (("code", codes, code_bits), ("relative index", rel, index_bits)):
            if arr is not None and np.size(arr) and (np.min(arr) < 0 or np.max(arr) >= (1 << bits)):
                raise FormatError(f"layer {name!r}: a {nm} is outside 0..{(1 << bits) - 1} ({bits} bits)")
        cbits = code_bits if codes is not None else 0
        ibits = index_bits if rel is not None else 0
        cdata, ctable, cmax = _stream(codes if codes is not None else [], cbits)
        rdata, rtable, _ = _stream(rel if rel is not None else [], ibits)
        return cls._build(name, weight_shape, codebook, cdata, ctable, cbits, rdata, rtable, ibits, n, bias, blocks,
                          max_code=cmax, huffman=False)

    @classmethod
    def from_compressed_layer(cls, cl, blocks: int = CPU_BLOCKS, huffman_at_load: bool = False):
        """From a :class:`sqsim.compress.CompressedLayer`, keeping its streams as compressed as they are
        (Huffman streams as stored; fixed-width ones repacked MSB first, same size).  With
        ``huffman_at_load``, Huffman streams are decoded once here to fixed width (the P+Q form: larger,
        faster to decode per run).  Returns None for dense fp32 storage (nothing to decode: use
        ``cl.decode()``)."""
        cl.validate()  # FormatError naming the file and layer on any bad stream
        if cl.storage == "dense_fp32":
            return None
        where = cl.source or f"layer {cl.name!r}"

        def stream(st, bits):
            if st.encoding == "huffman" and huffman_at_load:
                symbols = cl.code_array() if st is cl.values else cl.index_array()
                return _stream(symbols, bits)
            if st.encoding == "huffman":
                present = np.flatnonzero(st.huffman_lengths)
                return _padded(st.data), code_table(st.huffman_lengths), int(present.max()) if present.size else 0
            return _stream(_lsb_symbols(st.data, bits, st.count, where), bits)

        def mtable(st):  # the multi-symbol table of a Huffman stream kept as stored (None: not kept)
            if st is None or st.encoding != "huffman" or huffman_at_load:
                return None
            return multi_table(st.huffman_lengths, np.size(st.data))

        if cl.weight_bits is None:  # per-entry fp32 values
            codebook = np.asarray(cl.value_array(), np.float32)
            cdata, ctable, cmax, cbits = _padded([]), ABSENT, 0, 0
        else:
            codebook = np.asarray(cl.codebook, np.float32)
            (cdata, ctable, cmax), cbits = stream(cl.values, cl.weight_bits), cl.weight_bits
        if cl.index is None:
            rdata, rtable, ibits = _padded([]), ABSENT, 0
        else:
            (rdata, rtable, _), ibits = stream(cl.index, cl.index_bits), cl.index_bits
        huff = not huffman_at_load and (cl.values.encoding == "huffman" or
                                        (cl.index is not None and cl.index.encoding == "huffman"))
        code_mt, rel_mt = mtable(cl.values) if cl.weight_bits is not None else None, mtable(cl.index)
        # every stream present has a table (both, or the code stream of a layer without an index stream)
        fast = None if code_mt is None or (rel_mt is None and cl.index is not None) else \
            (EMPTY_I32 if rel_mt is None else rel_mt, code_mt)
        return cls._build(cl.name, cl.weight_shape, codebook, cdata, ctable, cbits, rdata, rtable, ibits,
                          cl.entries, cl.bias, blocks, source=where, max_code=cmax, huffman=huff, mtables=fast)

    @classmethod
    def _build(cls, name, weight_shape, codebook, code_data, code_table, code_bits, rel_data, rel_table,
               index_bits, n_entries, bias, blocks, source=None, max_code=0, huffman=False, mtables=None,
               align=ROW_ALIGN):
        from . import cpu_kernels as K
        where = source or f"layer {name!r}"
        shape = tuple(int(s) for s in weight_shape)
        rows = shape[0]
        row_len = int(np.prod(shape[1:]))
        codebook = np.ascontiguousarray(codebook, dtype=np.float32).ravel()
        if not np.all(np.isfinite(codebook)):
            raise FormatError(f"{where}: codebook contains NaN or infinity")
        if code_bits == 0 and codebook.size != n_entries:
            raise FormatError(f"{where}: {codebook.size} values for {n_entries} entries")
        if code_bits and n_entries and max_code >= codebook.size:
            raise FormatError(f"{where}: code {max_code} is outside the codebook of {codebook.size} values")
        if bias is not None:
            bias = np.ascontiguousarray(bias, dtype=np.float32).ravel()
            if bias.shape != (rows,):
                raise FormatError(f"{where}: bias has {bias.size} values; expected {rows}")
        step = align if rows % align == 0 else 1
        nb = max(1, min(int(blocks), rows // step))
        block_row = (np.arange(nb + 1, dtype=np.int64) * (rows // step)) // nb * step
        block_entry = np.zeros(nb + 1, np.int64)
        block_prev, block_cbit, block_rbit = (np.zeros(nb, np.int64) for _ in range(3))
        seg_r = seg_c = EMPTY_I32
        if mtables is not None:
            dtype = np.int64 if 8 * max(code_data.size, rel_data.size) >= 2 ** 31 else np.int32
            seg_c = np.zeros(int(n_entries) // SEG_ENTRIES + 1, dtype)
            seg_r = np.zeros_like(seg_c) if mtables[0].size else EMPTY_I32  # none without an index stream
        status = K.scan_checkpoints(code_data, code_table, code_bits == 0, rel_data, rel_table, int(n_entries),
                                    rows * row_len, row_len, block_row, block_entry, block_prev, block_cbit,
                                    block_rbit, seg_c, seg_r)
        if status == -1:
            raise FormatError(f"{where}: a code or index stream holds an invalid code or ends early")
        if status == -2:
            raise FormatError(f"{where}: the sparse entries run past the {rows * row_len} weights of shape {shape}")
        row_entry = row_prev = None
        # fixed width: row pointers (one more scan; the bit offsets follow from the entry)
        if not huffman and code_bits <= 16 and index_bits <= 16:
            row_entry = np.zeros(rows + 1, np.int64)
            row_prev = np.zeros(rows, np.int64)
            K.scan_checkpoints(code_data, code_table, code_bits == 0, rel_data, rel_table, int(n_entries),
                               rows * row_len, row_len, np.arange(rows + 1, dtype=np.int64), row_entry, row_prev,
                               np.zeros(rows, np.int64), np.zeros(rows, np.int64), EMPTY_I32, EMPTY_I32)
            if max(int(n_entries), rows * row_len) < 2 ** 31:  # 8 bytes per row instead of 16
                row_entry, row_prev = row_entry.astype(np.int32), row_prev.astype(np.int32)
        rel_mt, code_mt = mtables if mtables is not None else (EMPTY_I32, EMPTY_I32)
        return cls(name, shape, codebook, code_data, code_table, int(code_bits), rel_data, rel_table,
                   int(index_bits), int(n_entries), block_row, block_entry, block_prev, block_cbit, block_rbit,
                   bias, bool(huffman), row_entry, row_prev, rel_mt, code_mt, seg_r, seg_c)

    def reblocked(self, blocks: int, align: int = 1) -> "SparseWeights":
        """The same layer with checkpoints for ``blocks`` row blocks, on multiples of ``align`` rows where
        the rows allow (the GPU wants one per row)."""
        return SparseWeights._build(self.name, self.weight_shape, self.codebook, self.code_data, self.code_table,
                                    self.code_bits, self.rel_data, self.rel_table, self.index_bits, self.n_entries,
                                    self.bias, blocks, huffman=self.huffman,
                                    mtables=(self.rel_mtable, self.code_mtable) if self.code_mtable.size else None,
                                    align=align)

    # --- properties ---------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return self.weight_shape[0]

    @cached_property  # read on every decode: computed once
    def row_len(self) -> int:
        return int(np.prod(self.weight_shape[1:]))

    @property
    def resident_bytes(self) -> int:
        """Bytes held: codebook (or values), both streams and their tables, checkpoints, bias."""
        arrays = (self.codebook, self.code_data, self.rel_data, self.block_row, self.block_entry, self.block_prev,
                  self.block_code_bit, self.block_rel_bit, self.rel_mtable, self.code_mtable, self.seg_rel_bit,
                  self.seg_code_bit) + \
            tuple(a for a in (self.row_entry, self.row_prev) if a is not None)
        tables = sum(t.nbytes for t in (self.code_table, self.rel_table) if t is not ABSENT)
        return sum(a.nbytes for a in arrays) + tables + (self.bias.nbytes if self.bias is not None else 0)

    def kernel_args(self) -> tuple:
        """The arguments the decode and sparse-matmul kernels take, in order."""
        return (self.codebook, self.code_data, self.code_table, self.code_bits == 0, self.rel_data, self.rel_table,
                self.block_row, self.block_entry, self.block_prev, self.block_code_bit, self.block_rel_bit,
                self.row_len)

    def huffman_args(self) -> tuple:
        """The CPU Huffman kernels' further arguments (after :meth:`kernel_args`): multi-symbol tables and
        segment checkpoints of the index and code streams (empty arrays where not kept)."""
        return self.rel_mtable, self.code_mtable, self.seg_rel_bit, self.seg_code_bit

    @cached_property
    def _row_args(self) -> tuple:
        return (self.codebook, self.code_data, self.code_bits, self.rel_data, self.index_bits, self.row_entry,
                self.row_prev, self.row_len)

    def row_kernel_args(self) -> tuple:
        """The arguments of the row-pointer kernels (fixed-width streams only), in order."""
        return self._row_args

    # --- decoding -------------------------------------------------------------------------------------
    def decode_into(self, out: np.ndarray, kr: int = 1) -> np.ndarray:
        """Decode into ``out`` (float32, >= rows x row_len elements, reused); returns the (rows, row_len)
        view, or with ``kr`` > 1 the direct-conv kernel's blocks ``(rows/kr, row_len, kr)`` (what
        :meth:`sqsim.exec.direct_conv.DirectConvKernel.pack` gives; ``rows`` a multiple of ``kr``),
        decoded straight into that order."""
        K = _kernels()
        if kr < 1 or self.rows % kr:
            raise ValueError(f"layer {self.name!r}: {self.rows} rows do not form blocks of {kr}")
        flat = out.reshape(-1)[: self.rows * self.row_len]
        # below a few thousand entries a parallel launch (about 2 us on Numba's OpenMP pool, 100+ us on
        # its workqueue pool) costs more than it saves
        parallel = self.n_entries >= SERIAL_DECODE_ENTRIES
        if self.row_entry is not None:
            (K.decode_rows if parallel else K.decode_rows_serial)(*self.row_kernel_args(), kr, flat)
        elif parallel:
            import numba
            K.decode_blocks(*self.kernel_args(), *self.huffman_args(), numba.get_num_threads(), kr, flat)
        else:
            K.decode_blocks_serial(*self.kernel_args(), *self.huffman_args(), kr, flat)
        if kr > 1:
            return flat.reshape(self.rows // kr, self.row_len, kr)
        return flat.reshape(self.rows, self.row_len)

    def to_dense(self):
        """Dense :class:`~sqsim.weights.LayerWeights` in the Caffe layout."""
        from ..weights import LayerWeights
        w = self.decode_into(np.empty(self.rows * self.row_len, np.float32))
        return LayerWeights(w.reshape(self.weight_shape).copy(), None if self.bias is None else self.bias.copy())

    def with_bias(self, bias) -> "SparseWeights":
        return replace(self, bias=None if bias is None else np.ascontiguousarray(bias, np.float32))


def sparse_from_model(model, blocks: int = CPU_BLOCKS, huffman_at_load: bool = False) -> dict:
    """``{layer: SparseWeights or LayerWeights}`` from a :class:`sqsim.compress.CompressedModel`: compressed
    layers stay compressed (see :meth:`SparseWeights.from_compressed_layer`); dense fp32 layers (nothing to
    decode) come back as LayerWeights."""
    layers = getattr(model, "layers", None)
    if not isinstance(layers, dict):
        raise GraphError(f"expected weights ({{layer: LayerWeights}}) or a compressed model, got "
                         f"{type(model).__name__}")
    out = {}
    for name, cl in layers.items():
        sw = SparseWeights.from_compressed_layer(cl, blocks, huffman_at_load)
        out[name] = cl.decode() if sw is None else sw
    return out


def check_sparse_against(graph, sparse: dict, source: str = "model", partial: bool = False) -> None:
    """Check that ``sparse`` (``{layer: SparseWeights}``) fits the graph's weighted layers exactly (with
    ``partial``: fits those it names, the others being given densely)."""
    check_layer_names(graph, sparse, source, partial=partial)
    for name in sorted(set(sparse)):
        info = graph.info(name)
        sw = sparse[name]
        if tuple(sw.weight_shape) != tuple(info.weight_shape) and \
                not (info.op == "fc" and sw.rows * sw.row_len == info.weights and sw.rows == info.weight_shape[0]):
            raise GraphError(f"{source}: layer {name!r}: weight shape {tuple(sw.weight_shape)} does not match "
                             f"the architecture's {tuple(info.weight_shape)}")
        if bool(info.biases) != (sw.bias is not None):
            raise GraphError(f"{source}: layer {name!r}: the architecture {'has' if info.biases else 'has no'} "
                             f"bias but the model {'has none' if sw.bias is None else 'has one'}")
