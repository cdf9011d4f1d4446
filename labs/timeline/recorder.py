"""Recording a test run's timeline: the events, kept in memory, written as JSON lines.

A `Timeline` is a list of events, each a tuple `(kind, when, ...)` with `when` on the monotonic
clock. The tester appends its own (`role`, `crash`, `apply`, ...); labrpc appends the network's
straight into the same list (`Network.set_trace(timeline.events)`), because `list.append` is
atomic and takes no lock of ours: recording adds no lock to the network's path of a call.

The events file (`*.timeline.jsonl`) holds one JSON value per line: first an object of facts
about the run (`"timeline": 1`, the title, the clock readings the page needs), then one array
per event, `[kind, seconds since the timeline began, ...]`. Its kinds:

| kind | fields | from |
|---|---|---|
| `end` | name, from, to | an end of the network: from peer (a number) or clerk (`"C3"`) to peer |
| `call` | id, end, rpc, server or null | a call starts; null: its end reaches no server |
| `drop` | id | the network loses the request |
| `run` | id | the handler starts on the server |
| `done` | id, outcome | `ok`, or the error the caller gets (`Timeout`, `Stopped`, ...) |
| `lost` | peer, to, rpc | the tester itself loses a request (forced tests) |
| `net` | setting, value | `reliable`, `long_reordering`, `long_delays` changes |
| `enable` | end, enabled | an end is enabled or disabled (partitions) |
| `server` | name, up | a server joins or leaves the network |
| `role` | peer, term, leader | a peer's term or leadership as the tester last sampled it |
| `crash`, `start` | peer | the tester crashes or (re)starts a peer |
| `apply` | peer, index | a peer applied a command |
| `snapshot`, `install` | peer, index | a peer's service took a snapshot; a peer installed one |
| `op` | clerk, op, key, value, output, return time or null | a clerk's call (lab 3) |
| `note` | text | something the tester did |
| `debug` | line | a line `debug()` printed (when LOG_LEVEL turns debug lines on) |
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "Timeline", "EVENTS_SUFFIX", "PAGE_SUFFIX", "DISABLE_ENV", "FORMAT_VERSION",
    "recording_enabled", "active_timelines", "dump_active", "read_events", "EventsError",
]

EVENTS_SUFFIX = ".timeline.jsonl"
PAGE_SUFFIX = ".timeline.html"
DISABLE_ENV = "LABS_TIMELINE"     # "off" (or "0", "no"): record nothing
FORMAT_VERSION = 1
EVENTS_LINE = "timeline events: "  # how a log names an events file (`labs timeline` looks for it)
PAGE_LINE = "timeline: "

# Every timeline still recording, so that a run stopped for hanging can still write its events
# (labs/run_one.py, on SIGUSR2). Weak: a finished test's timeline goes with its cluster.
_active: weakref.WeakSet[Timeline] = weakref.WeakSet()
_active_lock = threading.Lock()


def recording_enabled() -> bool:
    """False when LABS_TIMELINE turns recording off (for measuring what recording costs)."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("off", "0", "no", "false")


class EventsError(ValueError):
    """An events file that cannot be read; the message names the file and line."""


