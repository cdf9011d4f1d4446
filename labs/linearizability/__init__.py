"""Linearizability checking for lab 3's key/value service (porcupine's job, in Python).

- `model`: operations and what every model shares; `kv_model`: the KV model; `checker`: the WGL
  search; `kv_reads`: the KV model's pruning hints (imported by kv_model, importing only
  model); `history`: the Jepsen/porcupine text format; `visualize`: the HTML page;
  `kv_history`: the recorder the KV tests use; `generate`: random histories.
- `labs check-history FILE` is the command line.
"""

from labs.linearizability.checker import (
    CheckOutcome,
    CheckResult,
    PartitionResult,
    check_operations,
)
from labs.linearizability.history import HistoryError, format_history, parse_history, read_history
from labs.linearizability.kv_history import Recorder, check_kv
from labs.linearizability.kv_model import KvModel
from labs.linearizability.model import KvInput, Model, Operation
from labs.linearizability.visualize import render_html, write_html

__all__ = [
    "CheckOutcome", "CheckResult", "PartitionResult", "check_operations",
    "HistoryError", "format_history", "parse_history", "read_history",
    "Recorder", "check_kv",
    "KvInput", "KvModel", "Model", "Operation",
    "render_html", "write_html",
]
