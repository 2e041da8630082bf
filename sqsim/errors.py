"""sqsim's exception types.

Every error sqsim raises on bad input derives from :class:`SqsimError`. Messages name the
object first (file, layer, field), then what was expected and what was found, e.g.
``"archs/x.yaml:12: layer 'conv1': stride must be positive, got 0"``.
"""


class SqsimError(Exception):
    """Base class of every error sqsim reports to a user."""


class SpecError(SqsimError):
    """A specification (architecture YAML, hardware YAML, command-line override) is invalid."""


class GraphError(SqsimError):
    """A layer graph is inconsistent: missing tensor, cycle, shape mismatch, bad layer parameter."""


class FormatError(SqsimError):
    """A binary or text model file is malformed, truncated or fails its checksum."""


class UnsupportedOpError(SqsimError):
    """A network uses an operation sqsim does not implement."""


class LimitError(SqsimError):
    """An input exceeds one of sqsim's input limits (:mod:`sqsim.limits`); says how to raise it."""


class OutputError(SqsimError):
    """An output file cannot be written (missing folder, a directory, read-only, empty path)."""


def where(path=None, line=None) -> str:
    """Format a ``file:line: `` prefix for messages (empty when neither is known)."""
    if path is None:
        return ""
    return f"{path}:{line}: " if line is not None else f"{path}: "


_SHORT = None


def short(value, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for quoting a bad value in a message.

    Never formats more than a bounded part of ``value``: nested lists and mappings are shown to a
    few levels and items (a YAML alias bomb is not expanded), long strings by their start.
    """
    global _SHORT
    if _SHORT is None:
        import reprlib
        _SHORT = reprlib.Repr()
        _SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict = 3, 6, 6, 6
        _SHORT.maxset = _SHORT.maxfrozenset = _SHORT.maxdeque = _SHORT.maxarray = 6
        _SHORT.maxlong = 40
    _SHORT.maxstring = _SHORT.maxother = limit
    try:
        text = _SHORT.repr(value)
    except ValueError:  # an integer too long for str() (over 4,300 digits)
        text = f"<an integer of {value.bit_length():,} bits>" if isinstance(value, int) else "<unprintable>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
