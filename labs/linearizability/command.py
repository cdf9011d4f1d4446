"""`labs check-history FILE`: check a Jepsen/porcupine-style KV history from the command line.

Exit status: 0 linearizable, 1 not linearizable (an HTML page shows why), 2 undecided within
the time budget, 3 the history could not be read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from labs.linearizability.checker import CheckOutcome
from labs.linearizability.history import HistoryError, read_history
from labs.linearizability.kv_history import check_kv
from labs.linearizability.visualize import explain_failure, write_html

__all__ = ["check_history", "default_html_path", "EXIT_OK", "EXIT_ILLEGAL", "EXIT_UNKNOWN",
           "EXIT_UNREADABLE"]

EXIT_OK, EXIT_ILLEGAL, EXIT_UNKNOWN, EXIT_UNREADABLE = 0, 1, 2, 3


def default_html_path(history: str) -> Path:
    """Where the page goes: beside the history file, or in the current directory for stdin."""
    if history == "-":
        return Path("history.linearizability.html")
    path = Path(history)
    return path.with_name(f"{path.stem}.linearizability.html")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def check_history(history: str, timeout: float | None, html: str | None = None,
                  stdin: TextIO | None = None, out: TextIO | None = None,
                  err: TextIO | None = None) -> int:
    """Read, check and report on a history file ("-" for stdin); returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    name = "<stdin>" if history == "-" else history
    try:
        operations = read_history(history, stdin)
    except HistoryError as exc:
        print(f"{name}: {exc}", file=err)
        return EXIT_UNREADABLE
    except OSError as exc:
        print(f"{name}: cannot read: {exc.strerror or exc}", file=err)
        return EXIT_UNREADABLE
    result = check_kv(operations, timeout=timeout)
    clients = len({op.client for op in operations})
    summary = (f"{_count(len(operations), 'operation')}, {_count(clients, 'client')}, "
               f"{_count(len(result.partitions), 'key')}, {result.seconds:.3f} s")
    if result.result is CheckOutcome.OK:
        print(f"linearizable ({summary})", file=out)
        return EXIT_OK
    if result.result is CheckOutcome.UNKNOWN:
        busy = [p.label for p in result.partitions if p.outcome is CheckOutcome.UNKNOWN]
        print(f"undecided: no verdict within {timeout:g} s while checking key {busy[0]!r} "
              f"({summary}); try a larger --timeout", file=out)
        return EXIT_UNKNOWN
    print(f"not linearizable ({summary})", file=out)
    print(explain_failure(result), file=out)
    page = Path(html) if html else default_html_path(history)
    try:
        write_html(result, page, title=Path(name).name)
    except OSError as exc:
        print(f"cannot write the visualization to {page}: {exc.strerror or exc}", file=err)
    else:
        print(f"visualization: {page}", file=out)
    return EXIT_ILLEGAL
