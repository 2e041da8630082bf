"""The workload of one conv/fc layer as a 7-dimensional loop nest (Timeloop/nn_dataflow convention).

Dimensions: ``N`` batch, ``K`` output channels, ``C`` input channels, ``P``/``Q`` output rows and
columns, ``R``/``S`` kernel rows and columns.  Shapes come from the IR's
:class:`~sqsim.ir.LayerInfo` (the single source of truth); nothing here recomputes them.

A grouped convolution is ``groups`` independent convolutions with ``K/groups`` output and
``C/groups`` input channels each, executed one after another (the group loop is outermost); all
per-layer counts are one group's counts times ``groups``.  A fully connected layer is a 1x1
convolution on a 1x1 map with ``C = inputs`` (Caffe's InnerProduct flattens its input).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedOpError

DIMS = ("N", "K", "C", "P", "Q", "R", "S")

# Which loop dimensions index each operand (R and S reach the inputs through the sliding window
# h = p*stride + r - pad, w = q*stride + s - pad).
RELEVANT = {
    "weights": frozenset("KCRS"),
    "inputs": frozenset("NCPQRS"),
    "outputs": frozenset("NKPQ"),
}


@dataclass(frozen=True)
class ConvShape:
    """One group of a conv/fc layer, for a batch of ``N`` samples.

    Attributes
    ----------
    name : str
    N, K, C, P, Q, R, S : int
        Loop bounds (K and C per group).
    H, W : int
        Input rows and columns (unpadded).
    stride_h, stride_w, pad_h, pad_w : int
    groups : int
    """
    name: str
    N: int
    K: int
    C: int
    P: int
    Q: int
    R: int
    S: int
    H: int
    W: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    groups: int = 1

    def dim(self, d: str) -> int:
        return getattr(self, d)

    @property
    def bounds(self) -> dict:
        return {d: getattr(self, d) for d in DIMS}

    @property
    def macs(self) -> int:
        """MACs of one group for the whole batch."""
        return self.N * self.K * self.C * self.P * self.Q * self.R * self.S

    @property
    def weights(self) -> int:
        return self.K * self.C * self.R * self.S

    @property
    def outputs(self) -> int:
        return self.N * self.K * self.P * self.Q

    @property
    def inputs(self) -> int:
        return self.N * self.C * self.H * self.W


def conv_shape(info, batch: int = 1, layer=None) -> ConvShape:
    """The :class:`ConvShape` of a conv2d or fc :class:`~sqsim.ir.LayerInfo`.

    ``layer`` (the :class:`~sqsim.ir.Layer`) supplies stride, padding and groups for conv2d.
    The result is checked against the IR's MAC count, so the two can never disagree.
    """
    if info.op == "fc":
        k, n_in = info.weight_shape
        shape = ConvShape(info.name, batch, k, n_in, 1, 1, 1, 1, 1, 1)
    elif info.op == "conv2d":
        if layer is None:
            raise ValueError(f"layer {info.name!r}: conv_shape needs the Layer for stride/pad/groups")
        k_total, c_per_group, r, s = info.weight_shape
        c_in, h, w = info.input_shapes[0]
        _, p, q = info.output_shape
        g = layer.groups
        shape = ConvShape(info.name, batch, k_total // g, c_per_group, p, q, r, s, h, w,
                          layer.stride[0], layer.stride[1], layer.pad[0], layer.pad[1], g)
    else:
        raise UnsupportedOpError(f"layer {info.name!r}: op {info.op!r} has no loop nest (conv2d and fc only)")
    if shape.macs * shape.groups != info.macs * batch:
        raise AssertionError(f"{info.name}: loop nest MACs {shape.macs * shape.groups} != IR {info.macs * batch}")
    return shape
