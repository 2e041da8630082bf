"""Eyeriss's row-stationary dataflow (Chen, Emer, Sze, ISCA 2016; Chen, Krishna, Emer, Sze, JSSC
2017), analytically, with its own mapper.

**PE sets.**  The 2-D convolution of one channel with one filter plane runs on a logical *PE set*
of ``R x E`` PEs: PE ``(i, j)`` keeps filter row ``i`` stationary, receives input row
``p_j*stride + i - pad`` and produces output row ``p_j`` (a 1-D convolution, ``Q*S`` MACs);
partial sums of a column add up over its ``R`` PEs.  A set taller than the array is cut into
``ceil(R / rows)`` segments of ``r_set = min(R, rows)`` rows (passes accumulating in the buffer).
If the whole set fits the array, folded when it is wider (``e = E`` output rows in
``ceil(E / cols)`` stacked pieces of ``r_set`` rows; AlexNet CONV2's 5 x 27 runs as 5 x 14 over
5 x 13), it is used whole; otherwise it is *strip-mined* to ``e <= cols`` output rows per strip
(``ceil(E / e)`` strips).  ``floor(rows / (r_set * folds)) * floor(cols / min(e, cols))`` sets fit
the array; a mapping uses ``r * t`` of them: ``r`` sets on different channels of the same filters
(their partial sums add across sets) and ``t`` sets on different filters (sharing the ifmap).

**Per PE** (the scratch pads, in values of each operand's precision: ``filter_spad``,
``ifmap_spad``, ``psum_spad`` capacities): ``p`` filters and ``q`` channels of one filter row,
``p * q * S <= filter spad`` (Eyeriss 224), ``q * S <= ifmap spad`` (12), ``p <= psum spad`` (24).
A hardware without a scratch pad for an operand holds one value: ``p = q = 1``.

**Processing pass**: ``n`` images (one after another, with the same filters), ``p*t`` filters,
``q*r`` channels, one strip, one filter-row segment.  It first loads its filter rows into the
spads: ``filter words = k_blk * c_blk * r_set * S``, which stalls the array for
``array.ramp_cycles_per_word`` cycles per word (the *ramp-up*: Eyeriss's JSSC 2017 names it as
the reason its processing latency exceeds peak), then computes for
``n * min(p, k_blk) * min(q, c_blk) * S * Q`` cycles (the busiest PE).

**Global buffer tiles.**  The buffer holding inputs and outputs (Eyeriss: 100 KB of the 108 KB
GLB) holds the ifmap strip of ``cg`` channels of ``n`` images and the partial sums of ``m``
filters (``m`` a multiple of ``p*t`` or ``K``; ``cg`` of ``q*r`` or ``C``).  DRAM-level loop order
``N, P (strips), K (m), C (cg)``: partial sums never leave the buffer until all channels are
added; the ifmap strip is fetched once per (images, strip) when ``cg = C``, else once per filter
tile.  Weights bypass that buffer: every pass loads its filters from DRAM through the weights'
buffer (Eyeriss's 8 KB filter prefetch, which must hold one pass's filters), so weights cross
``ceil(N/n) * strips * K*C*R*S`` times, once when one pass holds all of them.

**Mapper.**  Every candidate ``(n, p, q, r, t)`` under the spad, array and buffer constraints
(``m`` and ``cg`` follow: the whole channel set when it fits next to ``p*t`` filters' partial
sums, else ``q*r`` channels and the most filters that fit), ranked by the most active PEs
``r * t * r_set * e``, then the layer's latency (compute + ramp-up, with the DRAM time of its
feature maps serialised or overlapped as ``policies.overlap_dram`` says), then energy (DRAM and
buffer accesses times their energies): a performance-first compiler.

Buffer traffic (one group, batch ``N``): ifmap reads ``N * KB * C * rows * cols`` (``KB`` filter
blocks of the pass loop, ``rows``/``cols`` the real input rows and columns each strip and segment
touches: :func:`~sqsim.hw.loopnest.axis_extents`); partial sums written ``A = CB * segments``
times per output (``CB`` channel blocks) and read back ``A - 1`` times; filter buffer reads =
filter words loaded.  Inside the array: 4 spad accesses per MAC (weight, input, partial sum read
and write; Chen et al.'s count), with data gating (``zero_activations: gate``) a zero input skips
the MAC, the weight read and the partial-sum update (energy only).  Network deliveries: each
active PE receives its input rows (``q`` channels, ``n`` images) and its filter rows once per
pass; partial sums hop ``r_set - 1`` times up each set and ``r - 1`` times across sets.
``tests/test_hw_dataflows.py`` walks the schedule pass by pass and counts all of it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ActivityContext, ArrayActivity, Dataflow
from ..loopnest import Mapping, axis_extents
from ..search import CANONICAL_ORDERS

ORDER = ("N", "P", "K", "C", "Q", "R", "S")   # the DRAM-level loop order over buffer tiles


@dataclass(frozen=True)
class RSPlan:
    """A row-stationary mapping of one group (see the module docstring)."""
    e: int
    folds: int
    r_set: int
    segments: int
    n: int
    p: int
    q: int
    r: int
    t: int
    m: int
    cg: int

    @property
    def active_pes(self) -> int:
        return self.r * self.t * self.r_set * self.e

    def weight_dram_reads(self, shape, weights_resident: bool) -> int:
        """Weights read from DRAM: once (per batch) when they stay on chip, else what the passes load."""
        return shape.weights if weights_resident else weight_loads(shape, self)

    def blocks(self, size: int, tile: int, unit: int) -> list[int]:
        """Block sizes of the pass loop over ``size`` values in buffer tiles of ``tile`` and pass
        blocks of ``unit``."""
        out = []
        for a in range(0, size, tile):
            rest = min(tile, size - a)
            out += [min(unit, rest - b) for b in range(0, rest, unit)]
        return out

    def to_dict(self) -> dict:
        return {"n": self.n, "p": self.p, "q": self.q, "e": self.e, "r": self.r, "t": self.t, "m": self.m,
                "cg": self.cg, "folds": self.folds, "filter_rows_per_set": self.r_set, "segments": self.segments,
                "active_pes": self.active_pes}


def spad_words(hw, op: str, value_bytes: float) -> int:
    """Values of ``op`` one PE's scratch pad holds (1 without one)."""
    reg = hw.register_level(op)
    if reg is None or not value_bytes:
        return 1
    return max(1, int(reg.capacity_bytes // value_bytes))


def strips_geometry(shape, rows: int, cols: int) -> list[tuple[int, int]]:
    """``(e, folds)`` candidates: the whole set (folded) when it fits, else strips of ``e <= cols``."""
    r_set = min(shape.R, rows)
    folds = -(-shape.P // cols)
    if r_set * folds <= rows:
        return [(shape.P, folds)]
    return [(e, 1) for e in range(1, min(shape.P, cols) + 1)]


def _weights_streamed(shape, pl: RSPlan) -> bool:
    """Filters are reloaded every pass unless one pass holds all of them."""
    return not (shape.K <= pl.p * pl.t and shape.C <= pl.q * pl.r and pl.segments == 1)


def weight_loads(shape, pl: RSPlan) -> int:
    """Filter values loaded into the PEs (from DRAM through the weights' buffer)."""
    if not _weights_streamed(shape, pl):
        return shape.weights
    strips = -(-shape.P // pl.e)
    return -(-shape.N // pl.n) * strips * shape.weights


def mapping_of(shape, pl: RSPlan, dataflow: str, weights_resident: bool) -> Mapping:
    tiles = {"N": pl.n, "K": pl.m, "C": pl.cg, "P": pl.e, "Q": shape.Q, "R": shape.R, "S": shape.S}
    return Mapping(dataflow, ORDER, tuple(tiles[d] for d in ("N", "K", "C", "P", "Q", "R", "S")), weights_resident)


def minimal_tiles(shape, hw, weights_resident: bool) -> dict:
    """The smallest buffer tiles a row-stationary mapping can use: one image, one filter, one
    channel, the narrowest strip (the whole set when it fits the array), full rows."""
    e = min(e for e, _ in strips_geometry(shape, hw.array.rows, hw.array.cols))
    k, c = (shape.K, shape.C) if weights_resident else (1, 1)
    return {"N": 1, "K": k, "C": c, "P": e, "Q": shape.Q, "R": shape.R, "S": shape.S}


def _candidates(shape, hw, tile: dict, buffers, fixed: dict, weights_resident: bool = False):
    """Arrays over every (e, n, p, q, r) candidate (t follows r), with the buffer tiles chosen."""
    rows, cols = hw.array.rows, hw.array.cols
    r_set = min(shape.R, rows)
    pw = spad_words(hw, "weights", hw.weight_value_bytes)
    iw = spad_words(hw, "inputs", hw.act_bytes)
    ow = spad_words(hw, "outputs", hw.psum_bytes)
    parts = []
    qs = np.arange(1, min(shape.C, max(1, iw // shape.S)) + 1, dtype=np.int64)
    ps = np.arange(1, min(shape.K, ow) + 1, dtype=np.int64)
    for e, folds in strips_geometry(shape, rows, cols):
        sets = max(1, (rows // (r_set * folds)) * (cols // min(e, cols)))
        rows_max = axis_extents(shape.P, e, shape.R, shape.R, shape.stride_h, shape.pad_h, shape.H)[1]
        cols_used = axis_extents(shape.Q, shape.Q, shape.S, shape.S, shape.stride_w, shape.pad_w, shape.W)[0]
        # r: the largest number of channel sets for each count of filter sets (fewer r with the same
        # floor(sets / r) only idles PEs)
        rs_ = np.unique(sets // np.arange(1, sets + 1, dtype=np.int64))
        q, p, r = (a.ravel() for a in np.meshgrid(qs, ps, rs_, indexing="ij"))
        keep = (p * q * shape.S <= max(pw, shape.S)) & (r <= -(-shape.C // q))
        q, p, r = q[keep], p[keep], r[keep]
        t = np.maximum(1, np.minimum(sets // r, -(-shape.K // p)))
        n_c = len(q)
        parts.append(np.stack([np.full(n_c, e), np.full(n_c, folds), p, q, r, t, np.full(n_c, rows_max),
                               np.full(n_c, cols_used)], axis=1))
    a = np.concatenate(parts) if parts else np.zeros((0, 8), dtype=np.int64)
    if not len(a):
        return None
    e, folds, p, q, r, t, rows_max, cols_used = a.T
    n = np.arange(1, shape.N + 1, dtype=np.int64)
    E = {k: np.repeat(v, len(n)) for k, v in dict(e=e, folds=folds, p=p, q=q, r=r, t=t, rows_max=rows_max,
                                                       cols_used=cols_used).items()}
    E["n"] = np.tile(n, len(a))
    pt, qr = E["p"] * E["t"], E["q"] * E["r"]
    # buffer tiles: the whole channel set when it fits beside p*t filters' partial sums, else q*r
    # channels and the most filters (a multiple of p*t, or K) that fit
    cap = {b.level: b.capacity_bytes for b in buffers}
    lvl = {op: next(b.level for b in buffers if op in b.operands) for op in ("weights", "inputs", "outputs")}
    in_per_c = E["n"] * E["rows_max"] * E["cols_used"] * tile["inputs"]
    out_per_k = E["n"] * E["e"] * shape.Q * tile["outputs"]
    # one pass's filters (and their share of the codebook/biases) in the weights' buffer, or all of
    # the layer's when the model's weights stay on chip
    if weights_resident:
        w_pass = np.full(len(pt), shape.weights * tile["weights"] + fixed.get("weights", 0.0))
    else:
        w_pass = np.minimum(pt, shape.K) * (np.minimum(qr, shape.C) * r_set * shape.S * tile["weights"]
                                             + fixed.get("weights", 0.0) / shape.K)
    shared = lvl["inputs"] == lvl["outputs"]
    cap_io = cap[lvl["inputs"]] - (w_pass if lvl["weights"] == lvl["inputs"] else 0)
    if shared:
        whole = shape.C * in_per_c + np.minimum(pt, shape.K) * out_per_k <= cap_io
        cg = np.where(whole, shape.C, np.minimum(qr, shape.C))
        room = cap_io - cg * in_per_c
    else:
        cap_out = cap[lvl["outputs"]] - (w_pass if lvl["weights"] == lvl["outputs"] else 0)
        whole = shape.C * in_per_c <= cap_io
        cg = np.where(whole, shape.C, np.minimum(qr, shape.C))
        room = np.where(cg * in_per_c <= cap_io, cap_out, -1.0)
    per_unit = pt * out_per_k                       # bytes of p*t filters' partial sums (0: outputs resident)
    units = np.where(per_unit > 0, np.floor(room / np.where(per_unit > 0, per_unit, 1.0)), shape.K)
    m = np.where(units * pt >= shape.K, shape.K, units * pt)
    ok = (m >= np.minimum(pt, shape.K)) & (room >= 0)
    if lvl["weights"] not in (lvl["inputs"], lvl["outputs"]):
        ok &= w_pass <= cap[lvl["weights"]]
    E["m"], E["cg"] = np.maximum(m, 1).astype(np.int64), cg.astype(np.int64)
    return {k: v[ok] for k, v in E.items()}, r_set


def _score(shape, hw, E: dict, r_set: int, ratio: dict):
    """Active PEs, latency cycles and an energy proxy of every candidate (vectorised)."""
    segments = -(-shape.R // r_set)
    strips = -(-shape.P // E["e"])
    pt, qr = E["p"] * E["t"], E["q"] * E["r"]
    kb = _nblocks(shape.K, E["m"], pt)
    cb = _nblocks(shape.C, E["cg"], qr)
    busy = _busy(shape.K, E["m"], pt, E["p"]) * _busy(shape.C, E["cg"], qr, E["q"])
    compute = shape.N * strips * segments * busy * shape.S * shape.Q
    streamed = ~((shape.K <= pt) & (shape.C <= qr) & (segments == 1))
    loads = np.where(streamed, -(-shape.N // E["n"]) * strips * shape.weights, shape.weights)
    ramp = hw.array.ramp_cycles_per_word * loads
    ifm = shape.N * shape.C * E["rows_sum_full"] * E["cols_used"]
    fetch = np.where(E["cg"] >= shape.C, 1, -(-shape.K // E["m"]))
    f = hw.clock_hz
    bw = hw.dram.bytes_per_cycle(f)
    fm_dram = fetch * ifm * ratio["inputs"] + shape.outputs * ratio["outputs"]
    w_dram = loads * ratio["weights"]
    core = np.maximum(compute + ramp, w_dram / bw)
    latency = core + fm_dram / bw if not hw.policies.overlap_dram else np.maximum(compute + ramp, (fm_dram + w_dram) / bw)
    glb = shape.N * kb * shape.C * E["rows_sum_seg"] * E["cols_used"] + 2 * shape.outputs * cb * segments
    dram_e = hw.dram.read_energy_j / hw.dram.word_bytes
    back = hw.backing_level("inputs")
    glb_e = back.read_energy_j / back.word_bytes * hw.act_bytes
    energy = (fm_dram + w_dram) * dram_e + glb * glb_e
    return E["r"] * E["t"] * r_set * E["e"], latency, energy


def mapper_prices(hw) -> tuple:
    """What :func:`_score` reads from the energies, clock and bandwidths: DRAM bytes per cycle,
    DRAM and input-buffer read energies."""
    return (hw.dram.bytes_per_cycle(hw.clock_hz), hw.dram.read_energy_j,
            hw.backing_level("inputs").read_energy_j)


def _nblocks(size, tile, unit):
    """Number of pass blocks over ``size`` values (vectorised; tiles multiples of ``unit`` or whole)."""
    full, rest = size // tile, size % tile
    return full * -(-tile // unit) + np.where(rest > 0, -(-rest // unit), 0)


def _busy(size, tile, unit, per_pe):
    """Sum over pass blocks of the busiest PE's share ``min(per_pe, block)`` (vectorised)."""
    full, rest = size // tile, size % tile

    def one(n):   # blocks of n values: full blocks of `unit`, then the remainder
        k, rem = n // unit, n % unit
        return k * per_pe + np.minimum(per_pe, rem)
    return full * one(tile) + np.where(rest > 0, one(rest), 0)


def rs_mapper(shape, hw, buffers, moved: dict, fixed: dict, weights_resident: bool, tile: dict):
    """The best :class:`RSPlan` and its DRAM-level :class:`~sqsim.hw.loopnest.Mapping`."""
    from ...errors import SqsimError
    got = _candidates(shape, hw, tile, buffers, fixed, weights_resident)
    if got is None or not len(got[0]["n"]):
        tight = min(buffers, key=lambda b: b.capacity_bytes)
        raise SqsimError(f"layer {shape.name!r}: no tiling fits on chip (row stationary): even one image, one "
                         f"filter and one channel exceed {tight.level!r} ({tight.capacity_bytes:,.0f} bytes free "
                         f"for {', '.join(tight.operands)})")
    E, r_set = got
    es, inv = np.unique(E["e"], return_inverse=True)
    for key, rt in (("rows_sum_full", shape.R), ("rows_sum_seg", r_set)):
        table = np.array([axis_extents(shape.P, int(e), shape.R, rt, shape.stride_h, shape.pad_h, shape.H)[0]
                          for e in es], dtype=np.int64)
        E[key] = table[inv]
    ratio = {"inputs": moved["inputs"], "outputs": hw.act_bytes if moved["outputs"] else 0.0,
             "weights": 0.0 if weights_resident else moved["weights"]}
    active, latency, energy = _score(shape, hw, E, r_set, ratio)
    i = int(np.lexsort(_RANK(active, latency, energy))[0])
    pl = RSPlan(int(E["e"][i]), int(E["folds"][i]), r_set, -(-shape.R // r_set), int(E["n"][i]), int(E["p"][i]),
                int(E["q"][i]), int(E["r"][i]), int(E["t"][i]), int(E["m"][i]), int(E["cg"][i]))
    return mapping_of(shape, pl, hw.dataflow, weights_resident), pl


def rs_counts(shape, pl: RSPlan) -> dict:
    """Exact counts of one group's schedule under ``pl`` (the closed forms of the module
    docstring, summed over pass blocks)."""
    kblocks = pl.blocks(shape.K, pl.m, pl.p * pl.t)
    cblocks = pl.blocks(shape.C, pl.cg, pl.q * pl.r)
    strips = -(-shape.P // pl.e)
    segs = [min(pl.r_set, shape.R - s0) for s0 in range(0, shape.R, pl.r_set)]
    busy = sum(min(pl.p, k) for k in kblocks) * sum(min(pl.q, c) for c in cblocks)
    loads = weight_loads(shape, pl)
    rows_sum, _ = axis_extents(shape.P, pl.e, shape.R, pl.r_set, shape.stride_h, shape.pad_h, shape.H)
    cols_used, _ = axis_extents(shape.Q, shape.Q, shape.S, shape.S, shape.stride_w, shape.pad_w, shape.W)
    row_pairs, _ = axis_extents(shape.P, 1, shape.R, 1, shape.stride_h, shape.pad_h, shape.H)
    acc = len(cblocks) * len(segs)
    t_used = sum(min(pl.t, -(-k // pl.p)) for k in kblocks)        # busy filter sets, summed over filter blocks
    hops = sum((s - 1) * min(pl.r, -(-c // pl.q)) + min(pl.r, -(-c // pl.q)) - 1 for c in cblocks for s in segs)
    # a filter row reaches every PE of its set row: one per output row of the strip (all strips
    # over the reloads), or once per PE column when the filters stay for the whole layer
    per_row = -(-shape.N // pl.n) * shape.P if _weights_streamed(shape, pl) else pl.e
    return {
        "compute": shape.N * strips * len(segs) * busy * shape.S * shape.Q, "weight_loads": loads,
        "passes": -(-shape.N // pl.n) * strips * len(segs) * len(kblocks) * len(cblocks),
        "input_reads": shape.N * len(kblocks) * shape.C * rows_sum * cols_used,
        "psum_writes": acc * shape.outputs, "psum_reads": (acc - 1) * shape.outputs,
        "net_inputs": shape.N * t_used * shape.C * row_pairs * cols_used,
        "net_weights": per_row * shape.weights,
        "net_psums": shape.outputs * hops,
    }


def activity(shape, hw, ctx: ActivityContext) -> ArrayActivity:
    pl = ctx.plan
    if pl is None:   # called without the mapper (e.g. tests): map with unlimited buffers
        from ..search import Buffer
        big = [Buffer("inf", float("inf"), ("weights", "inputs", "outputs"))]
        ones = {"weights": 1.0, "inputs": 1.0, "outputs": 1.0}
        _, pl = rs_mapper(shape, hw, big, ones, {}, False, ones)
    c = rs_counts(shape, pl)
    macs = shape.macs
    gate = ctx.input_density if hw.sparsity.gate_zero_activations else 1.0
    ramp = int(round(hw.array.ramp_cycles_per_word * c["weight_loads"]))
    decodes = c["weight_loads"] * (ctx.weight_entries / shape.weights) if ctx.weight_coded or ctx.weight_sparse \
        else 0.0
    return ArrayActivity(
        compute_cycles=c["compute"] + ramp,
        macs=macs, macs_effective=macs * gate,
        buffer_reads={"inputs": c["input_reads"], "weights": c["weight_loads"], "outputs": c["psum_reads"]},
        buffer_writes={"outputs": c["psum_writes"]},
        register_accesses={"weights": macs * gate, "inputs": macs, "outputs": 2 * macs * gate},
        network_transfers={"inputs": c["net_inputs"], "weights": c["net_weights"], "outputs": c["net_psums"]},
        decodes=decodes, ramp_cycles=ramp, active_pes=pl.active_pes, pe_mapping=pl.to_dict())


ROW_STATIONARY = Dataflow("row_stationary", {"NPKC": ORDER}, activity,
                          "Eyeriss row stationary: filter rows stay in the PEs, psums accumulate across PE rows",
                          mapper=rs_mapper, minimal_tiles=minimal_tiles, mapper_prices=mapper_prices)


def _RANK(active, latency, energy):   # most active PEs, then energy, then latency (np.lexsort: last key first)
    return (latency, energy, -active)
