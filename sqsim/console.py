"""One rich Console for every table sqsim prints (wide enough for per-layer tables when piped)."""
from __future__ import annotations

import os
import sys


def make_console(stderr: bool = False):
    from rich.console import Console
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty():
        width = int(os.environ.get("COLUMNS", 160))
    return Console(file=stream, width=width, highlight=False)
