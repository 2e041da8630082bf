"""Activation densities (fraction of non-zero values) of every tensor of a network.

They come from one of (``--act-density`` / ``--measure``):

* nothing: every tensor dense (1.0);
* a number ``D``: every feature map at ``D``, the network input dense;
* a measurement (:func:`sqsim.exec.measure_activation_density`): ``{layer: density of its
  output}`` for every layer;
* a file (YAML or JSON): ``{layer: density of that layer's input}``, as papers publish them
  ("zeros in ifmaps" per layer) and as ``--save-density`` writes them.  A plain mapping, or one
  with the mapping under ``input_density`` beside descriptive keys (``network``, ``source``,
  ``note``).

A file names some layers; every other tensor's density is derived, and the derivation is
recorded (``Densities.origin``): a tensor read by a named layer takes its value; a tensor
whose only readers are zero-preserving layers takes the density of their output (LRN keeps
every zero; max and average pooling only remove zeros, so the pooled density is an upper bound
of the map before it; a concat's inputs take the concat's); anything else is dense (1.0).  Both
fallbacks overstate the non-zeros, so coded DRAM traffic is never understated.

ReLU, dropout and flatten work in place: their output is their input's tensor, and a layer's
stored output has the density of the end of its in-place chain (a conv's output after its ReLU).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpecError, SqsimError, short

ALIAS_OPS = ("relu", "dropout", "flatten")
# consumers whose output density bounds their input's from above (or equals it)
BOUNDING_OPS = ("lrn", "maxpool", "avgpool", "global_avgpool", "concat")
META_KEYS = ("network", "source", "note", "images", "weights")


@dataclass(frozen=True)
class Densities:
    """Density of every layer's output tensor (aliases share their source's).

    Attributes
    ----------
    outputs : dict
        ``{layer: fraction of non-zero values of its output}`` for every layer.
    origin : dict
        ``{layer: how its value was obtained}`` (``given``, ``measured``, ``uniform``, ``dense``,
        ``network input``, ``from LAYER``, ``bound from LAYER``, ``dense (unknown)``).
    source : str
        ``dense``, ``uniform``, ``measured`` or ``file``.
    """
    outputs: dict
    origin: dict
    source: str

    def input_density(self, graph, name: str, i: int = 0) -> float:
        return self.outputs[graph.layer(name).inputs[i]]

    def stored_density(self, graph, name: str) -> float:
        """Density of what layer ``name`` stores: its output after its in-place chain."""
        return self.outputs[alias_end(graph, name)]

    def input_keyed(self, graph) -> dict:
        """``{layer: density of its input}`` for every layer with inputs except the in-place ones
        (what a file holds; a layer with several inputs gets their element-weighted mean)."""
        out = {}
        for layer in graph:
            if not layer.inputs or layer.op in ALIAS_OPS:   # in place: no tensor of its own
                continue
            sizes = [math.prod(s) for s in graph.info(layer.name).input_shapes]
            vals = [self.outputs[s] for s in layer.inputs]
            out[layer.name] = sum(v * n for v, n in zip(vals, sizes)) / sum(sizes)
        return out


def alias_end(graph, name: str) -> str:
    """The last layer of ``name``'s in-place chain (ReLU, dropout, flatten), or ``name``."""
    readers = graph.consumers(name)
    while len(readers) == 1 and graph.layer(readers[0]).op in ALIAS_OPS:
        name = readers[0]
        readers = graph.consumers(name)
    return name


def _roots(graph) -> dict:
    root = {}
    for layer in graph:
        root[layer.name] = root[layer.inputs[0]] if layer.op in ALIAS_OPS else layer.name
    return root


def resolve_densities(graph, act_density) -> Densities:
    """Densities of every tensor from ``act_density`` (None, a number, a measured
    ``{layer: output density}`` dict, or a :class:`DensityFile`)."""
    names = [l.name for l in graph]
    inputs = {l.name for l in graph.inputs()}
    if act_density is None:
        return Densities({n: 1.0 for n in names}, {n: "dense" for n in names}, "dense")
    if isinstance(act_density, DensityFile):
        return _from_file(graph, act_density)
    if isinstance(act_density, dict):
        missing = [n for n in names if n not in act_density]
        if missing:
            raise SqsimError(f"no measured activation density for layer(s) {missing[:5]} of network {graph.name!r}")
        out = {n: _check(act_density[n], n, "measured density") for n in names}
        return Densities(out, {n: "measured" for n in names}, "measured")
    d = _check(act_density, "--act-density", "activation density")
    root = _roots(graph)
    out = {n: 1.0 if root[n] in inputs else d for n in names}
    return Densities(out, {n: "network input" if root[n] in inputs else "uniform" for n in names}, "uniform")


