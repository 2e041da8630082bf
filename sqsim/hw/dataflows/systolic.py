"""Systolic arrays (output-, weight- and input-stationary), reproducing SCALE-Sim v3.

SCALE-Sim (Samajdar et al., ISPASS 2020; PyPI ``scalesim`` 3.0.0, ``compute/systolic_compute_*.py``)
maps a convolution to a GEMM with ``px`` output pixels (here ``N*P*Q``: the batch joins the
pixels), window ``win = R*S*C`` and ``K`` filters:

=================  ===========  ===========  ===========
dataflow           S_r (rows)   S_c (cols)   T (time)
=================  ===========  ===========  ===========
output_stationary  px           K            win
weight_stationary  win          K            px
input_stationary   win          px           K
=================  ===========  ===========  ===========

The operand matrices are cut into ``folds = ceil(S_r/rows) * ceil(S_c/cols)`` array-sized
pieces.  Per fold, SCALE-Sim's demand matrices have ``T + rows + cols - 2`` rows for OS (T
operand rows, ``cols - 1`` drain rows, ``rows - 1`` skew) and ``T + 2*rows + cols - 2`` for WS and
IS (plus ``rows`` rows to preload the stationary operand); its reported cycle count is the last
demand row's index, one less than the number of rows::

    compute_cycles = folds * (T + rows + cols - 2 [+ rows for WS/IS]) - 1

SRAM traffic as SCALE-Sim counts it (``ifmap_reads``/``filter_reads``/``ofmap_writes``):
OS reads ``ceil(S_c/cols) * S_r * T`` inputs and ``ceil(S_r/rows) * S_c * T`` weights and writes
``S_r * S_c`` outputs; WS reads ``ceil(S_c/cols) * S_r * T`` inputs and ``S_r * S_c`` weights and
writes ``ceil(S_r/rows) * S_c * T`` partial sums; IS reads ``S_r * S_c`` inputs and
``ceil(S_c/cols) * S_r * T`` weights and writes ``ceil(S_r/rows) * S_c * T`` partial sums.
(SCALE-Sim 3.0.0 adds ``rows + cols`` to its OS ofmap-write count per fold; sqsim does not.)
sqsim adds the partial-sum reads SCALE-Sim leaves out: WS and IS accumulate across row folds, so
``(ceil(S_r/rows) - 1) * S_c * T`` partial sums are read back.

Inside the PEs: each MAC reads its weight and input and reads and writes its partial sum
(register accesses, charged only if the hardware has a register-file level), and the two moving
operands each hop to the next PE (network transfers, charged only with a network level).
"""
from __future__ import annotations

from . import ActivityContext, ArrayActivity, Dataflow
from ..search import STATIONARY_INNER, stationary_orders


def gemm_dims(shape, dataflow: str) -> tuple[int, int, int]:
    """SCALE-Sim's ``(S_r, S_c, T)`` for one group of ``shape``."""
    px = shape.N * shape.P * shape.Q
    win = shape.R * shape.S * shape.C
    return {"output_stationary": (px, shape.K, win),
            "weight_stationary": (win, shape.K, px),
            "input_stationary": (win, px, shape.K)}[dataflow]


def compute_cycles(sr: int, sc: int, t: int, rows: int, cols: int, dataflow: str) -> int:
    """SCALE-Sim v3's compute cycles for a ``S_r x S_c`` spatial, ``T`` temporal problem.

    >>> compute_cycles(3025, 16, 96, 32, 32, "output_stationary")   # fire2/squeeze1x1, 32x32
    15009
    """
    folds = -(-sr // rows) * -(-sc // cols)
    per_fold = t + rows + cols - 2 + (rows if dataflow != "output_stationary" else 0)
    return folds * per_fold - 1


def _activity(dataflow: str):
    def activity(shape, hw, ctx: ActivityContext) -> ArrayActivity:
        rows, cols = hw.array.rows, hw.array.cols
        sr, sc, t = gemm_dims(shape, dataflow)
        fr, fc = -(-sr // rows), -(-sc // cols)
        macs = shape.macs
        gate = ctx.input_density if hw.sparsity.gate_zero_activations else 1.0
        if dataflow == "output_stationary":
            reads = {"inputs": fc * sr * t, "weights": fr * sc * t, "outputs": 0}
            writes = {"outputs": sr * sc}
            moving = ("inputs", "weights")
        elif dataflow == "weight_stationary":
            reads = {"inputs": fc * sr * t, "weights": sr * sc, "outputs": (fr - 1) * sc * t}
            writes = {"outputs": fr * sc * t}
            moving = ("inputs", "outputs")
        else:
            reads = {"inputs": sr * sc, "weights": fc * sr * t, "outputs": (fr - 1) * sc * t}
            writes = {"outputs": fr * sc * t}
            moving = ("weights", "outputs")
        decodes = reads["weights"] * (ctx.weight_entries / shape.weights) if ctx.weight_coded or ctx.weight_sparse \
            else 0.0
        return ArrayActivity(
            compute_cycles=compute_cycles(sr, sc, t, rows, cols, dataflow),
            macs=macs, macs_effective=macs * gate,
            buffer_reads=reads, buffer_writes=writes,
            register_accesses={"weights": macs * gate, "inputs": macs, "outputs": 2 * macs * gate},
            network_transfers={op: macs for op in moving},
            decodes=decodes)
    return activity


OUTPUT_STATIONARY = Dataflow("output_stationary", stationary_orders(STATIONARY_INNER["output_stationary"]),
                             _activity("output_stationary"), "systolic array, outputs stay in the PEs (SCALE-Sim os)")
WEIGHT_STATIONARY = Dataflow("weight_stationary", stationary_orders(STATIONARY_INNER["weight_stationary"]),
                             _activity("weight_stationary"), "systolic array, weights stay in the PEs (SCALE-Sim ws)")
INPUT_STATIONARY = Dataflow("input_stationary", stationary_orders(STATIONARY_INNER["input_stationary"]),
                            _activity("input_stationary"), "systolic array, inputs stay in the PEs (SCALE-Sim is)")
