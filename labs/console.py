"""The rich Console that `labs test`, `labs bench` and `labs grade` print through.

Rich lays output out for 80 columns when it goes to no terminal (a CI log, a pipe, a file), which
splits paths and table rows. There it gets `PIPE_WIDTH` columns instead, or `COLUMNS` if that is
set; a terminal keeps its own width.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console

__all__ = ["PIPE_WIDTH", "make_console"]

PIPE_WIDTH = 120


def make_console(**options: Any) -> Console:
    """A `rich.console.Console(**options)`, `PIPE_WIDTH` wide when it writes to no terminal."""
    console = Console(**options)
    if "width" not in options and not os.environ.get("COLUMNS", "").isdigit() \
            and not _is_tty(console.file):
        console.width = PIPE_WIDTH
    return console


def _is_tty(file: Any) -> bool:
    # The file itself, not console.is_terminal: FORCE_COLOR (colours in a CI log) makes rich
    # treat any output as a terminal, yet a log still has no width of its own.
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):
        return False
