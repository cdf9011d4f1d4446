"""The HTML page that shows why a history is not linearizable.

One self-contained file (inline CSS, SVG and a few lines of script; nothing fetched): per
partition (key), one lane per client along a time axis and one box per operation, from its
call to its return. The longest linearizable prefix the checker found is green, numbered in
linearization order and threaded by a line through possible linearization points. Red are the
operations that could come next by real time but lead nowhere, and the reads that can never
be legal after the prefix (usually the culprit). Hovering a box shows its details; clicking
pins them below the chart. A text summary of the same is `explain_failure`.

The time axis is compressed: each distinct call or return time is one step, so that a burst
of short operations is as readable as a long quiet stretch (the order of events is all that
matters to linearizability).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from labs.linearizability.checker import CheckOutcome, CheckResult, PartitionResult

__all__ = ["render_html", "write_html", "explain_failure"]

STEP_PX = 18        # horizontal space per distinct event time
LANE_PX = 26        # height of a client's lane
BOX_PX = 20         # height of an operation's box
PENDING_PX = 60     # how far past the last event an operation that never returned extends
LABEL_CHARS = 160   # longest description or state shown before it is shortened


def write_html(result: CheckResult, path: str | Path, title: str = "") -> Path:
    """Write the page for `result` to `path`; returns the path."""
    path = Path(path)
    path.write_text(render_html(result, title), encoding="utf-8")
    return path


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    """`text` cut in the middle to at most about `limit` characters (the end of a KV value,
    where the latest appends are, is usually what matters, so it keeps more of the end)."""
    if len(text) <= limit:
        return text
    head = limit // 4
    return f"{text[:head]}…{text[len(text) - (limit - head):]}"


def _fmt_time(t: float, origin: float) -> str:
    if math.isinf(t):
        return "never"
    value = t - origin
    return f"{value:g}" if float(value).is_integer() else f"{value:.4f}"


class _Partition:
    """Everything the page shows about one partition, computed from the checker's result."""

    def __init__(self, result: CheckResult, part: PartitionResult, origin: float) -> None:
        model = result.model
        self.part = part
        ops = part.operations
        self.describe = [model.describe_operation(op.input, op.output) for op in ops]
        self.rank = {i: k for k, i in enumerate(part.longest_prefix)}
        self.stuck = set(part.stuck) | set(part.doomed)
        self.origin = origin
        # States along the longest prefix (from the operations themselves, not the search's
        # stand-ins), and why each candidate cannot come after it.
        self.state_before: dict[int, str] = {}
        self.state_after: dict[int, str] = {}
        state = model.init()
        for i in part.longest_prefix:
            legal, after = model.step(state, ops[i].input, ops[i].output)
            self.state_before[i] = model.describe_state(state)
            self.state_after[i] = model.describe_state(after)
            state = after
        self.final_state = model.describe_state(state)
        self.reason: dict[int, str] = {}
        for i in part.stuck:
            legal, _ = model.step(state, ops[i].input, ops[i].output)
            self.reason[i] = (
                f"cannot come next: the state is {_short(self.final_state)}" if not legal else
                "the model accepts it next, but no linearization of the rest follows")
        for i in part.doomed:
            self.reason.setdefault(
                i, "cannot come later either: no continuation of the prefix leads to a state "
                   "where it is legal")
        # Layout: lanes by client, x by rank of distinct finite times.
        self.clients = sorted({op.client for op in ops}, key=lambda c: (str(type(c)), c))
        self.lane = {c: k for k, c in enumerate(self.clients)}
        times = sorted({t for op in ops for t in (op.call_time, op.return_time)
                        if not math.isinf(t)})
        self.x_of = {t: 10 + k * STEP_PX for k, t in enumerate(times)}
        self.width = 10 + max(len(times) - 1, 0) * STEP_PX + PENDING_PX + 20
        self.height = len(self.clients) * LANE_PX + 24  # + the axis

    def x(self, t: float) -> float:
        return self.width - 20 if math.isinf(t) else self.x_of[t]

    def op_kind(self, i: int) -> str:
        if i in self.stuck:
            return "stuck"
        if i in self.rank:
            return "lin"
        return "other"

    def tooltip(self, i: int) -> str:
        op = self.part.operations[i]
        lines = [_short(self.describe[i]),
                 f"client {op.client}, called {_fmt_time(op.call_time, self.origin)}, "
                 f"returned {_fmt_time(op.return_time, self.origin)}"]
        if i in self.rank:
            lines.append(f"#{self.rank[i] + 1} in the linearization")
            lines.append(f"state before: {_short(self.state_before[i])}")
            lines.append(f"state after: {_short(self.state_after[i])}")
        if i in self.reason:
            lines.append(self.reason[i])
        return "\n".join(lines)


