"""LOG_LEVEL in env_logger syntax: `raft=debug,labrpc=info` sets per-module levels, a bare level
(`debug`) the default. Logs go to stderr, so `make test_2a 2>test.log` collects them."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

__all__ = ["LEVELS", "parse_log_level", "configure_logging"]

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {
    "off": logging.CRITICAL + 10, "error": logging.ERROR, "warn": logging.WARNING,
    "warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG, "trace": TRACE,
}
DEFAULT_LEVEL = logging.WARNING
FORMAT = "%(relativeCreated)8.0f %(levelname)-5s %(name)s: %(message)s"


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


def configure_logging(spec: str | None = None, stream: TextIO | None = None) -> None:
    """Apply LOG_LEVEL (or `spec`) to the root logger and the named loggers."""
    spec = os.environ.get("LOG_LEVEL", "") if spec is None else spec
    default, per_module = parse_log_level(spec)
    handler = logging.StreamHandler(stream or _stderr())
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_raftlabs", False)]
    handler._raftlabs = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(min([default, *per_module.values()]))
    handler.addFilter(_ModuleFilter(default, per_module))


def _stderr() -> TextIO:
    # pytest may swap sys.stderr for a capture buffer; the real file descriptor 2 stays the
    # terminal.
    try:
        return open(os.dup(2), "w", buffering=1, closefd=True)
    except OSError:
        return sys.stderr


class _ModuleFilter(logging.Filter):
    def __init__(self, default: int, per_module: dict[str, int]) -> None:
        super().__init__()
        self.default = default
        # The longest matching prefix wins: `raft.node=trace,raft=info`.
        self.rules = sorted(per_module.items(), key=lambda kv: -len(kv[0]))

    def filter(self, record: logging.LogRecord) -> bool:
        for prefix, level in self.rules:
            if record.name == prefix or record.name.startswith(prefix + "."):
                return record.levelno >= level
        return record.levelno >= self.default
