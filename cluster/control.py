"""Starting, faulting and stopping a cluster of node processes on this machine.

`LocalCluster` owns its nodes: each is a child process whose standard input is a pipe from the
owner, and a node exits when that pipe closes. So the nodes go when their owner goes — stopped,
interrupted, crashed or killed with SIGKILL — and no node is ever orphaned. The owner is the
`labs cluster check` process, a test, or the controller daemon that `labs cluster start` leaves
running (`cluster.controller`).

Files in the cluster directory:

    cluster           host:port of each node, one a line (the cluster file)
    faults.json       the fault rules in force; every node rereads it
    node-I/           node I's persisted state (state.bin)
    node-I.log        node I's log
    node-I.pid        node I's process id while it runs
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cluster.clusterpb import AdminClient, StatusReply, StatusRequest
from cluster.node import DEFAULT_MAXRAFTSTATE, read_cluster_file
from cluster.transport import GrpcEnd, as_client_end, connect
from labrpc import RemoteError

__all__ = ["LocalCluster", "NodeStatus", "query_status", "free_ports", "process_alive",
           "ignore_in_git",
           "CLUSTER_FILE",
           "FAULTS_FILE", "ClusterError"]

CLUSTER_FILE = "cluster"
FAULTS_FILE = "faults.json"
# The package root, put on the nodes' PYTHONPATH so that they run this very checkout's code.
_ROOT = Path(__file__).resolve().parent.parent
STATUS_DEADLINE = 1.0
STOP_GRACE = 3.0


class ClusterError(Exception):
    """A cluster command that cannot be done; the message says why."""


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (dead, waiting to be reaped: in a
    container whose init does not reap, a killed orphan stays one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal test is all there is
    return stat.rpartition(")")[2].split()[0] != "Z"


def ignore_in_git(directory: Path) -> None:
    """Keep a run's files out of `git status` (a cluster started in a checkout), as pytest does
    with its cache: a `.gitignore` of `*` inside the directory."""
    marker = directory / ".gitignore"
    if not marker.exists():
        marker.write_text("# written by labs cluster: runtime files, not sources\n*\n")


def free_ports(n: int) -> list[int]:
    """n TCP ports free on localhost now (the OS picks them; held open together, so distinct)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class NodeStatus:
    id: int
    address: str
    reply: StatusReply | None  # None: no answer (down, paused, cut off from us), or an error
    error: str = ""
    answered: bool = False  # the node is up, but its status raised (e.g. an unwritten stub)

    @property
    def role(self) -> str:
        if self.reply is None:
            return "-"
        return "leader" if self.reply.is_leader else "follower"


def query_status(addresses: list[str], deadline: float = STATUS_DEADLINE) -> list[NodeStatus]:
    """Ask every node for its status at once (a paused node costs one deadline, not n)."""
    ends = [GrpcEnd(f"status-{i}", connect(a), deadline=deadline) for i, a in enumerate(addresses)]
    try:
        futures = [AdminClient(as_client_end(end)).status.future(StatusRequest()) for end in ends]
        statuses = []
        for i, (address, future) in enumerate(zip(addresses, futures, strict=True)):
            try:
                statuses.append(NodeStatus(i, address, future.result()))
            except RemoteError as exc:  # it answers, but the lab code raised
                statuses.append(NodeStatus(i, address, None, str(exc), answered=True))
            except Exception as exc:  # noqa: BLE001 - every other failure is "no answer"
                statuses.append(NodeStatus(i, address, None, f"{type(exc).__name__}"))
        return statuses
    finally:
        for end in ends:
            end.close()


