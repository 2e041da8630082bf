"""The record an ONNX import produces, and the conventions export and import share."""
from __future__ import annotations

from dataclasses import dataclass

# ``doc_string`` markers on nodes the exporter writes.  They only matter on import of sqsim's own
# files: a Flatten written for an explicit sqsim ``flatten`` layer stays a layer, while the Flatten
# the exporter inserts in front of an fc (Gemm needs 2-D input) folds back into the fc.
FLATTEN_LAYER_DOC = "sqsim: flatten layer"
AUXILIARY_DOC = "sqsim: auxiliary reshape"
# On a pooling node whose ONNX ceil_mode differs from the sqsim layer's (both give the same windows,
# e.g. Caffe ceil rounding with stride > kernel that only ONNX floor rounding can write), so that an
# import restores the layer's own rounding flag.
ROUNDING_DOC = {True: "sqsim: ceil rounding", False: "sqsim: floor rounding"}
# model.metadata_props key holding the per-layer compression profiles as JSON
COMPRESSION_KEY = "sqsim.compression"


@dataclass(frozen=True)
class OnnxModel:
    """A network read from ONNX.

    Attributes
    ----------
    graph : sqsim.ir.Graph
        The layer graph (layer names = ONNX node names).
    weights : dict
        ``{layer name: sqsim.weights.LayerWeights}`` from the initializers, in Caffe layout,
        float32, with any BatchNormalization or constant bias Add folded in.
    source : str
        Where the model came from (for messages).
    """
    graph: object
    weights: dict
    source: str = "<onnx model>"
