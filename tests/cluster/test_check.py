"""cluster.check's verdict: a violation exits 1 with the evidence (the checker's explanation, the
history and the HTML page), and the append check names lost, repeated and reordered appends.
No cluster here: histories are built by hand."""

from __future__ import annotations

import io

from cluster.check import EXIT_OK, EXIT_VIOLATION, CheckReport, Workload, _verdict
from labs.linearizability.model import KvInput, Operation


def test_a_stale_read_exits_1_with_the_evidence(tmp_path):
    operations = [
        Operation(0, KvInput("put", "x", "1"), None, 0.0, 1.0),
        Operation(1, KvInput("get", "x"), "", 2.0, 3.0),  # after the put returned: stale
    ]
    out = io.StringIO()
    status, _ = _verdict(CheckReport(operations, [], 3.0), tmp_path, out)
    text = out.getvalue()
    assert status == EXIT_VIOLATION
    assert "NOT LINEARIZABLE" in text and "get('x')" in text, text
    assert (tmp_path / "history.txt").read_text().count(":invoke") == 2
    assert (tmp_path / "linearizability.html").exists()


def test_a_linearizable_history_exits_0(tmp_path):
    operations = [
        Operation(0, KvInput("put", "x", "1"), None, 0.0, 1.0),
        Operation(1, KvInput("get", "x"), "1", 2.0, 3.0),
    ]
    out = io.StringIO()
    status, report = _verdict(CheckReport(operations, [], 3.0), tmp_path, out)
    assert status == EXIT_OK, out.getvalue()
    assert "0.7 ops/s" in out.getvalue()  # 2 operations in 3 s


def _workload(appended: list[str], acknowledged: int) -> Workload:
    workload = Workload(lambda name: None, clients=1, seed=0)
    workload.appended[0] = appended
    workload.acknowledged[0] = acknowledged
    return workload


def test_appends_must_be_present_once_and_in_order():
    values = ["x 0 1 y", "x 0 2 y", "x 0 3 y"]
    assert _workload(values, 3).check_appends({0: "".join(values)}) == []
    # The last append never returned: with or without it is fine.
    assert _workload(values, 2).check_appends({0: "".join(values[:2])}) == []
    assert _workload(values, 2).check_appends({0: "".join(values)}) == []
    [lost] = _workload(values, 3).check_appends({0: values[0] + values[2]})
    assert "missing ['x 0 2 y']" in lost
    [twice] = _workload(values, 3).check_appends({0: "".join(values) + values[1]})
    assert "repeated ['x 0 2 y']" in twice
    [reordered] = _workload(values, 3).check_appends({0: values[1] + values[0] + values[2]})
    assert "out of order" in reordered
