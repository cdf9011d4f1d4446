"""Structured debug lines for your Raft and KV code, made to be read with `labs logs`.

    from labdebug import Topic, debug

    debug(Topic.VOTE, "S%d granted vote to S%d in term %d", self.me, candidate, term)

writes, to stderr,

    001234 VOTE S1 granted vote to S2 in term 3

milliseconds since the program started (logging's `relativeCreated`, the clock of the logging
lines around), the topic's four-letter code, then your message. Start the message with the
peer (`S<n>`): `labs logs` puts each line in that peer's column and colours it by topic, and
`-i`/`-j` drop or keep topics.

A call is a DEBUG record of the calling module's logger (`logging.getLogger(__name__)` of
raft/raft.py is `raft.raft`), the topic in its `extra`; labdebug/logsetup.py applies LOG_LEVEL to
those loggers and writes the lines. So `LOG_LEVEL=raft=debug` shows the calls made in raft/...,
`kvraft=debug` those in kvraft/..., a bare `debug` every module's. Otherwise a call costs one
check of a flag, so the calls can stay in your code.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from enum import Enum
from typing import Any, TextIO

from labdebug.logsetup import configure_logging, debug_line, is_configured, parse_log_level

__all__ = [
    "Topic", "debug", "configure", "enabled_for", "parse_topics", "LINE", "add_listener",
    "remove_listener",
]


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

# logging's clock (`relativeCreated`, the <ms> of a line) as a time.monotonic() value: a tool
# that records its own events on the monotonic clock (labs/timeline) places the lines by it.
_START = time.monotonic() - logging.makeLogRecord({}).relativeCreated / 1000


class _Config:
    """Whether LOG_LEVEL puts any module at debug: the one check a call makes when none is."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        try:
            default, per_module = parse_log_level(spec)
        except ValueError:
            # labdebug.logsetup reports a bad LOG_LEVEL (pytest stops with a usage error); here a
            # bad value just means no debug lines.
            default, per_module = logging.WARNING, {}
        self.any_enabled = default <= logging.DEBUG or any(
            level <= logging.DEBUG for level in per_module.values())


_config = _Config(os.environ.get("LOG_LEVEL", ""))


class _Listeners(logging.Handler):
    """Hands each debug line that is written to the listeners: a tester's timeline
    (labs/timeline) puts them on the peers' lanes of the page a failure leaves."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.listeners: list[Callable[[str], None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "topic"):
            line = debug_line(record) + "\n"
            for listener in list(self.listeners):
                listener(line)


_listeners = _Listeners()


def add_listener(listener: Callable[[str], None]) -> None:
    """Also hand every line `debug` prints to `listener` (until `remove_listener`)."""
    if not _listeners.listeners:
        logging.getLogger().addHandler(_listeners)
    _listeners.listeners.append(listener)


def remove_listener(listener: Callable[[str], None]) -> None:
    try:
        _listeners.listeners.remove(listener)
    except ValueError:
        pass
    if not _listeners.listeners:
        logging.getLogger().removeHandler(_listeners)


def configure(spec: str | None = None, stream: TextIO | None = None) -> None:
    """Read LOG_LEVEL again (or use `spec`) and apply it to logging (labdebug.logsetup), writing to
    `stream` instead of stderr if given. A bad value means no debug lines, not an error."""
    global _config
    _config = _Config(os.environ.get("LOG_LEVEL", "") if spec is None else spec)
    try:
        configure_logging(_config.spec, stream)
    except ValueError:
        configure_logging("", stream)


def enabled_for(module: str) -> bool:
    """Would `debug` print when called from `module` (a dotted module name)?"""
    return _config.any_enabled and logging.getLogger(module).isEnabledFor(logging.DEBUG)


def debug(topic: Topic, fmt: str, *args: Any) -> None:
    """Write `<ms> <CODE> <fmt % args>` to stderr, if LOG_LEVEL enables debug for the caller's
    module. Start `fmt` with the peer, "S%d ...", so that `labs logs` can put it in a column."""
    config = _config
    if not config.any_enabled:
        return
    if not is_configured():
        # A program that did not set up logging (pytest's conftest does): LOG_LEVEL's rules
        # and stderr, as for the tests.
        configure(config.spec)
    # The caller's module names its logger; Python tells a function its caller only by frame.
    frame = sys._getframe(1)
    logger = logging.getLogger(frame.f_globals.get("__name__", ""))
    if logger.isEnabledFor(logging.DEBUG):
        # The record logger.debug(fmt, *args, stacklevel=2) makes, built from the frame at
        # hand: logging's findCaller would look the caller up again, walking the stack.
        code = frame.f_code
        logger.handle(logger.makeRecord(logger.name, logging.DEBUG, code.co_filename,
                                        frame.f_lineno, fmt, args, None, code.co_name,
                                        {"topic": topic}))


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
