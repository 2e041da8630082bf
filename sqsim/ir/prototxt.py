"""Caffe ``.prototxt`` import: a tokenizer and parser for the protobuf text format, and the
conversion of Caffe layers into sqsim's IR.

Supported layer types: Input (and the legacy ``input``/``input_dim``/``input_shape`` fields),
Convolution, Pooling, ReLU, LRN, InnerProduct, Concat, Eltwise (SUM), Dropout, Softmax, Flatten.

Caffe runs ReLU and Dropout in place (``top == bottom``); in the IR every layer is its own node, and
a blob name always refers to the latest layer that wrote it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FormatError, GraphError, LimitError, SpecError, UnsupportedOpError, short
from .graph import Graph
from ..limits import check
from .layer import Layer

# --- protobuf text format -------------------------------------------------------------------------
MAX_NUMBER_CHARS = 100  # far beyond any value a network takes; Python refuses str->int past 4,300 digits
_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\f\v]+) | (?P<nl>\n) | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)[fF]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}:<>\[\],;])
""", re.VERBOSE)


@dataclass
class Token:
    kind: str
    text: str
    line: int


def tokenize(text: str, source: str = "<prototxt>") -> list[Token]:
    """Split protobuf text format into tokens (with line numbers)."""
    out, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise FormatError(f"{source}:{line}: unexpected character {text[pos]!r}")
        kind = m.lastgroup
        if kind == "nl":
            line += 1
        elif kind not in ("ws", "comment"):
            out.append(Token(kind, m.group(), line))
        pos = m.end()
    return out


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b",
            "f": "\f", "v": "\v"}


