"""From a timeline's events (and a log's debug lines) to one self-contained HTML page.

`build_model` turns the raw events into what the page draws: per peer its role and term over
time, crashes, applied index and snapshots; the network's faults (unreliable and long-reordering
periods, partitions as groups of peers that reach each other); RPCs as arrows; clerk operations
(lab 3); debug lines. A page must stay small whatever the run did (at most `MAX_PAGE_BYTES`): when
the data would not fit, dense parts are aggregated and thinned, halving their budgets until it
fits, and the page says what it left out.

`render_html` embeds the model as JSON in the page (labs/timeline/page.html: inline CSS and JS,
no network fetch), where a canvas draws it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from labdebug import LINE

__all__ = ["build_model", "render_html", "write_page", "parse_debug_lines", "MAX_PAGE_BYTES"]

MAX_PAGE_BYTES = 4_500_000     # the data's share of a page; the target for a whole page is 5 MB
TEMPLATE = Path(__file__).with_name("page.html")

Row = list[Any]  # an event read back from JSON, or an item the page draws
Ends = dict[str, tuple[Any, ...]]  # client end name -> (whose end it is, the server it reaches)

# Starting budgets, halved together until the page fits.
RPC_CAP = 40_000               # RPC arrows drawn one by one; past it, counted per time bin
DEBUG_CAP = 20_000             # debug lines (the first tenth and the rest from the end)
OP_CAP = 20_000                # clerk operations
APPLY_BIN = 0.010              # applied index: one point per peer per this many seconds
TEXT_LIMIT = 160               # characters kept of a debug line
VALUE_LIMIT = 40               # characters kept of a KV value
PARTITION_SETTLE = 0.010       # link changes closer than this are one partition change

# RPC outcomes, as the page knows them
OK, REQUEST_LOST, REPLY_LOST, FAILED, TESTER_LOST, UNFINISHED = range(6)
_PEER = re.compile(r"^S(\d+)\b")


def parse_debug_lines(lines: Iterable[str], debug_start: float) -> list[Row]:
    """The debug() lines of a log as [seconds since the timeline began, peer or -1, code, text];
    `debug_start` is where debug()'s clock starts, on the timeline's."""
    out = []
    for line in lines:
        match = LINE.match(line.rstrip("\n"))
        if match is None:
            continue
        message = match["message"]
        peer = _PEER.match(message)
        out.append([round(debug_start + int(match["ms"]) / 1000, 3),
                    int(peer[1]) if peer else -1, match["code"], message])
    return out


def _short(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"…({len(value)} chars)"
    return value


def _rpcs(events: list[Row], ends: Ends) -> tuple[list[Row], list[str]]:
    """Every call as [start, end time, from, to, rpc number, outcome, handler start or null]."""
    methods: dict[str, int] = {}
    open_calls: dict[int, list[Any]] = {}
    out = []
    for event in events:
        kind = event[0]
        if kind == "call":
            _, t, cid, end, rpc, _server = event[:6]
            link = ends.get(end)
            if link is None:
                continue
            m = methods.setdefault(rpc, len(methods))
            open_calls[cid] = [t, None, link[0], link[1], m, UNFINISHED, None]
        elif kind == "run":
            call = open_calls.get(event[2])
            if call is not None:
                call[6] = event[1]
        elif kind == "drop":
            call = open_calls.get(event[2])
            if call is not None:
                call[5] = REQUEST_LOST
        elif kind == "done":
            call = open_calls.pop(event[2], None)
            if call is None:
                continue
            call[1] = event[1]
            outcome = event[3]
            if outcome == "ok":
                call[5] = OK
            elif call[5] != REQUEST_LOST:
                call[5] = REPLY_LOST if outcome == "Timeout" and call[6] is not None else FAILED
            out.append(call)
        elif kind == "lost":
            _, t, peer, to, rpc = event[:5]
            m = methods.setdefault(rpc, len(methods))
            out.append([t, t, peer, to, m, TESTER_LOST, None])
    out += open_calls.values()  # still in flight when recording stopped
    out.sort(key=lambda call: call[0])
    return out, list(methods)


def _aggregate(rpcs: list[Row], cap: int) -> tuple[list[Row], float]:
    """Count calls per (time bin, from, to, rpc, outcome): [bin start, from, to, rpc, outcome,
    count]; the bin widens until the counts fit in `cap` rows."""
    width = 0.05
    while True:
        bins: dict[tuple[Any, ...], int] = defaultdict(int)
        for call in rpcs:
            bins[(int(call[0] / width), call[2], call[3], call[4], call[5])] += 1
        if len(bins) <= cap or width > 1e4:
            return [[round(k[0] * width, 4), *k[1:], count] for k, count in bins.items()], width
        width *= 2


def _partitions(events: list[Row], ends: Ends, n: int) -> list[Row]:
    """Who reaches whom, after each change: [time, groups, cut links, text]. A link between two
    peers works when the newest ends both ways are enabled; groups are the sets of peers that
    reach each other (cut links name pairs in one group that do not reach each other directly)."""
    newest: dict[tuple[Any, ...], str] = {}
    enabled: dict[str, bool] = {}
    up: dict[int, bool] = {}
    out: list[Row] = []
    pending_t = None

    def state() -> tuple[list[list[int]], list[list[int]]]:
        def linked(i: int, j: int) -> bool:
            return enabled.get(newest.get((i, j), ""), False) and \
                enabled.get(newest.get((j, i), ""), False)

        live = [i for i in range(n) if up.get(i, True)]
        parent = {i: i for i in live}

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        cuts = []
        for a, i in enumerate(live):
            for j in live[a + 1:]:
                if linked(i, j):
                    parent[find(i)] = find(j)
                else:
                    cuts.append([i, j])
        groups: dict[int, list[int]] = defaultdict(list)
        for i in live:
            groups[find(i)].append(i)
        group_list = sorted(groups.values())
        inside = [c for c in cuts if find(c[0]) == find(c[1])]
        return group_list, inside

    def emit(t: float) -> None:
        groups, cuts = state()
        if len(groups) <= 1 and not cuts:
            text = "all connected"
        else:
            text = "partition " + " | ".join(" ".join(map(str, g)) for g in groups)
            if cuts:
                text += "; links cut: " + ", ".join(f"{i}-{j}" for i, j in cuts)
        if not out or out[-1][3] != text:
            out.append([t, groups, cuts, text])

    for event in events:
        kind = event[0]
        if kind == "end" and isinstance(event[3], int):
            newest[(event[3], event[4])] = event[2]
        elif kind not in ("enable", "server", "crash", "start"):
            continue
        t = event[1]
        if pending_t is not None and t - pending_t > PARTITION_SETTLE:
            emit(pending_t)
            pending_t = None
        if kind == "enable":
            enabled[event[2]] = bool(event[3])
            pending_t = t if pending_t is None else pending_t
        elif kind == "crash":
            up[event[2]] = False
            pending_t = t if pending_t is None else pending_t
        elif kind == "start":
            up[event[2]] = True
            pending_t = t if pending_t is None else pending_t
    if pending_t is not None:
        emit(pending_t)
    return out


def _thin_applies(events: list[Row], width: float) -> list[Row]:
    """[time, peer, index]: per peer the last apply in each bin of `width` seconds."""
    last: dict[tuple[int, int], list[Any]] = {}
    for event in events:
        if event[0] == "apply":
            _, t, peer, index = event[:4]
            last[(peer, int(t / width))] = [t, peer, index]
    return sorted(last.values())


def build_model(meta: dict[str, Any], events: list[Row], debug_lines: list[Row] | None = None,
                max_bytes: int = MAX_PAGE_BYTES) -> dict[str, Any]:
    """What the page draws, at most `max_bytes` of JSON (dense parts thinned to fit)."""
    events = sorted(events, key=lambda e: e[1])
    n = int(meta.get("peers") or 0)
    ends: Ends = {}
    clerks: list[str] = []
    for event in events:
        if event[0] == "end":
            ends[event[2]] = (event[3], event[4])
            if isinstance(event[3], str) and event[3] not in clerks:
                clerks.append(event[3])
        if event[0] in ("role", "crash", "start", "apply", "snapshot", "install") and \
                isinstance(event[2], int):
            n = max(n, event[2] + 1)
    for event in events:
        if event[0] == "debug":
            match = _PEER.match(event[2].split(" ", 2)[-1]) if isinstance(event[2], str) else None
            if match:
                n = max(n, int(match[1]) + 1)
    for line in debug_lines or ():
        n = max(n, line[1] + 1)
    ops = [e for e in events if e[0] == "op"]
    for op in ops:
        if f"C{op[2]}" not in clerks:
            clerks.append(f"C{op[2]}")
    times = [e[1] for e in events] + [d[0] for d in debug_lines or ()]
    times += [op[7] for op in ops if op[7] is not None]
    duration = max(times, default=0.0)
    start = min(min(times, default=0.0), 0.0)

    rpcs, methods = _rpcs(events, ends)
    base = {
        "title": meta.get("title", ""), "test": meta.get("test", ""),
        "failure": _short(meta.get("failure", ""), 20_000),
        "linearizability": meta.get("linearizability"),
        "peers": n, "clerks": clerks, "start": start, "duration": duration,
        "methods": methods,
        "roles": [e[1:5] for e in events if e[0] == "role"],
        "life": [[e[1], e[2], e[0]] for e in events if e[0] in ("crash", "start")],
        "net": [e[1:4] for e in events if e[0] == "net"],
        "partitions": _partitions(events, ends, n),
        "snapshots": [[e[1], e[2], e[3], e[0]] for e in events if e[0] in ("snapshot", "install")],
        "notes": [e[1:3] for e in events if e[0] == "note"],
    }
    if debug_lines is None:  # the lines the run recorded itself, at the times it saw them
        debug_lines = [[e[1], *parsed[1:]] for e in events if e[0] == "debug"
                       for parsed in parse_debug_lines([e[2]], 0.0)]
    scale = 1.0
    while True:
        rpc_cap, debug_cap = int(RPC_CAP * scale), int(DEBUG_CAP * scale)
        op_cap = int(OP_CAP * scale)
        model = dict(base)
        omitted = []
        if len(rpcs) <= rpc_cap:
            model["rpcs"], model["rpc_bins"], model["rpc_bin_width"] = rpcs, [], 0
        else:
            model["rpcs"] = []
            model["rpc_bins"], model["rpc_bin_width"] = _aggregate(rpcs, max(rpc_cap, 1))
            omitted.append(f"{len(rpcs)} RPCs are counted per {model['rpc_bin_width']:g} s")
        model["applies"] = _thin_applies(events, APPLY_BIN / scale)
        lines = debug_lines
        if len(lines) > debug_cap:
            head = debug_cap // 10
            lines = lines[:head] + lines[len(lines) - (debug_cap - head):]
            omitted.append(f"{len(debug_lines) - len(lines)} of {len(debug_lines)} debug lines "
                           f"(the middle of the run) are left out")
        model["debug"] = [[t, p, c, _short(text, TEXT_LIMIT)] for t, p, c, text in lines]
        kept_ops = ops if len(ops) <= op_cap else ops[len(ops) - op_cap:]
        if len(kept_ops) < len(ops):
            omitted.append(f"the first {len(ops) - len(kept_ops)} of {len(ops)} clerk "
                           f"operations are left out")
        model["ops"] = [[e[1], e[7], e[2], e[3], _short(e[4], VALUE_LIMIT),
                         _short(e[5], VALUE_LIMIT), _short(e[6], VALUE_LIMIT)] for e in kept_ops]
        model["omitted"] = omitted
        if len(json.dumps(model, separators=(",", ":"))) <= max_bytes or scale < 1e-4:
            return model
        scale /= 2


def render_html(model: dict[str, Any]) -> str:
    """The page: the template with the model embedded as JSON."""
    data = json.dumps(model, separators=(",", ":"))
    # "</" would end the script element early; the JSON escape "<\/" means the same
    data = data.replace("</", "<\\/")
    title = str(model.get("test") or model.get("title") or "timeline")
    title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return TEMPLATE.read_text(encoding="utf-8").replace("__TITLE__", title, 1) \
        .replace("__DATA__", data, 1)


def write_page(path: Path, meta: dict[str, Any], events: list[Row],
               debug_lines: list[Row] | None = None) -> Path:
    """Draw `events` (as read_events returns them) into the page at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(build_model(meta, events, debug_lines)), encoding="utf-8")
    return path
