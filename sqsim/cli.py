"""The ``sqsim`` command line.

Each area registers its subcommands from a light module (``sqsim/cli_*.py``) that imports only
argparse-level code at top level; handlers import the heavy parts (numba, onnx) when they run, so
``sqsim info`` and ``sqsim analyze`` never pay for Numba.

The wrapper gives every command the same behaviour on bad input and on signals: a usage error or
a :class:`~sqsim.errors.SqsimError` is one line on stderr and exit code 2; Ctrl-C is one line and
130; SIGTERM removes the temporary file of an output being written and exits with 143.  Every
command takes ``--max-memory SIZE``, the memory budget of :mod:`sqsim.limits`.
"""
from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys

from .errors import SqsimError

_COMMAND_MODULES = ("sqsim.cli_info", "sqsim.cli_compress", "sqsim.cli_analyze", "sqsim.cli_onnx",
                    "sqsim.cli_run", "sqsim.cli_validate", "sqsim.cli_emulate", "sqsim.cli_sweep")


_BREAKS = re.compile("[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")


def one_line(message: str) -> str:
    """``message`` with anything that would start a new line escaped (names from files may hold
    control characters), so that an error is always exactly one line."""
    return _BREAKS.sub(lambda m: repr(m.group())[1:-1], message)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``sqsim analyze: error: ...``), long values shortened."""

    def error(self, message):
        message = one_line(re.sub(r"'([^']{60})[^']{4,}'", r"'\1...'", message))
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _memory_size(text: str) -> int:
    from .limits import parse_limit
    try:
        return parse_limit("memory", text, "--max-memory")
    except SqsimError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--max-memory: ")) from None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--input-size 0`` is an error, not "no change")."""
    try:
        value = int(text) if len(text) <= 30 else None
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text[:40]!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a seed)."""
    try:
        value = int(text) if len(text) <= 30 else None
    except ValueError:
        value = None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text[:40]!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sqsim",
        description="Hardware/software co-design simulator for efficient CNNs: layer graphs, Deep "
                    "Compression, accelerator models (DRAM traffic, on-chip fit, energy, latency).")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"sqsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        module.register(sub)
    for command in sub.choices.values():   # every command, including those registered later
        command.add_argument("--max-memory", type=_memory_size, metavar="SIZE",
                             help="memory budget for the model's tensors, e.g. 8GiB (default 4 GiB, or "
                                  "SQSIM_MAX_MEMORY); inputs that need more are refused up front")
    return parser


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so that ``finally`` blocks remove temporary files."""


def _on_sigterm(signum, frame):
    from .paths import remove_in_progress
    remove_in_progress()
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    from .limits import overridden
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:   # not the main thread: leave signals alone
        previous = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        with overridden(memory=getattr(args, "max_memory", None)):
            return int(args.func(args) or 0)
    except SqsimError as e:
        message = one_line(str(e))
        if len(message) > 1000:   # readers quote short prefixes; this bounds whatever slips through
            message = message[:990] + " [...]"
        print(f"sqsim: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        from .paths import remove_in_progress
        remove_in_progress()
        print("sqsim: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("sqsim: terminated", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
