"""Dense weights of a network: ``{layer name: LayerWeights}`` in Caffe layout.

conv2d: ``weight`` of shape ``(out, in/groups, kh, kw)``; fc: ``(out, in)`` with ``in`` in the
flattened C,H,W order of the input; ``bias`` of shape ``(out,)`` or None.  All float32.

Files: ``.npz`` with arrays named ``<layer>.weight`` and ``<layer>.bias`` (read without pickle).
"""
from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FormatError, GraphError, short
from .paths import atomic_write_bytes


@dataclass(frozen=True)
class LayerWeights:
    weight: np.ndarray
    bias: np.ndarray | None = None


Weights = dict  # str -> LayerWeights


def _listed(names, limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_layer_names(graph, names, source: str = "weights", partial: bool = False) -> None:
    """Check that ``names`` are exactly the graph's conv/fc layers (with ``partial``: a subset of them).

    Raises GraphError naming the missing and the unknown layers.
    """
    expected = {l.name for l in graph.weighted_layers()}
    missing = [] if partial else sorted(expected - set(names))
    extra = sorted(set(names) - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no weights for layer(s) {_listed(missing)}")
        if extra:
            parts.append(f"weights for layer(s) {_listed(extra)} that the network does not have")
        raise GraphError(f"{source}: {'; '.join(parts)} (model and architecture {graph.name!r} do not match)")


def check_weights(graph, weights: dict, source: str = "weights") -> dict:
    """Check that ``weights`` has exactly the graph's weighted layers with the right shapes.

    Returns the weights as float32 C-contiguous arrays.  Raises GraphError naming the layer.
    """
    out = {}
    check_layer_names(graph, weights, source)
    for name in (l.name for l in graph.weighted_layers()):
        info = graph.info(name)
        lw = weights[name]
        w = np.asarray(lw.weight)
        if tuple(w.shape) != tuple(info.weight_shape):
            if w.size == int(np.prod(info.weight_shape)) and info.op == "fc":
                w = w.reshape(info.weight_shape)
            else:
                raise GraphError(f"{source}: layer {name!r}: weight shape {tuple(w.shape)} does not match "
                                 f"the architecture's {tuple(info.weight_shape)}")
        b = lw.bias
        if info.biases:
            if b is None:
                raise GraphError(f"{source}: layer {name!r}: the architecture has a bias but no bias was given")
            b = np.asarray(b)
            if b.shape != (info.biases,):
                raise GraphError(f"{source}: layer {name!r}: bias shape {tuple(b.shape)} does not match "
                                 f"({info.biases},)")
            b = _as_float32(b, source, name)
        elif b is not None:
            raise GraphError(f"{source}: layer {name!r}: a bias was given but the layer has bias: false")
        w = _as_float32(w, source, name)
        if not np.all(np.isfinite(w)) or (b is not None and not np.all(np.isfinite(b))):
            raise GraphError(f"{source}: layer {name!r}: weights contain NaN or infinity (or values beyond float32)")
        out[name] = LayerWeights(w, b)
    return out


def _as_float32(a: np.ndarray, source: str, name: str) -> np.ndarray:
    """``a`` as C-contiguous float32: real numbers only; values beyond float32 become infinite
    (and are refused by the caller's finiteness check)."""
    if a.dtype.kind not in "fiu":
        raise GraphError(f"{source}: layer {name!r}: weights must be real numbers, got dtype {a.dtype}")
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(a, dtype=np.float32)


def he_init(graph, seed: int = 0) -> dict:
    """Deterministic synthetic weights: He-normal, std = sqrt(2 / fan_in), small random biases.

    Each layer draws from its own stream seeded by (seed, layer index), so a layer's weights do not
    depend on the layers before it.
    """
    from .limits import check_memory
    total = sum(graph.info(l.name).params for l in graph.weighted_layers())
    check_memory(4 * total, f"network {graph.name!r}: synthetic weights ({total:,} float32 parameters)")
    out = {}
    for i, layer in enumerate(graph.weighted_layers()):
        info = graph.info(layer.name)
        rng = np.random.default_rng([seed, i])
        fan_in = int(np.prod(info.weight_shape[1:]))
        w = rng.standard_normal(info.weight_shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        b = (rng.standard_normal(info.biases, dtype=np.float32) * np.float32(0.01)) if info.biases else None
        out[layer.name] = LayerWeights(w, b)
    return out


def save_npz(path, weights: dict) -> None:
    """Write ``<layer>.weight`` / ``<layer>.bias`` arrays to an .npz, atomically."""
    arrays = {}
    for name, lw in weights.items():
        arrays[f"{name}.weight"] = np.asarray(lw.weight, dtype=np.float32)
        if lw.bias is not None:
            arrays[f"{name}.bias"] = np.asarray(lw.bias, dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _check_npz_sizes(path) -> None:
    """Check every array's declared shape against its stored bytes and the memory budget, before
    numpy allocates it (numpy sizes a zip member's array from its header alone)."""
    from numpy.lib import format as npformat

    from .limits import check_memory
    total = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                version = npformat.read_magic(f)
                if version not in ((1, 0), (2, 0), (3, 0)):
                    raise ValueError(f"array {info.filename!r}: unknown .npy version {version}")
                read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                shape, _, dtype = read(f)
            nbytes = math.prod(shape) * dtype.itemsize
            if dtype.hasobject or nbytes > info.file_size:
                raise ValueError(f"array {info.filename!r} declares {nbytes:,} bytes of {dtype} but stores "
                                 f"{info.file_size:,}")
            total += nbytes
            check_memory(total, f"{path}: arrays")


def load_npz(path) -> dict:
    """Read an .npz of ``<layer>.weight`` / ``<layer>.bias`` arrays (no pickle)."""
    from .limits import check_file
    path = Path(path)
    check_file(path, "binary")
    try:
        _check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, zlib.error,
            struct.error) as e:   # what zipfile and numpy raise for a damaged or unusual archive
        raise FormatError(f"{path}: not a readable .npz weights file ({short(str(e), 200)})") from None
    out: dict = {}
    for key in arrays:
        if key.endswith(".weight"):
            name = key[: -len(".weight")]
            out[name] = LayerWeights(arrays[key], arrays.get(f"{name}.bias"))
        elif not key.endswith(".bias"):
            raise FormatError(f"{path}: array {key!r} is neither '<layer>.weight' nor '<layer>.bias'")
        elif f"{key[:-5]}.weight" not in arrays:
            raise FormatError(f"{path}: array {key!r} has no matching '{key[:-5]}.weight'")
    return out
