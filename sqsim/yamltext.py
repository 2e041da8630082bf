"""Reading YAML safely, with the line of every mapping kept for error messages.

A util module: imports nothing from sqsim but its errors.  Both the architecture format
(:mod:`sqsim.ir.yaml_format`) and the hardware models (:mod:`sqsim.hw.loader`) read through it.
"""
from __future__ import annotations

import yaml

from .errors import SpecError


class LineMap(dict):
    """A mapping from YAML that knows the (1-based) line it started on."""
    line: int | None = None


class _LineLoader(yaml.SafeLoader):
    """Safe loader (no arbitrary Python objects) that remembers each mapping's line."""


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    m = LineMap(loader.construct_pairs(node))
    m.line = node.start_mark.line + 1
    return m


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, source: str, problem: str = "malformed YAML"):
    """Parse ``text``; a syntax error (or an unsafe tag) raises SpecError ``"source:line: problem: ..."``."""
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise SpecError(f"{source}{line}: {problem}: {getattr(e, 'problem', None) or e}") from None
