"""Deep Compression: pruning, weight sharing, sparse indices, Huffman coding; exact byte
accounting; the released SqueezeNet ``.net`` format and sqsim's ``.sqz`` container.

Importing this package never imports Numba (only decoding a Huffman stream does).

Main entry points
-----------------
compress(graph, weights, huffman=True) -> CompressedModel
    The pipeline, per the graph's compression profiles (:func:`resolve_profiles` overrides them).
load_model(path, prototxt=None) -> CompressedModel
    ``.sqz`` (recognised by its magic) or a released ``.net`` (needs the prototxt or a graph).
load_sqz(path), load_released(net_path, prototxt_or_graph), save_sqz(model, path)
profile_layer_bytes(info, compression=None) -> LayerSize
    Storage of a layer from its profile alone, for the hardware models.
size_table(model) / size_table_rows(model)
    The per-layer size table as plain dicts (what ``sqsim compress`` and ``sqsim info`` print).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import FormatError, SpecError
from .accounting import (STORAGE_KINDS, LayerSize, ModelSize, compressed_layer_size, profile_layer_bytes,
                         profile_sizes, storage_for)
from .model import CompressedLayer, CompressedModel, Stream
from .pipeline import compress, compress_layer, encode_quantised, resolve_profiles
from .released import load_released, read_released, released_bytes, save_released
from .report import render_size_table, size_table, size_table_rows
from .sqz import MAGIC, load_sqz, save_sqz

__all__ = ["compress", "compress_layer", "encode_quantised", "resolve_profiles", "CompressedModel",
           "CompressedLayer", "Stream", "LayerSize", "ModelSize", "profile_layer_bytes", "profile_sizes",
           "compressed_layer_size", "storage_for", "STORAGE_KINDS", "load_model", "load_sqz", "save_sqz",
           "load_released", "read_released", "released_bytes", "save_released", "size_table",
           "size_table_rows", "render_size_table"]


def load_model(path, prototxt=None) -> CompressedModel:
    """Load a compressed model: ``.sqz`` (by its magic bytes) or a released Deep Compression
    ``.net`` (``prototxt``: its prototxt path, or a Graph).

    Raises
    ------
    FormatError
        Unreadable or malformed file.
    SpecError
        A released model given without its prototxt; an ``.sqz`` (which carries its own network)
        given with a ``prototxt`` whose conv/fc layers differ from it.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror})") from None
    if head == MAGIC:
        model = load_sqz(path)
        if prototxt is not None:
            _check_same_network(model, prototxt, path)
        return model
    if prototxt is None:
        raise SpecError(f"{path}: not an .sqz file; a released Deep Compression .net model needs its network "
                        f"definition (--prototxt FILE)")
    return load_released(path, prototxt)


def _check_same_network(model: CompressedModel, prototxt, path) -> None:
    """An .sqz carries its network; a network given with it must have the same conv/fc layers
    (names and weight shapes, in order), or the user is combining two different models."""
    from .released import _graph_of
    graph = _graph_of(prototxt)
    mine = [(l.name, model.graph.info(l.name).weight_shape) for l in model.graph.weighted_layers()]
    theirs = [(l.name, graph.info(l.name).weight_shape) for l in graph.weighted_layers()]
    if mine == theirs:
        return
    source = getattr(graph, "source", None) or str(prototxt)
    diff = next(((a, b) for a, b in zip(mine, theirs) if a != b), None)
    if diff is None:
        detail = f"{len(mine)} conv/fc layers in the .sqz, {len(theirs)} in {source}"
    else:
        (n1, s1), (n2, s2) = diff
        detail = f"first difference: {n1!r} {'x'.join(map(str, s1))} in the .sqz, {n2!r} {'x'.join(map(str, s2))} there"
    raise SpecError(f"{path}: an .sqz file carries its own network, and {source} does not match it ({detail}); "
                    f"leave out --prototxt, or give the network the model was compressed from")
