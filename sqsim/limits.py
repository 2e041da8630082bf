"""Input limits: one policy, in one place, for every reader and command.

sqsim reads files that people download and share.  Each reader checks the sizes a file *declares*
against these limits before it allocates anything, so a hostile or corrupted input ends in one
clear :class:`~sqsim.errors.LimitError` that names the limit and how to raise it, never in an
out-of-memory crash or a run of minutes.

=================  ====================  ==========================================================
limit              default               what it bounds
=================  ====================  ==========================================================
memory             4 GiB                 what one command may allocate for a model's tensors:
                                         decoded or synthetic weights, external ONNX data, an
                                         image, a binary model file read whole
text_bytes         4 MiB                 a text input file: architecture or hardware YAML,
                                         prototxt, OpenVINO XML, labels
yaml_nodes         200,000               nodes in one YAML document, an alias counted at the full
                                         size of what it repeats (no "billion laughs")
nesting            64                    nesting depth of YAML collections, prototxt blocks and
                                         ONNX subgraphs
layers             10,000                layers of one network
dim                16,777,216            any one integer attribute of a layer (channels, height,
                                         width, kernel, stride, pad, groups) or of a hardware
                                         model (rows, columns, word bits, banks)
tensor_elements    2,147,483,647         one tensor per sample: a layer's weights, its input or
                                         its output
layer_macs         2**44                 multiply-accumulates of one layer per sample
batch              65,536                a batch size (``--batch``, ``policies.batch``)
image_pixels       67,108,864            pixels of an image, as stored and after resizing
                                         (8192 x 8192)
name_chars         1,024                 characters of a layer or network name
=================  ====================  ==========================================================

Every limit can be raised (or lowered) with an environment variable ``SQSIM_MAX_<NAME>``
(``SQSIM_MAX_MEMORY=8GiB``, ``SQSIM_MAX_LAYERS=50000``); the memory budget also with
``--max-memory SIZE`` on every command.  The tensor limits keep every count sqsim's analytic
models multiply together inside 64-bit integers.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, fields, replace

from .errors import LimitError


@dataclass(frozen=True)
class Limits:
    """The limits in force (see the module docstring for what each bounds)."""
    memory: int = 4 << 30
    text_bytes: int = 4 << 20
    yaml_nodes: int = 200_000
    nesting: int = 64
    layers: int = 10_000
    dim: int = 2 ** 24
    tensor_elements: int = 2 ** 31 - 1
    layer_macs: int = 2 ** 44
    batch: int = 65_536
    image_pixels: int = 8192 * 8192
    name_chars: int = 1024


DEFAULTS = Limits()
_UNITS = {"memory": "bytes", "text_bytes": "bytes"}
_override: dict = {}
_NAMES = tuple(f.name for f in fields(Limits))
_ENV_NAMES = tuple(f"SQSIM_MAX_{name.upper()}" for name in _NAMES)
_CACHE: dict = {}


def env_name(name: str) -> str:
    """The environment variable that sets limit ``name``."""
    return f"SQSIM_MAX_{name.upper()}"


def how_to_raise(name: str) -> str:
    if name == "memory":
        return "raise it with --max-memory SIZE or SQSIM_MAX_MEMORY=SIZE, e.g. 8GiB"
    return f"raise it with {env_name(name)}=N"


def parse_limit(name: str, text, source: str) -> int:
    """A limit's value from text (``"8GiB"`` for the byte limits, an integer otherwise)."""
    from .units import parse_quantity
    from .errors import SqsimError
    try:
        if name in _UNITS:
            value = parse_quantity(text, "bytes", source)
        else:
            value = parse_quantity(text, "number", source)
    except SqsimError as e:
        raise LimitError(f"{e}") from None
    if value != int(value) or value < 1:
        raise LimitError(f"{source}: expected a positive whole number, got {str(text)[:40]!r}")
    return int(value)


def current() -> Limits:
    """The limits in force: the defaults, then ``SQSIM_MAX_*`` variables, then overrides."""
    key = tuple(map(os.environ.get, _ENV_NAMES))
    if _override:
        key += tuple(_override.items())
    limits = _CACHE.get(key)
    if limits is None:
        values = {}
        for name, text in zip(_NAMES, key):
            if text is not None and text.strip():
                values[name] = parse_limit(name, text, env_name(name))
        values.update(_override)
        if len(_CACHE) > 64:
            _CACHE.clear()
        limits = _CACHE[key] = replace(DEFAULTS, **values) if values else DEFAULTS
    return limits


@contextlib.contextmanager
def overridden(**values):
    """Within the block, use these limits (``memory=1 << 30``) over the defaults and environment."""
    global _override
    old = dict(_override)
    _override = {**_override, **{k: v for k, v in values.items() if v is not None}}
    try:
        yield
    finally:
        _override = old


def _fmt(name: str, value) -> str:
    if name in _UNITS:
        from .units import format_bytes
        return format_bytes(value)
    return f"{value:,}"


def check(name: str, value, what: str, unit: str = "") -> None:
    """Raise :class:`LimitError` when ``value`` exceeds limit ``name``.

    ``what`` says what was being read (``"in/x.yaml: layer 'conv1': weights"``)."""
    limit = getattr(current(), name)
    if value > limit:
        shown = _fmt(name, value) if name in _UNITS else (f"{value:,}" if isinstance(value, int) else f"{value:.3g}")
        raise LimitError(f"{what}: {shown}{unit} exceeds sqsim's limit of {_fmt(name, limit)}{unit} "
                         f"({name}; {how_to_raise(name)})")


def check_memory(nbytes, what: str) -> None:
    """Refuse an allocation of ``nbytes`` over the memory budget, before it is made."""
    limit = current().memory
    if nbytes > limit:
        from .units import format_bytes
        raise LimitError(f"{what}: needs {format_bytes(nbytes)}, over the memory budget of {format_bytes(limit)} "
                         f"({how_to_raise('memory')})")


def check_file(path, kind: str = "text") -> int:
    """The size of the file at ``path``, refused when over the limit for its kind.

    ``kind``: ``"text"`` (YAML, prototxt, XML, labels: ``text_bytes``) or ``"binary"`` (a model file
    read whole: the memory budget).  A missing file passes (the reader's own open reports it).
    """
    try:
        size = os.stat(path).st_size
    except (OSError, ValueError):
        return 0
    if kind == "text":
        check("text_bytes", size, f"{path}: file size", "")
    else:
        check_memory(size, f"{path}: reading the file")
    return size
