"""Structured debug lines for your Raft and KV code, made to be read with `labs logs`.

    from labs.debug import Topic, debug

    debug(Topic.VOTE, "S%d granted vote to S%d in term %d", self.me, candidate, term)

writes, to stderr,

    001234 VOTE S1 granted vote to S2 in term 3

milliseconds since the program started (the clock of logging's `relativeCreated`), the topic's
four-letter code, then your message. Start
the message with the peer (`S<n>`): `labs logs` puts each line in that peer's column and colours
it by topic, and `-i`/`-j` drop or keep topics.

A call prints only when LOG_LEVEL enables debug for the module it is made from, with the rules
of labs/logsetup.py: `LOG_LEVEL=raft=debug` enables calls in raft/..., `kvraft=debug` those in
kvraft/..., a bare `debug` every module. Otherwise a call costs one check of a cached flag (and,
when some module has debug on, a dict lookup), so the calls can stay in your code.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from enum import Enum
from typing import Any, TextIO

from labs.logsetup import parse_log_level

__all__ = ["Topic", "debug", "configure", "enabled_for", "parse_topics", "LINE"]


class Topic(Enum):
    """What a line is about; the value is the four-letter code printed in the line."""

    VOTE = "VOTE"          # vote requests, grants and refusals
    TERM = "TERM"          # a term changes: elections start, a higher term is seen
    LEADER = "LEAD"        # a peer becomes leader or stops being one
    APPEND = "APND"        # AppendEntries sent, accepted, rejected; fast backup
    COMMIT = "CMIT"        # the commit index moves
    APPLY = "APLY"         # entries or snapshots handed to the service
    SNAPSHOT = "SNAP"      # snapshots taken, sent, installed
    PERSIST = "PERS"       # state saved with the persister
    TIMER = "TIMR"         # election timeouts, heartbeats
    CLIENT = "CLNT"        # clerk requests and the KV server's answers (lab 3)
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERRO"
    TEST = "TEST"          # lines written by tests


# What `debug` writes and `labs logs` reads: "<ms> <CODE> <message>".
LINE = re.compile(r"^\s*(?P<ms>\d+) (?P<code>[A-Z]{4}) (?P<message>.*)$")

# The clock starts where logging's does (`relativeCreated`), so that in one log the times of
# debug lines and of logging lines (the tester's, labrpc's) agree.
_START = time.monotonic() - logging.makeLogRecord({}).relativeCreated / 1000


class _Config:
    """Which modules have debug on; built from LOG_LEVEL once, then asked per module."""

    def __init__(self, spec: str, stream: TextIO | None) -> None:
        try:
            default, per_module = parse_log_level(spec)
        except ValueError:
            # labs.logsetup reports a bad LOG_LEVEL (pytest stops with a usage error); here a
            # bad value just means no debug lines.
            default, per_module = logging.WARNING, {}
        self.default = default
        # The longest matching module prefix wins, as in logsetup: `raft.raft=info,raft=debug`.
        self.rules = sorted(per_module.items(), key=lambda kv: -len(kv[0]))
        self.any_enabled = default <= logging.DEBUG or any(
            level <= logging.DEBUG for level in per_module.values())
        self.by_module: dict[str, bool] = {}
        self.stream = stream
        self.fd: int | None = None
        self.lock = threading.Lock()

    def enabled_for(self, module: str) -> bool:
        enabled = self.by_module.get(module)
        if enabled is None:
            level = self.default
            for prefix, rule_level in self.rules:
                if module == prefix or module.startswith(prefix + "."):
                    level = rule_level
                    break
            enabled = self.by_module[module] = level <= logging.DEBUG
        return enabled

    def write(self, line: str) -> None:
        with self.lock:
            if self.stream is not None:
                self.stream.write(line)
                self.stream.flush()
                return
            if self.fd is None:
                # File descriptor 2 itself, not sys.stderr: pytest swaps sys.stderr for a
                # capture buffer, and the lines belong with the logging output in `2>test.log`.
                self.fd = os.dup(2)
            os.write(self.fd, line.encode("utf-8", "replace"))


_config = _Config(os.environ.get("LOG_LEVEL", ""), None)


def configure(spec: str | None = None, stream: TextIO | None = None) -> None:
    """Read LOG_LEVEL again (or use `spec`); write to `stream` instead of stderr if given."""
    global _config
    _config = _Config(os.environ.get("LOG_LEVEL", "") if spec is None else spec, stream)


def enabled_for(module: str) -> bool:
    """Would `debug` print when called from `module` (a dotted module name)?"""
    return _config.any_enabled and _config.enabled_for(module)


def debug(topic: Topic, fmt: str, *args: Any) -> None:
    """Write `<ms> <CODE> <fmt % args>` to stderr, if LOG_LEVEL enables debug for the caller's
    module. Start `fmt` with the peer, "S%d ...", so that `labs logs` can put it in a column."""
    config = _config
    if not config.any_enabled:
        return
    module = sys._getframe(1).f_globals.get("__name__", "")
    enabled = config.by_module.get(module)
    if enabled is None:
        enabled = config.enabled_for(module)
    if not enabled:
        return
    elapsed_ms = int((time.monotonic() - _START) * 1000)
    message = fmt % args if args else fmt
    config.write(f"{elapsed_ms:06d} {topic.value} {message}\n")


def parse_topics(text: str) -> set[Topic]:
    """`"VOTE,lead,Leader"` -> {Topic.VOTE, Topic.LEADER}: codes or names, any case."""
    topics = set()
    for word in filter(None, (w.strip().upper() for w in text.split(","))):
        try:
            topics.add(Topic(word))
        except ValueError:
            try:
                topics.add(Topic[word])
            except KeyError:
                known = ", ".join(f"{t.value}" + (f" ({t.name})" if t.name != t.value else "")
                                  for t in Topic)
                raise ValueError(f"unknown topic {word!r}; topics: {known}") from None
    return topics
