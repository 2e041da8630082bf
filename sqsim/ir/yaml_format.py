"""The architecture YAML format (``archs/*.yaml``): compact and hand-writable.

::

    name: squeezenet_v1.0
    compression: {weight_bits: 6, index_bits: 4}   # defaults for every conv/fc profile
    layers:
      - {name: data, op: input, shape: [3, 227, 227]}
      - {name: conv1, op: conv2d, out_channels: 96, kernel: 7, stride: 2, density: 1.0}
      - {name: relu_conv1, op: relu}
      - {name: pool1, op: maxpool, kernel: 3, stride: 2}          # Caffe ceil rounding by default
      - {fire: fire2, squeeze: 16, expand1x1: 64, expand3x3: 64,
         density: {expand3x3: 0.33}}                               # scalar or per-conv mapping
      - {name: fire3/bypass, op: add, inputs: [fire2/concat, fire3/concat]}

A layer's input defaults to the layer before it; ``inputs`` names others (a string or a list).
``kernel``, ``stride`` and ``pad`` take an integer or ``[h, w]``.  Compression keys
(``density``, ``weight_bits``, ``index_bits``) sit on the layer itself.  A ``fire`` block expands
to ``fireN/squeeze1x1``, ``fireN/relu_squeeze1x1``, ``fireN/expand1x1``, ``fireN/relu_expand1x1``,
``fireN/expand3x3``, ``fireN/relu_expand3x3``, ``fireN/concat`` and, with ``bypass: simple`` or
``complex``, ``fireN/bypass1x1`` (complex only) and ``fireN/bypass`` (the add).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import GraphError, SpecError, short
from ..limits import check
from ..yamltext import load_yaml, located
from .graph import Graph
from .layer import WEIGHTED_OPS, Compression, Layer, op_attributes

FIRE_CONVS = ("squeeze1x1", "expand1x1", "expand3x3")
_PROFILE_KEYS = ("density", "weight_bits", "index_bits")
_PAIR = ("kernel", "stride", "pad")
_FIRE_KEYS = {"fire", "inputs", "squeeze", "expand1x1", "expand3x3", "bypass"} | set(_PROFILE_KEYS)


def _pair(v, where, key):
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return (v[0], v[1])
    raise SpecError(f"{where}: {key} must be an integer or [h, w], got {short(v)}")


def _profile(spec: dict, defaults: dict, where: str, sub: str | None = None) -> Compression | None:
    vals = dict(defaults)
    present = bool(defaults)
    for key in _PROFILE_KEYS:
        if key not in spec:
            continue
        v = spec[key]
        if sub is not None and isinstance(v, dict):
            unknown = set(v) - set(FIRE_CONVS) - {"bypass1x1"}
            if unknown:
                raise SpecError(f"{where}: {key} has unknown conv(s) {_listed(sorted(unknown, key=str))} "
                                f"(expected {', '.join(FIRE_CONVS)}, bypass1x1)")
            if sub not in v:
                continue
            v = v[sub]
        vals[key] = v
        present = True
    if not present:
        return None
    d = vals.get("density", 1.0)
    if isinstance(d, bool) or not isinstance(d, (int, float)):
        raise SpecError(f"{where}: density must be a number in (0, 1], got {short(d)}")
    for key in ("weight_bits", "index_bits"):
        v = vals.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise SpecError(f"{where}: {key} must be an integer, got {short(v)}")
    return Compression(float(d), vals.get("weight_bits"), vals.get("index_bits"))


def _layer_from_spec(spec: dict, prev: str | None, defaults: dict, where: str) -> Layer:
    if "name" not in spec or "op" not in spec:
        raise SpecError(f"{where}: a layer needs 'name' and 'op' (or a 'fire' block), got keys "
                        f"{_listed(sorted(spec, key=str))}")
    name, op = spec["name"], spec["op"]
    if not isinstance(name, str):
        raise SpecError(f"{where}: layer name must be a string, got {short(name)}")
    if not isinstance(op, str):
        raise SpecError(f"{where}: layer {short(name)}: op must be a string, got {short(op)}")
    where = f"{where}: layer {short(name)}"
    allowed = {"name", "op", "inputs"} | set(op_attributes(op))
    if op in WEIGHTED_OPS:
        allowed |= set(_PROFILE_KEYS)
    if op == "conv2d" or op in ("maxpool", "avgpool"):
        allowed |= {"kernel", "stride", "pad"}
    unknown = sorted(set(spec) - allowed, key=str)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {_listed(unknown)} for op {short(op)} "
                        f"(allowed: {', '.join(sorted(allowed))})")
    kwargs = {}
    for key in set(spec) - {"name", "op", "inputs"} - set(_PROFILE_KEYS):
        v = spec[key]
        if key in _PAIR:
            v = _pair(v, where, key)
        elif key == "shape":
            if not isinstance(v, list):
                raise SpecError(f"{where}: shape must be [channels, height, width], got {short(v)}")
            v = tuple(v)
        kwargs[key] = v
    inputs = spec.get("inputs")
    if inputs is None:
        inputs = () if op == "input" or prev is None else (prev,)
    elif isinstance(inputs, str):
        inputs = (inputs,)
    elif isinstance(inputs, list) and all(isinstance(i, str) for i in inputs):
        inputs = tuple(inputs)
    else:
        raise SpecError(f"{where}: inputs must be a layer name or a list of names, got {short(inputs)}")
    if op in WEIGHTED_OPS:
        kwargs["compression"] = _profile(spec, defaults, where)
    try:
        return Layer(name=name, op=op, inputs=inputs, **kwargs)
    except GraphError as e:
        raise SpecError(f"{where.split(': layer ')[0]}: {e}") from None
    except TypeError as e:
        raise SpecError(f"{where}: {e}") from None


def fire_layers(name: str, input_name: str, squeeze: int, expand1x1: int, expand3x3: int,
                bypass: str | None = None, profiles: dict | None = None) -> list[Layer]:
    """The layers of one Fire module (SqueezeNet section 3.2), optionally with a bypass."""
    profiles = profiles or {}
    s, e1, e3 = (f"{name}/{c}" for c in FIRE_CONVS)
    layers = [
        Layer(s, "conv2d", (input_name,), out_channels=squeeze, kernel=(1, 1), compression=profiles.get("squeeze1x1")),
        Layer(f"{name}/relu_squeeze1x1", "relu", (s,)),
        Layer(e1, "conv2d", (f"{name}/relu_squeeze1x1",), out_channels=expand1x1, kernel=(1, 1),
              compression=profiles.get("expand1x1")),
        Layer(f"{name}/relu_expand1x1", "relu", (e1,)),
        Layer(e3, "conv2d", (f"{name}/relu_squeeze1x1",), out_channels=expand3x3, kernel=(3, 3), pad=(1, 1),
              compression=profiles.get("expand3x3")),
        Layer(f"{name}/relu_expand3x3", "relu", (e3,)),
        Layer(f"{name}/concat", "concat", (f"{name}/relu_expand1x1", f"{name}/relu_expand3x3")),
    ]
    if bypass == "simple":
        layers.append(Layer(f"{name}/bypass", "add", (input_name, f"{name}/concat")))
    elif bypass == "complex":
        layers.append(Layer(f"{name}/bypass1x1", "conv2d", (input_name,), out_channels=expand1x1 + expand3x3,
                            kernel=(1, 1), compression=profiles.get("bypass1x1")))
        layers.append(Layer(f"{name}/bypass", "add", (f"{name}/bypass1x1", f"{name}/concat")))
    elif bypass is not None:
        raise SpecError(f"fire module {short(name)}: bypass must be 'simple' or 'complex', got {short(bypass)}")
    return layers


def _fire_from_spec(spec: dict, prev: str | None, defaults: dict, where: str) -> list[Layer]:
    name = spec["fire"]
    if not isinstance(name, str):
        raise SpecError(f"{where}: fire block name must be a string, got {short(name)}")
    where = f"{where}: fire block {short(name)}"
    unknown = sorted(set(spec) - _FIRE_KEYS, key=str)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {_listed(unknown)} "
                        f"(allowed: {', '.join(sorted(_FIRE_KEYS))})")
    for key in ("squeeze", "expand1x1", "expand3x3"):
        v = spec.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise SpecError(f"{where}: {key} must be a positive integer, got {short(v)}")
    inputs = spec.get("inputs", prev)
    if isinstance(inputs, list) and len(inputs) == 1:
        inputs = inputs[0]
    if not isinstance(inputs, str):
        raise SpecError(f"{where}: a fire block takes exactly one input, got {short(inputs)}")
    profiles = {c: _profile(spec, defaults, where, sub=c) for c in FIRE_CONVS + ("bypass1x1",)}
    try:
        return fire_layers(name, inputs, spec["squeeze"], spec["expand1x1"], spec["expand3x3"],
                           spec.get("bypass"), profiles)
    except (GraphError, SpecError) as e:
        raise SpecError(f"{where}: {e}") from None


def loads(text: str, source: str = "<string>") -> Graph:
    """Parse architecture YAML text into a :class:`Graph`.

    Raises
    ------
    SpecError
        Malformed YAML, unknown op or field, bad value; messages give ``file:line``.
    GraphError
        Graph-level problems (missing input tensor, cycle, shape mismatch), naming file and line.
    """
    doc = load_yaml(text, source)  # strict safe loader: unique keys, finite numbers, size limits
    if not isinstance(doc, dict):
        raise SpecError(f"{source}: expected a mapping with 'name' and 'layers', got {type(doc).__name__}")
    unknown = sorted(set(doc) - {"name", "layers", "compression", "description", "source"}, key=str)
    if unknown:
        raise SpecError(f"{source}: unknown top-level field(s) {_listed(unknown)} "
                        f"(allowed: name, description, source, compression, layers)")
    if not isinstance(doc.get("layers"), list) or not doc["layers"]:
        raise SpecError(f"{source}: 'layers' must be a non-empty list")
    check("layers", len(doc["layers"]), f"{source}: layers")
    name = doc.get("name", Path(source).stem)
    if isinstance(name, bool) or not isinstance(name, (str, int)) or not str(name):
        raise SpecError(f"{located(source, doc)}: the network name must be a string, got {short(name)}")
    for key in ("description", "source"):
        if key in doc and not isinstance(doc[key], str):
            raise SpecError(f"{located(source, doc)}: {key} must be a string, got {short(doc[key])}")
    defaults = doc.get("compression") or {}
    if not isinstance(defaults, dict) or set(defaults) - set(_PROFILE_KEYS):
        raise SpecError(f"{source}: top-level compression must be a mapping of {', '.join(_PROFILE_KEYS)}")
    layers: list[Layer] = []
    lines: dict[str, int] = {}
    for spec in doc["layers"]:
        line = getattr(spec, "line", None)
        where = f"{source}:{line}" if line else source
        if not isinstance(spec, dict):
            raise SpecError(f"{where}: each layer must be a mapping, got {short(spec)}")
        prev = layers[-1].name if layers else None
        if "fire" in spec:
            new = _fire_from_spec(spec, prev, defaults, where)
            # the module's output is its last layer (concat or bypass add)
        else:
            new = [_layer_from_spec(spec, prev, defaults, where)]
        for l in new:
            lines[l.name] = line
        layers.extend(new)
    return Graph(layers, name=str(name), source=source, lines=lines)


def _listed(names) -> str:
    shown = ", ".join(short(n, 40) for n in names[:6])
    return shown + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def load(path) -> Graph:
    """Read an architecture YAML file (size-checked, UTF-8; see :func:`loads`)."""
    from ..paths import read_text
    path = Path(path)
    return loads(read_text(path, "architecture file"), source=str(path))


# --- saving ---------------------------------------------------------------------------------------
def _flow(d) -> str:
    text = yaml.safe_dump(d, default_flow_style=True, width=10 ** 6, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def _layer_spec(layer: Layer, prev: str | None, common: dict) -> dict:
    d = {"name": layer.name, "op": layer.op}
    if layer.inputs != ((prev,) if prev and layer.op != "input" else ()):
        d["inputs"] = list(layer.inputs) if len(layer.inputs) != 1 else layer.inputs[0]
    for k, v in layer.attrs().items():
        if k in _PAIR:
            v = v[0] if v[0] == v[1] else list(v)
        elif k == "shape":
            v = list(v)
        d[k] = v
    if layer.compression is not None:
        for k, v in layer.compression.to_dict().items():
            if common.get(k) != v:
                d[k] = v
        if "density" not in d and "density" not in common:
            d["density"] = layer.compression.density
    return d


def _match_fire(layers: list[Layer], i: int):
    """If layers[i:] starts a canonical Fire module, return (spec, count) else None."""
    s = layers[i]
    if s.op != "conv2d" or not s.name.endswith("/squeeze1x1"):
        return None
    name = s.name[: -len("/squeeze1x1")]
    for bypass in ("complex", "simple", None):
        n = 7 + {"complex": 2, "simple": 1, None: 0}[bypass]
        block = layers[i:i + n]
        e1 = layers[i + 2] if i + 2 < len(layers) else None
        e3 = layers[i + 4] if i + 4 < len(layers) else None
        if e1 is None or e3 is None or e1.op != "conv2d" or e3.op != "conv2d":
            return None
        profiles = {"squeeze1x1": s.compression, "expand1x1": e1.compression, "expand3x3": e3.compression}
        if bypass == "complex" and len(block) == n:
            profiles["bypass1x1"] = block[7].compression
        try:
            expected = fire_layers(name, s.inputs[0], s.out_channels, e1.out_channels, e3.out_channels,
                                   bypass, profiles)
        except (GraphError, SpecError):
            return None
        if block == expected:
            return name, bypass, profiles, n
    return None


def dumps(graph: Graph) -> str:
    """Serialise a graph to the YAML format (Fire modules folded back into ``fire`` blocks)."""
    layers = list(graph)
    profiles = [l.compression for l in layers if l.op in WEIGHTED_OPS]
    common = {}
    if profiles and all(p is not None for p in profiles):
        for key in ("weight_bits", "index_bits"):
            vals = {getattr(p, key) for p in profiles}
            if len(vals) == 1 and None not in vals:
                common[key] = vals.pop()
    out = [f"name: {_flow(graph.name)}"]
    if common:
        out.append(f"compression: {_flow(common)}")
    out.append("layers:")
    prev, i = None, 0
    while i < len(layers):
        fire = _match_fire(layers, i)
        if fire:
            name, bypass, profs, n = fire
            d = {"fire": name}
            if layers[i].inputs[0] != prev:
                d["inputs"] = layers[i].inputs[0]
            d.update(squeeze=layers[i].out_channels, expand1x1=layers[i + 2].out_channels,
                     expand3x3=layers[i + 4].out_channels)
            if bypass:
                d["bypass"] = bypass
            for key in _PROFILE_KEYS:
                vals = {c: getattr(p, key) for c, p in profs.items() if p is not None}
                vals = {c: v for c, v in vals.items() if common.get(key) != v}
                if vals:
                    d[key] = vals
            out.append(f"  - {_flow(d)}")
            prev = layers[i + n - 1].name
            i += n
            continue
        out.append(f"  - {_flow(_layer_spec(layers[i], prev, common))}")
        prev = layers[i].name
        i += 1
    return "\n".join(out) + "\n"


def save(graph: Graph, path) -> None:
    from ..paths import atomic_write_text
    atomic_write_text(path, dumps(graph))