class LocalCluster:
    """n node processes on this machine, owned by this process."""

    def __init__(self, directory: str | os.PathLike[str], n: int = 3, lab: int = 3,
                 addresses: list[str] | None = None,
                 maxraftstate: int = DEFAULT_MAXRAFTSTATE) -> None:
        if lab not in (2, 3):
            raise ClusterError(f"--lab must be 2 or 3, not {lab}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        ignore_in_git(self.directory)
        if addresses is None:
            if n < 1:
                raise ClusterError(f"a cluster needs at least 1 node, not {n}")
            addresses = [f"127.0.0.1:{port}" for port in free_ports(n)]
        self.addresses = addresses
        self.n = len(addresses)
        self.lab = lab
        self.maxraftstate = maxraftstate
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * self.n
        self.paused: set[int] = set()
        self._rules: dict[str, object] = {"groups": None, "unreliable": False}
        (self.directory / CLUSTER_FILE).write_text("".join(f"{a}\n" for a in addresses))
        self._write_rules()

    # --- processes -------------------------------------------------------------------------------

    def start(self, ready_timeout: float = 30.0) -> None:
        for i in range(self.n):
            self._spawn(i)
        self.wait_ready(range(self.n), ready_timeout)

    def _spawn(self, i: int) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        with open(self.directory / f"node-{i}.log", "ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cluster.node", "--id", str(i),
                 "--cluster-file", str(self.directory / CLUSTER_FILE),
                 "--dir", str(self.directory / f"node-{i}"), "--lab", str(self.lab),
                 "--maxraftstate", str(self.maxraftstate),
                 "--faults", str(self.directory / FAULTS_FILE), "--exit-with-stdin"],
                stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                # Its own session: a Ctrl-C at the terminal reaches the owner only, which then
                # stops its nodes in order (or dies, closing their pipes).
                start_new_session=True)
        self.procs[i] = proc
        self.paused.discard(i)
        (self.directory / f"node-{i}.pid").write_text(f"{proc.pid}\n")

    def wait_ready(self, ids: Iterable[int], timeout: float) -> None:
        """Wait until nodes `ids` answer the admin RPC; raise ClusterError naming any that died."""
        deadline = time.monotonic() + timeout
        waiting = set(ids)
        while waiting:
            for i in sorted(waiting):
                proc = self.procs[i]
                if proc is not None and proc.poll() is not None:
                    raise ClusterError(f"node {i} exited with status {proc.returncode} while "
                                       f"starting; see {self.directory / f'node-{i}.log'}")
            answered = {s.id for s in query_status(self.addresses, 0.5)
                        if s.reply is not None or s.answered}
            waiting -= answered
            if waiting and time.monotonic() > deadline:
                raise ClusterError(f"nodes {sorted(waiting)} did not answer within {timeout:g} s")
            if waiting:
                time.sleep(0.1)

    def _check_id(self, i: int) -> None:
        if not 0 <= i < self.n:
            raise ClusterError(f"no node {i}: this cluster has nodes 0..{self.n - 1}")

    def is_running(self, i: int) -> bool:
        proc = self.procs[i]
        return proc is not None and proc.poll() is None

    def process(self, i: int) -> subprocess.Popen[bytes]:
        """Node i's process; ClusterError if it is not running."""
        self._check_id(i)
        proc = self.procs[i]
        if proc is None or proc.poll() is not None:
            raise ClusterError(f"node {i} is not running")
        return proc

    def kill(self, i: int) -> None:
        """kill -9 node i (a crash: what it persisted stays)."""
        proc = self.process(i)
        proc.kill()
        proc.wait()
        if proc.stdin:
            proc.stdin.close()
        self.paused.discard(i)
        (self.directory / f"node-{i}.pid").unlink(missing_ok=True)

    def restart(self, i: int, ready_timeout: float = 30.0) -> None:
        """Start node i again from its persisted state (killing it first if it runs)."""
        self._check_id(i)
        if self.is_running(i):
            self.kill(i)
        self._spawn(i)
        self.wait_ready([i], ready_timeout)

    def pause(self, i: int) -> None:
        os.kill(self.process(i).pid, signal.SIGSTOP)
        self.paused.add(i)

    def resume(self, i: int) -> None:
        os.kill(self.process(i).pid, signal.SIGCONT)
        self.paused.discard(i)

    def stop(self) -> list[int]:
        """Stop every node; return the pids of any that had to be killed with SIGKILL."""
        killed = []
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            if proc.poll() is None:
                if i in self.paused:
                    os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed.append(proc.pid)
            if proc.stdin:
                proc.stdin.close()
            (self.directory / f"node-{i}.pid").unlink(missing_ok=True)
        self.paused.clear()
        return killed

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    # --- network faults --------------------------------------------------------------------------

    def _write_rules(self) -> None:
        path = self.directory / FAULTS_FILE
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(self._rules))
        os.replace(temp, path)

    def partition(self, groups: list[list[int]]) -> None:
        """Only nodes of the same group reach each other; a node in no group reaches nobody."""
        seen: set[int] = set()
        for group in groups:
            for i in group:
                self._check_id(i)
                if i in seen:
                    raise ClusterError(f"node {i} is in two groups")
                seen.add(i)
        self._rules["groups"] = [sorted(g) for g in groups]
        self._write_rules()

    def heal(self) -> None:
        self._rules["groups"] = None
        self._write_rules()

    def set_unreliable(self, on: bool) -> None:
        self._rules["unreliable"] = on
        self._write_rules()

    @property
    def rules(self) -> dict[str, object]:
        return dict(self._rules)

    # --- queries ---------------------------------------------------------------------------------

    def status(self, deadline: float = STATUS_DEADLINE) -> list[NodeStatus]:
        return query_status(self.addresses, deadline)

    def leader(self, deadline: float = STATUS_DEADLINE) -> int | None:
        """The node that says it leads in the highest term, if any answers so."""
        leaders = [(s.reply.term, s.id) for s in self.status(deadline)
                   if s.reply is not None and s.reply.is_leader]
        return max(leaders)[1] if leaders else None

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_addresses(directory: str | os.PathLike[str]) -> list[str]:
    """The addresses of the cluster in `directory`; ClusterError if there is none."""
    path = Path(directory) / CLUSTER_FILE
    if not path.exists():
        raise ClusterError(f"no cluster in {directory} (no {CLUSTER_FILE} file); "
                           "start one with `labs cluster start`")
    try:
        return read_cluster_file(path)
    except ValueError as exc:
        raise ClusterError(str(exc)) from None
