"""Reading and writing histories in the Jepsen/porcupine text form, one event per line:

    {:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}
    {:process 1, :type :invoke, :f :get, :key "0", :value nil}
    {:process 0, :type :ok, :f :append, :key "0", :value "x 0 0 y"}
    {:process 1, :type :ok, :f :get, :key "0", :value "x 0 0 y"}

The order of the lines is the order of time; an operation runs from its :invoke to the :ok of
the same process. `:type :fail` means it did not happen (it is dropped); `:type :info`, or no
reply before the end, means nobody knows: it may take effect at any point after its call, or
never. Blank lines and lines starting with ";" are skipped.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from labs.linearizability.model import GET, KV_OPS, NEVER_RETURNED, KvInput, Operation

__all__ = ["HistoryError", "parse_history", "read_history", "format_history"]


class HistoryError(ValueError):
    """A line that cannot be understood; the message names the line."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


_TOKEN = re.compile(r"""
    \s+|,                                   # whitespace; commas count as whitespace in EDN
  | (?P<open>\{) | (?P<close>\})
  | :(?P<keyword>[A-Za-z_*+!?<>=/.-][\w*+!?<>=/.-]*)
  | "(?P<string>(?:[^"\\]|\\.)*)"
  | (?P<number>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.])
  | (?P<symbol>nil|true|false)(?![\w.])
""", re.VERBOSE)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


class _Keyword(str):
    """An EDN keyword such as :invoke (told apart from the string "invoke")."""


_OPEN, _CLOSE = object(), object()  # the braces, told apart from any value


def _parse_map(text: str, line: int) -> dict[str, Any]:
    tokens: list[object] = []  # values, keywords and the braces
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise HistoryError(line, f"unexpected text {text[pos:pos + 20]!r} at column {pos + 1}")
        pos = match.end()
        kind = match.lastgroup
        if kind is None:
            continue
        raw = match.group(kind)
        if kind == "keyword":
            tokens.append(_Keyword(raw))
        elif kind == "string":
            tokens.append(re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), raw))
        elif kind == "number":
            tokens.append(float(raw) if any(c in raw for c in ".eE") else int(raw))
        elif kind == "symbol":
            tokens.append({"nil": None, "true": True, "false": False}[raw])
        else:
            tokens.append(_OPEN if kind == "open" else _CLOSE)
    if len(tokens) < 2 or tokens[0] is not _OPEN or tokens[-1] is not _CLOSE:
        raise HistoryError(line, "expected one map like {:process 0, :type :invoke, ...}")
    body = tokens[1:-1]
    if any(t is _OPEN or t is _CLOSE for t in body):
        raise HistoryError(line, "nested maps are not supported")
    if len(body) % 2:
        raise HistoryError(line, "the map has a key without a value")
    event: dict[str, Any] = {}
    for key, value in zip(body[::2], body[1::2], strict=True):
        if not isinstance(key, _Keyword):
            raise HistoryError(line, f"map keys must be keywords like :type, not {key!r}")
        if key in event:
            raise HistoryError(line, f"the key :{key} appears twice")
        event[key] = value
    return event


def _field(event: dict[str, Any], name: str, line: int) -> Any:
    if name not in event:
        raise HistoryError(line, f"the event has no :{name}")
    return event[name]


def _keyword(event: dict[str, Any], name: str, allowed: Sequence[str], line: int) -> str:
    value = _field(event, name, line)
    if not isinstance(value, _Keyword) or value not in allowed:
        choices = ", ".join(f":{a}" for a in allowed)
        raise HistoryError(line, f":{name} must be one of {choices}, not {_show(value)}")
    return str(value)


def _show(value: Any) -> str:
    if isinstance(value, _Keyword):
        return f":{value}"
    return "nil" if value is None else repr(value)


