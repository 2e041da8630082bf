"""Numba loops that run the llvmlite direct-conv kernels (:mod:`.llvm`) in parallel, one kernel call per row
of a table of integer arguments (addresses and sizes: no Python in the tasks, no GIL between them), and
the fused forms in which each task first decodes the rows of a compressed layer that its calls read, so
every weight is decoded and then read on one core, while still in its cache."""
from __future__ import annotations

from functools import lru_cache

import numba
from numba import njit, prange

from . import JIT as _OPTS
from . import with_globals
from .decode import decode_range, decode_tap_range
from .intrinsics import call_direct

@njit(parallel=True, **_OPTS)
def run_direct(addr, calls, part, part_bytes):
    """Run the direct-conv kernel at ``addr`` once per row of ``calls (M, 12)`` (its arguments as
    integers: weights, input, offsets, output, ldy, nkb, ntiles, taps, bias, relu, vdst, vmask),
    the rows in parallel; each thread's partial sums (the blocked form) at ``part + tid*part_bytes``."""
    for i in prange(calls.shape[0]):
        _direct_rows(addr, calls, i, i + 1, part + numba.get_thread_id() * part_bytes)


@njit(inline="always")
def _direct_rows(addr, calls, i0, i1, part):
    """Rows ``i0 <= i < i1`` of :func:`run_direct`'s calls, one after another on this thread."""
    for i in range(i0, i1):
        row = calls[i]
        a = (row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10], row[11])
        call_direct(addr, a, part)


@njit(parallel=True, **_OPTS)
def run_direct_blocks(addr, calls, task_call, task_block, part, part_bytes, codebook, cdata, ctable, cvals, rdata,
                      rtable, block_row, block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg,
                      cseg, kr, out):
    """:func:`run_direct` on a layer decoded task by task: task t decodes row blocks ``task_block[t, 0] <= b <
    task_block[t, 1]`` (whole blocks of ``kr`` rows: :func:`decode.rows_whole`) into ``out``, the kernel's
    blocked weights, then runs calls ``task_call[t] .. task_call[t+1]-1``, which read only those rows.
    Each weight is decoded and then read on one core, while still in its cache, in one parallel loop."""
    for t in prange(task_block.shape[0]):
        decode_range(task_block[t, 0], task_block[t, 1], codebook, cdata, ctable, cvals, rdata, rtable, block_row,
                     block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg, kr, out)
        _direct_rows(addr, calls, task_call[t], task_call[t + 1], part + numba.get_thread_id() * part_bytes)


@njit(parallel=True, **_OPTS)
def run_sparse_blocks(addr, calls, task_call, task_block, params, params_bytes, codebook, cdata, ctable, cvals, rdata,
                      rtable, block_row, block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg,
                      cseg, xoff, val, off, rowptr, ncb):
    """The sparse direct-conv kernel at ``addr`` on a layer decoded task by task: task t decodes row blocks
    ``task_block[t, 0] <= b < task_block[t, 1]`` into its tap lists, then runs calls ``task_call[t] ..
    task_call[t+1]-1`` (:func:`run_direct`'s rows), which read only those rows' lists, still in its cache;
    each thread's kernel parameters (partial sums, channel blocks, :mod:`.llvm`) at ``params +
    tid*params_bytes``."""
    for t in prange(task_block.shape[0]):
        decode_tap_range(task_block[t, 0], task_block[t, 1], codebook, cdata, ctable, cvals, rdata, rtable,
                         block_row, block_entry, block_prev, block_cbit, block_rbit, row_len, rmt, cmt, rseg, cseg,
                         xoff, val, off, rowptr, ncb)
        _direct_rows(addr, calls, task_call[t], task_call[t + 1], params + numba.get_thread_id() * params_bytes)


@lru_cache(maxsize=None)
def run_direct_rows(code_bits: int, index_bits: int):
    """:func:`run_direct_blocks` for a layer of fixed-width streams of these widths (its rows decoded by
    :attr:`.rows.RowKernels.decode_range`): ``(addr, calls, task_call, task_row, part, part_bytes,
    *row_kernel_args, kr, out)``; task t decodes rows ``task_row[t, 0] <= r < task_row[t, 1]`` (whole
    blocks of ``kr`` rows) into ``out``, then runs its calls."""
    from .rows import row_kernels
    cb, ib = int(code_bits), int(index_bits)

    def run(addr, calls, task_call, task_row, part, part_bytes, codebook, cdata, cbits, rdata, ibits, row_entry,
            row_prev, row_len, kr, out):
        for t in prange(task_row.shape[0]):
            _rows_body(task_row[t, 0], task_row[t, 1], codebook, cdata, cb, rdata, ib, row_entry, row_prev, row_len,
                       kr, out)
            _direct_rows(addr, calls, task_call[t], task_call[t + 1], part + numba.get_thread_id() * part_bytes)
    return njit(parallel=True, **_OPTS)(with_globals(run, _rows_body=row_kernels(cb, ib).decode_range))
