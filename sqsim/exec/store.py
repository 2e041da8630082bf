"""Compressed weights as the executor holds them: :class:`SparseWeights`.

A layer stays in the form its file stores it (Deep Compression, Han et al. ICLR 2016; REFERENCE.md
section 3): a codebook, one code per stored entry and one relative index per entry, each stream either
packed at a fixed width or canonical-Huffman coded.  Entry e sits ``rel_e`` zeros after the previous one
(``position = cumsum(rel + 1) - 1`` over the flattened Caffe blob) and holds ``codebook[code_e]``.
Huffman streams are kept byte for byte; fixed-width streams are repacked most significant bit first (the
kernels' bit order; same size).  Each stream has a small decoding table (:func:`sqsim.exec.kernels.streams.code_table`).

To decode (or multiply) in parallel without a second copy, the executor records a *checkpoint* at the
first row of each of a few row blocks: the first entry, the position before it and the bit offset of
each stream.  That is 40 bytes per block (16 blocks on the CPU).  Fixed-width streams are randomly
addressable (entry e's symbol starts at bit ``e * bits``), so for them the executor also keeps *row
pointers*: each row's first entry and the position before it (8 bytes per row: 32 KiB for AlexNet's
fc6, against 4.9 MB of streams); the CPU kernels then decode or multiply rows independently.
Huffman-coded streams of at most 256 symbols and at least about 1 KiB also keep a *multi-symbol table*
(0.25-16 KiB, at most 1/4 of the stream) and the stream's bit offset every 256 entries (4 bytes), so the
CPU kernels read up to three symbols per lookup and eight segments of a stream at once
(:func:`sqsim.exec.kernels.cpu.huffman.read_lanes`).  Resident weight memory is the compressed size plus these
(plus one decode buffer for the largest decoded layer).

Variants of the same record: per-entry fp32 values instead of codes (pruned-only storage: ``code_bits``
0, ``codebook`` holds the values) and no index stream (dense code storage: ``index_bits`` 0, every
relative index 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..errors import FormatError, GraphError
from ..weights import check_layer_names
from .kernels.streams import (ABSENT, CPU_BLOCKS, EMPTY_I32, ROW_ALIGN, SEG_ENTRIES, block_rows, code_table,
                              fixed_stream, lsb_symbols, multi_table, padded)



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
        Multi-symbol decoding tables of both Huffman streams (:func:`.kernels.streams.multi_table`) and the bit offset
        of each stream at every ``SEG_ENTRIES``-th entry (int32, or int64 for streams of 2**31 bits or
        more): the CPU kernels then decode eight segments of a stream at once.  Kept where every stream
        the layer has (codes, and relative indices unless it has none) is Huffman coded and large
        enough (see :func:`.kernels.streams.multi_table`); else all four arrays are empty.
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
        cdata, ctable, cmax = fixed_stream(codes if codes is not None else [], cbits)
        rdata, rtable, _ = fixed_stream(rel if rel is not None else [], ibits)
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
                return fixed_stream(symbols, bits)
            if st.encoding == "huffman":
                present = np.flatnonzero(st.huffman_lengths)
                return padded(st.data), code_table(st.huffman_lengths), int(present.max()) if present.size else 0
            return fixed_stream(lsb_symbols(st.data, bits, st.count, where), bits)

        def mtable(st):  # the multi-symbol table of a Huffman stream kept as stored (None: not kept)
            if st is None or st.encoding != "huffman" or huffman_at_load:
                return None
            return multi_table(st.huffman_lengths, np.size(st.data))

        if cl.weight_bits is None:  # per-entry fp32 values
            codebook = np.asarray(cl.value_array(), np.float32)
            cdata, ctable, cmax, cbits = padded([]), ABSENT, 0, 0
        else:
            codebook = np.asarray(cl.codebook, np.float32)
            (cdata, ctable, cmax), cbits = stream(cl.values, cl.weight_bits), cl.weight_bits
        if cl.index is None:
            rdata, rtable, ibits = padded([]), ABSENT, 0
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
        from .kernels.cpu.huffman import scan_checkpoints
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
        block_row = block_rows(rows, blocks, align)
        nb = block_row.size - 1
        block_entry = np.zeros(nb + 1, np.int64)
        block_prev, block_cbit, block_rbit = (np.zeros(nb, np.int64) for _ in range(3))
        seg_r = seg_c = EMPTY_I32
        if mtables is not None:
            dtype = np.int64 if 8 * max(code_data.size, rel_data.size) >= 2 ** 31 else np.int32
            seg_c = np.zeros(int(n_entries) // SEG_ENTRIES + 1, dtype)
            seg_r = np.zeros_like(seg_c) if mtables[0].size else EMPTY_I32  # none without an index stream
        status = scan_checkpoints(code_data, code_table, code_bits == 0, rel_data, rel_table, int(n_entries),
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
            scan_checkpoints(code_data, code_table, code_bits == 0, rel_data, rel_table, int(n_entries),
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
        """Decode into ``out`` (float32, >= rows x row_len elements, reused) on the CPU; returns the (rows,
        row_len) view, or with ``kr`` > 1 the direct-conv kernel's blocks ``(rows/kr, row_len, kr)``
        (:func:`sqsim.exec.kernels.cpu.decode_dense.decode_into`)."""
        from .kernels.cpu.decode_dense import decode_into
        return decode_into(self, out, kr)

    def to_dense(self):
        """Dense :class:`~sqsim.weights.LayerWeights` in the Caffe layout."""
        from ..weights import LayerWeights
        w = self.decode_into(np.empty(self.rows * self.row_len, np.float32))
        return LayerWeights(w.reshape(self.weight_shape).copy(), None if self.bias is None else self.bias.copy())



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
