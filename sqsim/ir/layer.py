"""Frozen layer records: what a layer *is* (:class:`Layer`), its compression profile
(:class:`Compression`), and what shape inference derives for it (:class:`LayerInfo`).

Shapes are per sample, ``(channels, height, width)``; the batch size is never part of the IR.
Weight layouts follow Caffe: conv ``(out, in/groups, kh, kw)``, fc ``(out, in)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

Shape = tuple[int, int, int]

OPS = ("input", "conv2d", "relu", "maxpool", "avgpool", "global_avgpool", "lrn", "fc",
       "concat", "add", "dropout", "softmax", "flatten")
WEIGHTED_OPS = ("conv2d", "fc")
POOL_OPS = ("maxpool", "avgpool")


@dataclass(frozen=True)
class Compression:
    """Per-layer Deep Compression profile.

    Attributes
    ----------
    density : float
        Fraction of weights kept after pruning, in (0, 1].  (SqueezeNet's Table 1 calls this
        "sparsity"; it is the fraction *kept*.)
    weight_bits : int or None
        Bits per weight-sharing code (codebook of 2**weight_bits values, code 0 = zero).
        None: weights stay fp32.
    index_bits : int or None
        Bits per relative sparse index.  None: 4 when pruned storage is used.
    """
    density: float = 1.0
    weight_bits: int | None = None
    index_bits: int | None = None

    def kept(self, n_weights: int) -> int:
        """Weights kept when pruning ``n_weights`` to this density: ``ceil(n * density)``
        (the rounding SqueezeNet's Table 1 uses)."""
        # A small tolerance so that 0.3 * 10 stays 3 despite binary floating point.
        return min(n_weights, math.ceil(n_weights * self.density - 1e-9))

    def to_dict(self) -> dict:
        d = {"density": self.density}
        if self.weight_bits is not None:
            d["weight_bits"] = self.weight_bits
        if self.index_bits is not None:
            d["index_bits"] = self.index_bits
        return d


@dataclass(frozen=True)
class Layer:
    """One node of the layer graph.

    Only the attributes of the layer's op are meaningful; the others keep their defaults.
    ``inputs`` names the producing layers in order (concat order matters).
    """
    name: str
    op: str
    inputs: tuple[str, ...] = ()
    # input
    shape: Shape | None = None
    # conv2d / fc
    out_channels: int | None = None
    bias: bool = True
    groups: int = 1
    # conv2d / pools
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    # pools: Caffe rounds output sizes up (ceil); PyTorch/ONNX default rounds down (floor)
    ceil_mode: bool = True
    # lrn (Caffe ACROSS_CHANNELS): b = a / (k + alpha/n * sum a^2)^beta
    local_size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0
    # dropout (identity at inference; kept for fidelity to the source network)
    ratio: float = 0.5
    compression: Compression | None = None

    def __post_init__(self):
        _check_layer(self)

    def replace(self, **changes) -> "Layer":
        return replace(self, **changes)

    def attrs(self) -> dict:
        """The op's meaningful attributes that differ from the defaults (for saving and display)."""
        out = {}
        for f in fields(self):
            if f.name in ("name", "op", "inputs", "compression"):
                continue
            v = getattr(self, f.name)
            if v != f.default and f.name in _OP_ATTRS.get(self.op, ()):
                out[f.name] = v
        return out


_OP_ATTRS = {
    "input": ("shape",),
    "conv2d": ("out_channels", "bias", "groups", "kernel", "stride", "pad"),
    "fc": ("out_channels", "bias"),
    "maxpool": ("kernel", "stride", "pad", "ceil_mode"),
    "avgpool": ("kernel", "stride", "pad", "ceil_mode"),
    "lrn": ("local_size", "alpha", "beta", "k"),
    "dropout": ("ratio",),
}


def op_attributes(op: str) -> tuple[str, ...]:
    """Names of the attributes meaningful for ``op``."""
    return _OP_ATTRS.get(op, ())


@dataclass(frozen=True)
class LayerInfo:
    """What shape inference derives for one layer (per sample).

    Attributes
    ----------
    input_shapes : tuple of Shape
        Shapes of the layer's inputs, in ``Layer.inputs`` order.
    output_shape : Shape
    weight_shape : tuple of int or None
        Caffe layout of the weight blob (conv: out, in/groups, kh, kw; fc: out, in).
    weights, biases : int
        Parameter counts.
    macs : int
        Multiply-accumulates per sample (conv and fc only; other ops count 0).
    input_elements, output_elements : int
        Activation elements read and written per sample.
    """
    name: str
    op: str
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    weight_shape: tuple[int, ...] | None = None
    weights: int = 0
    biases: int = 0
    macs: int = 0
    input_elements: int = 0
    output_elements: int = 0
    compression: Compression | None = field(default=None)

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def weights_kept(self) -> int:
        """Weights left after pruning to the layer's profile density (all when no profile)."""
        if self.compression is None:
            return self.weights
        return self.compression.kept(self.weights)

    @property
    def params_after_pruning(self) -> int:
        """Kept weights plus biases (biases are never pruned)."""
        return self.weights_kept + self.biases


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_layer(layer: Layer) -> None:
    """Structural checks that need no neighbours; raises GraphError naming the layer.

    Integers must be ints (``true`` is not 1) no larger than the ``dim`` limit, floats finite;
    names at most ``name_chars`` long (:mod:`sqsim.limits`)."""
    from ..errors import GraphError, short
    from ..limits import current, how_to_raise
    lim = current()

    def fail(msg):
        raise GraphError(f"layer {short(layer.name, 60)} ({layer.op}): {msg}")

    def count(nm, v, lo):
        if not _is_int(v) or v < lo:
            fail(f"{nm} must be a {'non-negative' if lo == 0 else 'positive'} integer, got {short(v)}")
        if v > lim.dim:
            fail(f"{nm} {v:,} exceeds sqsim's limit of {lim.dim:,} (dim; {how_to_raise('dim')})")

    if not isinstance(layer.name, str) or not layer.name:
        raise GraphError(f"layer name must be a non-empty string, got {short(layer.name)}")
    if len(layer.name) > lim.name_chars:
        raise GraphError(f"layer name {short(layer.name, 60)} has {len(layer.name):,} characters, over sqsim's "
                         f"limit of {lim.name_chars:,} (name_chars; {how_to_raise('name_chars')})")
    if not isinstance(layer.op, str) or layer.op not in OPS:
        raise GraphError(f"layer {short(layer.name, 60)}: unknown op {short(layer.op)} (expected one of "
                         f"{', '.join(OPS)})")
    if not isinstance(layer.inputs, tuple) or not all(isinstance(i, str) for i in layer.inputs):
        fail(f"inputs must be layer names, got {short(layer.inputs)}")
    if layer.op == "input":
        if not isinstance(layer.shape, tuple) or len(layer.shape) != 3:
            fail(f"shape must be [channels, height, width], got {short(layer.shape)}")
        for v in layer.shape:
            if not _is_int(v) or v <= 0:
                fail(f"shape entries must be positive integers, got {short(list(layer.shape))}")
            count("shape entry", v, 1)
    if layer.op in WEIGHTED_OPS:
        count("out_channels", layer.out_channels, 1)
        if not isinstance(layer.bias, bool):
            fail(f"bias must be true or false, got {short(layer.bias)}")
    if layer.op in ("conv2d",) + POOL_OPS:
        if layer.kernel is None:
            fail("kernel is required")
        for nm, pair, lo in (("kernel", layer.kernel, 1), ("stride", layer.stride, 1), ("pad", layer.pad, 0)):
            if not isinstance(pair, tuple) or len(pair) != 2 or any(not _is_int(v) or v < lo for v in pair):
                fail(f"{nm} must be {'non-negative' if lo == 0 else 'positive'} integers, got {short(pair)}")
            for v in pair:
                count(nm, v, lo)
    if layer.op in POOL_OPS and not isinstance(layer.ceil_mode, bool):
        fail(f"ceil_mode must be true or false, got {short(layer.ceil_mode)}")
    if layer.op == "conv2d":
        count("groups", layer.groups, 1)
    if layer.op == "lrn":
        count("local_size", layer.local_size, 1)
        if layer.local_size % 2 == 0:
            fail(f"local_size must be a positive odd integer, got {layer.local_size!r}")
        # b = a / (k + alpha/n * sum a^2)^beta: a positive base keeps every output finite
        for nm in ("alpha", "beta", "k"):
            if not _is_number(getattr(layer, nm)):
                fail(f"{nm} must be a finite number, got {short(getattr(layer, nm))}")
        if layer.alpha < 0 or layer.k <= 0:
            fail(f"needs alpha >= 0 and k > 0 (got alpha={layer.alpha!r}, k={layer.k!r})")
    if layer.op == "dropout" and (not _is_number(layer.ratio) or not 0 <= layer.ratio < 1):
        fail(f"ratio (the fraction of activations dropped in training) must be in [0, 1), got {short(layer.ratio)}")
    c = layer.compression
    if c is not None:
        if layer.op not in WEIGHTED_OPS:
            fail("only conv2d and fc layers carry a compression profile")
        if not _is_number(c.density) or not (0 < c.density <= 1):
            fail(f"compression density must be in (0, 1], got {short(c.density)}")
        for nm in ("weight_bits", "index_bits"):
            v = getattr(c, nm)
            if v is not None and (not _is_int(v) or not 1 <= v <= 16):
                fail(f"compression {nm} must be an integer in 1..16, got {short(v)}")