def parse_history(lines: Iterable[str]) -> list[Operation]:
    """The KV operations of a history given as event lines; raises HistoryError."""
    # process -> (line of the invoke, event number, KvInput)
    pending: dict[Any, tuple[int, int, KvInput]] = {}
    operations: list[Operation] = []
    events = 0
    for line, text in enumerate(lines, start=1):
        text = text.strip()
        if not text or text.startswith(";"):
            continue
        event = _parse_map(text, line)
        kind = _keyword(event, "type", ("invoke", "ok", "fail", "info"), line)
        process = _field(event, "process", line)
        if isinstance(process, (dict, list)) or process is None:
            raise HistoryError(line, f":process must be a number or a name, not {_show(process)}")
        f = _keyword(event, "f", KV_OPS, line)
        key = _field(event, "key", line)
        if key is None or isinstance(key, bool):
            raise HistoryError(line, f":key must be a string or a number, not {_show(key)}")
        key = str(key)
        value = event.get("value")
        if kind == "invoke":
            if process in pending:
                raise HistoryError(line, f"process {_show(process)} invokes again before its "
                                         f":invoke on line {pending[process][0]} completed")
            if f != GET and not isinstance(value, str):
                raise HistoryError(line, f"a {f} needs a string :value, not {_show(value)}")
            # (a put or append has a string value: checked just above)
            text_value = value if f != GET and isinstance(value, str) else ""
            pending[process] = (line, events, KvInput(f, key, text_value))
            events += 1
            continue
        if process not in pending:
            raise HistoryError(line, f"a :{kind} for process {_show(process)}, "
                                     f"which has no outstanding :invoke")
        invoke_line, called, inp = pending.pop(process)
        if (f, key) != (inp.op, inp.key):
            raise HistoryError(line, f"this :{kind} is for :f :{f} on :key {key!r}, but the "
                                     f":invoke on line {invoke_line} was :f :{inp.op} on "
                                     f":key {inp.key!r}")
        if kind == "fail":
            events += 1
            continue
        if kind == "info":
            pending_output = None
            operations.append(Operation(process, inp, pending_output, called, NEVER_RETURNED))
            events += 1
            continue
        if f == GET:
            if value is not None and not isinstance(value, str):
                raise HistoryError(line, f"a get returns a string or nil, not {_show(value)}")
            output = value or ""
        else:
            if value is not None and value != inp.value:
                raise HistoryError(line, f"the :value {_show(value)} differs from the "
                                         f"{inp.value!r} invoked on line {invoke_line}")
            output = None
        operations.append(Operation(process, inp, output, called, events))
        events += 1
    for process, (_, called, inp) in pending.items():
        operations.append(Operation(process, inp, None, called, NEVER_RETURNED))
    operations.sort(key=lambda op: op.call_time)
    return operations


def read_history(path: str | Path, stdin: TextIO | None = None) -> list[Operation]:
    """Parse a history file; "-" reads standard input. Raises HistoryError or OSError."""
    if str(path) == "-":
        return parse_history(stdin if stdin is not None else sys.stdin)
    try:
        with open(path, encoding="utf-8") as file:
            return parse_history(file)
    except UnicodeDecodeError as exc:
        raise HistoryError(1, f"not UTF-8 text ({exc.reason})") from None


def _edn(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return str(value)


def format_history(operations: Sequence[Operation]) -> str:
    """The event lines of KV `operations`; `parse_history` reads them back.

    Times give the order. At equal times a return is written before a call, so that a client
    whose next call starts the instant its last one returned stays well-formed. An operation
    that never returned gets no :ok line.
    """
    events = []
    for op in operations:
        inp = op.input
        invoke_value = None if inp.op == GET else inp.value
        events.append((op.call_time, 1, op.client, inp, "invoke", invoke_value))
        if op.return_time != NEVER_RETURNED:
            value = op.output if inp.op == GET else inp.value
            # (after its own call, should the operation have taken no time at all)
            order = 0 if op.return_time > op.call_time else 2
            events.append((op.return_time, order, op.client, inp, "ok", value))
    events.sort(key=lambda e: (e[0], e[1]))
    return "".join(
        f"{{:process {_edn(client)}, :type :{kind}, :f :{inp.op}, :key {_edn(inp.key)}, "
        f":value {_edn(value)}}}\n"
        for _, _, client, inp, kind, value in events)
