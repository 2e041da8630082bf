"""How many bytes a layer's weights take on a given accelerator.

Weight bytes come from the exact per-layer accounting of :mod:`sqsim.compress.accounting`
(``profile_layer_bytes`` for a compression profile, ``CompressedModel.layer_sizes()`` for an actual
compressed model): codes, relative indices, fillers, codebook and biases.  Two hardware rules on
top:

* uncompressed values (a dense layer, or pruned-only fp32 values) are stored at the hardware's
  weight precision (``precision.weights``, by default the datapath width: a dense model is
  converted to the accelerator's number format), biases too;
  codes, indices and the codebook stay as the accounting says;
* a hardware with a fixed weight format (``weight_format.code_bits``/``index_bits``, EIE's 4-bit
  codes and 4-bit indices) re-encodes the same non-zeros in that format: the codes are re-quantised
  to ``2**code_bits`` shared values, fillers are recounted for the new index width, the codebook
  and biases are stored at the datapath width, and a sparse-column dataflow adds its column
  pointers (``pointer_bits`` per column per PE).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WeightStorage:
    """A layer's weights as stored on one accelerator.

    Attributes
    ----------
    name : str
    weights, biases : int
    stream_bytes : float
        The per-weight part (codes + indices, or dense values): it is what tiles split.
    fixed_bytes : float
        Loaded once per layer and kept while it runs: codebook, biases, column pointers.
    entries, nonzeros : int
        Stored entries (non-zeros + fillers; all weights when dense) and non-zero weights.
    coded, sparse : bool
        Weight-sharing codes (decoded through the codebook); relative indices.
    source : str
        ``dense``, ``profile`` or ``model``.
    pointer_bytes : float
        Bytes per column pointer (sparse-column formats).
    pointers_total_bytes : float
        All of the layer's column pointers (part of ``fixed_bytes``).
    """
    name: str
    weights: int
    biases: int
    stream_bytes: float
    fixed_bytes: float
    entries: int
    nonzeros: int
    coded: bool
    sparse: bool
    source: str
    pointer_bytes: float = 0.0
    pointers_total_bytes: float = 0.0

    @property
    def total_bytes(self) -> float:
        return self.stream_bytes + self.fixed_bytes

    @property
    def bytes_per_weight(self) -> float:
        """Stream bytes per (dense) weight: what one element of a weight tile costs."""
        return self.stream_bytes / self.weights


def dense_storage(info, word_bytes: float) -> WeightStorage:
    """Uncompressed weights and biases at ``word_bytes`` per value (the weight precision)."""
    return WeightStorage(info.name, info.weights, info.biases, info.weights * word_bytes,
                         info.biases * word_bytes, info.weights, info.weights, False, False, "dense")


def weight_storage(info, hw, size=None, source: str = "profile", groups: int = 1) -> WeightStorage:
    """The :class:`WeightStorage` of a conv/fc layer on ``hw``.

    Parameters
    ----------
    info : sqsim.ir.LayerInfo
    hw : sqsim.hw.HardwareSpec
    size : sqsim.compress.accounting.LayerSize or None
        The layer's exact storage; None: dense.
    source : str
        Recorded in the result (``profile`` or ``model``).
    groups : int
        Convolution groups (EIE keeps one pointer array per group's matrix).
    """
    word = hw.weight_value_bytes
    fmt = hw.weight_format
    if fmt.code_bits is not None:
        return _fixed_format(info, hw, size, source, groups)
    if size is None or size.storage == "dense_fp32":
        return dense_storage(info, word)
    sparse = size.index_bits is not None
    if size.weight_bits is None:  # pruned fp32 values -> datapath width values + indices
        return WeightStorage(info.name, info.weights, info.biases, size.entries * word + size.index_bytes,
                             info.biases * word, size.entries, size.nonzeros, False, sparse, source)
    return WeightStorage(info.name, info.weights, info.biases, size.codes_bytes + size.index_bytes,
                         size.codebook_bytes + size.bias_bytes, size.entries, size.nonzeros, True, sparse, source)


def slice_fillers(info, pes: int, groups: int, density: float, index_bits: int) -> float:
    """Expected fillers when each PE stores its own slice of every column (EIE's interleaved CSC):
    relative indices count zeros within the slice, and trailing zeros need no entry.  For a slice
    of ``L`` rows with independent non-zeros of probability ``d`` and ``M = 2**index_bits``::

        E[fillers] = d * sum_{j >= 1, jM < L} (L - j*M) * (1 - d)**(j*M)

    (a non-zero at slice row ``i`` needs ``floor(gap / M)`` fillers; ``P(gap >= jM) = (1-d)**(jM)``
    for ``i >= jM``), summed over the PEs' slice heights and every column of every group."""
    k_total = info.weight_shape[0] if info.weight_shape else 1
    rows = k_total // groups                                      # rows of one group's matrix
    columns = info.weights // k_total                             # per output row: C/g * R * S
    m = 1 << index_bits
    total = 0.0
    for pe in range(min(pes, rows)):
        height = len(range(pe, rows, pes))
        total += density * sum((height - j * m) * (1.0 - density) ** (j * m) for j in range(1, (height - 1) // m + 1))
    return total * columns * groups


def _fixed_format(info, hw, size, source, groups) -> WeightStorage:
    from ..compress.sparse import expected_fillers
    fmt = hw.weight_format
    word = hw.weight_value_bytes
    index_bits = fmt.index_bits
    nonzeros = info.weights if size is None else size.nonzeros
    if index_bits is None:
        fillers = 0
    elif hw.dataflow == "eie_sparse" and nonzeros < info.weights:
        fillers = int(round(slice_fillers(info, hw.array.pes, groups, nonzeros / info.weights, index_bits)))
    elif size is not None and size.index_bits == index_bits:
        fillers = size.fillers
    elif nonzeros < info.weights:
        fillers = int(round(expected_fillers(info.weights, nonzeros, index_bits)))
    else:
        fillers = 0
    entries = nonzeros + fillers
    stream = math.ceil(entries * (fmt.code_bits + (index_bits or 0)) / 8)
    fixed = (1 << fmt.code_bits) * word + info.biases * word
    pointer = pointers = 0.0
    if hw.dataflow == "eie_sparse":
        pointer = fmt.pointer_bits / 8
        columns = info.weights // info.weight_shape[0] if info.weight_shape else 0  # per output row
        pointers = groups * hw.array.pes * (columns + 1) * pointer
        fixed += pointers
    return WeightStorage(info.name, info.weights, info.biases, stream, fixed, entries, nonzeros, True,
                         index_bits is not None, "dense" if size is None else source, pointer, pointers)


def huffman_storage_bytes(storage: WeightStorage, size, hw) -> float:
    """A layer's weights as ``storage`` holds them on ``hw``, with the code and index streams
    Huffman-coded instead of fixed width (Deep Compression section 4, P+Q+H): what the model
    takes stored off-chip that way.  Codebook, biases and column pointers stay as they are; each
    coded stream adds its table (one length byte per symbol, as ``.sqz`` stores it).

    No shipped hardware model decodes Huffman (EIE reads fixed 4-bit codes and indices; Deep
    Compression keeps Huffman for off-chip storage only), so this size changes no traffic or fit:
    it is the ``model.huffman_bytes`` of ``sqsim analyze`` (docs/models.md).

    Parameters
    ----------
    storage : WeightStorage
    size : sqsim.compress.accounting.LayerSize or None
        The accounting record ``storage`` came from (None: dense, nothing to code).  A profile's
        record without Huffman sizes gets the expected ones
        (:func:`sqsim.compress.expected.expected_huffman`); an actual model's has its own.
    hw : sqsim.hw.HardwareSpec
        A fixed weight format (``weight_format.code_bits``) re-encodes the weights: its streams'
        expected Huffman sizes are used.
    """
    from ..compress.accounting import LayerSize
    from ..compress.expected import expected_huffman
    fmt = hw.weight_format
    if fmt.code_bits is not None:
        ib = fmt.index_bits
        s = LayerSize(storage.name, "sparse_codes" if ib is not None else "dense_codes", storage.weights,
                      storage.biases, storage.nonzeros, storage.entries - storage.nonzeros if ib is not None else 0,
                      storage.entries, fmt.code_bits, ib, 0, 0, 0, 0)
        s = expected_huffman(s)
        return storage.fixed_bytes + s.huffman_codes_bytes + s.huffman_index_bytes + s.huffman_table_bytes
    if size is None or size.storage == "dense_fp32":
        return storage.total_bytes
    if size.huffman_codes_bytes is None:
        size = expected_huffman(size)
    coded = size.huffman_index_bytes + size.huffman_table_bytes - size.index_bytes
    if size.weight_bits is not None:                       # codes coded too (fp32 values are not)
        coded += size.huffman_codes_bytes - size.codes_bytes
    return storage.total_bytes + coded