class Timeline:
    """The events of one cluster's run. Appending is safe from any thread without a lock."""

    def __init__(self, title: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.t0 = clock()
        self.events: list[tuple[Any, ...]] = []
        self.meta: dict[str, Any] = {"title": title}
        # Where a hung run's events go (set by the tester): directory and file name stem.
        self.dump_dir: Path | None = None
        self.dump_stem = "test"
        self._roles: dict[int, tuple[int, bool]] = {}
        self.extra_events: Callable[[], Iterable[tuple[Any, ...]]] | None = None
        with _active_lock:
            _active.add(self)
        import labdebug as debug

        # (getattr: a labdebug without listeners, from before the timeline, records none)
        add_listener = getattr(debug, "add_listener", None)
        if add_listener is not None:
            add_listener(self._debug_line)

    def _debug_line(self, line: str) -> None:
        self.events.append(("debug", self._clock(), line.rstrip("\n")))

    # --- what the tester records --------------------------------------------------------------

    def end(self, name: str, src: int | str, dst: int) -> None:
        """Name an end of the network: it carries calls from `src` (a peer, or a clerk such as
        "C3") to peer `dst`."""
        self.events.append(("end", self._clock(), name, src, dst))

    def role(self, peer: int, term: int, leader: bool) -> None:
        """A sample of a peer's state; only changes are kept."""
        state = (term, leader)
        if self._roles.get(peer) != state:
            self._roles[peer] = state
            self.events.append(("role", self._clock(), peer, term, leader))

    def crash(self, peer: int) -> None:
        self._roles.pop(peer, None)
        self.events.append(("crash", self._clock(), peer))

    def start(self, peer: int) -> None:
        self._roles.pop(peer, None)
        self.events.append(("start", self._clock(), peer))

    def apply(self, peer: int, index: int) -> None:
        self.events.append(("apply", self._clock(), peer, index))

    def snapshot(self, peer: int, index: int) -> None:
        self.events.append(("snapshot", self._clock(), peer, index))

    def install(self, peer: int, index: int) -> None:
        self.events.append(("install", self._clock(), peer, index))

    def lost(self, peer: int, to: int, rpc: str) -> None:
        self.events.append(("lost", self._clock(), peer, to, rpc))

    def note(self, text: str) -> None:
        self.events.append(("note", self._clock(), text))

    def close(self) -> None:
        """Recording is over (teardown): a hung-run dump no longer writes this timeline."""
        with _active_lock:
            _active.discard(self)
        import labdebug as debug

        remove_listener = getattr(debug, "remove_listener", None)
        if remove_listener is not None:
            remove_listener(self._debug_line)

    # --- writing --------------------------------------------------------------------------------

    def all_events(self) -> list[tuple[Any, ...]]:
        events = list(self.events)  # a copy: other threads may still append
        if self.extra_events is not None:
            events += list(self.extra_events())
        return events

    def write_events(self, path: Path, **meta: Any) -> Path:
        """Write the events (and `meta`, such as the failure text) to `path` as JSON lines."""
        from labdebug import _START as debug_start  # the clock of debug() lines

        head = {"timeline": FORMAT_VERSION, **self.meta, **meta,
                "debug_start": round(debug_start - self.t0, 6)}
        t0 = self.t0
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            out.write(json.dumps(head) + "\n")
            for event in self.all_events():
                row = [event[0], round(event[1] - t0, 4), *event[2:]]
                if event[0] == "op":  # its return time is a clock reading too
                    ret = row[-1]
                    row[-1] = None if ret is None else round(ret - t0, 4)
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
        return path


def active_timelines() -> list[Timeline]:
    with _active_lock:
        return list(_active)


def dump_active(stream: IO[str] | None = None) -> list[Path]:
    """Write the events of every timeline still recording (a run that hung), each into its
    `dump_dir`; name each file on `stream` the way a failure message does."""
    written = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k, timeline in enumerate(active_timelines()):
        if timeline.dump_dir is None:
            continue
        suffix = f"-{k + 1}" if k else ""
        path = timeline.dump_dir / f"{timeline.dump_stem}-{stamp}{suffix}{EVENTS_SUFFIX}"
        try:
            timeline.write_events(path, failure="the run was stopped: it hung")
        except OSError as exc:
            if stream is not None:
                stream.write(f"timeline: could not write {path}: {exc}\n")
            continue
        written.append(path)
        if stream is not None:
            stream.write(f"{EVENTS_LINE}{path}\n")
            stream.flush()
    return written


def safe_stem(name: str) -> str:
    """A test name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "test"


def read_events(path: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    """The facts and events of an events file; EventsError names what is wrong and where."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EventsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    lines = text.splitlines()
    if not lines:
        raise EventsError(f"{path}: empty; expected a timeline events file")
    try:
        meta = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise EventsError(f"{path}: line 1: not JSON ({exc.msg})") from None
    if not isinstance(meta, dict) or meta.get("timeline") != FORMAT_VERSION:
        raise EventsError(f"{path}: line 1: not a timeline events file (version "
                          f"{FORMAT_VERSION} expected)")
    events = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # a run killed while writing: the last line is cut short
                break
            raise EventsError(f"{path}: line {number}: not JSON ({exc.msg})") from None
        if (not isinstance(event, list) or len(event) < 2 or not isinstance(event[0], str)
                or not isinstance(event[1], (int, float))):
            raise EventsError(f"{path}: line {number}: expected [kind, seconds, ...]")
        events.append(event)
    return meta, events
