"""Raft benchmarks: agreement latency on a quiet network, and the cost of each part's suite."""

from __future__ import annotations

import os
import queue
import re
import resource
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from labrpc.affinity import one_cpu

REPO_ROOT = Path(__file__).resolve().parent.parent
PARTS = ("2a", "2b", "2c", "2d")
AGREEMENTS = 1000


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


class _Cluster:
    """A bare cluster of this tree's Raft peers on one network, without the tester's checks."""

    def __init__(self, servers: int, reliable: bool = True) -> None:
        import labrpc
        from proto.raftpb import RaftClient, RaftService
        from raft.persister import MemoryPersister
        from raft.raft import Node, Raft

        # As in a lab test (tests/lab_harness.py): the cluster's threads on one CPU, a claimed
        # one (labrpc/affinity.py), until close().
        self._pinned = ExitStack()
        self._pinned.enter_context(one_cpu())
        self.net = labrpc.Network()
        self.net.set_reliable(reliable)
        ends = [[self.net.create_client(f"bench-{i}-{j}") for j in range(servers)]
                for i in range(servers)]
        self.apply_queues: list[queue.Queue] = [queue.Queue() for _ in range(servers)]
        self.nodes = []
        for i in range(servers):
            for j in range(servers):
                self.net.connect(ends[i][j], f"server-{j}")
                self.net.enable(ends[i][j], True)
            node = Node(Raft([RaftClient(e) for e in ends[i]], i, MemoryPersister(),
                             self.apply_queues[i]))
            server = labrpc.Server(f"server-{i}")
            server.add_service(RaftService, node)
            self.net.add_server(server)
            self.nodes.append(node)

    def wait_for_leader(self, limit: float = 10.0):  # returns a raft Node
        deadline = time.monotonic() + limit
        while True:
            leaders = [n for n in self.nodes if n.is_leader()]
            if leaders:
                return leaders[0]
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader elected within {limit:g} s")
            time.sleep(0.01)

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        self.net.shutdown()
        self._pinned.close()


def agreement_latency(servers: int = 3, commands: int = AGREEMENTS) -> dict[str, float]:
    """Milliseconds from `start()` until every server has applied the command, one at a time.
    The commands are the benchmark's own message: the Raft under test may name its messages as
    it likes."""
    from benchmarks.bench import BENCH_PROTO
    from proto.compiler import load_proto

    command = load_proto(BENCH_PROTO).BenchCommand
    cluster = _Cluster(servers)
    try:
        leader = cluster.wait_for_leader()
        latencies = []
        for k in range(commands):
            began = time.perf_counter()
            index, _ = leader.start(command(n=k))
            for q in cluster.apply_queues:
                while q.get(timeout=5).index != index:
                    pass
            latencies.append((time.perf_counter() - began) * 1000)
    finally:
        cluster.close()
    latencies.sort()
    return {"raft_agree_ms_p50": _percentile(latencies, 0.50),
            "raft_agree_ms_p99": _percentile(latencies, 0.99)}


IDLE_SERVERS = 5
IDLE_SECONDS = 60.0


def idle_unreliable_elections(servers: int = IDLE_SERVERS,
                              seconds: float = IDLE_SECONDS) -> dict[str, float]:
    """Elections per minute that an idle cluster on an unreliable network holds after its first
    leader: none is needed, so each is a follower that lost enough heartbeats in a row to time
    out. The figure the election timeout is chosen from (docs/lab2-raft.md)."""
    cluster = _Cluster(servers, reliable=False)
    try:
        cluster.wait_for_leader()
        first_term = max(node.term() for node in cluster.nodes)
        time.sleep(seconds)
        last_term = max(node.term() for node in cluster.nodes)
    finally:
        cluster.close()
    return {"raft_idle_unreliable_elections_per_min": (last_term - first_term) * 60.0 / seconds}


def _max_rss_mb(usage: resource.struct_rusage) -> float:
    # Linux reports kilobytes, macOS bytes.
    return usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


# A part runs as `make test_<part>` runs it: its tests JOBS at a time (the Makefile's default).
PART_JOBS = 2
# pytest's --durations lines: "12.34s call     tests/raft/test_raft_2a.py::test_x_2a"
_DURATION = re.compile(r"^(\d+\.\d+)s (?:setup|call|teardown) ", re.M)


def _part_file(tests_dir: str, part: str) -> str:
    """The file of a part's tests, as the Makefile names it: tests/raft/test_raft_2a.py."""
    return f"{tests_dir}/test_{Path(tests_dir).name}_{part}.py"


def suite_costs(lab: str, parts: tuple[str, ...], tests_dir: str,
                outputs: dict[str, str] | None = None) -> dict[str, float]:
    """Per part, one run as `make test_<part>` makes it (the part's file, JOBS tests at a time,
    in one pytest process and its workers): the wall and CPU seconds, and the sum of the tests'
    own durations (`_tests_s`, what the part takes one test after the other). Each part's
    output (its summary lines) goes into `outputs` when given.

    Measured warm, as a student's every run but the first: a collection beforehand leaves the
    compiled framework and the rewritten test module in their caches (as a Go solution's
    figures are those of a built test binary)."""
    metrics: dict[str, float] = {}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}  # as the Makefile runs pytest
    for part in parts:
        selection = [_part_file(tests_dir, part), "--name", f"_{part}", "-q"]
        subprocess.run([sys.executable, "-m", "pytest", *selection, "--collect-only"],
                       cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=env)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *selection,
             "-n", str(PART_JOBS), "--durations=0", "--durations-min=0"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        wall = time.monotonic() - began
        if outputs is not None:
            outputs[part] = result.stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        metrics[f"{lab}_{part}_wall_s"] = round(wall, 1)
        metrics[f"{lab}_{part}_cpu_s"] = round(cpu, 1)
        metrics[f"{lab}_{part}_tests_s"] = round(
            sum(float(seconds) for seconds in _DURATION.findall(result.stdout)), 1)
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-15:])
            print(f"warning: part {part.upper()} failed during the benchmark:\n{tail}",
                  file=sys.stderr)
            metrics[f"{lab}_{part}_failed"] = 1
    peak = _max_rss_mb(resource.getrusage(resource.RUSAGE_CHILDREN))
    metrics[f"{lab}_peak_rss_mb"] = round(peak, 1)
    return metrics


def raft_metrics() -> dict[str, float]:
    return {**agreement_latency(), **idle_unreliable_elections(),
            **suite_costs("raft", PARTS, "tests/raft")}