def _check(value, who: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SqsimError(f"{who}: {what} must be a number in [0, 1], got {value!r}")
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise SqsimError(f"{who}: {what} must be in [0, 1], got {value!r}")
    return v


def _from_file(graph, f: "DensityFile") -> Densities:
    root = _roots(graph)
    known: dict = {}
    origin: dict = {}
    names = set(root)
    for layer_name, d in f.values.items():
        if layer_name not in names:
            raise SpecError(f"{f.where(layer_name)}: network {graph.name!r} has no layer {layer_name!r}")
        layer = graph.layer(layer_name)
        if not layer.inputs:
            raise SpecError(f"{f.where(layer_name)}: layer {layer_name!r} has no input to give a density for")
        for src in layer.inputs:
            r = root[src]
            if r in known and abs(known[r] - d) > 1e-9:
                raise SpecError(f"{f.where(layer_name)}: layer {layer_name!r} reads tensor {r!r} at density {d}, "
                                f"but {origin[r]} gives {known[r]}")
            known[r], origin[r] = d, f"given (input of {layer_name})"
    consumers: dict = {}
    for layer in graph:
        if layer.op in ALIAS_OPS:       # in place: part of the same tensor
            continue
        for src in layer.inputs:
            consumers.setdefault(root[src], []).append(layer.name)
    for layer in reversed(list(graph)):          # consumers before producers
        r = root[layer.name]
        if r in known:
            continue
        bound = [c for c in consumers.get(r, []) if graph.layer(c).op in BOUNDING_OPS and root[c] in known]
        if bound and len(bound) == len(consumers.get(r, [])):
            c = bound[0]
            known[r] = max(known[root[b]] for b in bound)
            origin[r] = f"{'from' if graph.layer(c).op in ('lrn', 'concat') else 'bound from'} {c}"
        elif graph.layer(layer.name).op == "input":
            known[r], origin[r] = 1.0, "network input"
        else:
            known[r], origin[r] = 1.0, "dense (unknown)"
    out = {n: known[root[n]] for n in root}
    return Densities(out, {n: origin[root[n]] for n in root}, "file")


@dataclass(frozen=True)
class DensityFile:
    """``{layer: density of its input}`` read from a file, with the line of each entry."""
    path: str
    values: dict
    lines: dict

    def where(self, layer: str) -> str:
        line = self.lines.get(layer)
        return f"{self.path}:{line}" if line else self.path


def load_density_file(path) -> DensityFile:
    """Read a density file (YAML or JSON; see the module docstring).

    Raises
    ------
    SpecError
        Unreadable file, not a mapping, a value that is not a number in [0, 1].  Layer names are
        checked against the network by :func:`resolve_densities`.
    """
    from ..paths import read_text
    p = Path(path)
    text = read_text(p, "activation density file")
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"{p}:{e.lineno}: invalid JSON: {e.msg}") from None
        except RecursionError:
            raise SpecError(f"{p}: invalid JSON: nested too deeply") from None
    else:
        from ..yamltext import load_yaml
        doc = load_yaml(text, str(p), "invalid YAML")
    if isinstance(doc, dict) and "input_density" in doc:
        extra = sorted(set(doc) - set(META_KEYS) - {"input_density"})
        if extra:
            raise SpecError(f"{p}: unknown key(s) {extra} beside 'input_density' (allowed: {', '.join(META_KEYS)})")
        doc = doc["input_density"]
    if not isinstance(doc, dict) or not doc:
        raise SpecError(f"{p}: an activation density file is a mapping {{layer: density of its input}}, got "
                        f"{type(doc).__name__}")
    values = {}
    line = getattr(doc, "line", None)
    lines = {str(k): line for k in doc} if line else {}
    from ..yamltext import located
    where = located(str(p), doc)
    for k, v in doc.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
            raise SpecError(f"{where}: layer {short(k)}: density must be a number in [0, 1], got {short(v)}")
        values[str(k)] = float(v)
    return DensityFile(str(p), values, lines)


def save_density_file(path, graph, densities: Densities, note: str = "") -> Path:
    """Write ``{layer: density of its input}`` (YAML, or JSON for ``.json``) atomically: a temporary
    file in the same directory, then renamed over ``path``."""
    p = Path(path)
    values = {k: round(v, 6) for k, v in densities.input_keyed(graph).items()}
    doc = {"network": graph.name, "source": densities.source, "note": note, "input_density": values}
    if p.suffix.lower() == ".json":
        text = json.dumps(doc, indent=1) + "\n"
    else:
        import yaml
        text = ("# sqsim activation densities: fraction of non-zero values in each layer's input\n"
                + yaml.safe_dump(doc, sort_keys=False))
    from ..paths import atomic_write_text
    atomic_write_text(p, text)
    return p
