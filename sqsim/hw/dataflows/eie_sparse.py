"""EIE's sparse matrix-vector dataflow (Han et al., ISCA 2016), analytically, with its load imbalance.

EIE stores a layer's weight matrix (``K`` rows x ``C*R*S`` columns; a convolution is one
matrix-vector product per output pixel, im2col style) in compressed sparse column form, rows
interleaved over the ``pes`` PEs; each entry is a weight-sharing code plus a relative row index.
Its leading-non-zero detector scans the input activations and broadcasts each non-zero one with
its column index; every PE then walks its slice of that column (one entry per cycle), decodes
code and index and accumulates into its output rows.

* Activations scanned: every input element of every window that is not padding:
  ``N * C * sum_p rows(p) * sum_q cols(q)`` (:func:`~sqsim.hw.loopnest.axis_extents` with tiles
  of one); processed: that times the input density when ``zero_activations: skip``.
* *Balanced* (the paper's "theoretical") time: every PE holds the same share of every column,
  ``balanced = processed * max(1, e / pes)`` cycles, ``e = entries / (C*R*S)`` per column (fillers
  included: they occupy a cycle slot and a multiply by zero).
* *Actual* time (``compute_cycles``): PEs hold different numbers of a column's entries, and a
  column is done only when its slowest PE is; the activation queue (``array.queue_depth`` deep,
  EIE: 8) lets a PE run up to that many columns ahead.  With ``w[i][j]`` the cycles PE ``i``
  spends on column ``j`` (its entries, at least 1), ``B`` the broadcast cycles, ``S``/``F`` the
  start/finish cycles::

      B[j]    = max(B[j-1] + 1, max_i S[i][j - depth])     (a broadcast needs room in every queue)
      S[i][j] = max(B[j] + 1, F[i][j-1]);   F[i][j] = S[i][j] + w[i][j];   time = max_i F[i][last]

  ``w`` comes from a seeded simulation of the layer's matrix: PE ``i``'s slice of a column holds
  rows ``i, i + pes, ...`` (rows interleaved), each non-zero with the layer's weight density, and
  a filler entry for every full ``2**index_bits`` zeros of a gap (as the relative indices need);
  up to :data:`SIM_COLUMNS` columns are simulated (a fixed seed per layer shape: the same layer
  always gets the same answer).  ``compute_cycles = balanced * (simulated time / simulated
  balanced time)``.  ``queue_depth: 0`` keeps the balanced time.  ``tests/test_hw_dataflows.py``
  checks the recursion against a cycle-by-cycle simulation of explicit queues, and the factor
  against brute-force runs of random sparse matrices with rows interleaved over PEs.
* MACs performed and entries decoded: ``processed * entries / (C*R*S)``.
* Buffer traffic: the entries read (at their stored width), two column pointers per PE per
  processed activation (read from ``weight_format.pointer_level``), every scanned activation read
  once, each output written once; each entry reads and writes its accumulator register (the
  activation register file); each processed activation enters every PE's queue (a network
  transfer).
"""
from __future__ import annotations

import math
import zlib
from functools import lru_cache

import numpy as np

from . import ActivityContext, ArrayActivity, Dataflow
from ..loopnest import axis_extents
from ..search import CANONICAL_ORDERS

SIM_COLUMNS = 4096    # columns simulated per layer (all of them for AlexNet's fc layers)


def queue_time(work: np.ndarray, depth: int) -> int:
    """Cycles for PEs to process columns ``work[j][i]`` (cycles of PE ``i`` on column ``j``, each
    >= 1) broadcast in order through activation queues ``depth`` deep (module docstring)."""
    cols, pes = work.shape
    start_max = np.zeros(cols, dtype=np.int64)     # max_i S[i][j]
    finish = np.zeros(pes, dtype=np.int64)
    b = -1
    for j in range(cols):
        b = max(b + 1, int(start_max[j - depth]) if j >= depth else 0)
        start = np.maximum(b + 1, finish)
        start_max[j] = start.max()
        finish = start + work[j]
    return int(finish.max())


