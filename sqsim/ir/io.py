"""Load a network from any supported file, chosen by suffix."""
from __future__ import annotations

from pathlib import Path

from ..errors import SpecError


def load(path, **kwargs):
    """``.yaml``/``.yml`` (sqsim's format), ``.prototxt`` (Caffe), ``.onnx`` and OpenVINO IR ``.xml``
    (graph only here; :func:`sqsim.onnx_io.load_onnx` and :func:`sqsim.ir.openvino.load_openvino` also
    return the weights)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        from .yaml_format import load as load_yaml
        return load_yaml(path)
    if suffix == ".prototxt":
        from .prototxt import import_prototxt
        return import_prototxt(path, **kwargs)
    if suffix == ".onnx":
        from ..onnx_io import load_onnx
        return load_onnx(path).graph
    if suffix == ".xml":
        from .openvino import load_openvino
        return load_openvino(path).graph
    raise SpecError(f"{path}: unknown network file type {suffix!r} (expected .yaml, .prototxt, .onnx or an "
                    f"OpenVINO .xml)")
