"""A timeline of one lab test run, drawn as a self-contained HTML page.

The testers record what they see while a test runs (`Timeline`): each peer's term and
leadership as the leadership monitor samples them, crashes and restarts, what each peer applies
and snapshots, the faults the tester injects, and every RPC as labrpc carries (or loses) it.
When a test fails, the tester writes the events as JSON lines (`<test>-<time>.timeline.jsonl`)
and draws them (`<test>-<time>.timeline.html`) into test-failures/; `labs timeline LOG` draws
the page again from a kept log, adding the log's `debug()` lines. Set LABS_TIMELINE=off to
record nothing.
"""

from labs.timeline.recorder import (
    EVENTS_SUFFIX,
    PAGE_SUFFIX,
    Timeline,
    active_timelines,
    dump_active,
    read_events,
    recording_enabled,
)
from labs.timeline.render import build_model, render_html, write_page

__all__ = [
    "Timeline", "EVENTS_SUFFIX", "PAGE_SUFFIX", "active_timelines", "dump_active", "read_events",
    "recording_enabled", "build_model", "render_html", "write_page",
]
