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
        A released model given without its prototxt.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror})") from None
    if head == MAGIC:
        return load_sqz(path)
    if prototxt is None:
        raise SpecError(f"{path}: not an .sqz file; a released Deep Compression .net model needs its network "
                        f"definition (--prototxt FILE)")
    return load_released(path, prototxt)
