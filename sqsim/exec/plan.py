"""Execution plan: the steps to run, which layers share storage, and a buffer for every tensor.

The plan is backend-neutral.  It decides, once per (graph, batch size, options):

- **fusion**: a conv/fc whose only consumer is a ReLU writes the rectified result directly;
- **aliases**: dropout (identity) and a flatten of a ``C x 1 x 1`` tensor reuse their input's storage;
  a ReLU or an add whose input has no other reader works in place;
- **concat placement**: a tensor read only by a concat is written straight into its channel slice of
  the concat's output (in the CNHW layout a channel range is one contiguous block), so the concat copies
  nothing;
- **buffers**: tensors that are never live at the same time share a buffer (greedy best fit in step
  order), and buffers are allocated once and reused across runs.

Tensors named in ``keep`` (the network outputs and any requested layer) are never overwritten.
With ``stats`` set nothing is fused, so every layer's own output exists to be counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir import Graph


@dataclass(frozen=True)
class Step:
    """One kernel call: run ``layer`` reading the tensors of ``inputs`` and writing that of ``output``.

    ``relu`` is set when a following ReLU was fused in (``output`` is then the ReLU's name); ``alias``
    marks layers with no work of their own (their output is their input's storage).
    """
    layer: str
    op: str
    inputs: tuple[str, ...]
    output: str
    relu: bool = False
    in_place: bool = False
    alias: bool = False


@dataclass(frozen=True)
class Plan:
    """Steps plus storage: ``storage[name] = (buffer index, element offset)`` for every layer output
    (its ``shapes[name] = (C, N, H, W)`` elements are contiguous from there), ``buffer_sizes[i]``
    elements per buffer."""
    batch: int
    steps: list[Step]
    storage: dict[str, tuple[int, int]]
    buffer_sizes: list[int]
    shapes: dict[str, tuple[int, int, int, int]]
    keep: frozenset


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def build_plan(graph: Graph, batch: int, keep=(), stats: bool = False, fuse: bool = True) -> Plan:
    """Plan a run of ``graph`` on ``batch`` samples (see the module docstring)."""
    order = graph.order
    keep = frozenset(graph.outputs()) | frozenset(keep)
    # A concat reading the same tensor twice counts as two readers.
    readers = {n: [] for n in order}
    for n in order:
        for src in graph.layer(n).inputs:
            readers[src].append(n)
    shapes = {n: (graph.info(n).output_shape[0], batch) + tuple(graph.info(n).output_shape[1:]) for n in order}

    uf = _UnionFind()
    for n in order:
        uf.find(n)

    def external_readers(name: str) -> list[str]:
        root = uf.find(name)
        members = [m for m in order if uf.find(m) == root]
        return [r for m in members for r in readers[m] if uf.find(r) != root]

    def group_kept(name: str) -> bool:
        root = uf.find(name)
        return any(m in keep for m in order if uf.find(m) == root)

    steps: list[Step] = []
    fused_into: dict[str, str] = {}  # relu name -> conv/fc name that computes it
    for n in order:
        layer = graph.layer(n)
        op = layer.op
        if n in fused_into:
            continue
        if op == "dropout" or (op == "flatten" and graph.info(layer.inputs[0]).output_shape[1:] == (1, 1)):
            uf.union(layer.inputs[0], n)
            steps.append(Step(n, op, layer.inputs, n, alias=True))
            continue
        if op in ("conv2d", "fc") and fuse and not stats and n not in keep and len(readers[n]) == 1:
            r = readers[n][0]
            if graph.layer(r).op == "relu":
                fused_into[r] = n
                uf.union(n, r)
                steps.append(Step(n, op, layer.inputs, r, relu=True))
                continue
        if op == "relu":
            src = layer.inputs[0]
            if external_readers(src) == [n] and not group_kept(src):
                uf.union(src, n)
                steps.append(Step(n, op, layer.inputs, n, in_place=True))
                continue
        if op == "add":
            src = layer.inputs[0]
            if layer.inputs.count(src) == 1 and external_readers(src) == [n] and not group_kept(src):
                uf.union(src, n)
                steps.append(Step(n, op, layer.inputs, n, in_place=True))
                continue
        steps.append(Step(n, op, layer.inputs, n))

    # Concat placement: a group read only by one concat lives inside the concat's storage.
    placed: dict[str, tuple[str, int]] = {}  # group root -> (concat layer, channel offset)
    for n in order:
        layer = graph.layer(n)
        if layer.op != "concat":
            continue
        offset = 0
        for src in layer.inputs:
            c = graph.info(src).output_shape[0]
            root = uf.find(src)
            if (layer.inputs.count(src) == 1 and root not in placed and root != uf.find(n)
                    and external_readers(src) == [n] and not group_kept(src)):
                placed[root] = (n, offset)
            offset += c

    # Top-level groups (not placed) get buffers; placed groups resolve to (top group, offset).
    def resolve(name: str) -> tuple[str, int]:
        root = uf.find(name)
        if root in placed:
            parent, off = placed[root]
            top, off2 = resolve(parent)
            return top, off + off2
        return root, 0

    where = {n: resolve(n) for n in order}
    step_index = {}
    for i, s in enumerate(steps):
        step_index[s.output] = i
        step_index.setdefault(s.layer, i)
    for r, c in fused_into.items():
        step_index[r] = step_index[c]
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for n in order:
        top = where[n][0]
        i = step_index[n]
        first[top] = min(first.get(top, i), i)
        end = len(steps) if n in keep else max([step_index[r] for r in readers[n]], default=i)
        last[top] = max(last.get(top, i), end)

    buffer_of, buffer_sizes = _assign_buffers(first, last, order, shapes, len(steps))
    # A channel offset in a CNHW tensor is an element offset of offset * N * H * W.
    storage = {n: (buffer_of[where[n][0]], where[n][1] * math.prod(shapes[n][1:])) for n in order}
    return Plan(batch, steps, storage, buffer_sizes, shapes, keep)


def _assign_buffers(first: dict, last: dict, order, shapes: dict, n_steps: int):
    """Greedy best-fit buffer assignment in step order: ``({group: buffer}, buffer sizes)`` for groups live
    from step ``first[g]`` to ``last[g]``; a buffer freed after a step is reused (the smallest that fits,
    else the largest free one, grown) before a new one is added."""
    tops = sorted(first, key=lambda t: (first[t], order.index(t)))
    size = {t: math.prod(shapes[t]) for t in tops}
    buffer_sizes: list[int] = []
    free: list[int] = []
    buffer_of: dict[str, int] = {}
    by_first: dict[int, list[str]] = {}
    by_last: dict[int, list[str]] = {}
    for t in tops:
        by_first.setdefault(first[t], []).append(t)
        by_last.setdefault(last[t], []).append(t)
    for i in range(n_steps + 1):
        for t in by_first.get(i, []):
            fits = [b for b in free if buffer_sizes[b] >= size[t]]
            if fits:
                b = min(fits, key=lambda b: buffer_sizes[b])
                free.remove(b)
            elif free:  # grow the largest free buffer rather than add one
                b = max(free, key=lambda b: buffer_sizes[b])
                free.remove(b)
                buffer_sizes[b] = size[t]
            else:
                b = len(buffer_sizes)
                buffer_sizes.append(size[t])
            buffer_of[t] = b
        for t in by_last.get(i, []):
            if i < n_steps:
                free.append(buffer_of[t])
    return buffer_of, buffer_sizes
