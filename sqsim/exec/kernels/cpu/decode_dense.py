"""A compressed layer decoded whole into dense weights on the CPU: the entry point that picks the kernel
(row pointers for fixed-width streams, row blocks otherwise; parallel or serial by size)."""
from __future__ import annotations

import numba
import numpy as np

from .decode import decode_blocks, decode_range
from .rows import row_kernels

# Below a few thousand entries a parallel launch (about 2 us on Numba's OpenMP pool, 100+ us on its
# workqueue pool) costs more than it saves.
SERIAL_DECODE_ENTRIES = 1 << 12


def decode_into(sw, out: np.ndarray, kr: int = 1) -> np.ndarray:
    """Decode the :class:`~sqsim.exec.store.SparseWeights` ``sw`` into ``out`` (float32, at least rows x
    row_len elements, reused); returns the ``(rows, row_len)`` view, or with ``kr`` > 1 the direct-conv
    kernel's blocks ``(rows/kr, row_len, kr)`` (what :meth:`.llvm.DirectConvKernel.pack` gives; ``rows`` a
    multiple of ``kr``), decoded straight into that order."""
    if kr < 1 or sw.rows % kr:
        raise ValueError(f"layer {sw.name!r}: {sw.rows} rows do not form blocks of {kr}")
    flat = out.reshape(-1)[: sw.rows * sw.row_len]
    parallel = sw.n_entries >= SERIAL_DECODE_ENTRIES
    if sw.row_entry is not None:
        rows = row_kernels(sw.code_bits, sw.index_bits)
        if parallel:
            rows.decode(*sw.row_kernel_args(), kr, flat)
        else:
            rows.decode_range(0, sw.rows, *sw.row_kernel_args(), kr, flat)
    elif parallel:
        decode_blocks(*sw.kernel_args(), *sw.huffman_args(), numba.get_num_threads(), kr, flat)
    else:
        _decode_serial(sw, kr, flat)
    if kr > 1:
        return flat.reshape(sw.rows // kr, sw.row_len, kr)
    return flat.reshape(sw.rows, sw.row_len)


def _decode_serial(sw, kr: int, flat: np.ndarray) -> None:
    """All row blocks as one run on this thread (small layers); zeroed first where the run's blocks are
    not whole blocks of ``kr`` rows and not every weight is stored (see :func:`.decode.decode_range`)."""
    nb = sw.block_row.size - 1
    whole = not np.any(sw.block_row % kr)
    all_stored = sw.rel_table[0] == 0 and sw.rel_table.size == 3 and sw.n_entries == sw.rows * sw.row_len
    if not whole and not all_stored:
        flat[:] = 0.0
    decode_range(0, nb, *sw.kernel_args(), *sw.huffman_args(), kr, flat)
