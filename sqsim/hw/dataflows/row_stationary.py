"""Eyeriss's row-stationary dataflow (Chen, Emer, Sze, ISCA 2016; JSSC 2017), analytically.

One *job* is the 2-D convolution of one input channel ``c`` of one sample ``n`` with one filter
plane ``(k, c)``.  It runs on a *PE set* of ``R' x e`` PEs: PE ``(i, j)`` keeps filter row ``i``
(``S`` weights) stationary in its register file, receives input row ``p_j*stride + i - pad`` and
computes the 1-D convolution for output row ``p_j`` (``Q*S`` MACs, one per cycle); partial sums
of a column are accumulated over its ``R'`` PEs by passing them up.

* ``R' = min(R, rows)`` filter rows per set (``ceil(R / R')`` row segments when ``R > rows``);
  ``e = min(P, cols)`` output rows per set (``ceil(P / e)`` strips).
* ``sets = floor(rows / R') * floor(cols / e)`` sets run at once; they take ``c_par = min(C, sets)``
  channels and ``k_par = min(K, floor(sets / c_par))`` filters (channels first: their partial sums
  add up inside the array).
* passes, in loop order n, strip, k-chunk, c-chunk, segment (outermost first):
  ``N * ceil(P/e) * ceil(K/k_par) * ceil(C/c_par) * ceil(R/R')``; each takes ``Q * S`` cycles.

Global-buffer traffic: each pass reads the input rows its strip and segment need for its
``c_par`` channels (``N * ceil(K/k_par) * C * rows * cols`` in all, ``rows`` summed over strips and
segments as :func:`~sqsim.hw.loopnest.axis_extents` counts them); filter rows are loaded into the
PEs once if one pass holds every (k, c, segment), else once per pass (``N * ceil(P/e) * K*C*R*S``);
partial sums are written after each of the ``A = ceil(C/c_par) * ceil(R/R')`` accumulating passes
and read back before all but the first.

Inside the array: 4 register accesses per MAC (read weight, input and partial sum, write the
partial sum; Chen et al.'s count); network deliveries: every PE receives its input row and its
filter row, and ``R' - 1`` partial sums move up per output per segment.  With data gating
(``sparsity.gate_zero_activations``) a zero input skips the MAC, the weight read and the partial
sum update (energy only; the cycle is spent).
"""
from __future__ import annotations

from . import ActivityContext, ArrayActivity, Dataflow
from ..loopnest import axis_extents
from ..search import CANONICAL_ORDERS


def rs_plan(shape, rows: int, cols: int) -> dict:
    """The PE-set geometry and pass counts of one group (see the module docstring)."""
    r_set = min(shape.R, rows)
    segments = -(-shape.R // r_set)
    e = min(shape.P, cols)
    strips = -(-shape.P // e)
    sets = max(1, (rows // r_set) * (cols // e))
    c_par = min(shape.C, sets)
    k_par = max(1, min(shape.K, sets // c_par))
    k_chunks, c_chunks = -(-shape.K // k_par), -(-shape.C // c_par)
    passes = shape.N * strips * k_chunks * c_chunks * segments
    return {"r_set": r_set, "segments": segments, "e": e, "strips": strips, "sets": sets, "c_par": c_par,
            "k_par": k_par, "k_chunks": k_chunks, "c_chunks": c_chunks, "passes": passes}


def activity(shape, hw, ctx: ActivityContext) -> ArrayActivity:
    pl = rs_plan(shape, hw.array.rows, hw.array.cols)
    macs = shape.macs
    gate = ctx.input_density if hw.sparsity.gate_zero_activations else 1.0
    rows_used, _ = axis_extents(shape.P, pl["e"], shape.R, pl["r_set"], shape.stride_h, shape.pad_h, shape.H)
    cols_used, _ = axis_extents(shape.Q, shape.Q, shape.S, shape.S, shape.stride_w, shape.pad_w, shape.W)
    input_reads = shape.N * pl["k_chunks"] * shape.C * rows_used * cols_used
    if pl["k_chunks"] * pl["c_chunks"] * pl["segments"] == 1:
        weight_reads = shape.weights
    else:
        weight_reads = shape.N * pl["strips"] * shape.weights
    acc = pl["c_chunks"] * pl["segments"]
    # deliveries into the PEs: one input row per (p, r) pair whose row is not padding
    row_pairs, _ = axis_extents(shape.P, 1, shape.R, 1, shape.stride_h, shape.pad_h, shape.H)
    net_inputs = shape.N * shape.K * shape.C * row_pairs * cols_used
    net_weights = shape.N * shape.K * shape.C * shape.R * shape.S * shape.P
    net_psums = shape.outputs * shape.C * (shape.R - pl["segments"])
    decodes = weight_reads * (ctx.weight_entries / shape.weights) if ctx.weight_coded or ctx.weight_sparse else 0.0
    return ArrayActivity(
        compute_cycles=pl["passes"] * shape.Q * shape.S,
        macs=macs, macs_effective=macs * gate,
        buffer_reads={"inputs": input_reads, "weights": weight_reads, "outputs": (acc - 1) * shape.outputs},
        buffer_writes={"outputs": acc * shape.outputs},
        register_accesses={"weights": macs * gate, "inputs": macs, "outputs": 2 * macs * gate},
        network_transfers={"inputs": net_inputs, "weights": net_weights, "outputs": net_psums},
        decodes=decodes)


ROW_STATIONARY = Dataflow("row_stationary", dict(CANONICAL_ORDERS), activity,
                          "Eyeriss row stationary: filter rows stay in the PEs, psums accumulate across PE rows")