def _blamed(part: PartitionResult) -> list[int]:
    """The operations shown in red: the doomed reads first (usually the culprit), then the
    ones that could come next."""
    return list(dict.fromkeys(part.doomed + part.stuck))


def explain_failure(result: CheckResult) -> str:
    """A few lines of text saying, per failing key, where the search got stuck and why."""
    lines = []
    for part in result.failing():
        p = _Partition(result, part, 0.0)
        ops = part.operations
        lines.append(f"key {part.label!r}: the longest linearizable prefix found has "
                     f"{len(part.longest_prefix)} of {len(ops)} operations, leaving the value "
                     f"{_short(p.final_state)}; then:")
        for i in _blamed(part):
            lines.append(f"  {_short(p.describe[i])} (client {ops[i].client}): {p.reason[i]}")
    return "\n".join(lines)


def _chart(p: _Partition, anchor: str) -> str:
    ops = p.part.operations
    out = [f'<div class="chart-wrap"><div class="labels" style="height:{p.height}px">']
    for c in p.clients:
        out.append(f'<div class="label" style="height:{LANE_PX}px">client '
                   f'{html.escape(str(c))}</div>')
    out.append(f'</div><div class="scroll"><div class="chart" style="width:{p.width}px;'
               f'height:{p.height}px">')
    svg = [f'<svg width="{p.width}" height="{p.height}" class="under">']
    for k in range(len(p.clients)):
        y = k * LANE_PX + LANE_PX / 2
        svg.append(f'<line x1="0" x2="{p.width}" y1="{y}" y2="{y}" class="lane"/>')
    axis_y = len(p.clients) * LANE_PX + 4
    every = max(4, len(p.x_of) // 25)  # labels wider than a step would overlap
    for k, (t, x) in enumerate(p.x_of.items()):
        if k % every == 0:
            svg.append(f'<line x1="{x}" x2="{x}" y1="0" y2="{axis_y}" class="tick"/>'
                       f'<text x="{x}" y="{axis_y + 14}" class="tick" text-anchor="middle">'
                       f'{html.escape(_fmt_time(t, p.origin))}</text>')
    # A possible linearization point for each operation of the prefix: as early as its call
    # allows, but after the previous one.
    points = []
    last = -1.0
    for i in p.part.longest_prefix:
        op = ops[i]
        point_x = min(max(p.x(op.call_time) + 3, last + 2), p.x(op.return_time) - 1)
        last = point_x
        points.append((point_x, p.lane[op.client] * LANE_PX + LANE_PX / 2))
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        svg.append(f'<polyline points="{path}" class="linline"/>')
    svg.append("</svg>")
    out.extend(svg)
    for i, op in enumerate(ops):
        left = p.x(op.call_time)
        right = p.x(op.return_time)
        width = max(right - left, 6)
        top = p.lane[op.client] * LANE_PX + (LANE_PX - BOX_PX) / 2
        kind = p.op_kind(i)
        pending = " pending" if math.isinf(op.return_time) else ""
        number = f"#{p.rank[i] + 1} " if i in p.rank else ""
        out.append(
            f'<div class="op {kind}{pending}" id="{anchor}-op{i}" '
            f'style="left:{left}px;top:{top}px;width:{width}px" '
            f'title="{html.escape(p.tooltip(i))}">{html.escape(number + _short(p.describe[i], 80))}'
            f"</div>")
    out.append("</div></div></div>")
    return "".join(out)


def _failure_text(p: _Partition) -> str:
    part = p.part
    ops = part.operations
    out = [f"<p>The longest linearizable prefix the checker found has "
           f"{len(part.longest_prefix)} of {len(ops)} operations (green, numbered; the line "
           f"joins possible linearization points). The state after it is "
           f"<code>{html.escape(_short(p.final_state))}</code>. Then (red):</p>"
           f'<ul class="why">']
    for i in _blamed(part):
        out.append(f'<li><code>{html.escape(_short(p.describe[i]))}</code> (client '
                   f'{html.escape(str(ops[i].client))}, called '
                   f'{_fmt_time(ops[i].call_time, p.origin)}, returned '
                   f'{_fmt_time(ops[i].return_time, p.origin)}): '
                   f'{html.escape(p.reason[i])}</li>')
    out.append("</ul>")
    return "".join(out)


def _prefix_list(p: _Partition) -> str:
    ops = p.part.operations
    items = "".join(
        f"<li><code>{html.escape(_short(p.describe[i]))}</code> by client "
        f"{html.escape(str(ops[i].client))} → <code>{html.escape(_short(p.state_after[i]))}"
        f"</code></li>" for i in p.part.longest_prefix)
    return (f"<details><summary>The prefix in linearization order, with the value after "
            f"each operation</summary><ol>{items}</ol></details>")


_VERDICT = {
    CheckOutcome.OK: "linearizable",
    CheckOutcome.ILLEGAL: "not linearizable",
    CheckOutcome.UNKNOWN: "undecided (out of time)",
    None: "not checked",
}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 6em;color:#222}
h1{margin:.6em 0 .2em} h2{font-size:1.15em;margin:1.2em 0 .4em}
code{background:#f4f4f4;padding:0 .2em;word-break:break-all}
.legend span{display:inline-block;padding:0 .5em;margin-right:.6em;border:1px solid}
.chart-wrap{display:flex;border:1px solid #ccc;margin:.4em 0}
.labels{flex:none;width:90px;border-right:1px solid #ccc;background:#fafafa}
.label{font-size:11px;padding-left:6px;display:flex;align-items:center;white-space:nowrap}
.scroll{overflow-x:auto;flex:1}
.chart{position:relative}
.under{position:absolute;left:0;top:0}
line.lane{stroke:#eee} line.tick{stroke:#f0f0f0} text.tick{font-size:10px;fill:#888}
.linline{fill:none;stroke:#2e7d32;stroke-width:1.2;opacity:.55}
.op{position:absolute;height:18px;box-sizing:border-box;border:1px solid;border-radius:3px;
 font-size:11px;line-height:16px;padding:0 3px;white-space:nowrap;overflow:hidden;
 text-overflow:ellipsis;cursor:pointer}
.op.lin,.legend .lin{background:#dcedc8;border-color:#558b2f}
.op.stuck,.legend .stuck{background:#ffcdd2;border-color:#c62828;font-weight:bold}
.op.other,.legend .other{background:#eceff1;border-color:#90a4ae}
.op.pending{border-right-style:dashed}
.op.picked{outline:2px solid #1565c0;z-index:2}
#pinned{position:fixed;left:0;right:0;bottom:0;background:#fffde7;border-top:1px solid #ccc;
 padding:.4em 1.5em;white-space:pre-wrap;font:12px/1.35 monospace;max-height:9em;overflow:auto}
#pinned:empty{display:none}
ul.why li{margin:.3em 0}
"""

_SCRIPT = """
document.addEventListener('click', function (e) {
  var box = e.target.closest('.op');
  document.querySelectorAll('.op.picked').forEach(function (b) { b.classList.remove('picked'); });
  var pinned = document.getElementById('pinned');
  if (!box) { pinned.textContent = ''; return; }
  box.classList.add('picked');
  pinned.textContent = box.title;
});
"""


def render_html(result: CheckResult, title: str = "") -> str:
    """The page for `result` as a string."""
    all_ops = [op for part in result.partitions for op in part.operations]
    finite = [t for op in all_ops for t in (op.call_time,) if not math.isinf(t)]
    origin = min(finite) if finite else 0.0
    # Event numbers (from a history file) read best as they are; seconds from a clock, from 0.
    if all(float(t).is_integer() for t in finite):
        origin = 0.0
    clients = {op.client for op in all_ops}
    verdict = _VERDICT[result.result]
    heading = f"{html.escape(title)}: {verdict}" if title else verdict.capitalize()
    keys = f"{len(result.partitions)} key{'s' if len(result.partitions) != 1 else ''}"
    body = [f"<h1>{heading}</h1>",
            f"<p>{len(all_ops)} operations by {len(clients)} clients on "
            f"{keys}, checked in {result.seconds:.3f} s. Each key is "
            f"checked on its own.</p>"]
    failing = [k for k, part in enumerate(result.partitions)
               if part.outcome is CheckOutcome.ILLEGAL]
    if failing:
        body.append(f'<p><a href="#key{failing[0]}">Jump to the first error</a></p>')
    body.append('<p class="legend"><span class="lin">in the longest linearizable prefix</span>'
                '<span class="stuck">cannot come next</span><span class="other">other</span>'
                'a dashed right edge: never returned</p>')
    # Failing partitions first, open; the others folded.
    order = failing + [k for k in range(len(result.partitions)) if k not in failing]
    for k in order:
        part = result.partitions[k]
        p = _Partition(result, part, origin)
        anchor = f"key{k}"
        label = html.escape(part.label)
        summary = (f"key <code>{label}</code>: {_VERDICT[part.outcome]} "
                   f"({len(part.operations)} operations)")
        if part.outcome is CheckOutcome.ILLEGAL:
            body.append(f'<section id="{anchor}"><h2>{summary}</h2>{_failure_text(p)}'
                        f"{_chart(p, anchor)}{_prefix_list(p)}</section>")
        else:
            body.append(f'<details id="{anchor}"><summary>{summary}</summary>'
                        f"{_chart(p, anchor)}</details>")
    page_title = html.escape(f"{title}: {verdict}" if title else f"Linearizability: {verdict}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{page_title}</title><style>{_CSS}</style></head><body>"
            + "".join(body) + f'<div id="pinned"></div><script>{_SCRIPT}</script></body></html>\n')
