"""`labs cluster` and `labs kv`: clear errors for bad arguments, and stop with no orphans —
after `labs cluster stop`, and after the controller itself is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.control import process_alive as _alive
from labs.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run_labs(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "labs", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("argv, message", [
    (["cluster", "start", "-n", "0"], "'0' is not a number of nodes"),
    (["cluster", "start", "-n", "99"], "99 nodes is more than this machine should run"),
    (["cluster", "start", "--lab", "4"], "invalid choice: 4"),
    (["cluster", "check", "--nemesis", "kill,flood"], "unknown fault 'flood'"),
    (["cluster", "check", "--seconds", "-5"], "'-5' is not a number of seconds"),
    (["cluster", "check", "--clients", "0"], "'0' is not a number of clients"),
    (["cluster", "unreliable", "maybe"], "invalid choice: 'maybe'"),
    (["cluster", "kill", "x"], "invalid int value: 'x'"),
    (["kv", "delete", "k"], "invalid choice: 'delete'"),
])
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["kv", "put", "k"], "put needs a VALUE"),
    (["kv", "get", "k", "v"], "get takes no VALUE"),
    (["kv", "get", "k"], "no cluster in"),
    (["cluster", "status"], "no cluster in"),
    (["cluster", "kill", "1"], "no cluster is running in"),
    (["cluster", "partition", "0,1"], "at least two groups"),
])
def test_commands_without_a_cluster_or_with_bad_operands_say_why(argv, message, tmp_path, capsys):
    assert main([*argv, "--dir", str(tmp_path / "none")]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_cluster_file_names_its_line(tmp_path, capsys):
    bad = tmp_path / "cluster"
    bad.write_text("127.0.0.1:7001\nlocalhost\n")
    assert main(["kv", "get", "k", "--cluster-file", str(bad)]) == 2
    assert f"{bad}:2: 'localhost' is not host:port" in capsys.readouterr().err


def _node_pids(directory: Path) -> list[int]:
    return [int(p.read_text()) for p in sorted(directory.glob("node-*.pid"))]


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def test_start_commands_stop_leave_no_process(tmp_path):
    # Lab 2: Raft peers only, so that the runtime's own commands are tested whatever the state
    # of the lab code (the KV commands are tested in test_cluster.py).
    directory = tmp_path / "c"
    started = run_labs("cluster", "start", "-n", "3", "--lab", "2", "--dir", str(directory),
                       cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    pids = _node_pids(directory)
    controller = int((directory / "controller.pid").read_text())
    try:
        assert len(pids) == 3 and all(_alive(p) for p in pids)
        assert started.stdout.splitlines()[1].split()[:2] == ["node", "address"], started.stdout
        again = run_labs("cluster", "start", "-n", "3", "--dir", str(directory), cwd=tmp_path)
        assert again.returncode == 2 and "already running" in again.stderr
        wrong = run_labs("cluster", "kill", "3", "--dir", str(directory), cwd=tmp_path)
        assert wrong.returncode == 2 and "not a node of this cluster (0..2)" in wrong.stderr
        killed = run_labs("cluster", "kill", "1", "--dir", str(directory), cwd=tmp_path)
        assert killed.returncode == 0 and _wait_gone([pids[1]], 5.0) == [], killed.stderr
        restarted = run_labs("cluster", "restart", "1", "--dir", str(directory), cwd=tmp_path)
        assert restarted.returncode == 0, restarted.stderr
        pids = _node_pids(directory)
        assert len(pids) == 3 and all(_alive(p) for p in pids)
    finally:
        stopped = run_labs("cluster", "stop", "--dir", str(directory), cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert _wait_gone([*pids, controller], 10.0) == []
    assert list(directory.glob("*.pid")) == []


def test_nodes_exit_when_their_controller_is_killed(tmp_path):
    directory = tmp_path / "c"
    started = run_labs("cluster", "start", "-n", "3", "--lab", "2", "--dir", str(directory),
                       cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    pids = _node_pids(directory)
    controller = int((directory / "controller.pid").read_text())
    try:
        os.kill(controller, signal.SIGKILL)  # a crash: no clean-up code runs
        assert _wait_gone([controller, *pids], 10.0) == [], "nodes outlived their controller"
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    stopped = run_labs("cluster", "stop", "--dir", str(directory), cwd=tmp_path)
    assert stopped.returncode == 0 and list(directory.glob("*.pid")) == []
