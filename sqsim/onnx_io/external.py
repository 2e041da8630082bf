"""ONNX external data, read only from inside the model's folder.

An ONNX tensor may keep its bytes in another file (``data_location: EXTERNAL``, with ``location``,
``offset`` and ``length`` entries).  sqsim resolves every such reference itself, for every tensor
of the model: initializers, sparse initializers, the ``value`` of Constant nodes and any tensor
attribute, in subgraphs and functions too, with one set of rules:

* ``location`` is a relative path with no ``..`` part, and after following symbolic links it
  still names a regular file inside the model's folder;
* the bytes it declares (``dims`` x the element size) fit the file at ``offset`` and agree with
  ``length`` when given, and all external data together fit the memory budget
  (:mod:`sqsim.limits`), checked before anything is read.

Then the bytes are copied into the tensor (``raw_data``) and the reference removed, so nothing
later (onnx's checker, ``numpy_helper.to_array``) opens a file on its own; onnx would resolve a
Constant's reference against the current directory.
"""
from __future__ import annotations

import math
import os
import stat
from pathlib import Path

from ..errors import FormatError, short
from ..limits import check_memory, current, how_to_raise

_FOUR_BIT = {"INT4", "UINT4", "FLOAT4E2M1"}


def iter_tensors(model, source: str):
    """Every TensorProto of ``model`` with a description of where it sits, subgraphs and functions
    included (their nesting bounded by the ``nesting`` limit)."""
    limit = current().nesting

    def graph(g, where, depth):
        if depth > limit:
            raise FormatError(f"{source}: {where}: subgraphs nested more than {limit} deep exceed sqsim's limit "
                              f"(nesting; {how_to_raise('nesting')})")
        for t in g.initializer:
            yield t, f"initializer {short(t.name)}"
        for sp in g.sparse_initializer:
            yield sp.values, f"sparse initializer {short(sp.values.name)}"
            yield sp.indices, f"sparse initializer {short(sp.values.name)} indices"
        for node in g.node:
            yield from nodes(node, where, depth)

    def nodes(node, where, depth):
        label = f"node {short(node.name or (node.output[0] if node.output else ''))} ({node.op_type[:40]})"
        for a in node.attribute:
            what = f"{label} attribute {short(a.name)}"
            if a.HasField("t"):
                yield a.t, what
            for t in a.tensors:
                yield t, what
            sparse = ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors)
            for sp in sparse:
                yield sp.values, what
                yield sp.indices, what
            if a.HasField("g"):
                yield from graph(a.g, what, depth + 1)
            for g in a.graphs:
                yield from graph(g, what, depth + 1)

    yield from graph(model.graph, "graph", 0)
    for f in model.functions:
        for node in f.node:
            yield from nodes(node, f"function {short(f.name)}", 1)


def tensor_bytes(t) -> int:
    """The bytes a tensor's ``dims`` and ``data_type`` declare (FormatError for a type without a
    fixed size, such as strings)."""
    from onnx import TensorProto, helper
    name = TensorProto.DataType.Name(t.data_type) if t.data_type in TensorProto.DataType.values() else None
    if any(d < 0 for d in t.dims):
        raise ValueError(f"negative dims {list(t.dims)}")
    n = math.prod(t.dims)
    if name in _FOUR_BIT:
        return (n + 1) // 2
    if name in (None, "UNDEFINED", "STRING"):
        raise ValueError(f"data type {name or t.data_type} cannot be stored as external bytes")
    return n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize


def _inside(folder_real: str, location: str) -> str | None:
    """The real path of ``location`` if it is a relative path that stays in ``folder_real``."""
    if not location or "\0" in location or os.path.isabs(location) or location.startswith(("\\", "/")):
        return None
    parts = location.replace("\\", "/").split("/")
    if ".." in parts or (len(parts[0]) >= 2 and parts[0][1] == ":"):   # parent folders, Windows drives
        return None
    real = os.path.realpath(os.path.join(folder_real, location))
    if os.path.commonpath([real, folder_real]) != folder_real or real == folder_real:
        return None
    return real


def resolve_external_data(model, folder, source: str) -> int:
    """Read every external-data reference of ``model`` from inside ``folder`` into its tensor.

    Returns the number of tensors resolved.  Raises FormatError naming the tensor for a reference
    that breaks a rule (module docstring), LimitError when the data exceed the memory budget.
    """
    from onnx import TensorProto
    folder_real = os.path.realpath(folder)
    plan, total = [], 0
    for t, where in iter_tensors(model, source):
        if t.data_location != TensorProto.EXTERNAL:
            continue
        what = f"{source}: {where}: external data"
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        real = _inside(folder_real, location)
        if real is None:
            raise FormatError(f"{what}: location {short(location, 60)} is not a file inside the model's folder "
                              f"{str(folder)!r} (sqsim reads external data only from there, by relative path "
                              f"without '..')")
        try:
            st = os.stat(real)
        except OSError as e:
            raise FormatError(f"{what}: cannot read {short(location, 60)} ({e.strerror or e})") from None
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{what}: {short(location, 60)} is not a regular file")
        try:
            nbytes = tensor_bytes(t)
            offset = int(info.get("offset", "0") or 0)
            length = int(info["length"]) if info.get("length") else nbytes
        except (ValueError, TypeError) as e:
            raise FormatError(f"{what}: {e}") from None
        if length != nbytes:
            raise FormatError(f"{what}: length {length:,} bytes does not match its dims {list(t.dims)} "
                              f"({nbytes:,} bytes)")
        if offset < 0 or offset + nbytes > st.st_size:
            raise FormatError(f"{what}: bytes [{offset:,}, {offset + nbytes:,}) lie outside "
                              f"{short(location, 60)} ({st.st_size:,} bytes)")
        total += nbytes
        check_memory(total, f"{source}: external data")
        plan.append((t, real, offset, nbytes, what))
    for t, real, offset, nbytes, what in plan:
        try:
            with open(real, "rb") as f:
                f.seek(offset)
                data = f.read(nbytes)
        except OSError as e:
            raise FormatError(f"{what}: cannot read ({e.strerror or e})") from None
        if len(data) != nbytes:
            raise FormatError(f"{what}: the file ended after {len(data):,} of {nbytes:,} bytes")
        t.raw_data = data
        del t.external_data[:]
        t.data_location = TensorProto.DEFAULT
    return len(plan)


def model_folder(path) -> Path:
    """The folder a model file's external data must lie in."""
    return Path(path).resolve().parent
