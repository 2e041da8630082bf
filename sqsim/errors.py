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


def where(path=None, line=None) -> str:
    """Format a ``file:line: `` prefix for messages (empty when neither is known)."""
    if path is None:
        return ""
    return f"{path}:{line}: " if line is not None else f"{path}: "
