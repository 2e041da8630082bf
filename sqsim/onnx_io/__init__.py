"""ONNX interchange: export a sqsim graph with weights, import an ONNX model as a graph with weights.

Uses the ``onnx`` package only, imported when a function runs (importing this package stays light).

- :func:`export_onnx` (``export.py``): one node per layer, node and output tensor named after it.
- :func:`load_onnx` / :func:`model_from_proto` (``importer.py``): one rule per ONNX op type.
- ``pooling.py``: Caffe's pooling windows against ONNX begin/end pads (shared with the OpenVINO reader).

>>> from sqsim.onnx_io import export_onnx, load_onnx        # doctest: +SKIP
>>> model = export_onnx(graph, weights, "net.onnx")          # doctest: +SKIP
>>> load_onnx("net.onnx").graph == graph                     # doctest: +SKIP
True
"""
from __future__ import annotations

from .export import OPSET, export_onnx
from .importer import load_onnx, model_from_proto
from .model import OnnxModel

__all__ = ["OnnxModel", "export_onnx", "load_onnx", "model_from_proto", "OPSET"]
