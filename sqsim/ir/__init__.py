"""Layer-graph IR: frozen layer records, shape inference, loaders for YAML, Caffe prototxt and ONNX."""
from .graph import Graph, Totals
from .layer import OPS, WEIGHTED_OPS, Compression, Layer, LayerInfo

__all__ = ["Graph", "Totals", "Layer", "LayerInfo", "Compression", "OPS", "WEIGHTED_OPS", "load"]


def load(path, **kwargs) -> Graph:
    """Load a network from ``.yaml``/``.yml``, ``.prototxt`` or ``.onnx`` (by suffix)."""
    from .io import load as _load
    return _load(path, **kwargs)
