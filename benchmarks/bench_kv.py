"""KV benchmarks: clerk latency and throughput on a quiet network, and each part's suite cost."""

from __future__ import annotations

import statistics
import threading
import time
from contextlib import ExitStack

from benchmarks.bench_raft import _percentile, suite_costs
from labrpc.affinity import one_cpu

PARTS = ("3a", "3b")
SEQUENTIAL_OPS = 1000
CLIENTS = 10
THROUGHPUT_SECONDS = 3.0


class _Service:
    """A 3-server KV service on a reliable labrpc network, for measuring."""

    def __init__(self, servers: int = 3, maxraftstate: int | None = None) -> None:
        import labrpc
        from kvraft.server import KvServer, Node
        from proto.kvraftpb import KvService
        from proto.raftpb import RaftClient, RaftService
        from raft.persister import MemoryPersister

        # As in a lab test (tests/lab_harness.py): the service's threads on one CPU, a claimed
        # one (labrpc/affinity.py), until close().
        self._pinned = ExitStack()
        self._pinned.enter_context(one_cpu())
        self.servers = servers
        self.net = labrpc.Network()
        self.nodes = []
        for i in range(servers):
            ends = []
            for j in range(servers):
                end = self.net.create_client(f"bench-kv-{i}-{j}")
                self.net.connect(end, f"kv-{j}")
                self.net.enable(end, True)
                ends.append(RaftClient(end))
            kv = KvServer(ends, i, MemoryPersister(), maxraftstate)
            node = Node(kv)
            server = labrpc.Server(f"kv-{i}")
            server.add_service(RaftService, kv.rf)
            server.add_service(KvService, node)
            self.net.add_server(server)
            self.nodes.append(node)
        self._clerks = 0

    def clerk(self):
        from kvraft.client import Clerk
        from proto.kvraftpb import KvClient

        self._clerks += 1
        clients = []
        for j in range(self.servers):
            end = self.net.create_client(f"bench-clerk-{self._clerks}-{j}")
            self.net.connect(end, f"kv-{j}")
            self.net.enable(end, True)
            clients.append(KvClient(end))
        return Clerk(f"bench-{self._clerks}", clients)

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        self.net.shutdown()
        self._pinned.close()


LATENCY_RUNS = 5


def clerk_latency(ops: int = SEQUENTIAL_OPS, runs: int = LATENCY_RUNS) -> dict[str, float]:
    """Milliseconds per Append, one clerk, 1000 in a row (the speed tests' workload): the
    median of several runs, each on a fresh service, with the lowest and highest."""
    results = [_one_clerk_latency(ops) for _ in range(runs)]
    p50s = sorted(r["kv_op_ms_p50"] for r in results)
    return {"kv_op_ms_p50": statistics.median(p50s), "kv_op_ms_p50_min": p50s[0],
            "kv_op_ms_p50_max": p50s[-1],
            "kv_op_ms_p99": statistics.median(r["kv_op_ms_p99"] for r in results)}


def _one_clerk_latency(ops: int) -> dict[str, float]:
    service = _Service()
    try:
        clerk = service.clerk()
        clerk.get("x")  # wait for a leader
        latencies = []
        for i in range(ops):
            began = time.perf_counter()
            clerk.append("x", f"x 0 {i} y")
            latencies.append((time.perf_counter() - began) * 1000)
    finally:
        service.close()
    latencies.sort()
    return {"kv_op_ms_p50": _percentile(latencies, 0.50),
            "kv_op_ms_p99": _percentile(latencies, 0.99)}


def clerk_throughput(clients: int = CLIENTS,
                     seconds: float = THROUGHPUT_SECONDS) -> dict[str, float]:
    """Operations per second completed by 10 clerks appending to their own keys."""
    service = _Service()
    done = [0] * clients
    stop = threading.Event()
    try:
        clerks = [service.clerk() for _ in range(clients)]
        clerks[0].get("warm-up")

        def run(me: int) -> None:
            while not stop.is_set():
                clerks[me].append(str(me), "x")
                done[me] += 1

        threads = [threading.Thread(target=run, args=(i,), name=f"bench-clerk-{i}")
                   for i in range(clients)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    finally:
        service.close()
    return {f"kv_ops_per_s_{clients}clients": round(sum(done) / elapsed, 1)}


# The test whose clerk operations the bench reports beside the Go solution's 25,052.
ONE_CLIENT_3B_TITLE = "Test: restarts, snapshots, one client (3B)"


def clerk_ops(output: str, title: str) -> float:
    """The clerk operations on `title`'s summary line (NaN if the line is missing)."""
    for line in output.splitlines():
        if line.lstrip(".").startswith(title) and "Passed" in line:
            return float(line.split()[-1])
    return float("nan")


def kv_metrics() -> dict[str, float]:
    outputs: dict[str, str] = {}
    metrics = {**clerk_latency(), **clerk_throughput(),
               **suite_costs("kv", PARTS, "tests/kvraft", outputs)}
    metrics["kv_3b_one_client_ops"] = clerk_ops(outputs.get("3b", ""), ONE_CLIENT_3B_TITLE)
    return metrics
