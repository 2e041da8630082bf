"""Mapping search: the tiling and loop order that minimise DRAM traffic within on-chip capacity.

Vectorised with numpy over every candidate tiling (a grid of tile sizes per dimension) and the
dataflow's loop orders; no Python loop per candidate.

Loop orders.  With the kernel loops R and S kept whole on chip, the DRAM traffic of an order
depends only on its innermost loop with more than one trip (see :mod:`sqsim.hw.loopnest`):

* innermost C: weights x T_N T_P T_Q, inputs x T_K, outputs once;
* innermost K: weights x T_N T_P T_Q, inputs once, outputs x T_C;
* innermost N, P or Q with K and C outside them: weights once, inputs x T_K, outputs x T_C.

Any other order with the same innermost loop costs at least as much, so the three canonical
orders of :data:`CANONICAL_ORDERS` reach the minimum over all 5040 (``tests/test_hw_search.py``
checks it by enumeration); ``row_stationary`` and ``eie_sparse`` search those.  A *stationary*
dataflow keeps its stationary operand's irrelevant loops innermost (output-stationary: C, R, S;
weight-stationary: N, P, Q; input-stationary: K) and searches every order of that form
(:func:`stationary_orders`): when a tile makes the innermost loop trivial, the order of the outer
loops matters again.

Tile candidates per dimension: the distinct sizes ``ceil(D / n)`` (each gives a different trip
count ``n``), thinned to a geometric subset when there are many; R and S are whole.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import SqsimError
from ..limits import check_memory
from .loopnest import OPERAND_NAMES, Mapping, dram_traffic, grid_sizes, traffic_grid
from .workload import DIMS, ConvShape

# Canonical DRAM-level loop orders (outermost first); see the module docstring.
CANONICAL_ORDERS = {
    "output_stationary": ("N", "K", "P", "Q", "C", "R", "S"),
    "input_stationary": ("N", "C", "P", "Q", "R", "S", "K"),
    "weight_stationary": ("K", "C", "R", "S", "N", "P", "Q"),
}


def stationary_orders(inner: str) -> dict:
    """Every loop order with the dimensions ``inner`` innermost (R and S, whole on chip, in fixed
    places), as ``{"NKPQCRS": order, ...}``."""
    import itertools
    outer = [d for d in DIMS if d not in inner and d not in "RS"]
    tail_outer = [d for d in "RS" if d not in inner]
    core_inner = [d for d in inner if d not in "RS"]
    tail_inner = [d for d in "RS" if d in inner]
    out = {}
    for po in itertools.permutations(outer):
        for pi in itertools.permutations(core_inner):
            order = tuple(po) + tuple(tail_outer) + tuple(pi) + tuple(tail_inner)
            out["".join(order)] = order
    return out


# The stationary operand's irrelevant loops, innermost (see the module docstring).
STATIONARY_INNER = {"output_stationary": "CRS", "weight_stationary": "NPQ", "input_stationary": "K"}

# Most candidate tile sizes per dimension (the grid is their product).
MAX_CANDIDATES = {"N": 8, "K": 16, "C": 16, "P": 12, "Q": 8, "R": 1, "S": 1}


@dataclass(frozen=True)
class Buffer:
    """A capacity constraint: the operands whose tiles share one on-chip level.

    Attributes
    ----------
    level : str
    capacity_bytes : float
        Space available for this layer's tiles (reserved space already subtracted).
    operands : tuple of str
    """
    level: str
    capacity_bytes: float
    operands: tuple[str, ...]


def tile_candidates(size: int, limit: int) -> np.ndarray:
    """Distinct tile sizes ``ceil(size / n)``, n = 1..size, at most ``limit`` of them (always
    including ``size`` and 1), descending."""
    # In O(sqrt(size)) memory, not O(size): the values for n <= r = isqrt(size), and every v <=
    # ceil(size / r) that occurs, i.e. with ceil(size / ceil(size / v)) == v (the least n giving
    # a value <= v is ceil(size / v)).
    r = math.isqrt(size)
    big = -(-size // np.arange(1, r + 1, dtype=np.int64))
    v = np.arange(1, -(-size // r) + 1, dtype=np.int64)
    small = v[-(-size // -(-size // v)) == v]
    t = np.unique(np.concatenate((big, small)))[::-1]
    if len(t) <= limit:
        return t
    pick = np.unique(np.round(np.geomspace(1, len(t), limit)).astype(int) - 1)
    return t[pick]


def search_mapping(shape: ConvShape, orders: dict, buffers, bytes_per_element: dict,
                   fixed_bytes: dict | None = None, weights_resident: bool = False,
                   dataflow: str = "", tile_bytes: dict | None = None, whole: tuple = ()) -> Mapping:
    """The mapping with the least DRAM traffic (bytes) whose tiles fit every buffer.

    Parameters
    ----------
    shape : ConvShape
    orders : dict
        ``{name: loop order}`` the dataflow allows (e.g. one entry of :data:`CANONICAL_ORDERS`).
    buffers : iterable of Buffer
    bytes_per_element : dict
        ``{operand: bytes}`` moved to or from DRAM per element (weights: stored bytes per weight,
        compression included; feature maps: their DRAM coding included).
    tile_bytes : dict, optional
        ``{operand: bytes}`` an element takes in its on-chip buffer (default: ``bytes_per_element``;
        they differ when feature maps are coded in DRAM or partial sums are wider).
    fixed_bytes : dict, optional
        ``{operand: bytes}`` held on chip besides the tiles (codebook and biases with the weights).
    weights_resident : bool
        Weights must stay whole on chip (tiles K and C full).
    whole : tuple of str
        Further dimensions whose tiles must be whole (a conv fused with a pool streams whole
        output rows into the pool's line buffer: ``("Q",)``).
    dataflow : str
        Recorded in the mapping.

    Raises
    ------
    SqsimError
        No candidate fits (names the layer and the tightest buffer).

    Ties in traffic go to the fewest tile steps (product of trip counts), then to the smallest
    on-chip footprint, then to the first order given.
    """
    fixed_bytes = fixed_bytes or {}
    tile_bytes = bytes_per_element if tile_bytes is None else tile_bytes
    buffers = tuple(buffers)
    full = {d: shape.dim(d) for d in DIMS}
    # the loop-nest counter holds a few int64 arrays of one entry per output row or column
    check_memory(32 * max(shape.P, shape.Q), f"layer {shape.name!r}: mapping search")
    # All tiles whole: every operand crosses once; no search needed when that fits.
    if _fits_scalar(shape, full, buffers, tile_bytes, fixed_bytes):
        order = next(iter(orders.values()))
        return Mapping(dataflow, tuple(order), tuple(full[d] for d in DIMS), weights_resident)

    axes = {}
    for d in DIMS:
        if d in ("R", "S") or (weights_resident and d in ("K", "C")) or d in whole:
            axes[d] = np.array([full[d]])
        else:
            axes[d] = tile_candidates(full[d], MAX_CANDIDATES[d])
    grid_shape = tuple(len(axes[d]) for d in DIMS)

    # Tile footprints, the capacity check, tile steps and footprint totals do not depend on the
    # loop order: computed once; each order only changes how often operands cross (its cost).
    sizes = grid_sizes(shape, axes)
    tiles = sizes[1]
    footprint = {op: tiles[op][1] * tile_bytes[op] + fixed_bytes.get(op, 0.0) for op in OPERAND_NAMES}
    ok = np.ones(grid_shape, dtype=bool)
    for b in buffers:
        ok &= sum(footprint[op] for op in b.operands) <= b.capacity_bytes
    best = None
    if ok.any():
        total_fp = np.broadcast_to(sum(footprint[op] for op in OPERAND_NAMES), grid_shape).ravel()
        steps = np.ones([1] * len(DIMS), dtype=np.int64)
        for d, ix in zip(DIMS, np.ix_(*(axes[d] for d in DIMS))):
            steps = steps * -(-shape.dim(d) // ix)             # tile steps of the nest
        steps = np.broadcast_to(steps, grid_shape).ravel()
        idx = np.flatnonzero(ok.ravel())
        fp_ok, steps_ok = total_fp[idx], steps[idx]
    for order in (orders.values() if ok.any() else ()):
        tr = traffic_grid(shape, axes, order, sizes)
        cost = np.broadcast_to(sum((tr[op][0] + tr[op][1]) * bytes_per_element[op] for op in OPERAND_NAMES),
                               grid_shape).ravel()[idx]
        tie = np.flatnonzero(cost == cost.min())             # least traffic, then steps, then footprint
        j = tie[np.lexsort((fp_ok[tie], steps_ok[tie]))[0]]
        i = idx[j]
        key = (float(cost[j]), int(steps[i]), float(total_fp[i]))
        if best is None or key < best[0]:
            pos = np.unravel_index(i, grid_shape)
            best = (key, order, tuple(int(axes[d][k]) for d, k in zip(DIMS, pos)))
    if best is None:
        tight = min(buffers, key=lambda b: b.capacity_bytes)
        raise SqsimError(f"layer {shape.name!r}: no tiling fits on chip: even the smallest tiles exceed "
                         f"{tight.level!r} ({tight.capacity_bytes:,.0f} bytes free for "
                         f"{', '.join(tight.operands)})")
    _, order, chosen = best
    return Mapping(dataflow, tuple(order), chosen, weights_resident)


def footprint_bytes(shape: ConvShape, mapping: Mapping, bytes_per_element: dict,
                    fixed_bytes: dict | None = None) -> dict:
    """On-chip bytes each operand's largest tile takes under ``mapping``."""
    fixed_bytes = fixed_bytes or {}
    tr = dram_traffic(shape, mapping)
    return {op: tr[op].max_tile_elements * bytes_per_element[op] + fixed_bytes.get(op, 0.0) for op in OPERAND_NAMES}


def _fits_scalar(shape, tile, buffers, bpe, fixed) -> bool:
    m = Mapping("x", DIMS, tuple(tile[d] for d in DIMS))
    fp = footprint_bytes(shape, m, bpe, fixed)
    return all(sum(fp[op] for op in b.operands) <= b.capacity_bytes for b in buffers)
