"""The result of :func:`sqsim.analysis.analyze` as a record with plain-data views.

Layer and total figures are *per inference* (a batch's figures divided by the batch size);
``per_batch`` holds the batch's own.  Latency per inference is ``cycles / clock`` at that rate,
frames per second its inverse; the batch's latency is ``per_batch.latency_s``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..hw.cost import LayerCost
from .network import Fit

OPERANDS = ("weights", "inputs", "outputs")


def _num(x):
    """int when integral (JSON stays exact), else float."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 2 ** 53:
        return int(x)
    return x


def mapping_dict(cost: LayerCost) -> dict | None:
    """The chosen mapping of a conv/fc layer as the JSON ``mapping`` object (DRAM bytes per batch,
    all groups)."""
    m = cost.mapping
    if m is None:
        return None
    return {"dataflow": m.dataflow, "loop_order": list(m.loop_order), "tiles": m.tile,
            "groups": cost.shape.groups, "batch": cost.batch, "weights_resident": m.weights_resident,
            "dram_reads": {op: _num(float(cost.dram_reads_bytes[op])) for op in OPERANDS},
            "dram_writes": {op: _num(float(cost.dram_writes_bytes[op])) for op in OPERANDS}}


@dataclass(frozen=True)
class NetworkReport:
    """A network on an accelerator: per-layer costs, totals, fit.

    Attributes
    ----------
    network, hardware : str
    hw : sqsim.hw.HardwareSpec
    batch : int
    weights_source : str
        ``profile``, ``dense`` or ``model``.
    layers : tuple of LayerCost
        Per batch, in graph order (fused layers omitted).
    total : LayerCost
        Their sum.
    fit : Fit
    storages : dict
        ``{layer: WeightStorage}``.
    input_densities : dict
        ``{layer: fraction of non-zero inputs}`` used.
    dense_fp32_bytes : int
        The uncompressed model at fp32 (4 bytes per parameter).
    activations : ActivationPlan or None
        Where each activation tensor lives (:mod:`sqsim.analysis.residency`).
    densities : Densities or None
        Every tensor's density and where it came from (:mod:`sqsim.analysis.densities`).
    not_run : tuple of str
        Layers the hardware does not run (left to the host, not costed).
    sizes : dict or None
        ``{layer: LayerSize or None}``: the accounting record each storage came from (None: dense).
    """
    network: str
    hardware: str
    hw: object
    batch: int
    weights_source: str
    layers: tuple
    total: LayerCost
    fit: Fit
    storages: dict
    input_densities: dict
    dense_fp32_bytes: int
    activations: object = None
    densities: object = None
    not_run: tuple = ()
    sizes: dict | None = None

    # --- per inference -------------------------------------------------------------------------
    @property
    def clock_hz(self) -> float:
        return self.hw.clock_hz

    def layer(self, name: str) -> LayerCost:
        for c in self.layers:
            if c.name == name:
                return c
        names = ", ".join(c.name for c in self.layers)
        from ..errors import SqsimError
        raise SqsimError(f"network {self.network!r} has no analysed layer {name!r} (layers: {names})")

    @property
    def cycles_per_inference(self) -> float:
        return self.total.cycles / self.batch

    @property
    def latency_s(self) -> float:
        return self.cycles_per_inference / self.clock_hz

    @property
    def frames_per_s(self) -> float:
        return 1.0 / self.latency_s if self.latency_s else float("inf")

    @property
    def dram_bytes_per_inference(self) -> float:
        return self.total.dram_bytes / self.batch

    @property
    def energy_j_per_inference(self) -> float:
        return self.total.energy_j / self.batch

    @property
    def weight_bytes(self) -> float:
        return self.fit.weight_bytes

    @cached_property
    def huffman_bytes(self) -> float | None:
        """The weights as stored here with their code and index streams Huffman-coded (P+Q+H,
        :func:`sqsim.hw.storage.huffman_storage_bytes`; expected sizes for a profile, actual ones
        for a compressed model); None when no compression applies (dense).  No hardware model
        reads Huffman, so traffic and fit use :attr:`weight_bytes`."""
        if self.weights_source == "dense" or self.sizes is None:
            return None
        from ..hw.storage import huffman_storage_bytes
        return float(sum(huffman_storage_bytes(st, self.sizes.get(n), self.hw) for n, st in self.storages.items()))

    def stored_bytes(self, huffman: bool = False) -> float:
        """``model.stored_bytes``: :attr:`weight_bytes`, or with ``huffman`` the P+Q+H size
        (:attr:`huffman_bytes`; unchanged where no compression applies)."""
        hb = self.huffman_bytes if huffman else None
        return self.fit.weight_bytes if hb is None else hb

    def _cost_dict(self, c: LayerCost) -> dict:
        b = self.batch
        d = {"cycles": _num(c.cycles / b), "compute_cycles": _num(c.compute_cycles / b),
             "dram_bytes": _num(float(c.dram_bytes) / b), "energy_j": c.energy_j / b,
             "latency_s": c.cycles / b / self.clock_hz,
             "macs": _num(c.macs / b), "macs_effective": _num(float(c.macs_effective) / b),
             "utilisation": c.utilisation,
             "dram_reads": {op: _num(float(c.dram_reads_bytes.get(op, 0.0)) / b) for op in OPERANDS},
             "dram_writes": {op: _num(float(c.dram_writes_bytes.get(op, 0.0)) / b) for op in OPERANDS},
             "onchip": {lvl: {"reads_bytes": _num(float(c.level_reads_bytes.get(lvl, 0.0)) / b),
                              "writes_bytes": _num(float(c.level_writes_bytes.get(lvl, 0.0)) / b),
                              "accesses": (c.level_reads_bytes.get(lvl, 0.0) + c.level_writes_bytes.get(lvl, 0.0))
                              / self.hw.level(lvl).word_bytes / b}
                        for lvl in sorted(set(c.level_reads_bytes) | set(c.level_writes_bytes))},
             "energy_breakdown_j": {k: v / b for k, v in c.energy_breakdown_j.items()},
             "processing_latency_s": c.processing_cycles / b / self.clock_hz,
             "serialized_latency_s": c.serialized_cycles / b / self.clock_hz,
             "ramp_cycles": _num(c.ramp_cycles / b)}
        if c.active_pes is not None:
            d["active_pes"] = c.active_pes
        return d

    def to_dict(self, huffman: bool = False) -> dict:
        """Plain JSON-ready data: ``layers`` (each with ``name``, ``cycles``, ``dram_bytes``,
        ``energy_j``, ``mapping``...), ``totals``, ``per_batch``, ``fit``, ``model``, ``hardware``.

        ``model.huffman_bytes`` (where a compression applies) is the P+Q+H size; ``huffman``
        (``sqsim analyze --huffman``) makes it ``model.stored_bytes`` (and the compression ratio's
        denominator); ``model.huffman`` says which one ``stored_bytes`` is."""
        layers = []
        for c in self.layers:
            d = {"name": c.name, "op": c.op, **self._cost_dict(c), "bound": c.bound, "mapping": mapping_dict(c)}
            if c.pe_mapping is not None:
                d["pe_mapping"] = c.pe_mapping
            if c.fused_operands:
                d["fused"] = list(c.fused_operands)
            if c.name in self.input_densities:
                d["input_density"] = self.input_densities[c.name]
            if self.activations is not None:
                d["activations"] = self.activations.layer_dict(c.name)
            layers.append(d)
        totals = self._cost_dict(self.total)
        totals["frames_per_s"] = self.frames_per_s
        t = self.total
        per_batch = {"batch": self.batch, "cycles": t.cycles, "latency_s": t.cycles / self.clock_hz,
                     "dram_bytes": _num(float(t.dram_bytes)), "energy_j": t.energy_j}
        stored = self.stored_bytes(huffman)
        model = {"source": self.weights_source, "dense_fp32_bytes": self.dense_fp32_bytes,
                 "stored_bytes": _num(float(stored)),
                 "compression_ratio": self.dense_fp32_bytes / stored if stored else None,
                 "layers": {n: {"stream_bytes": _num(float(s.stream_bytes)), "fixed_bytes": _num(float(s.fixed_bytes)),
                                "entries": s.entries, "nonzeros": s.nonzeros}
                            for n, s in self.storages.items()}}
        if self.huffman_bytes is not None:
            model["huffman_bytes"] = _num(self.huffman_bytes)
            model["huffman"] = bool(huffman)
        hw = self.hw
        hardware = {"name": hw.name, "source": hw.source, "dataflow": hw.dataflow, "clock_hz": hw.clock_hz,
                    "array": {"rows": hw.array.rows, "cols": hw.array.cols,
                              "macs_per_cycle": hw.array.peak_macs_per_cycle,
                              "datapath_bits": hw.array.datapath_bits},
                    "precision": hw.precision.to_dict(),
                    "policies": {"weights": hw.policies.weights, "activations": hw.policies.activations,
                                 "overlap_dram": hw.policies.overlap_dram, "fuse": list(hw.policies.fuse),
                                 "zero_activations": hw.sparsity.zero_activations,
                                 "dram_compression": hw.dram_compression.activations},
                    "runs": list(hw.runs),
                    "levels": [{"name": l.name, "kind": l.kind, "capacity_bytes": l.total_capacity_bytes or None,
                                "holds": list(l.holds)} for l in hw.levels]}
        out = {"network": self.network, "hardware": hardware, "batch": self.batch, "model": model,
               "fit": self.fit.to_dict(), "layers": layers, "totals": totals, "per_batch": per_batch}
        if self.activations is not None:
            out["activations"] = self.activations_dict()
        return out

    def activations_dict(self) -> dict:
        """Where the activation tensors live: policy, buffer, bytes kept on chip and spilled (per
        inference), and every tensor (sizes for the whole batch) with the reason for its place."""
        p = self.activations
        return {"policy": p.policy, "level": p.level, "capacity_bytes": p.capacity_bytes,
                "tensors_resident": sum(t.resident for t in p.tensors), "tensors_total": len(p.tensors),
                "onchip_bytes": _num(float(p.resident_bytes) / self.batch),
                "spilled_bytes": _num(float(p.spilled_bytes) / self.batch),
                "tensors": [p.tensor_dict(t) for t in p.tensors]}

    def to_rows(self) -> list[dict]:
        """One flat dict per layer (per inference), plus a ``total`` row: for CSV and data frames."""
        rows = []
        for c in list(self.layers) + [self.total]:
            d = self._cost_dict(c)
            row = {"name": c.name, "op": c.op, "cycles": d["cycles"], "compute_cycles": d["compute_cycles"],
                   "latency_s": d["latency_s"], "processing_latency_s": d["processing_latency_s"],
                   "serialized_latency_s": d["serialized_latency_s"], "active_pes": d.get("active_pes", ""),
                   "macs": d["macs"], "macs_effective": d["macs_effective"],
                   "utilisation": d["utilisation"], "dram_bytes": d["dram_bytes"], "energy_j": d["energy_j"],
                   "bound": c.bound}
            for op in OPERANDS:
                row[f"dram_reads_{op}"] = d["dram_reads"][op]
                row[f"dram_writes_{op}"] = d["dram_writes"][op]
            for k, v in d["energy_breakdown_j"].items():
                row[f"energy_{k}_j"] = v
            acts = self.activations.layers.get(c.name) if self.activations is not None else None
            if acts is not None:
                row["input_resident"] = all(acts.inputs_resident)
                row["output_resident"] = acts.output_resident
            m = c.mapping
            row["loop_order"] = "".join(m.loop_order) if m else ""
            row["tiles"] = " ".join(f"{k}{v}" for k, v in m.tile.items()) if m else ""
            rows.append(row)
        keys = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        return [{k: r.get(k, 0.0 if k.startswith("energy_") else "") for k in keys} for r in rows]

    def to_frame(self):
        """A pandas DataFrame of :meth:`to_rows` (needs pandas)."""
        import pandas as pd
        return pd.DataFrame(self.to_rows()).set_index("name")

    def summary(self) -> dict:
        """The headline numbers."""
        return {"network": self.network, "hardware": self.hardware, "batch": self.batch,
                "weights_source": self.weights_source, "dense_fp32_bytes": self.dense_fp32_bytes,
                "weight_bytes": self.fit.weight_bytes, "weights_on_chip": self.fit.weights_on_chip,
                "margin_bytes": self.fit.margin_bytes, "dram_bytes": self.dram_bytes_per_inference,
                "energy_j": self.energy_j_per_inference, "latency_s": self.latency_s,
                "frames_per_s": self.frames_per_s, "utilisation": self.total.utilisation,
                "processing_latency_s": self.total.processing_cycles / self.batch / self.clock_hz,
                "serialized_latency_s": self.total.serialized_cycles / self.batch / self.clock_hz,
                "activation_policy": self.hw.policies.activations,
                "activation_onchip_bytes": (self.activations.resident_bytes / self.batch
                                            if self.activations is not None else 0.0)}


