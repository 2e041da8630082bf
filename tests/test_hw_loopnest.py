"""The analytic DRAM-traffic model against a brute-force loop-nest walker (nn_dataflow style).

The walker knows nothing of the closed forms: it steps through the DRAM-level loop nest of a
mapping, builds the exact set of elements each operand's tile holds at every step (inputs through
the sliding window, padding excluded), simulates one buffer per operand holding one tile (a new
tile is fetched whole, an evicted output tile is written back and read again when it returns),
and counts the elements crossing the DRAM boundary.
"""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from sqsim.hw.loopnest import Mapping, axis_extents, dram_traffic, traffic_grid
from sqsim.hw.workload import DIMS, ConvShape


def walk(shape: ConvShape, mapping: Mapping) -> dict:
    """Brute force: ``{operand: (reads, writes, largest tile)}`` in elements."""
    t = mapping.tile
    bound = shape.bounds
    trips = {d: -(-bound[d] // t[d]) for d in DIMS}
    order = mapping.loop_order

    def rng(d, i):
        return range(i * t[d], min((i + 1) * t[d], bound[d]))

    def elements(op, ix):
        r = {d: rng(d, ix[d]) for d in DIMS}
        if op == "weights":
            return set(itertools.product(r["K"], r["C"], r["R"], r["S"]))
        if op == "outputs":
            return set(itertools.product(r["N"], r["K"], r["P"], r["Q"]))
        hs = {p * shape.stride_h + rr - shape.pad_h for p in r["P"] for rr in r["R"]}
        ws = {q * shape.stride_w + ss - shape.pad_w for q in r["Q"] for ss in r["S"]}
        hs = {h for h in hs if 0 <= h < shape.H}
        ws = {w for w in ws if 0 <= w < shape.W}
        return set(itertools.product(r["N"], r["C"], hs, ws))

    rel = {"weights": "KCRS", "inputs": "NCPQRS", "outputs": "NKPQ"}
    held = {op: None for op in rel}  # (tile key, element set)
    reads = {op: 0 for op in rel}
    writes = {op: 0 for op in rel}
    biggest = {op: 0 for op in rel}
    visited = set()
    for idx in itertools.product(*(range(trips[d]) for d in order)):
        ix = dict(zip(order, idx))
        for op, dims in rel.items():
            key = tuple(ix[d] for d in dims)
            if held[op] is not None and held[op][0] == key:
                continue
            if op == "outputs" and held[op] is not None:
                writes[op] += len(held[op][1])          # evict: write back
            elems = elements(op, ix)
            biggest[op] = max(biggest[op], len(elems))
            if op != "outputs" or key in visited:
                reads[op] += len(elems)                 # fetch (partial sums: read back)
            visited.add(key) if op == "outputs" else None
            held[op] = (key, elems)
    writes["outputs"] += len(held["outputs"][1])        # final write back
    return {op: (reads[op], writes[op], biggest[op]) for op in rel}


def random_shape(rng: random.Random) -> ConvShape:
    r, s = rng.randint(1, 3), rng.randint(1, 3)
    sh, sw = rng.randint(1, 3), rng.randint(1, 3)
    ph, pw = rng.randint(0, r - 1), rng.randint(0, s - 1)
    h = rng.randint(max(1, r - 2 * ph), 7)
    w = rng.randint(max(1, s - 2 * pw), 7)
    p = (h + 2 * ph - r) // sh + 1
    q = (w + 2 * pw - s) // sw + 1
    return ConvShape("rand", N=rng.randint(1, 2), K=rng.randint(1, 5), C=rng.randint(1, 4), P=p, Q=q, R=r, S=s,
                     H=h, W=w, stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw)


def random_mapping(shape: ConvShape, rng: random.Random) -> Mapping:
    order = list(DIMS)
    rng.shuffle(order)
    tiles = tuple(rng.randint(1, shape.dim(d)) for d in DIMS)
    return Mapping("test", tuple(order), tiles)


@pytest.mark.parametrize("seed", range(40))
def test_analytic_traffic_equals_brute_force(seed):
    rng = random.Random(seed)
    for _ in range(10):
        shape = random_shape(rng)
        m = random_mapping(shape, rng)
        analytic = dram_traffic(shape, m)
        counted = walk(shape, m)
        for op in ("weights", "inputs", "outputs"):
            a = analytic[op]
            assert (a.reads, a.writes, a.max_tile_elements) == counted[op], (shape, m, op)


def test_vectorised_grid_equals_scalar_model():
    rng = random.Random(7)
    for _ in range(20):
        shape = random_shape(rng)
        axes = {d: np.array(sorted({rng.randint(1, shape.dim(d)) for _ in range(3)})) for d in DIMS}
        order = list(DIMS)
        rng.shuffle(order)
        grid = traffic_grid(shape, axes, order)
        for at in itertools.product(*(range(len(axes[d])) for d in DIMS)):
            m = Mapping("test", tuple(order), tuple(int(axes[d][k]) for d, k in zip(DIMS, at)))
            scalar = dram_traffic(shape, m)
            for op in ("weights", "inputs", "outputs"):
                r, w, big = (np.broadcast_to(x, tuple(len(axes[d]) for d in DIMS))[at] for x in grid[op])
                assert (r, w, big) == (scalar[op].reads, scalar[op].writes, scalar[op].max_tile_elements)


def test_axis_extents_counts_window_positions():
    # 4 outputs in tiles of 2, kernel 3, stride 1, pad 1 on 4 inputs: rows [-1..2] and [1..4] clipped
    assert axis_extents(4, 2, 3, 3, 1, 1, 4) == (3 + 3, 3)
    # stride 3 > kernel 1: disjoint windows, every 3rd input
    assert axis_extents(3, 3, 1, 1, 3, 0, 9) == (3, 3)


def test_whole_tiles_move_every_operand_once():
    shape = ConvShape("l", N=2, K=5, C=3, P=4, Q=4, R=3, S=3, H=6, W=6)
    m = Mapping("x", DIMS, tuple(shape.dim(d) for d in DIMS))
    t = dram_traffic(shape, m)
    assert t["weights"].reads == shape.weights
    assert t["inputs"].reads == shape.inputs
    assert (t["outputs"].reads, t["outputs"].writes) == (0, shape.outputs)


def test_partial_sums_spill_when_channels_are_outside():
    # C tiled and outside K, P, Q: each output tile is visited T_C times -> T_C writes, T_C-1 reads
    shape = ConvShape("l", N=1, K=2, C=4, P=2, Q=2, R=1, S=1, H=2, W=2)
    m = Mapping("x", ("C", "N", "K", "P", "Q", "R", "S"), (1, 1, 1, 1, 1, 1, 1))
    t = dram_traffic(shape, m)
    assert t["outputs"].multiplier == 4 and t["outputs"].multiplier_loops == ("C",)
    assert (t["outputs"].reads, t["outputs"].writes) == (3 * 8, 4 * 8)
    assert walk(shape, m)["outputs"][:2] == (24, 32)


DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary", "row_stationary", "eie_sparse")


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_every_dataflow_searched_mapping_matches_the_walker(dataflow):
    """For each dataflow: random small layers and buffer sizes through the real per-layer cost
    (mapping search included), with the input and/or output tensor resident on chip or not; the DRAM
    bytes it reports equal the walker's count of its mapping (nothing for a resident operand), and
    the walker's largest tiles of the other operands fit what the resident tensors leave."""
    from sqsim.hw.cost import layer_cost
    from sqsim.hw.spec import ArraySpec, EnergyTable, HardwareSpec, MemoryLevel
    from sqsim.hw.storage import dense_storage
    from sqsim.ir import Graph, Layer

    rng = random.Random(DATAFLOWS.index(dataflow))
    checked = 0
    while checked < 25:
        s = random_shape(rng)
        shared = rng.random() < 0.5
        cap = rng.randint(12, 120)
        levels = [MemoryLevel("dram", "dram", bandwidth_bytes_per_s=1e9)]
        if shared:
            levels.append(MemoryLevel("buf", "sram", ("weights", "inputs", "outputs"), capacity_bytes=cap))
        else:
            levels += [MemoryLevel(f"{op}_buf", "sram", (op,), capacity_bytes=cap) for op in ("weights", "inputs", "outputs")]
        hw = HardwareSpec("t", ArraySpec(rng.randint(1, 4), rng.randint(1, 4), datapath_bits=8), tuple(levels),
                          EnergyTable(mac_j=1e-12), dataflow)
        g = Graph([Layer("data", "input", shape=(s.C, s.H, s.W)),
                   Layer("conv", "conv2d", ("data",), out_channels=s.K, kernel=(s.R, s.S),
                         stride=(s.stride_h, s.stride_w), pad=(s.pad_h, s.pad_w), bias=False)])
        info = g.info("conv")
        resident = {"inputs": rng.random() < 0.4, "outputs": rng.random() < 0.4}
        reserved = {}
        for op, n in (("inputs", s.inputs), ("outputs", s.outputs)):
            if resident[op]:   # the resident tensor occupies its buffer while the layer runs
                name = hw.backing_level(op).name
                reserved[name] = reserved.get(name, 0) + n
        try:
            cost = layer_cost(info, g.layer("conv"), hw, dense_storage(info, 1), batch=s.N, reserved_bytes=reserved,
                              inputs_resident=resident["inputs"], outputs_resident=resident["outputs"])
        except Exception as e:  # buffers too small for any tiling: a clear error, try another case
            assert "no tiling fits" in str(e)
            continue
        counted = walk(cost.shape, cost.mapping)
        # row stationary streams weights past the buffer tiles, one pass at a time (its own walker:
        # test_hw_dataflows.py); its buffer holds one pass's filters
        streamed = ("weights",) if dataflow == "row_stationary" else ()
        for op in ("weights", "inputs", "outputs"):
            if op in streamed:
                continue
            moved = not resident.get(op, False)
            assert cost.dram_reads_bytes[op] == counted[op][0] * moved, (dataflow, s, cost.mapping, op)
            assert cost.dram_writes_bytes[op] == counted[op][1] * moved, (dataflow, s, cost.mapping, op)
        for level in levels[1:]:
            tiles = sum(counted[op][2] for op in level.holds if not resident.get(op, False) and op not in streamed)
            if streamed and "weights" in level.holds:
                pl = cost.pe_mapping
                tiles += min(pl["p"] * pl["t"], s.K) * min(pl["q"] * pl["r"], s.C) * pl["filter_rows_per_set"] * s.S
            assert tiles + reserved.get(level.name, 0) <= level.capacity_bytes
        assert cost.mapping.dataflow == dataflow
        assert set(cost.resident_operands) == {op for op, r in resident.items() if r}
        checked += 1
