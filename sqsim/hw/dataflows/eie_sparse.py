"""EIE's sparse matrix-vector dataflow (Han et al., ISCA 2016), analytically.

EIE stores a layer's weight matrix (``K`` rows x ``C*R*S`` columns; a convolution is one
matrix-vector product per output pixel, im2col style) in compressed sparse column form, rows
interleaved over the ``pes`` PEs; each entry is a weight-sharing code plus a relative row index.
Its leading-non-zero detector scans the input activations and broadcasts each non-zero one with
its column index; every PE then walks its slice of that column (one entry per cycle), decodes
code and index and accumulates into its output rows.

* Activations scanned: every input element of every window that is not padding:
  ``N * C * sum_p rows(p) * sum_q cols(q)`` (:func:`~sqsim.hw.loopnest.axis_extents` with tiles
  of one); processed: that times the input density when ``sparsity.skip_zero_activations``.
* Entries per column ``e = ceil(entries / (C*R*S))``; assuming perfect balance inside a column
  (the rows of a column spread evenly over the PEs), one column takes ``max(1, ceil(e / pes))``
  cycles: ``compute_cycles = ceil(processed * max(1, ceil(e / pes)))``.
* MACs performed and entries decoded: ``processed * entries / (C*R*S)`` (fillers included: they
  occupy a cycle slot and a multiply by zero).
* Buffer traffic: the entries read (at their stored width), two column pointers per PE per
  processed activation, every scanned activation read once, each output written once; each MAC
  reads and writes its accumulator register; each processed activation is broadcast to every PE.
"""
from __future__ import annotations

import math

from . import ActivityContext, ArrayActivity, Dataflow
from ..loopnest import axis_extents
from ..search import CANONICAL_ORDERS


def activity(shape, hw, ctx: ActivityContext) -> ArrayActivity:
    pes = hw.array.pes
    cols = shape.C * shape.R * shape.S
    entries = ctx.weight_entries
    row_pairs, _ = axis_extents(shape.P, 1, shape.R, 1, shape.stride_h, shape.pad_h, shape.H)
    col_pairs, _ = axis_extents(shape.Q, 1, shape.S, 1, shape.stride_w, shape.pad_w, shape.W)
    scanned = shape.N * shape.C * row_pairs * col_pairs
    processed = scanned * (ctx.input_density if hw.sparsity.skip_zero_activations else 1.0)
    per_column = math.ceil(entries / cols)
    cycles_per_activation = max(1, -(-per_column // pes))
    entries_read = processed * entries / cols
    return ArrayActivity(
        compute_cycles=math.ceil(processed * cycles_per_activation),
        macs=shape.macs, macs_effective=entries_read,
        # weights counted in dense-weight equivalents: entries * (weights / entries)
        buffer_reads={"weights": entries_read * shape.weights / entries if entries else 0.0,
                      "inputs": scanned, "outputs": 0},
        buffer_writes={"outputs": shape.outputs},
        register_accesses={"outputs": 2 * entries_read},
        network_transfers={"inputs": processed * pes},
        decodes=entries_read,
        extra_read_bytes={"weights": 2 * pes * processed * ctx.pointer_bytes})


EIE_SPARSE = Dataflow("eie_sparse", dict(CANONICAL_ORDERS), activity,
                      "EIE: compressed sparse columns over PEs, zero activations skipped")
