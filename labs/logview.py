"""`labs logs`: show a log of `debug()` lines (labdebug) as one column per peer.

    LOG_LEVEL=raft=debug make test_backup_2b 2>test.log
    labs logs test.log -c 5 -i PERS            # 5 peers, without the persister lines
    labs logs test-failures/test_backup_2b-3-seed1003.log -j VOTE,TERM,LEAD

A line `001234 VOTE S1 granted vote to S2` goes to column S1 in the colour of its topic, the
time on the left. Everything else in the file (pytest's output, logging lines, a thread dump,
debug lines that name no peer or a peer beyond the columns) is printed across the full width,
in place, so nothing is lost; `-i`/`-j` filter only the debug lines.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet

from rich.color import ColorSystem
from rich.console import Console
from rich.style import Style

from labdebug import LINE, Topic

__all__ = ["TOPIC_STYLES", "Event", "parse_line", "view_log"]

TOPIC_STYLES = {
    Topic.VOTE: "bright_cyan",
    Topic.TERM: "bright_green",
    Topic.LEADER: "bold green",
    Topic.APPEND: "bright_blue",
    Topic.COMMIT: "magenta",
    Topic.APPLY: "bright_magenta",
    Topic.SNAPSHOT: "yellow",
    Topic.PERSIST: "grey62",
    Topic.TIMER: "cyan",
    Topic.CLIENT: "bright_yellow",
    Topic.INFO: "default",
    Topic.WARN: "bold yellow",
    Topic.ERROR: "bold red",
    Topic.TEST: "bold reverse",
}
_BY_CODE = {topic.value: topic for topic in Topic}
_PEER = re.compile(r"^S(\d+)\b")
TIME_WIDTH = 6            # milliseconds, as debug() writes them
MIN_COLUMN_WIDTH = 12


class Event:
    """A parsed debug line."""

    __slots__ = ("ms", "topic", "message", "peer")

    def __init__(self, ms: str, topic: Topic, message: str, peer: int | None) -> None:
        self.ms, self.topic, self.message, self.peer = ms, topic, message, peer


def parse_line(line: str) -> Event | None:
    """The debug line's parts, or None for a line in any other format."""
    match = LINE.match(line)
    if match is None or match["code"] not in _BY_CODE:
        return None
    message = match["message"]
    peer = _PEER.match(message)
    return Event(match["ms"], _BY_CODE[match["code"]], message, int(peer[1]) if peer else None)


class _Painter:
    """Colours text for the console's terminal, or leaves it plain when it has none. Rows are
    built as strings and written directly: rendering each line through rich's print is ten
    times slower, and test logs run to hundreds of thousands of lines."""

    _SYSTEMS = {"standard": ColorSystem.STANDARD, "256": ColorSystem.EIGHT_BIT,
                "truecolor": ColorSystem.TRUECOLOR, "windows": ColorSystem.WINDOWS}

    def __init__(self, console: Console) -> None:
        self.system = self._SYSTEMS.get(console.color_system or "")
        self.styles: dict[str, Style] = {}

    def __call__(self, text: str, style: str) -> str:
        if self.system is None or not text:
            return text
        parsed = self.styles.get(style)
        if parsed is None:
            parsed = self.styles[style] = Style.parse(style)
        return parsed.render(text, color_system=self.system)


class _Layout:
    def __init__(self, columns: int, width: int, paint: _Painter) -> None:
        self.columns = columns
        self.width = width
        self.paint = paint
        self.margin = TIME_WIDTH + 1
        self.column_width = max(MIN_COLUMN_WIDTH, (width - self.margin) // columns)

    def header(self) -> str:
        cells = [self.paint(f"S{peer}", "bold underline") for peer in range(self.columns)]
        pad = [" " * (self.column_width - len(f"S{peer}")) for peer in range(self.columns)]
        # The last cell needs no padding (zip stops at the shorter list).
        padded = "".join(c + p for c, p in zip(cells[:-1], pad, strict=False))
        return " " * self.margin + padded + cells[-1]

    def event(self, event: Event) -> list[str]:
        """The event in its peer's column, wrapped onto as many lines as it needs."""
        inner = self.column_width - 1   # one space between columns
        style = TOPIC_STYLES[event.topic]
        chunks = textwrap.wrap(f"{event.topic.value} {event.message}", inner,
                               break_on_hyphens=False) or [event.topic.value]
        assert event.peer is not None, "view_log lays out only events that name a peer"
        indent = " " * (event.peer * self.column_width)
        rows = []
        for i, chunk in enumerate(chunks):
            if i == 0:
                time = self.paint(event.ms.rjust(TIME_WIDTH) + " ", "dim")
            else:
                time = " " * self.margin
            rows.append(time + indent + self.paint(chunk, style))
        return rows

    def full_width(self, text: str, style: str | None = None) -> list[str]:
        """A line across all columns, folded (not word-wrapped) so that every character stays."""
        pieces = [text[i:i + self.width] for i in range(0, len(text), self.width)] or [""]
        return [self.paint(piece, style) if style else piece for piece in pieces]


def _wanted(event: Event, ignore: AbstractSet[Topic], only: AbstractSet[Topic] | None) -> bool:
    return event.topic not in ignore and (only is None or event.topic in only)


def view_log(lines: Iterable[str], *, columns: int | None = None, width: int | None = None,
             ignore: AbstractSet[Topic] = frozenset(), only: AbstractSet[Topic] | None = None,
             console: Console | None = None) -> None:
    """Print `lines` in columns. Without `columns`, read everything first and use one column
    per peer seen (S0 .. the highest); with it, print each line as it arrives."""
    console = console or Console(highlight=False, width=width)
    width = width or console.size.width
    source: Iterator[str] = (line.rstrip("\r\n") for line in lines)
    streaming = columns is not None
    if columns is None:
        buffered = list(source)
        peers = [e.peer for e in map(parse_line, buffered) if e is not None and e.peer is not None]
        columns = max(peers, default=0) + 1
        source = iter(buffered)
    layout = _Layout(columns, width, _Painter(console))
    out = console.file
    out.write(layout.header() + "\n")
    for line in source:
        event = parse_line(line)
        if event is None:
            rows = layout.full_width(line)
        elif not _wanted(event, ignore, only):
            continue
        elif event.peer is None or event.peer >= columns:
            rows = layout.full_width(f"{event.ms.rjust(TIME_WIDTH)} {event.topic.value} "
                                     f"{event.message}", TOPIC_STYLES[event.topic])
        else:
            rows = layout.event(event)
        out.write("\n".join(rows) + "\n")
        if streaming:
            out.flush()
    out.flush()


def open_lines(path: str) -> Iterable[str]:
    """The lines of `path`, or of stdin for `-`; undecodable bytes do not stop the viewer."""
    if path == "-":
        return sys.stdin
    return open(path, encoding="utf-8", errors="replace")
