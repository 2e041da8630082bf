"""The ``sqsim`` command line.

Each area registers its subcommands from a light module (``sqsim/cli_*.py``) that imports only
argparse-level code at top level; handlers import the heavy parts (numba, onnx) when they run, so
``sqsim info`` and ``sqsim analyze`` never pay for Numba.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import SqsimError

_COMMAND_MODULES = ("sqsim.cli_info", "sqsim.cli_compress", "sqsim.cli_analyze", "sqsim.cli_onnx",
                    "sqsim.cli_run", "sqsim.cli_validate", "sqsim.cli_sweep")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SqsimError as e:
        print(f"sqsim: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
