"""The integration test of the real-cluster runtime: the lab code as 3 OS processes over gRPC on
localhost, 3 clients for about 15 s, the leader killed with SIGKILL once and restarted from its
files; the history must be linearizable, every acknowledged append present once and in order,
and no process left behind.

Loaded machines make it slower, never wrong: the clerk retries until it succeeds and the RPC
deadlines are seconds long, while the checks are exact.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

from cluster.check import EXIT_OK, HOLD, run_check
from cluster.control import LocalCluster, process_alive
from labs.linearizability.checker import CheckOutcome

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 15.0
KILL_AT = 5.0


def test_cluster_survives_the_leader_killed_once(tmp_path):
    out = io.StringIO()
    status, report = run_check(SECONDS, clients=3, nemesis=[], n=3,
                               directory=str(tmp_path / "nodes"),
                               out_dir=str(tmp_path / "report"), seed=14, out=out,
                               schedule=[(KILL_AT, "kill")])
    text = out.getvalue()
    assert status == EXIT_OK, text
    assert report.outcome is CheckOutcome.OK, text
    assert report.append_problems == [], text
    assert [f.kind for f in report.faults] == ["kill"], text
    assert "(leader)" in report.faults[0].target, text
    # The service came back: calls made after the kill returned, and more after the restart.
    assert report.faults[0].recovery is not None, text
    restarted = report.faults[0].end
    assert any(op.call_time > restarted for op in report.completed), text
    assert report.faults[0].end - report.faults[0].start >= HOLD
    assert "processes left after stop: 0" in text
    assert list((tmp_path / "nodes").glob("node-*.pid")) == []  # removed at stop
    assert (tmp_path / "report" / "linearizability.html").exists()
    logged = _node_pids_from_logs(tmp_path / "nodes")
    assert len(logged) == 4, text  # 3 nodes and the restarted one
    assert [pid for pid in logged if process_alive(pid)] == []


def _node_pids_from_logs(directory) -> list[int]:
    """Every pid a node of the run logged (restarts included)."""
    pids = []
    for log in directory.glob("node-*.log"):
        for line in log.read_text().splitlines():
            if " serving on " in line and ", pid " in line:
                pids.append(int(line.rsplit(", pid ", 1)[1].split()[0]))
    return pids



def test_labs_kv_reaches_the_cluster_through_the_clerk(tmp_path):
    def labs_kv(*args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        return subprocess.run([sys.executable, "-m", "labs", "kv", *args, "--cluster-file",
                               str(tmp_path / "cluster")], env=env, capture_output=True,
                              text=True, timeout=120)

    with LocalCluster(tmp_path, n=3) as cluster:
        cluster.start()
        assert labs_kv("put", "k", "a").stdout == "ok\n"
        assert labs_kv("append", "k", "b").stdout == "ok\n"
        cluster.kill(cluster.leader() or 0)
        got = labs_kv("get", "k")
        assert got.returncode == 0 and got.stdout == "ab\n", got.stderr
        assert labs_kv("get", "never-written").stdout == "\n"
    assert [pid for pid in cluster.pids() if process_alive(pid)] == []


def test_status_shows_each_nodes_log_indexes(tmp_path, capsys):
    from cluster.check import clerk_for
    from labs.cli import main

    def table() -> list[dict[str, str]]:
        assert main(["cluster", "status", "--cluster-file", str(tmp_path / "cluster")]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["node", "address", "pid", "role", "term", "last", "log",
                                    "commit", "applied", "raft", "state", "snapshot"]
        keys = ["node", "address", "pid", "role", "term", "last log", "commit", "applied"]
        # Rows start with the node's number; an error line may follow the table.
        return [dict(zip(keys, (line.split() + ["?"] * 8)[:8], strict=True))
                for line in lines[1:] if line.split()[0].isdigit()]

    def settled(rows: list[dict[str, str]]) -> bool:
        leaders = [r for r in rows if r["role"] == "leader"]
        return (len(leaders) == 1 and leaders[0]["last log"].isdigit()
                and all(r["applied"].isdigit() and int(r["applied"]) >= 3 for r in rows))

    with LocalCluster(tmp_path, n=3) as cluster:
        cluster.start()
        clerk, close = clerk_for(cluster.addresses, "status-test")
        try:
            clerk.put("k", "a")
            clerk.append("k", "b")
            assert clerk.get("k") == "ab"
            # Followers apply once the leader's next AppendEntries brings the commit index. A
            # leader elected since (a loaded machine) has started nothing in its term yet: one
            # more call gives it a start() to show.
            deadline = time.monotonic() + 30.0
            rows = table()
            while not settled(rows) and time.monotonic() < deadline:
                if [r["last log"] for r in rows if r["role"] == "leader"] == ["-"]:
                    assert clerk.get("k") == "ab"
                time.sleep(0.2)
                rows = table()
        finally:
            close()
    assert settled(rows), rows
    leader = next(r for r in rows if r["role"] == "leader")
    # No node has applied past the leader's last log index (from its start() results, or its
    # log_indexes() hook).
    assert int(leader["last log"]) >= max(int(r["applied"]) for r in rows), rows
    for r in rows:  # a commit index is shown only by a Raft with the hook, never below applied
        assert r["commit"] == "-" or int(r["commit"]) >= int(r["applied"]), rows
