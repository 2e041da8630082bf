"""The layer graph: named :class:`Layer` nodes of a DAG, validated and shape-inferred once, at
construction.  :attr:`Graph.nx` gives it as a networkx DiGraph (networkx loads on first use: the
topological order and the checks need only the standard library).

>>> from sqsim.ir import Graph, Layer
>>> g = Graph([Layer("data", "input", shape=(3, 8, 8)),
...            Layer("conv", "conv2d", ("data",), out_channels=4, kernel=(3, 3))])
>>> g.info("conv").output_shape, g.info("conv").macs
((4, 6, 6), 3888)
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator

from ..errors import GraphError, LimitError, short
from ..limits import check
from .layer import WEIGHTED_OPS, Layer, LayerInfo
from .shapes import check_sizes, infer

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx


@dataclass(frozen=True)
class Totals:
    """Whole-graph sums (per sample)."""
    weights: int
    biases: int
    macs: int
    activations: int  # sum of every layer's output elements, the input included (as Netscope counts)
    params_after_pruning: int

    @property
    def params(self) -> int:
        return self.weights + self.biases


class Graph:
    """A validated, shape-inferred layer graph.

    Parameters
    ----------
    layers : iterable of Layer
        In file order; the topological order used everywhere follows it (ties broken by file order).
    name : str
        Network name.
    source : str, optional
        Where the graph came from (file path), used in error messages.

    Raises
    ------
    GraphError
        Duplicate names, an input naming a missing layer, a cycle, no input layer, or any shape
        rule failing (concat/add mismatch, kernel larger than its padded input, bad groups).
    LimitError
        More layers, or a layer with larger tensors or more MACs, than :mod:`sqsim.limits` allows.
    """

    def __init__(self, layers: Iterable[Layer], name: str = "network", source: str | None = None,
                 lines: dict | None = None):
        layers = list(layers)
        prefix = f"{source}: " if source else ""
        check("layers", len(layers), f"{prefix}network {short(name, 60)}: layers")
        self.name = name
        self.source = source
        lines = lines or {}

        def at(layer_name):  # "file:line: " where the loader knows the layer's line
            line = lines.get(layer_name)
            return f"{source}:{line}: " if source and line else prefix

        order, succ = {}, {}
        for i, layer in enumerate(layers):
            if layer.name in order:
                raise GraphError(f"{at(layer.name)}layer {layer.name!r}: duplicate layer name")
            order[layer.name] = i
            succ[layer.name] = {}                   # ordered set: edges in insertion order, no duplicates
        for layer in layers:
            if layer.op == "input" and layer.inputs:
                raise GraphError(f"{at(layer.name)}layer {layer.name!r} (input): an input layer takes no inputs")
            if layer.op != "input" and not layer.inputs:
                raise GraphError(f"{at(layer.name)}layer {layer.name!r} ({layer.op}): has no inputs")
            for src in layer.inputs:
                if src not in order:
                    raise GraphError(f"{at(layer.name)}layer {layer.name!r} ({layer.op}): input {src!r} is not "
                                     f"produced by any layer")
                succ[src][layer.name] = None
        if not any(l.op == "input" for l in layers):
            raise GraphError(f"{prefix}network {name!r} has no input layer")
        self._lines = dict(lines)
        self._layers = {l.name: l for l in layers}
        self._succ = {n: tuple(s) for n, s in succ.items()}
        self._nx = None
        self._order = self._topological_order(order)
        if self._order is None:
            import networkx as nx
            cycle = nx.find_cycle(self.nx)
            path = " -> ".join([e[0] for e in cycle] + [cycle[-1][1]])
            raise GraphError(f"{prefix}the layer graph has a cycle: {path}")
        self._info: dict[str, LayerInfo] = {}
        for n in self._order:
            layer = self._layers[n]
            try:
                info = infer(layer, tuple(self._info[s].output_shape for s in layer.inputs))
                check_sizes(info)
            except (GraphError, LimitError) as e:
                raise type(e)(f"{at(n)}{e}") from None
            self._info[n] = info

    def _topological_order(self, order: dict) -> list | None:
        """Kahn's algorithm, the ready layer listed first in the file going next (what
        ``networkx.lexicographical_topological_sort(g, key=order)`` gives); None on a cycle."""
        indegree = dict.fromkeys(order, 0)
        for n, consumers in self._succ.items():
            for c in consumers:
                indegree[c] += 1
        ready = [(order[n], n) for n, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        out = []
        while ready:
            _, n = heapq.heappop(ready)
            out.append(n)
            for c in self._succ[n]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    heapq.heappush(ready, (order[c], c))
        return out if len(out) == len(order) else None

    # --- access -------------------------------------------------------------------------------
    @property
    def nx(self) -> "nx.DiGraph":
        """The graph as a networkx DiGraph (node attributes ``layer`` and ``info``), built on first
        use. Do not mutate."""
        if self._nx is None:
            import networkx as nx
            g = nx.DiGraph()
            for n, layer in self._layers.items():
                g.add_node(n, layer=layer)
                if n in getattr(self, "_info", {}):
                    g.nodes[n]["info"] = self._info[n]
            for n, consumers in self._succ.items():
                for c in consumers:
                    g.add_edge(n, c)
            self._nx = g
        return self._nx

    def __iter__(self) -> Iterator[Layer]:
        return (self._layers[n] for n in self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name) -> bool:
        return name in self._info

    def __eq__(self, other) -> bool:
        return isinstance(other, Graph) and self.name == other.name and list(self) == list(other)

    def __repr__(self) -> str:
        t = self.totals()
        return f"Graph({self.name!r}, {len(self)} layers, {t.params:,} params, {t.macs:,} MACs)"

    @property
    def order(self) -> list[str]:
        return list(self._order)

    def layer(self, name: str) -> Layer:
        try:
            return self._layers[name]
        except KeyError:
            raise GraphError(f"network {self.name!r} has no layer {name!r}") from None

    def info(self, name: str) -> LayerInfo:
        try:
            return self._info[name]
        except KeyError:
            raise GraphError(f"network {self.name!r} has no layer {name!r}") from None

    def infos(self) -> list[LayerInfo]:
        return [self._info[n] for n in self._order]

    def weighted_layers(self) -> list[Layer]:
        """conv2d and fc layers in topological order."""
        return [l for l in self if l.op in WEIGHTED_OPS]

    def inputs(self) -> list[Layer]:
        return [l for l in self if l.op == "input"]

    @property
    def input_shape(self):
        ins = self.inputs()
        if len(ins) != 1:
            raise GraphError(f"network {self.name!r} has {len(ins)} inputs; expected one")
        return ins[0].shape

    def outputs(self) -> list[str]:
        """Layers nobody consumes (the network's outputs)."""
        return [n for n in self._order if not self._succ[n]]

    def consumers(self, name: str) -> list[str]:
        return sorted(self._succ[name], key=self._order.index)

    def totals(self) -> Totals:
        infos = self.infos()
        return Totals(weights=sum(i.weights for i in infos), biases=sum(i.biases for i in infos),
                      macs=sum(i.macs for i in infos),
                      activations=sum(i.output_elements for i in infos),
                      params_after_pruning=sum(i.params_after_pruning for i in infos))

    # --- derivation ---------------------------------------------------------------------------
    def with_layers(self, layers: Iterable[Layer], name: str | None = None) -> "Graph":
        return Graph(layers, name=name or self.name, source=self.source, lines=self._lines)

    def with_input_size(self, height: int, width: int | None = None) -> "Graph":
        """The same network at another input resolution."""
        width = height if width is None else width
        return self.with_layers(l.replace(shape=(l.shape[0], height, width)) if l.op == "input" else l
                                for l in self)

    def with_compression(self, profiles: dict | None) -> "Graph":
        """Replace compression profiles: ``{layer name: Compression or None}``; None clears all."""
        if profiles is None:
            return self.with_layers(l.replace(compression=None) if l.op in WEIGHTED_OPS else l for l in self)
        for n in profiles:
            self.layer(n)
        return self.with_layers(l.replace(compression=profiles[l.name]) if l.name in profiles else l
                                for l in self)
