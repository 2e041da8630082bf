"""Open a model file by its suffix, as a graph plus its weights (what ``sqsim run`` and
``sqsim export-onnx`` accept).

=========  ==================================================================================
suffix     what it is
=========  ==================================================================================
.sqz       sqsim's compressed container (graph inside); weights stay compressed
.net       the released Deep Compression SqueezeNet (``--prototxt`` gives the network)
.onnx      an ONNX model; weights from its initializers (:func:`sqsim.onnx_io.load_onnx`)
.npz       dense weights (:func:`sqsim.weights.load_npz`) for the network in ``--arch``
.xml       OpenVINO IR v10 (``.bin`` beside it); its folded mean becomes the default mean
=========  ==================================================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SpecError

SUFFIXES = (".sqz", ".net", ".onnx", ".npz", ".xml")


@dataclass(frozen=True)
class RunnableModel:
    """A graph and its weights (dense dict or compressed model), ready for :class:`Executor`.

    ``mean`` is a model-supplied per-channel mean (OpenVINO's folded mean), or None.
    """
    graph: object
    weights: object
    mean: np.ndarray | None
    source: str


def open_model(path, prototxt=None, arch=None) -> RunnableModel:
    """Open ``path`` by its suffix (see the module docstring).

    Raises
    ------
    SpecError
        Unknown suffix, or a needed companion (``--arch`` for .npz, ``--prototxt`` for .net) missing.
    FormatError, GraphError
        From the format readers: malformed file, weights not matching the architecture.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    src = str(path)
    if suffix not in SUFFIXES:
        raise SpecError(f"{path}: unknown model type {suffix!r} (expected one of {', '.join(SUFFIXES)})")
    if arch is not None and suffix not in (".npz", ".net"):
        raise SpecError(f"{path}: --arch applies to .npz weights (and .net models); a {suffix} file carries its "
                        f"own network")
    if suffix in (".sqz", ".net"):
        from .compress import load_model
        if suffix == ".net" and prototxt is None and arch is not None:
            from .ir import load
            prototxt = load(arch)
        cm = load_model(path, prototxt=prototxt)
        return RunnableModel(cm.graph, cm, None, src)
    if suffix == ".onnx":
        from .onnx_io import load_onnx
        m = load_onnx(path)
        return RunnableModel(m.graph, m.weights, None, src)
    if suffix == ".xml":
        from .ir.openvino import load_openvino
        m = load_openvino(path)
        return RunnableModel(m.graph, m.weights, m.mean, src)
    if arch is None:
        raise SpecError(f"{path}: .npz weights need the network they belong to (--arch FILE)")
    from .ir import load
    from .weights import load_npz
    # checked against the graph by the Executor, which names missing and extra layers together
    return RunnableModel(load(arch), load_npz(path), None, src)