def slice_entries(rng, rows, density: float, index_bits: int | None, count: int) -> np.ndarray:
    """Entries (non-zeros + fillers) of ``count`` random column slices; ``rows``: the slice height,
    or an array of heights cycled over the slices (PE ``i`` of ``pes`` holds rows i, i+pes, ...)."""
    heights = np.resize(np.atleast_1d(np.asarray(rows, dtype=np.int64)), count)
    nz = (rng.random((count, int(heights.max()))) < density) & (np.arange(int(heights.max())) < heights[:, None])
    entries = nz.sum(axis=1)
    if index_bits is None:
        return entries
    m = 1 << index_bits
    # zeros before each non-zero within its slice: position - position of the previous non-zero - 1
    r, c = np.nonzero(nz)
    prev = np.where(np.r_[True, r[1:] != r[:-1]], -1, np.r_[-1, c[:-1]])
    gaps = c - prev - 1
    fill = np.bincount(r, weights=gaps // m, minlength=count).astype(np.int64)
    return entries + fill


@lru_cache(maxsize=256)
def imbalance(rows: int, pes: int, density: float, index_bits: int | None, depth: int, columns: int) -> float:
    """Simulated time over balanced time for ``columns`` columns (module docstring)."""
    if depth <= 0 or columns <= 0 or pes <= 1:
        return 1.0
    n = min(columns, SIM_COLUMNS)
    heights = [len(range(i, rows, pes)) for i in range(pes)]       # rows interleaved over the PEs
    seed = zlib.crc32(f"{rows}/{pes}/{density:.6f}/{index_bits}/{n}".encode())
    rng = np.random.default_rng(seed)
    w = slice_entries(rng, heights, density, index_bits, n * pes).reshape(n, pes)
    balanced = np.maximum(1.0, w.sum(axis=1) / pes).sum()
    return queue_time(np.maximum(w, 1), depth) / balanced


def activity(shape, hw, ctx: ActivityContext) -> ArrayActivity:
    pes = hw.array.pes
    cols = shape.C * shape.R * shape.S
    entries = ctx.weight_entries
    row_pairs, _ = axis_extents(shape.P, 1, shape.R, 1, shape.stride_h, shape.pad_h, shape.H)
    col_pairs, _ = axis_extents(shape.Q, 1, shape.S, 1, shape.stride_w, shape.pad_w, shape.W)
    scanned = shape.N * shape.C * row_pairs * col_pairs
    processed = scanned * (ctx.input_density if hw.sparsity.skip_zero_activations else 1.0)
    per_column = entries / cols
    balanced = processed * max(1.0, per_column / pes)
    per_image = int(round(processed / max(1, shape.N * shape.P * shape.Q)))
    factor = imbalance(shape.K, pes, round(ctx.weight_density, 6), hw.weight_format.index_bits,
                       hw.array.queue_depth, per_image)
    entries_read = processed * per_column
    return ArrayActivity(
        compute_cycles=math.ceil(balanced * factor),
        macs=shape.macs, macs_effective=entries_read,
        # weights counted in dense-weight equivalents: entries * (weights / entries)
        buffer_reads={"weights": entries_read * shape.weights / entries if entries else 0.0,
                      "inputs": scanned, "outputs": 0},
        buffer_writes={"outputs": shape.outputs},
        register_accesses={"outputs": 2 * entries_read},
        network_transfers={"inputs": processed * pes},
        decodes=entries_read,
        extra_read_bytes={"weights": 2 * pes * processed * ctx.pointer_bytes},
        pe_mapping={"balanced_cycles": math.ceil(balanced), "imbalance": factor, "queue_depth": hw.array.queue_depth})


EIE_SPARSE = Dataflow("eie_sparse", dict(CANONICAL_ORDERS), activity,
                      "EIE: compressed sparse columns over PEs, zero activations skipped")
