"""Pooling windows: Caffe's rounding (sqsim's IR) against ONNX-style begin/end padding.

sqsim's IR follows Caffe (``caffe/src/caffe/layers/pooling_layer.cpp``): with symmetric pad ``p``
the output size is ``ceil((H + 2p - k) / s) + 1`` (or floor), and in ceil mode, when ``p > 0``, a
last window that would start at or beyond ``H + p`` is dropped.  Average pooling divides by the
window clipped to ``[-p, H + p)``: padding counts, the ceil overhang beyond it does not.

ONNX MaxPool/AveragePool (opset >= 10; OpenVINO MaxPool/AvgPool likewise) take separate begin and
end pads ``pb``, ``pe``: ``out = ceil|floor((H + pb + pe - k) / s) + 1``; in ceil mode, windows
that would start in the right padding (at or beyond ``H + pb``) are ignored (operator spec, as in
PyTorch).  AveragePool with ``count_include_pad=1`` divides by the window clipped to
``[-pb, H + pe)``; with 0, by the window clipped to the input ``[0, H)``.

Everything here works on one spatial axis and imports nothing heavy, so both the ONNX and the
OpenVINO readers use it.  The IR stays the source of truth for output sizes: callers pass the size
sqsim inferred and these helpers only say how ONNX expresses the same windows.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OnnxPoolAxis:
    """How one spatial axis of a pooling layer is written in ONNX."""
    pad_begin: int
    pad_end: int
    ceil_mode: bool


def onnx_pool_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                   ceil_mode: bool, drop_last_in_padding: bool = True) -> int:
    """Output size under the ONNX pooling rule (see module docstring).

    ``drop_last_in_padding=False`` gives the bare formula, as a runtime without the drop rule
    computes it.
    """
    span = size + pad_begin + pad_end - kernel
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    # ONNX spec: "Sliding windows that would start in the right padded region are ignored."
    if drop_last_in_padding and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _window_starts(out: int, stride: int, pad_begin: int) -> range:
    return range(-pad_begin, (out - 1) * stride - pad_begin + 1, stride)


def caffe_divisors(size: int, kernel: int, stride: int, pad: int, out: int) -> list[int]:
    """Caffe's average-pooling divisor for each window along one axis: the window clipped to
    ``[-pad, size + pad)`` (pooling_layer.cpp, AVE: ``pool_size = (hend - hstart) * ...``)."""
    return [min(h + kernel, size + pad) - h for h in _window_starts(out, stride, pad)]


def onnx_divisors(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, out: int,
                  count_include_pad: bool) -> list[int]:
    """ONNX AveragePool's divisor for each window along one axis (module docstring)."""
    starts = _window_starts(out, stride, pad_begin)
    if count_include_pad:
        return [min(h + kernel, size + pad_end) - h for h in starts]
    return [min(h + kernel, size) - max(h, 0) for h in starts]


def windows_inside_input(size: int, kernel: int, stride: int, pad_begin: int, out: int) -> bool:
    """Whether every window overlaps the input (none lies wholly in the padding)."""
    if out < 1:
        return False
    first, last = -pad_begin, (out - 1) * stride - pad_begin
    return first + kernel > 0 and last < size


def caffe_axis_to_onnx(size: int, kernel: int, stride: int, pad: int, out: int, ceil_flag: bool,
                       average: bool) -> OnnxPoolAxis | None:
    """ONNX pads giving exactly Caffe's windows along one axis with ONNX ``ceil_mode=ceil_flag``,
    or None when that rounding cannot.

    ``out`` is the size sqsim's IR inferred.  Symmetric pads are preferred.  In Caffe's corner case
    (ceil mode, ``pad > 0``, a last window that would start in the padding is dropped) the end pad
    is reduced so that even the bare ceil formula gives ``out``: no runtime then depends on the
    drop rule, and for average pooling the last window's divisor is unchanged (it ends inside
    ``[-pad, size + pad)`` either way).  Each candidate is checked window by window: same count,
    every window overlapping the input, and (average) the same divisors with
    ``count_include_pad=1``.
    """
    for pad_end in [pad] + list(range(pad - 1, -1, -1)):
        if onnx_pool_size(size, kernel, stride, pad, pad_end, ceil_flag, drop_last_in_padding=False) != out:
            continue
        if onnx_pool_size(size, kernel, stride, pad, pad_end, ceil_flag) != out:
            continue
        if not windows_inside_input(size, kernel, stride, pad, out):
            return None  # Caffe would pool an empty window; no ONNX pads reproduce that
        if average and (onnx_divisors(size, kernel, stride, pad, pad_end, out, True)
                        != caffe_divisors(size, kernel, stride, pad, out)):
            continue
        return OnnxPoolAxis(pad, pad_end, ceil_flag)
    return None


def onnx_axis_matches_caffe(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                            onnx_out: int, caffe_out: int, average: bool,
                            count_include_pad: bool) -> bool:
    """Whether an ONNX pooling axis (begin/end pads, size ``onnx_out``) computes the same windows
    and divisors as Caffe's with symmetric pad ``pad_begin`` and size ``caffe_out``."""
    if onnx_out != caffe_out or not windows_inside_input(size, kernel, stride, pad_begin, onnx_out):
        return False
    if not average:
        return True  # max pooling ignores padding: equal windows give equal results
    return (onnx_divisors(size, kernel, stride, pad_begin, pad_end, onnx_out, count_include_pad)
            == caffe_divisors(size, kernel, stride, pad_begin, caffe_out))