def _unquote(s: str) -> str:
    body, out, i = s[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


@dataclass
class Message:
    """A parsed text-format message: ordered (field, value) pairs; values are str, int, float,
    enum identifiers (str) or nested Messages."""
    fields: list = field(default_factory=list)
    line: int = 0

    def get_all(self, name):
        return [v for k, v in self.fields if k == name]

    def get(self, name, default=None):
        vals = self.get_all(name)
        return vals[-1] if vals else default

    def names(self):
        return [k for k, _ in self.fields]


def parse(text: str, source: str = "<prototxt>") -> Message:
    """Parse protobuf text format into a :class:`Message` tree.

    >>> parse('layer { name: "c" convolution_param { num_output: 3 } }').get("layer").get("name")
    'c'
    """
    from ..limits import current, how_to_raise
    toks = tokenize(text, source)
    pos = 0
    max_depth = current().nesting

    def fail(msg, tok=None):
        line = tok.line if tok else (toks[-1].line if toks else 1)
        raise FormatError(f"{source}:{line}: {msg}")

    def scalar(tok):
        if tok.kind == "string":
            s = _unquote(tok.text)
            # adjacent string literals concatenate
            return s
        if tok.kind == "number":
            t = tok.text   # a float suffix f (1.5f), but the f of inf is the word's own
            if t[-1] in "fF" and not t.lower().endswith("inf"):
                t = t[:-1]
            if len(t) > MAX_NUMBER_CHARS:
                fail(f"a number written with {len(t):,} characters is too long (at most {MAX_NUMBER_CHARS})", tok)
            if re.fullmatch(r"[-+]?\d+", t):
                return int(t)
            return float(t)
        if tok.kind == "ident":
            return tok.text
        fail(f"expected a value, got {short(tok.text)}", tok)

    def message(end: str | None, line: int, depth: int = 0) -> Message:
        nonlocal pos
        if depth > max_depth:
            raise LimitError(f"{source}:{line}: blocks nested more than {max_depth} deep exceed sqsim's limit "
                             f"(nesting; {how_to_raise('nesting')})")
        msg = Message(line=line)
        while True:
            if pos >= len(toks):
                if end is None:
                    return msg
                fail(f"unexpected end of file: missing {short(end)} for the block opened on line {line}")
            tok = toks[pos]
            if end is not None and tok.text == end and tok.kind == "punct":
                pos += 1
                return msg
            if tok.kind != "ident":
                fail(f"expected a field name, got {short(tok.text)}", tok)
            name = tok.text
            pos += 1
            if pos >= len(toks):
                fail(f"field {short(name)} has no value", tok)
            nxt = toks[pos]
            if nxt.text == ":":
                pos += 1
                if pos >= len(toks):
                    fail(f"field {short(name)} has no value", tok)
                nxt = toks[pos]
            if nxt.kind == "punct" and nxt.text in "{<":
                pos += 1
                msg.fields.append((name, message("}" if nxt.text == "{" else ">", nxt.line, depth + 1)))
            elif nxt.kind == "punct" and nxt.text == "[":
                pos += 1
                while True:
                    if pos >= len(toks):
                        fail(f"unterminated list for field {short(name)}", nxt)
                    t = toks[pos]
                    if t.text == "]":
                        pos += 1
                        break
                    if t.text == ",":
                        pos += 1
                        continue
                    msg.fields.append((name, scalar(t)))
                    pos += 1
            else:
                value = scalar(nxt)
                pos += 1
                while isinstance(value, str) and nxt.kind == "string" and pos < len(toks) \
                        and toks[pos].kind == "string":
                    value += _unquote(toks[pos].text)
                    pos += 1
                msg.fields.append((name, value))
            if pos < len(toks) and toks[pos].text in (",", ";"):
                pos += 1

    return message(None, 1)


# --- Caffe -> IR ----------------------------------------------------------------------------------
# Deep Compression's SqueezeNet prototxt (songhan/SqueezeNet-Deep-Compression) names the Fire convs
# after their position; these are the canonical names of the v1.0 deploy prototxt.
DEEP_COMPRESSION_NAME_MAP = {"conv_final": "conv10", "relu_conv_final": "relu_conv10", "pool_final": "pool10"}
for _n in range(2, 10):
    DEEP_COMPRESSION_NAME_MAP.update({
        f"fire{_n}/conv1x1_1": f"fire{_n}/squeeze1x1", f"fire{_n}/relu_conv1x1_1": f"fire{_n}/relu_squeeze1x1",
        f"fire{_n}/conv1x1_2": f"fire{_n}/expand1x1", f"fire{_n}/relu_conv1x1_2": f"fire{_n}/relu_expand1x1",
        f"fire{_n}/conv3x3_2": f"fire{_n}/expand3x3", f"fire{_n}/relu_conv3x3_2": f"fire{_n}/relu_expand3x3",
    })

_SUPPORTED = ("Input", "Convolution", "Pooling", "ReLU", "LRN", "InnerProduct", "Concat", "Eltwise", "Dropout",
              "Softmax", "Flatten")


# Typed field access: a wrong kind of value raises ValueError, reported with the layer's file:line.
def _int(v, field: str) -> int:
    """An integer field (``9.6`` or ``true`` is not an integer)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{field} must be an integer, got {short(v, 40)}")
    return v


def _float(v, field: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{field} must be a number, got {short(v, 40)}")
    return float(v)


def _bool(v, field: str = "value") -> bool:
    if v in (True, "true", "True", "t", 1):
        return True
    if v in (False, "false", "False", "f", 0):
        return False
    raise ValueError(f"{field} must be true or false, got {short(v, 40)}")


def _param(msg: Message, field: str) -> Message:
    """A nested ``field { ... }`` block (empty when absent)."""
    v = msg.get(field)
    if v is None:
        return Message(line=msg.line)
    if not isinstance(v, Message):
        raise ValueError(f"{field} must be a {{ ... }} block, got {short(v, 40)}")
    return v


def _hw(param: Message, base: str, default, where: str, line: int):
    """Caffe's repeated ``kernel_size`` or ``kernel_h``/``kernel_w`` (likewise stride, pad)."""
    h, w = param.get(f"{base}_h"), param.get(f"{base}_w")
    field = f"{base}_size" if base == "kernel" else base
    vals = param.get_all(field)
    if h is not None or w is not None:
        if h is None or w is None:
            raise SpecError(f"{where}:{line}: {base}_h and {base}_w must be given together")
        return (_int(h, f"{base}_h"), _int(w, f"{base}_w"))
    if not vals:
        if default is None:
            raise SpecError(f"{where}:{line}: {base}_size is required")
        return default
    if len(vals) == 1:
        return (_int(vals[0], field), _int(vals[0], field))
    if len(vals) == 2:
        return (_int(vals[0], field), _int(vals[1], field))
    raise SpecError(f"{where}:{line}: expected 1 or 2 values of {base}, got {len(vals)}")


def _shape_from(msg, where: str) -> tuple[int, int, int]:
    if not isinstance(msg, Message):
        raise ValueError(f"input shape must be a {{ dim: ... }} block, got {short(msg, 40)}")
    dims = msg.get_all("dim")
    if len(dims) != 4:
        raise SpecError(f"{where}:{msg.line}: input shape must have 4 dims (N, C, H, W), got {short(dims)}")
    return (_int(dims[1], "dim"), _int(dims[2], "dim"), _int(dims[3], "dim"))


def _convert(msg: Message, ctype: str, name: str, ins: tuple, where: str, source: str, line: int) -> Layer:
    """The IR layer of one supported Caffe layer (its inputs ``ins`` already resolved)."""
    if ctype == "Input":
        p = _param(msg, "input_param")
        return Layer(name, "input", shape=_shape_from(p.get("shape") or Message(line=line), source))
    elif ctype == "Convolution":
        p = _param(msg, "convolution_param")
        if "num_output" not in p.names():
            raise SpecError(f"{where}: convolution_param.num_output is required")
        dil = p.get_all("dilation")
        if any(_int(d, "dilation") != 1 for d in dil):
            raise UnsupportedOpError(f"{where}: dilation {short(dil)} is not supported (only 1)")
        return Layer(name, "conv2d", ins, out_channels=_int(p.get("num_output"), "num_output"),
                     kernel=_hw(p, "kernel", None, source, line), stride=_hw(p, "stride", (1, 1), source, line),
                     pad=_hw(p, "pad", (0, 0), source, line), groups=_int(p.get("group", 1), "group"),
                     bias=_bool(p.get("bias_term", True), "bias_term"))
    elif ctype == "Pooling":
        p = _param(msg, "pooling_param")
        kind = p.get("pool", "MAX")
        if _bool(p.get("global_pooling", False), "global_pooling"):
            if kind != "AVE":
                raise UnsupportedOpError(f"{where}: global {short(kind)} pooling is not supported (only AVE)")
            return Layer(name, "global_avgpool", ins)
        else:
            if kind not in ("MAX", "AVE"):
                raise UnsupportedOpError(f"{where}: pool {short(kind)} is not supported (MAX or AVE)")
            return Layer(name, "maxpool" if kind == "MAX" else "avgpool", ins,
                         kernel=_hw(p, "kernel", None, source, line), stride=_hw(p, "stride", (1, 1), source, line),
                         pad=_hw(p, "pad", (0, 0), source, line),
                         ceil_mode=p.get("round_mode", "CEIL") == "CEIL")
    elif ctype == "ReLU":
        p = _param(msg, "relu_param")
        if _float(p.get("negative_slope", 0), "negative_slope") != 0:
            raise UnsupportedOpError(f"{where}: leaky ReLU (negative_slope) is not supported")
        return Layer(name, "relu", ins)
    elif ctype == "LRN":
        p = _param(msg, "lrn_param")
        if p.get("norm_region", "ACROSS_CHANNELS") != "ACROSS_CHANNELS":
            raise UnsupportedOpError(f"{where}: only ACROSS_CHANNELS LRN is supported")
        return Layer(name, "lrn", ins, local_size=_int(p.get("local_size", 5), "local_size"),
                     alpha=_float(p.get("alpha", 1.0), "alpha"),
                     beta=_float(p.get("beta", 0.75), "beta"), k=_float(p.get("k", 1.0), "k"))
    elif ctype == "InnerProduct":
        p = _param(msg, "inner_product_param")
        if "num_output" not in p.names():
            raise SpecError(f"{where}: inner_product_param.num_output is required")
        return Layer(name, "fc", ins, out_channels=_int(p.get("num_output"), "num_output"),
                     bias=_bool(p.get("bias_term", True), "bias_term"))
    elif ctype == "Concat":
        p = _param(msg, "concat_param")
        if _int(p.get("axis", p.get("concat_dim", 1)), "axis") != 1:
            raise UnsupportedOpError(f"{where}: only channel concatenation (axis 1) is supported")
        return Layer(name, "concat", ins)
    elif ctype == "Eltwise":
        p = _param(msg, "eltwise_param")
        if p.get("operation", "SUM") != "SUM" or p.get_all("coeff"):
            raise UnsupportedOpError(f"{where}: only Eltwise SUM without coefficients is supported")
        return Layer(name, "add", ins)
    elif ctype == "Dropout":
        p = _param(msg, "dropout_param")
        return Layer(name, "dropout", ins, ratio=_float(p.get("dropout_ratio", 0.5), "dropout_ratio"))
    elif ctype == "Softmax":
        return Layer(name, "softmax", ins)
    elif ctype == "Flatten":
        return Layer(name, "flatten", ins)
    raise UnsupportedOpError(f"{where}: unsupported layer type")


def _legacy_inputs(net: Message, source: str, rename: dict) -> list:
    """(input layer, blob name) for the net-level ``input``/``input_shape``/``input_dim`` fields."""
    shapes, dims, out = net.get_all("input_shape"), net.get_all("input_dim"), []
    for i, name in enumerate(net.get_all("input")):
        try:
            if not isinstance(name, str):
                raise ValueError(f"input must be a blob name, got {short(name, 40)}")
            if i < len(shapes):
                shape = _shape_from(shapes[i], source)
            elif len(dims) >= 4 * (i + 1):
                d = dims[4 * i:4 * i + 4]
                shape = (_int(d[1], "input_dim"), _int(d[2], "input_dim"), _int(d[3], "input_dim"))
            else:
                raise SpecError(f"{source}: input {short(name)} has no input_shape or input_dim")
            out.append((Layer(rename.get(name, name), "input", shape=shape), name))
        except GraphError as e:
            raise GraphError(f"{source}: {e}") from None
        except (TypeError, ValueError) as e:
            raise SpecError(f"{source}: input {short(name)}: bad value ({e})") from None
    return out


def from_message(net: Message, source: str = "<prototxt>", rename: dict | None = None) -> Graph:
    """Convert a parsed Caffe NetParameter into a Graph (``rename`` maps Caffe layer names)."""
    rename = rename or {}
    layers: list[Layer] = []
    lines: dict[str, int] = {}
    blob: dict[str, str] = {}  # blob name -> IR layer currently holding it

    def emit(layer: Layer, line: int, tops):
        layers.append(layer)
        lines[layer.name] = line
        for t in tops:
            blob[t] = layer.name

    inputs = net.get_all("input")
    for layer, blob_name in _legacy_inputs(net, source, rename):
        emit(layer, 1, [blob_name])

    if net.get_all("layers"):
        raise UnsupportedOpError(f"{source}: legacy V1 'layers' blocks are not supported; upgrade the prototxt "
                                 f"with Caffe's upgrade_net_proto_text")
    check("layers", len(net.get_all("layer")) + len(inputs), f"{source}: layers")
    for msg in net.get_all("layer"):
        if not isinstance(msg, Message):
            raise SpecError(f"{source}: 'layer' must be a {{ ... }} block, got {short(msg, 40)}")
        line = msg.line
        cname, ctype = msg.get("name"), msg.get("type")
        if not isinstance(cname, str) or not isinstance(ctype, str):
            raise SpecError(f"{source}:{line}: a layer needs a string name and type")
        name = rename.get(cname, cname)
        where = f"{source}:{line}: layer {short(cname, 60)} ({short(ctype, 40)[1:-1]})"
        phase = [inc.get("phase") if isinstance(inc, Message) else None for inc in msg.get_all("include")]
        if "TRAIN" in phase:
            continue  # training-only layers do not exist at inference
        if ctype not in _SUPPORTED:
            raise UnsupportedOpError(f"{where}: unsupported layer type {short(ctype)} (supported: {', '.join(_SUPPORTED)})")
        bottoms, tops = msg.get_all("bottom"), msg.get_all("top")
        if not all(isinstance(b, str) for b in bottoms + tops):
            raise SpecError(f"{where}: bottom and top must be blob names (strings)")
        for b in bottoms:
            if b not in blob:
                raise GraphError(f"{where}: bottom blob {short(b)} is not produced by any earlier layer")
        ins = tuple(blob[b] for b in bottoms)
        try:
            emit(_convert(msg, ctype, name, ins, where, source, line), line, tops)
        except GraphError as e:
            raise GraphError(f"{source}:{line}: {e}") from None
        except (TypeError, ValueError) as e:
            raise SpecError(f"{where}: bad parameter value ({e})") from None
    name = net.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise SpecError(f"{source}: the network name must be a string, got {short(name, 40)}")
    return Graph(layers, name=name, source=source, lines=lines)


def import_prototxt(path, rename: dict | None = None, canonical: bool = False) -> Graph:
    """Import a Caffe deploy prototxt.

    Parameters
    ----------
    path : path-like
    rename : dict, optional
        Caffe layer name -> IR name.
    canonical : bool
        Apply :data:`DEEP_COMPRESSION_NAME_MAP` (Deep Compression's SqueezeNet names -> canonical).
    """
    from ..paths import read_text
    path = Path(path)
    text = read_text(path, "prototxt", FormatError)
    if canonical:
        rename = {**DEEP_COMPRESSION_NAME_MAP, **(rename or {})}
    return from_message(parse(text, str(path)), str(path), rename)
