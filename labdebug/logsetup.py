"""LOG_LEVEL in env_logger syntax: `raft=debug,labrpc=info` sets per-module levels, a bare level
(`debug`) the default. Logs go to stderr, so `make test_2a 2>test.log` collects them.

A module's level is its logger's level, so logging's own hierarchy does the matching: the longest
matching module prefix wins (`raft.quiet=info,raft=debug`), and `raft` does not match `rafting`.
The same rules decide the logging lines of the tester and labrpc and the `debug()` lines of
labdebug (its `debug()`), which are records of the calling module's logger carrying their topic.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

__all__ = ["LEVELS", "parse_log_level", "configure_logging", "is_configured", "debug_line"]

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {
    "off": logging.CRITICAL + 10, "error": logging.ERROR, "warn": logging.WARNING,
    "warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG, "trace": TRACE,
}
DEFAULT_LEVEL = logging.WARNING
FORMAT = "%(relativeCreated)8.0f %(levelname)-5s %(name)s: %(message)s"

# The loggers whose level the last configure_logging set, so that the next one resets them.
_levelled: list[str] = []


def _level(word: str, spec: str) -> int:
    try:
        return LEVELS[word.strip().lower()]
    except KeyError:
        raise ValueError(f"LOG_LEVEL={spec!r}: unknown level {word!r} "
                         f"(use one of {', '.join(LEVELS)})") from None


def parse_log_level(spec: str) -> tuple[int, dict[str, int]]:
    """`"warn,raft=debug"` -> (WARNING, {"raft": DEBUG})."""
    default, per_module = DEFAULT_LEVEL, {}
    for directive in filter(None, (d.strip() for d in spec.split(","))):
        name, sep, word = directive.partition("=")
        if sep:
            if not name.strip():
                raise ValueError(f"LOG_LEVEL={spec!r}: directive {directive!r} names no module")
            per_module[name.strip()] = _level(word, spec)
        else:
            default = _level(name, spec)
    return default, per_module


def debug_line(record: logging.LogRecord) -> str:
    """A `debug()` record as `labs logs` reads it: `<ms> <CODE> <message>` (labdebug.LINE),
    the milliseconds on logging's clock, so that they agree with the logging lines around."""
    topic = record.topic  # type: ignore[attr-defined]  # set by debug() through `extra`
    return f"{int(record.relativeCreated):06d} {topic.value} {record.getMessage()}"


class _Formatter(logging.Formatter):
    """FORMAT for logging lines, and debug()'s own format for its records (they carry a topic)."""

    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, "topic"):
            return debug_line(record)
        return super().format(record)


def configure_logging(spec: str | None = None, stream: TextIO | None = None) -> None:
    """Apply LOG_LEVEL (or `spec`): the root logger gets the default level, each named module's
    logger its own, and one handler writes to `stream` (default: file descriptor 2)."""
    spec = os.environ.get("LOG_LEVEL", "") if spec is None else spec
    default, per_module = parse_log_level(spec)
    handler = logging.StreamHandler(stream or _stderr())
    handler.setFormatter(_Formatter(FORMAT))
    handler._raftlabs = True  # type: ignore[attr-defined]  # ours, replaced by the next call
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_raftlabs", False)]
    root.addHandler(handler)
    for name in _levelled:
        logging.getLogger(name).setLevel(logging.NOTSET)
    root.setLevel(default)
    for name, level in per_module.items():
        logging.getLogger(name).setLevel(level)
    _levelled[:] = per_module


def is_configured() -> bool:
    """Has configure_logging installed its handler in this process?"""
    return any(getattr(h, "_raftlabs", False) for h in logging.getLogger().handlers)


def _stderr() -> TextIO:
    # File descriptor 2 itself: pytest swaps sys.stderr for a capture buffer, and the lines belong
    # in `2>test.log` with the rest of the output.
    try:
        return open(os.dup(2), "w", buffering=1, closefd=True)
    except OSError:
        return sys.stderr
