"""Reading YAML safely and strictly, with the line of every mapping kept for error messages.

A util module: imports nothing from sqsim but its errors, limits and file helpers.  The
architecture format (:mod:`sqsim.ir.yaml_format`), the hardware models (:mod:`sqsim.hw.loader`),
``--set`` values and the graph inside an ``.sqz`` all read through :func:`load_yaml`, so every
field any of them has (or gains) gets the same rules:

* a safe loader: plain data only, no Python objects;
* unique keys in every mapping (a repeated key is an error, not "last one wins");
* finite numbers only (``.inf``, ``.nan`` and ``1e400`` are refused) and integers of at most
  :data:`MAX_INT_DIGITS` digits;
* bounded size: at most ``yaml_nodes`` nodes, an alias counted at the full size of what it
  repeats (so a "billion laughs" document is refused before anything expands it), no alias of a
  collection inside itself, nesting at most ``nesting`` deep (:mod:`sqsim.limits`);
* every error one line, ``file:line: what``.
"""
from __future__ import annotations

import math

import yaml
from yaml.events import AliasEvent

from .errors import LimitError, SpecError

MAX_INT_DIGITS = 100  # far beyond any count sqsim takes; Python refuses str->int past 4,300


class YamlSyntaxError(SpecError):
    """Text that is not YAML at all (as opposed to YAML that breaks one of sqsim's rules)."""


class LineMap(dict):
    """A mapping from YAML that knows the (1-based) line it started on."""
    line: int | None = None


class _Refused(yaml.YAMLError):
    """A strictness or limit rule broken while loading (carries its mark and error class)."""

    def __init__(self, message: str, mark=None, error=SpecError):
        super().__init__(message)
        self.problem, self.problem_mark, self.error = message, mark, error


try:   # libyaml's scanner and parser (4x faster); sqsim's composer and constructor on top
    from yaml._yaml import CParser as _Events
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Events = None


class _PyEvents(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's pure-Python reader, scanner and parser (where libyaml is missing)."""

    def __init__(self, stream):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


class _LineLoader(_Events or _PyEvents, yaml.composer.Composer, yaml.constructor.SafeConstructor,
                  yaml.resolver.Resolver):
    """Safe loader that remembers each mapping's line and enforces sqsim's rules (module docstring).

    Events come from libyaml when PyYAML has it; nodes are always composed here (Python), so that
    every node, alias and level of nesting is counted."""
    # the composer's methods, not libyaml's own composition (which would bypass the counting)
    check_node = yaml.composer.Composer.check_node
    get_node = yaml.composer.Composer.get_node
    get_single_node = yaml.composer.Composer.get_single_node

    def __init__(self, stream):
        (_Events or _PyEvents).__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        from .limits import current
        lim = current()
        self._max_nodes, self._max_depth = lim.yaml_nodes, lim.nesting
        self._nodes = self._depth = 0
        self._sizes: dict[str, int] = {}   # anchor -> expanded node count, once complete

    def _count(self, n: int, mark) -> None:
        self._nodes += n
        if self._nodes > self._max_nodes:
            from .limits import how_to_raise
            raise _Refused(f"more than {self._max_nodes:,} YAML nodes (aliases counted at the size of what they "
                           f"repeat) exceed sqsim's limit (yaml_nodes; {how_to_raise('yaml_nodes')})", mark,
                           LimitError)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self.anchors and event.anchor not in self._sizes:
                raise _Refused(f"alias *{event.anchor} refers to a collection that contains it (a recursive "
                               f"structure)", event.start_mark)
            node = yaml.composer.Composer.compose_node(self, parent, index)
            self._count(self._sizes[event.anchor], event.start_mark)
            return node
        self._depth += 1
        if self._depth > self._max_depth:
            from .limits import how_to_raise
            raise _Refused(f"collections nested more than {self._max_depth} deep exceed sqsim's limit (nesting; "
                           f"{how_to_raise('nesting')})", event.start_mark, LimitError)
        before = self._nodes
        self._count(1, event.start_mark)
        node = yaml.composer.Composer.compose_node(self, parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._sizes[event.anchor] = self._nodes - before
        return node


def _construct_mapping(loader, node):
    seen = {}
    for key_node, _ in node.value:   # the keys written here (a merge's keys may be overridden)
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refused("a mapping key must be a plain value, not a list or a mapping", key_node.start_mark)
        if key_node.tag != "tag:yaml.org,2002:merge":
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise _Refused(f"duplicate key {_quote(key_node.value)} (first on line {seen[key]}); each key may "
                               f"appear once in a mapping", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refused("a mapping key must be a plain value, not a list or a mapping", key_node.start_mark)
    m = LineMap(loader.construct_pairs(node))
    m.line = node.start_mark.line + 1
    return m


def _construct_int(loader, node):
    digits = sum(c.isalnum() for c in node.value)
    if digits > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {digits:,} digits is too large (sqsim reads integers of at most "
                       f"{MAX_INT_DIGITS} digits)", node.start_mark)
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


def _construct_float(loader, node):
    if len(node.value) > MAX_INT_DIGITS + 20:
        raise _Refused(f"a number written with {len(node.value):,} characters is too long", node.start_mark)
    value = yaml.constructor.SafeConstructor.construct_yaml_float(loader, node)
    if not math.isfinite(value):
        raise _Refused(f"{_quote(node.value)} is not a finite number (sqsim accepts finite numbers only)",
                       node.start_mark)
    return value


def _quote(text: str) -> str:
    from .errors import short
    return short(text, 40)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_LineLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def load_yaml(text: str, source: str, problem: str = "malformed YAML"):
    """Parse ``text`` strictly (see the module docstring).

    Raises
    ------
    SpecError
        ``"source:line: problem: ..."`` for a syntax error or an unsafe tag, ``"source:line: ..."``
        for a duplicate key or a non-finite number.
    LimitError
        Too many nodes (alias expansion included) or nesting too deep.
    """
    try:
        return yaml.load(text, Loader=_LineLoader)
    except _Refused as e:
        raise e.error(f"{source}{_line(e)}: {e.problem}") from None
    except RecursionError:  # defensive: the nesting limit normally stops this first
        raise LimitError(f"{source}: YAML nested too deeply") from None
    except yaml.YAMLError as e:
        detail = getattr(e, "problem", None) or str(e).splitlines()[0]
        if "maximum nesting depth" in detail:   # libyaml's own bound, met while it scans ahead
            from .limits import current, how_to_raise
            raise LimitError(f"{source}{_line(e)}: collections nested more than {current().nesting} deep exceed "
                             f"sqsim's limit (nesting; {how_to_raise('nesting')})") from None
        raise YamlSyntaxError(f"{source}{_line(e)}: {problem}: {detail}") from None


def read_yaml(path, what: str = "YAML file", problem: str = "malformed YAML"):
    """Read and parse a YAML file: size limit, UTF-8 check (:func:`sqsim.paths.read_text`), then
    :func:`load_yaml`."""
    from .paths import read_text
    return load_yaml(read_text(path, what), str(path), problem)


def located(source: str, obj) -> str:
    """``source:line`` for a value read by :func:`load_yaml` that knows its line (a :class:`LineMap`),
    else ``source``: the place an error message names."""
    line = getattr(obj, "line", None)
    return f"{source}:{line}" if line else source


def _line(e) -> str:
    mark = getattr(e, "problem_mark", None)
    return f":{mark.line + 1}" if mark is not None else ""
