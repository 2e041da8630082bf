"""The layer cache: per-layer costs and mapping searches shared between the analyses of a sweep.

A layer's cost is keyed on exactly what it depends on: the layer (shape and attributes), its
weights as stored, the batch, densities, residency and reserved space, and the hardware's
*structure* (:func:`sqsim.hw.pricing.structure_key`: everything but energies, clock and
bandwidths, which only price its actions).  A hit with other prices is re-priced by
:func:`sqsim.hw.cost.price_layer`, so :func:`sqsim.analysis.analyze` returns the same report with
or without a cache.  Mapping searches are keyed on their own inputs (the layer shape, the free
buffer capacities, bytes per element, the dataflow), so a sweep over array shapes, clocks or
energies searches each layer once.
"""
from __future__ import annotations

from dataclasses import replace

from ..hw.cost import layer_cost, price_layer, vector_cost, vector_ops
from ..hw.pricing import price_vector, structure_key


class LayerCache:
    """Memo of :func:`~sqsim.hw.cost.layer_cost`, :func:`~sqsim.hw.cost.vector_cost` and the
    mapping search; pass it as ``analyze(..., cache=c)``.

    Attributes
    ----------
    hits, misses : int
        Layer costs found and computed.
    searches : int
        Mapping searches run (misses of the mapping memo).
    """

    def __init__(self):
        self._hw: dict = {}          # id(hw) -> (hw, structure key, prices)
        self._costs: dict = {}
        self._maps: dict = {}
        self.hits = self.misses = self.searches = 0

    def __len__(self) -> int:
        return len(self._costs)

    def _hw_entry(self, hw):
        e = self._hw.get(id(hw))
        if e is None or e[0] is not hw:
            e = (hw, structure_key(hw), price_vector(hw))
            self._hw[id(hw)] = e
        return e

    def hw_key(self, hw):
        """The hardware's structure key (memoised per spec object)."""
        return self._hw_entry(hw)[1]

    def get(self, key, search):
        """A mapping search's result for ``key``, running ``search()`` on a miss."""
        r = self._maps.get(key)
        if r is None:
            self.searches += 1
            r = self._maps[key] = search()
        return r

    def _lookup(self, key, hw, compute, mac_ops, coded, sparse):
        _, _, prices = self._hw_entry(hw)
        hit = self._costs.get(key)
        if hit is None:
            self.misses += 1
            cost = compute()
            self._costs[key] = (cost, prices)
            return cost
        self.hits += 1
        cost, priced = hit
        if priced == prices:
            return cost
        energy, timing = price_layer(hw, mac_ops(cost), cost.decodes, coded, sparse, cost.compute_cycles,
                                     cost.dram_reads_bytes, cost.dram_writes_bytes, cost.level_reads_bytes,
                                     cost.level_writes_bytes)
        return replace(cost, energy_breakdown_j=energy, **timing)

    def layer_cost(self, info, layer, hw, storage, batch=1, input_density=1.0, weights_resident=False,
                   reserved_bytes=None, inputs_resident=False, outputs_resident=False, output_density=1.0,
                   outputs_fused=False, weights_preloaded=False):
        """:func:`~sqsim.hw.cost.layer_cost`, memoised."""
        key = ("conv", info, layer, self.hw_key(hw), storage, batch, input_density, weights_resident,
               tuple(sorted((reserved_bytes or {}).items())), inputs_resident, outputs_resident, output_density,
               outputs_fused, weights_preloaded)

        def compute():
            return layer_cost(info, layer, hw, storage, batch, input_density, weights_resident=weights_resident,
                              reserved_bytes=reserved_bytes, inputs_resident=inputs_resident,
                              outputs_resident=outputs_resident, output_density=output_density,
                              outputs_fused=outputs_fused, weights_preloaded=weights_preloaded, mapping_cache=self)
        return self._lookup(key, hw, compute, lambda c: c.macs_effective, storage.coded, storage.sparse)

    def vector_cost(self, info, layer, hw, batch=1, inputs_resident=(), outputs_resident=False, input_densities=(),
                    output_density=1.0, inputs_fused=()):
        """:func:`~sqsim.hw.cost.vector_cost`, memoised."""
        key = ("vector", info, layer, self.hw_key(hw), batch, tuple(inputs_resident), outputs_resident,
               tuple(input_densities), output_density, tuple(inputs_fused))

        def compute():
            return vector_cost(info, layer, hw, batch, inputs_resident=inputs_resident,
                               outputs_resident=outputs_resident, input_densities=input_densities,
                               output_density=output_density, inputs_fused=inputs_fused)
        return self._lookup(key, hw, compute, lambda c: vector_ops(info, layer) * batch, False, False)

    def trim(self, keep: int) -> None:
        """Drop the oldest entries, keeping ``keep`` layer costs and as many mapping searches."""
        for d in (self._costs, self._maps):
            for k in list(d)[: max(0, len(d) - keep)]:
                del d[k]
        self._hw.clear()
