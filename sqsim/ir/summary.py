"""Per-layer summary of a graph as plain rows (the data behind ``sqsim info``), like Netscope's table."""
from __future__ import annotations

from .graph import Graph


def _profile_text(c) -> str:
    if c is None:
        return ""
    text = f"{100 * c.density:g}%"
    if c.weight_bits is not None:
        text += f" {c.weight_bits}b"
    if c.index_bits is not None:
        text += f" i{c.index_bits}b"
    return text


def summary(graph: Graph) -> dict:
    """``{"name", "layers": [...], "totals": {...}}``: one row per layer, all counts per sample.

    Row keys: name, op, inputs, output_shape, weights, biases, params, macs, activations (output
    elements), input_activations, compression (dict or None), params_after_pruning.
    """
    rows = []
    for info in graph.infos():
        rows.append({
            "name": info.name, "op": info.op, "inputs": list(graph.layer(info.name).inputs),
            "output_shape": list(info.output_shape), "weights": info.weights, "biases": info.biases,
            "params": info.params, "macs": info.macs, "activations": info.output_elements,
            "input_activations": info.input_elements,
            "compression": info.compression.to_dict() if info.compression else None,
            "profile": _profile_text(info.compression),
            "params_after_pruning": info.params_after_pruning,
        })
    t = graph.totals()
    return {"name": graph.name, "layers": rows,
            "totals": {"layers": len(rows), "weights": t.weights, "biases": t.biases, "params": t.params,
                       "macs": t.macs, "activations": t.activations,
                       "params_after_pruning": t.params_after_pruning,
                       "fp32_bytes": 4 * t.params}}
