"""A mapping (loop order + tile sizes) of one layer onto DRAM -> on-chip buffers, and the exact
DRAM traffic it causes.

The model (nn_dataflow's two-level blocking, Timeloop's "temporal loops at the DRAM level"):

* The on-chip buffer of each operand holds one *tile*: the elements the innermost block of the
  loop nest touches.  Tile sizes ``t_d`` per dimension give ``T_d = ceil(D / t_d)`` tiles along
  ``d``; the DRAM-level loop nest walks the tiles in ``loop_order`` (outermost first).
* A tile is identified by its loop indices.  When the tile an operand needs changes, the whole new
  tile is fetched (no reuse between different tiles, e.g. of overlapping input halos); an output
  tile leaving the buffer is written back, and read back again (partial sums) when it returns.
* Hence operand ``X`` is refetched once per iteration of every loop *irrelevant* to ``X`` that
  sits outside ``X``'s innermost relevant loop with more than one trip::

      mult(X)  = prod { T_d : d not in rel(X), pos(d) < max{pos(e) : e in rel(X), T_e > 1} }
      reads(X) = mult(X) * sum over X's tiles of the tile's elements            (weights, inputs)
      writes(outputs) = mult(outputs) * N*K*P*Q;  reads(outputs) = (mult(outputs) - 1) * N*K*P*Q

  Tiles of weights and outputs partition their tensors (the sum is ``K*C*R*S`` and ``N*K*P*Q``);
  input tiles along rows cover ``{p*stride + r - pad}`` for the tile's ``p`` and ``r`` ranges,
  clipped to ``[0, H)`` (padding is never fetched): :func:`axis_extents`.

``tests/test_hw_loopnest.py`` walks the loop nest of random mappings on small layers, simulates
each operand's buffer and counts the elements crossing the DRAM boundary: it agrees exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .workload import DIMS, RELEVANT, ConvShape

OPERAND_NAMES = ("weights", "inputs", "outputs")


@dataclass(frozen=True)
class Mapping:
    """How one group of a layer is scheduled between DRAM and the on-chip buffers.

    Attributes
    ----------
    dataflow : str
    loop_order : tuple of str
        The 7 dimensions N, K, C, P, Q, R, S, outermost first.
    tiles : tuple of int
        On-chip tile size per dimension, in :data:`~sqsim.hw.workload.DIMS` order.
    weights_resident : bool
        The whole model's weights stay on chip (loaded once per batch).
    """
    dataflow: str
    loop_order: tuple[str, ...]
    tiles: tuple[int, ...]
    weights_resident: bool = False

    def __post_init__(self):
        if sorted(self.loop_order) != sorted(DIMS):
            raise ValueError(f"loop_order must be a permutation of {DIMS}, got {self.loop_order}")
        if len(self.tiles) != len(DIMS) or any(int(t) < 1 for t in self.tiles):
            raise ValueError(f"tiles must be 7 positive sizes, got {self.tiles}")

    @property
    def tile(self) -> dict:
        return dict(zip(DIMS, (int(t) for t in self.tiles)))

    def trips(self, shape: ConvShape) -> dict:
        return {d: -(-shape.dim(d) // t) for d, t in self.tile.items()}


@dataclass(frozen=True)
class OperandTraffic:
    """DRAM traffic of one operand of one group, in elements, with the terms that produce it.

    Attributes
    ----------
    operand : str
    tile_elements_sum : int
        Sum over the operand's distinct tiles of their elements (the tensor's size, plus input
        halos).
    max_tile_elements : int
        Largest tile: what the buffer must hold.
    multiplier : int
        How often each tile is fetched (``mult`` above).
    multiplier_loops : tuple of str
        The loops whose trip counts make up ``multiplier``.
    reads, writes : int
        Elements read from / written to DRAM.
    """
    operand: str
    tile_elements_sum: int
    max_tile_elements: int
    multiplier: int
    multiplier_loops: tuple[str, ...]
    reads: int
    writes: int


def axis_extents(n_out: int, t_out: int, n_k: int, t_k: int, stride: int, pad: int, size: int):
    """Input extents along one spatial axis for every (output tile, kernel tile) pair.

    The tile of outputs ``[a, b]`` and kernel taps ``[r0, r1]`` touches input positions
    ``{p*stride + r - pad : a <= p <= b, r0 <= r <= r1}`` within ``[0, size)``.  Windows of
    consecutive outputs overlap or touch when ``stride <= r1 - r0 + 1`` (one interval); otherwise
    they are disjoint (a sum over ``p`` of clipped windows).

    Returns
    -------
    (sum, max) : (int, int)
        Total positions over all pairs, and the largest single extent.
    """
    a = np.arange(0, n_out, t_out, dtype=np.int64)
    b = np.minimum(a + t_out, n_out) - 1
    total, biggest = 0, 0
    for r0 in range(0, n_k, t_k):  # kernel tiles: at most n_k of them
        r1 = min(r0 + t_k, n_k) - 1
        if stride <= r1 - r0 + 1:  # one interval per output tile
            ext = _clipped(a * stride + r0 - pad, b * stride + r1 - pad, size)
        else:  # disjoint windows: prefix sum of each output's clipped window
            p = np.arange(n_out, dtype=np.int64)
            w = _clipped(p * stride + r0 - pad, p * stride + r1 - pad, size)
            cs = np.concatenate(([0], np.cumsum(w)))
            ext = cs[b + 1] - cs[a]
        total += int(ext.sum())
        biggest = max(biggest, int(ext.max()))
    return total, biggest


def _clipped(lo, hi, size):
    """Number of positions of ``[lo, hi]`` inside ``[0, size)``."""
    return np.maximum(0, np.minimum(size - 1, hi) - np.maximum(0, lo) + 1)


def multiplier(loop_order, trips: dict, operand: str) -> tuple[int, tuple[str, ...]]:
    """``mult(operand)`` and the loops it comes from (see the module docstring)."""
    rel = RELEVANT[operand]
    inner = max((i for i, d in enumerate(loop_order) if d in rel and trips[d] > 1), default=-1)
    loops = tuple(d for i, d in enumerate(loop_order[:max(inner, 0)]) if d not in rel and trips[d] > 1)
    m = 1
    for d in loops:
        m *= trips[d]
    return m, loops


def dram_traffic(shape: ConvShape, mapping: Mapping) -> dict[str, OperandTraffic]:
    """Exact DRAM traffic of one group of ``shape`` under ``mapping``, per operand, in elements.

    Examples
    --------
    >>> from sqsim.hw.workload import ConvShape
    >>> s = ConvShape("l", N=1, K=4, C=2, P=4, Q=4, R=3, S=3, H=6, W=6)
    >>> m = Mapping("output_stationary", tuple("NKPQCRS"), (1, 2, 2, 2, 4, 3, 3))
    >>> t = dram_traffic(s, m)
    >>> t["weights"].reads, t["inputs"].reads, t["inputs"].multiplier_loops, t["outputs"].writes
    (72, 192, ('K',), 64)
    """
    t = mapping.tile
    trips = mapping.trips(shape)
    rows_sum, rows_max = axis_extents(shape.P, t["P"], shape.R, t["R"], shape.stride_h, shape.pad_h, shape.H)
    cols_sum, cols_max = axis_extents(shape.Q, t["Q"], shape.S, t["S"], shape.stride_w, shape.pad_w, shape.W)
    sizes = {
        "weights": (shape.K * shape.C * shape.R * shape.S, t["K"] * t["C"] * t["R"] * t["S"]),
        "inputs": (shape.N * shape.C * rows_sum * cols_sum, t["N"] * t["C"] * rows_max * cols_max),
        "outputs": (shape.outputs, t["N"] * t["K"] * t["P"] * t["Q"]),
    }
    out = {}
    for op in OPERAND_NAMES:
        total, biggest = sizes[op]
        m, loops = multiplier(mapping.loop_order, trips, op)
        if op == "outputs":
            reads, writes = (m - 1) * total, m * total
        else:
            reads, writes = m * total, 0
        out[op] = OperandTraffic(op, total, biggest, m, loops, reads, writes)
    return out


# --- vectorised evaluation over a grid of candidate tilings (the mapping search) -------------------

def traffic_grid(shape: ConvShape, axes: dict, loop_order, sizes: dict | None = None) -> dict:
    """:func:`dram_traffic` for every tiling of a grid and one loop order, vectorised.

    Parameters
    ----------
    axes : dict
        ``{dim: 1-D int array of candidate tile sizes}`` for each of the 7 dimensions; the grid
        is their Cartesian product (numpy broadcasting, dimension order :data:`DIMS`).
    sizes : dict, optional
        :func:`grid_sizes` of the same shape and axes (they do not depend on the loop order: a
        search over many orders computes them once).

    Returns
    -------
    dict
        ``{operand: (reads, writes, max_tile_elements)}``, int64 arrays broadcastable to the grid.
    """
    nd = len(DIMS)
    trips, sizes = sizes if sizes is not None else grid_sizes(shape, axes)
    pos = {d: i for i, d in enumerate(loop_order)}
    out = {}
    for op in OPERAND_NAMES:
        rel = RELEVANT[op]
        inner = np.full([1] * nd, -1, dtype=np.int64)
        for d in rel:
            inner = np.maximum(inner, np.where(trips[d] > 1, pos[d], -1))
        m = np.ones([1] * nd, dtype=np.int64)
        for d in DIMS:
            if d not in rel:
                m = m * np.where(pos[d] < inner, trips[d], 1)
        total, biggest = sizes[op]
        if op == "outputs":
            out[op] = ((m - 1) * total, m * total, biggest)
        else:
            out[op] = (m * total, np.zeros_like(m), biggest)
    return out


def grid_sizes(shape: ConvShape, axes: dict) -> tuple[dict, dict]:
    """The loop-order-independent part of :func:`traffic_grid`: trip counts per dimension and,
    per operand, ``(elements crossing once, largest tile)`` over the grid."""
    nd = len(DIMS)
    t = {}
    for i, d in enumerate(DIMS):
        shp = [1] * nd
        shp[i] = -1
        t[d] = np.asarray(axes[d], dtype=np.int64).reshape(shp)
    trips = {d: -(-shape.dim(d) // t[d]) for d in DIMS}
    rows_sum, rows_max = _extent_table(shape.P, axes["P"], shape.R, axes["R"], shape.stride_h, shape.pad_h,
                                       shape.H, DIMS.index("P"), DIMS.index("R"))
    cols_sum, cols_max = _extent_table(shape.Q, axes["Q"], shape.S, axes["S"], shape.stride_w, shape.pad_w,
                                       shape.W, DIMS.index("Q"), DIMS.index("S"))
    sizes = {
        "weights": (shape.K * shape.C * shape.R * shape.S, t["K"] * t["C"] * t["R"] * t["S"]),
        "inputs": (shape.N * shape.C * rows_sum * cols_sum, t["N"] * t["C"] * rows_max * cols_max),
        "outputs": (shape.outputs, t["N"] * t["K"] * t["P"] * t["Q"]),
    }
    return trips, sizes


def _extent_table(n_out, t_out, n_k, t_k, stride, pad, size, axis_out, axis_k):
    """:func:`axis_extents` for every (output tile, kernel tile) candidate pair, shaped to
    broadcast along the grid's axes ``axis_out`` and ``axis_k``."""
    t_out, t_k = np.asarray(t_out, dtype=np.int64), np.asarray(t_k, dtype=np.int64)
    sums = np.empty((len(t_out), len(t_k)), dtype=np.int64)
    maxs = np.empty_like(sums)
    for i, a in enumerate(t_out):  # one per candidate tile size, not per candidate tiling
        for j, b in enumerate(t_k):
            sums[i, j], maxs[i, j] = axis_extents(n_out, int(a), n_k, int(b), stride, pad, size)
    shp = [1] * len(DIMS)
    shp[axis_out], shp[axis_k] = len(t_out), len(t_k)
    return sums.reshape(shp), maxs.reshape(shp)
