"""`labs timeline LOG`: draw the timeline page of a run from the log it left.

A failed lab test names its events file in its failure message ("timeline events: PATH"), so
the log that `labs test` keeps names it too; a run stopped for hanging names it in the log as
well (labs/run_one.py writes it on SIGUSR2). The page combines those events with the log's own
`debug()` lines. The file is looked for where the log says, then beside the log (a
test-failures/ directory moved or copied elsewhere).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from labs.timeline.recorder import EVENTS_LINE, PAGE_SUFFIX, EventsError, read_events
from labs.timeline.render import parse_debug_lines, write_page

__all__ = ["events_named_in", "render_log", "timeline_command"]

_EVENTS = re.compile(re.escape(EVENTS_LINE) + r"(\S+\.timeline\.jsonl)")
_HEADER = re.compile(r"^# labs test: (\S+), run (\d+), seed (-?\d+)")
FAILURE_LINES = 60     # the failure text a page from a log shows: pytest's `E` lines, at most


def events_named_in(log: Path, text: str) -> list[Path]:
    """The events files `text` (a log) names, found where it says or beside the log."""
    found = []
    for match in _EVENTS.finditer(text):
        named = Path(match[1])
        for candidate in (named, log.parent / named.name):
            if candidate.is_file() and candidate not in found:
                found.append(candidate)
                break
    return found


def render_log(log: Path, out: Path | None = None,
               only_with_data: bool = False) -> tuple[Path | None, str]:
    """Write the page for `log`; return its path and a note on what it holds. Raises OSError
    or EventsError (the message names the file). With `only_with_data`, a log that names no
    events and has no debug lines (a framework test's) gets no page: (None, why)."""
    text = log.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    events_files = events_named_in(log, text)
    meta: dict[str, Any] = {}
    events: list[list[Any]] = []
    if events_files:
        meta, events = read_events(events_files[-1])  # the last: a retried cluster's, if more
    header = next((m for m in map(_HEADER.match, lines[:5]) if m), None)
    if header and not meta.get("test"):
        meta["test"] = header[1]
    failure = [line for line in lines if line.startswith("E ")][:FAILURE_LINES]
    if failure:
        meta["failure"] = "\n".join(failure)
    # The lines the run recorded with its events (LOG_LEVEL on) are the same as the log's, at
    # times taken on the timeline's own clock: then those are drawn, else the log's.
    recorded = any(event[0] == "debug" for event in events)
    debug = None if recorded else parse_debug_lines(lines, float(meta.get("debug_start", 0.0)))
    if only_with_data and not events_files and not debug:
        return None, "no timeline events named in the log and no debug lines"
    if out is None:
        out = log.with_name(log.name.removesuffix(".log") + PAGE_SUFFIX)
    write_page(out, meta, events, debug)
    if events_files:
        lines_note = ("the debug lines it recorded" if debug is None
                      else f"{len(debug)} debug lines")
        note = f"{len(events)} events from {events_files[-1].name}, {lines_note}"
    else:
        note = (f"no timeline events named in the log (recording off, or the test failed before "
                f"its cluster was built): {len(debug or [])} debug lines only")
    return out, note


def timeline_command(log: str, out: str | None) -> int:
    path = Path(log)
    if not path.is_file():
        print(f"labs timeline: {log}: no such file", file=sys.stderr)
        return 2
    try:
        page, note = render_log(path, Path(out) if out else None)
    except (OSError, EventsError) as exc:
        print(f"labs timeline: {exc}", file=sys.stderr)
        return 2
    print(f"timeline: {page} ({note})")
    return 0
