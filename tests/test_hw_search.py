"""The mapping search: canonical loop orders reach the minimum over all 5040 orders, and the
vectorised search returns the best feasible tiling of its candidate grid."""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from sqsim.errors import SqsimError
from sqsim.hw.loopnest import Mapping, dram_traffic, traffic_grid
from sqsim.hw.search import (CANONICAL_ORDERS, STATIONARY_INNER, Buffer, search_mapping, stationary_orders,
                             tile_candidates)
from sqsim.hw.workload import DIMS, ConvShape
from test_hw_loopnest import random_shape, walk

OPS = ("weights", "inputs", "outputs")


def grid_axes(shape):
    return {d: (np.array([shape.dim(d)]) if d in "RS" else tile_candidates(shape.dim(d), 99)) for d in DIMS}


def total(tr, bpe):
    return sum((tr[op][0] + tr[op][1]) * bpe[op] for op in OPS)


@pytest.mark.parametrize("seed", range(3))
def test_canonical_orders_reach_the_minimum_over_all_orders(seed):
    rng = random.Random(seed)
    shape = random_shape(rng)
    axes = grid_axes(shape)
    bpe = {"weights": rng.choice([0.5, 1, 2]), "inputs": 1, "outputs": rng.choice([1, 2])}
    shp = tuple(len(axes[d]) for d in DIMS)
    every = np.full(shp, np.inf)
    constrained = {name: np.full(shp, np.inf) for name in STATIONARY_INNER}
    for order in itertools.permutations(DIMS):
        t = np.broadcast_to(total(traffic_grid(shape, axes, order), bpe), shp)
        every = np.minimum(every, t)
        for name, inner in STATIONARY_INNER.items():
            if set(order[len(order) - len(inner):]) == set(inner):  # stationary operand's irrelevant loops innermost
                constrained[name] = np.minimum(constrained[name], t)
    canonical = [np.broadcast_to(total(traffic_grid(shape, axes, o), bpe), shp) for o in CANONICAL_ORDERS.values()]
    assert np.array_equal(every, np.minimum.reduce(canonical))
    for name, inner in STATIONARY_INNER.items():
        ours = [np.broadcast_to(total(traffic_grid(shape, axes, o), bpe), shp)
                for o in stationary_orders(inner).values()]
        assert np.array_equal(constrained[name], np.minimum.reduce(ours)), name


@pytest.mark.parametrize("seed", range(12))
def test_search_is_the_best_feasible_candidate(seed):
    rng = random.Random(100 + seed)
    shape = random_shape(rng)
    bpe = {"weights": rng.choice([0.375, 1.0]), "inputs": 1.0, "outputs": 1.0}
    fixed = {"weights": rng.choice([0.0, 3.0])}
    cap = rng.randint(8, 60)
    shared = rng.random() < 0.5
    buffers = [Buffer("buf", cap, OPS)] if shared else [Buffer(op, cap, (op,)) for op in OPS]
    orders = dict(CANONICAL_ORDERS) if rng.random() < 0.5 else stationary_orders(rng.choice(list(STATIONARY_INNER.values())))

    def footprint(m):
        tr = dram_traffic(shape, m)
        return {op: tr[op].max_tile_elements * bpe[op] + fixed.get(op, 0.0) for op in OPS}, tr

    best = None
    axes = grid_axes(shape)
    for order in orders.values():
        for tiles in itertools.product(*(axes[d] for d in DIMS)):
            m = Mapping("x", order, tuple(int(t) for t in tiles))
            fp, tr = footprint(m)
            if all(sum(fp[op] for op in b.operands) <= b.capacity_bytes for b in buffers):
                cost = sum((tr[op].reads + tr[op].writes) * bpe[op] for op in OPS)
                best = cost if best is None else min(best, cost)
    if best is None:
        with pytest.raises(SqsimError, match="no tiling fits"):
            search_mapping(shape, orders, buffers, bpe, fixed)
        return
    m = search_mapping(shape, orders, buffers, bpe, fixed, dataflow="x")
    fp, tr = footprint(m)
    assert sum((tr[op].reads + tr[op].writes) * bpe[op] for op in OPS) == best
    # the chosen tiles really fit: the brute-force walker's largest tiles
    counted = walk(shape, m)
    for b in buffers:
        assert sum(counted[op][2] * bpe[op] + fixed.get(op, 0.0) for op in b.operands) <= b.capacity_bytes


def test_weights_resident_keeps_all_weights_in_one_tile():
    shape = ConvShape("l", N=1, K=8, C=6, P=10, Q=10, R=3, S=3, H=12, W=12)
    bpe = {op: 1.0 for op in OPS}
    m = search_mapping(shape, dict(CANONICAL_ORDERS), [Buffer("b", 1000, OPS)], bpe, weights_resident=True)
    assert m.tile["K"] == 8 and m.tile["C"] == 6 and m.weights_resident
    assert dram_traffic(shape, m)["weights"].reads == shape.weights


def test_tile_candidates():
    t = tile_candidates(113, 12)
    assert t[0] == 113 and t[-1] == 1 and len(t) <= 12 and all(np.diff(t) < 0)
    assert list(tile_candidates(6, 99)) == [6, 3, 2, 1]
