"""Shape inference, parameter and MAC counting: one rule per op, in a table.

Each rule takes the layer and its input shapes and returns a :class:`LayerInfo`, raising
:class:`GraphError` (message starting with the layer's name) when the inputs do not fit.
"""
from __future__ import annotations

import math

from ..errors import GraphError
from .layer import Layer, LayerInfo, Shape


def _prod(shape) -> int:
    return math.prod(shape)


def _one_input(layer: Layer, inputs: tuple[Shape, ...]) -> Shape:
    if len(inputs) != 1:
        raise GraphError(f"layer {layer.name!r} ({layer.op}): expected exactly 1 input, got {len(inputs)}")
    return inputs[0]


def _spatial(layer: Layer, h: int, w: int, ceil_mode: bool) -> tuple[int, int]:
    """Output size of a sliding window. Conv: floor((H + 2p - k) / s) + 1 (Caffe, PyTorch).
    Caffe pooling rounds up and then drops a last window that would start in the padding
    (caffe/src/caffe/layers/pooling_layer.cpp, Reshape)."""
    out = []
    for size, k, s, p, axis in ((h, layer.kernel[0], layer.stride[0], layer.pad[0], "height"),
                                (w, layer.kernel[1], layer.stride[1], layer.pad[1], "width")):
        if size + 2 * p < k:
            raise GraphError(f"layer {layer.name!r} ({layer.op}): kernel {k} is larger than the padded "
                             f"input {axis} {size}+2*{p}={size + 2 * p}")
        if ceil_mode:
            o = -(-(size + 2 * p - k) // s) + 1
            if p > 0 and (o - 1) * s >= size + p:
                o -= 1
        else:
            o = (size + 2 * p - k) // s + 1
        out.append(o)
    return out[0], out[1]


def _input(layer, inputs):
    if inputs:
        raise GraphError(f"layer {layer.name!r} (input): an input layer takes no inputs")
    return LayerInfo(layer.name, layer.op, (), tuple(layer.shape), output_elements=_prod(layer.shape))


def _conv(layer, inputs):
    c, h, w = _one_input(layer, inputs)
    g = layer.groups
    if c % g or layer.out_channels % g:
        raise GraphError(f"layer {layer.name!r} (conv2d): groups={g} must divide input channels ({c}) "
                         f"and output channels ({layer.out_channels})")
    p, q = _spatial(layer, h, w, ceil_mode=False)
    kh, kw = layer.kernel
    k = layer.out_channels
    wshape = (k, c // g, kh, kw)
    weights = _prod(wshape)
    return LayerInfo(layer.name, layer.op, inputs, (k, p, q), weight_shape=wshape, weights=weights,
                     biases=k if layer.bias else 0,
                     # every output element is a dot product of length (C/groups)*R*S
                     macs=k * p * q * (c // g) * kh * kw,
                     input_elements=c * h * w, output_elements=k * p * q,
                     compression=layer.compression)


def _fc(layer, inputs):
    shape = _one_input(layer, inputs)
    n_in = _prod(shape)  # Caffe's InnerProduct flattens its input
    k = layer.out_channels
    return LayerInfo(layer.name, layer.op, inputs, (k, 1, 1), weight_shape=(k, n_in), weights=k * n_in,
                     biases=k if layer.bias else 0, macs=k * n_in, input_elements=n_in,
                     output_elements=k, compression=layer.compression)


def _pool(layer, inputs):
    c, h, w = _one_input(layer, inputs)
    p, q = _spatial(layer, h, w, ceil_mode=layer.ceil_mode)
    return LayerInfo(layer.name, layer.op, inputs, (c, p, q), input_elements=c * h * w,
                     output_elements=c * p * q)


def _global_pool(layer, inputs):
    c, h, w = _one_input(layer, inputs)
    return LayerInfo(layer.name, layer.op, inputs, (c, 1, 1), input_elements=c * h * w, output_elements=c)


def _elementwise(layer, inputs):
    shape = _one_input(layer, inputs)
    return LayerInfo(layer.name, layer.op, inputs, shape, input_elements=_prod(shape),
                     output_elements=_prod(shape))


def _flatten(layer, inputs):
    shape = _one_input(layer, inputs)
    n = _prod(shape)
    return LayerInfo(layer.name, layer.op, inputs, (n, 1, 1), input_elements=n, output_elements=n)


def _concat(layer, inputs):
    if len(inputs) < 1:
        raise GraphError(f"layer {layer.name!r} (concat): needs at least one input")
    hw = {s[1:] for s in inputs}
    if len(hw) != 1:
        desc = ", ".join(f"{n}: {s[1]}x{s[2]}" for n, s in zip(layer.inputs, inputs))
        raise GraphError(f"layer {layer.name!r} (concat): inputs differ in spatial size ({desc})")
    c = sum(s[0] for s in inputs)
    (h, w), = hw
    return LayerInfo(layer.name, layer.op, inputs, (c, h, w),
                     input_elements=sum(_prod(s) for s in inputs), output_elements=c * h * w)


def _add(layer, inputs):
    if len(inputs) < 2:
        raise GraphError(f"layer {layer.name!r} (add): needs at least two inputs, got {len(inputs)}")
    if len(set(inputs)) != 1:
        desc = ", ".join(f"{n}: {s[0]}x{s[1]}x{s[2]}" for n, s in zip(layer.inputs, inputs))
        raise GraphError(f"layer {layer.name!r} (add): inputs differ in shape ({desc}); "
                         f"add needs equal channels and spatial size")
    return LayerInfo(layer.name, layer.op, inputs, inputs[0],
                     input_elements=sum(_prod(s) for s in inputs), output_elements=_prod(inputs[0]))


RULES = {
    "input": _input,
    "conv2d": _conv,
    "fc": _fc,
    "maxpool": _pool,
    "avgpool": _pool,
    "global_avgpool": _global_pool,
    "relu": _elementwise,
    "lrn": _elementwise,
    "dropout": _elementwise,
    "softmax": _elementwise,
    "flatten": _flatten,
    "concat": _concat,
    "add": _add,
}


def check_sizes(info: LayerInfo) -> None:
    """Refuse a layer whose tensors or MACs exceed sqsim's limits (:mod:`sqsim.limits`): the
    weights, every input and the output per sample at most ``tensor_elements``, the MACs at most
    ``layer_macs``.  Shapes are Python integers until here, so nothing has overflowed yet."""
    from ..limits import check, current
    lim = current()
    biggest = max([info.weights] + [_prod(s) for s in info.input_shapes + (info.output_shape,)])
    if biggest <= lim.tensor_elements and info.macs <= lim.layer_macs:
        return
    what = f"layer {info.name!r} ({info.op})"
    check("tensor_elements", info.weights, f"{what}: weights {'x'.join(map(str, info.weight_shape or ()))}",
          " elements")
    for shape in info.input_shapes + (info.output_shape,):
        check("tensor_elements", _prod(shape), f"{what}: tensor {'x'.join(map(str, shape))}", " elements")
    check("layer_macs", info.macs, f"{what}: MACs per sample")


def infer(layer: Layer, input_shapes: tuple[Shape, ...]) -> LayerInfo:
    """Shape, parameters and MACs of ``layer`` given its input shapes."""
    return RULES[layer.op](layer, tuple(tuple(s) for s in input_shapes))
