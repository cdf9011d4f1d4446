"""A Jepsen-style check of a real cluster: clients record a history while a nemesis injects
faults; then everything heals and the history is checked for linearizability, and each
client's appends for loss, duplication and reordering.

Each client is the student's `Clerk` on its own thread, one call at a time. It picks, at random:
an append of a unique value to its own key `c<i>` (checked at the end: every acknowledged
append exactly once, in order), a get of its own key, or a get, put or append on one of a few
shared keys. Every call goes into the history with its call and return times.

The nemesis waits `QUIET` seconds, injects the next fault of its list (round robin) for `HOLD`
seconds, undoes it, and so on:

- `partition`: the leader and fewer than half of the others are cut off from the rest;
- `kill`: kill -9 of the leader, restarted after HOLD seconds from its files;
- `pause`: SIGSTOP of the leader, SIGCONT after HOLD seconds;
- `unreliable`: labrpc's drops and delays on every node's calls.

The recovery time of a fault is the time from its injection to the return of the first call
made after it: how long a client had to wait for the service to come back.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cluster.control import LocalCluster, ignore_in_git, process_alive
from cluster.node import FAULT_POLL_INTERVAL, add_kv_server
from cluster.transport import DEFAULT_DEADLINE, GrpcEnd, as_client_end, connect
from labs.linearizability.checker import CheckOutcome
from labs.linearizability.history import format_history
from labs.linearizability.kv_history import Recorder, check_kv
from labs.linearizability.model import NEVER_RETURNED, Operation
from labs.linearizability.visualize import explain_failure, write_html

if TYPE_CHECKING:
    from kvraft.client import Clerk

__all__ = ["NEMESES", "Fault", "Workload", "CheckReport", "run_check", "clerk_for",
           "EXIT_OK", "EXIT_VIOLATION", "EXIT_UNDECIDED"]

NEMESES = ("partition", "kill", "pause", "unreliable")
EXIT_OK, EXIT_VIOLATION, EXIT_UNDECIDED = 0, 1, 2
QUIET = 2.0
HOLD = 3.0
SHARED_KEYS = 3
# After the run, clients finish the call they are in; after the faults are healed, that takes
# an election and a retry or two. One that has not returned after this long never returns.
DRAIN_TIMEOUT = 60.0
# The checker's budget; an undecided check is reported as such (exit 2), never as a pass.
CHECK_TIMEOUT = 120.0


def clerk_for(addresses: list[str], name: str,
              deadline: float = DEFAULT_DEADLINE) -> tuple[Clerk, Callable[[], None]]:
    """The student's Clerk over gRPC ends to `addresses`, and a function that closes them."""
    from kvraft.client import Clerk
    from proto.kvraftpb import KvClient

    ends = [GrpcEnd(f"{name}-to-{i}", connect(a), deadline=deadline)
            for i, a in enumerate(addresses)]
    clerk = Clerk(name, [KvClient(as_client_end(end)) for end in ends])

    def close() -> None:
        for end in ends:
            end.close()

    return clerk, close


@dataclass
class Fault:
    kind: str
    target: str
    start: float
    end: float = math.nan
    recovery: float | None = None  # seconds to the first call made after `start` returning
    cut_short: bool = False  # the run ended before HOLD was over: a recovery says little


@dataclass
class CheckReport:
    operations: list[Operation]
    faults: list[Fault]
    seconds: float
    outcome: CheckOutcome | None = None
    append_problems: list[str] = field(default_factory=list)
    never_returned: int = 0

    @property
    def completed(self) -> list[Operation]:
        return [op for op in self.operations if op.return_time != NEVER_RETURNED]

    def latencies(self) -> list[float]:
        return sorted(op.return_time - op.call_time for op in self.completed)

    def throughput(self) -> float:
        return len(self.completed) / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


class Workload:
    """The clients: each a Clerk on a thread, recording into one history."""

    def __init__(self, make_clerk: Callable[[str], Clerk], clients: int, seed: int) -> None:
        self.recorder = Recorder()
        self._make_clerk = make_clerk
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[str, str, str, float]] = {}
        self.appended: dict[int, list[str]] = {c: [] for c in range(clients)}
        self.acknowledged: dict[int, int] = {c: 0 for c in range(clients)}
        self._threads = [
            threading.Thread(target=self._run, args=(c, random.Random(seed * 1000 + c)),
                             name=f"client-{c}", daemon=True)
            for c in range(clients)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _call(self, c: int, clerk: Clerk, op: str, key: str, value: str = "") -> None:
        with self._lock:
            self._pending[c] = (op, key, value, time.monotonic())
        if op == "get":
            output = clerk.get(key)
        elif op == "put":
            clerk.put(key, value)
            output = None
        else:
            clerk.append(key, value)
            output = None
        with self._lock:
            _, _, _, call_time = self._pending.pop(c)
            self.recorder.record(c, op, key, value, output, call_time, time.monotonic())

    def _run(self, c: int, rng: random.Random) -> None:
        clerk = self._make_clerk(f"client-{c}")
        n = 0
        while not self._stop.is_set():
            n += 1
            r = rng.random()
            own, shared = f"c{c}", f"s{rng.randrange(SHARED_KEYS)}"
            if r < 0.4:
                value = f"x {c} {n} y"
                self.appended[c].append(value)
                self._call(c, clerk, "append", own, value)
                self.acknowledged[c] += 1
            elif r < 0.6:
                self._call(c, clerk, "get", own)
            elif r < 0.8:
                self._call(c, clerk, "get", shared)
            elif r < 0.9:
                self._call(c, clerk, "put", shared, f"p{c}.{n};")
            else:
                self._call(c, clerk, "append", shared, f"a{c}.{n};")

    def stop(self, timeout: float) -> int:
        """Stop issuing calls; wait up to `timeout` for those in flight. Returns how many never
        returned (they are recorded as such: they may or may not have taken effect)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            pending = dict(self._pending)
            self._pending.clear()
        for c, (op, key, value, call_time) in pending.items():
            self.recorder.record(c, op, key, value, None, call_time, NEVER_RETURNED)
        return len(pending)

    def check_appends(self, final_values: dict[int, str]) -> list[str]:
        """Each client's own key must hold its acknowledged appends, each once, in order (plus
        possibly its last append, if that never returned)."""
        problems = []
        for c, values in self.appended.items():
            acked = values[:self.acknowledged[c]]
            allowed = ["".join(acked)] + (["".join(values)] if len(values) > len(acked) else [])
            got = final_values[c]
            if got not in allowed:
                missing = [v for v in acked if v not in got]
                repeated = [v for v in values if got.count(v) > 1]
                problems.append(
                    f"client {c}: key c{c} holds {len(got)} characters that are not its "
                    f"{len(acked)} acknowledged appends in order"
                    + (f"; missing {missing[:3]}" if missing else "")
                    + (f"; repeated {repeated[:3]}" if repeated else "")
                    + ("; out of order" if not missing and not repeated else ""))
        return problems


class Nemesis:
    """Injects the faults of `kinds` in turn into `cluster`, one at a time."""

    def __init__(self, cluster: LocalCluster, kinds: list[str], seed: int, out: TextIO,
                 schedule: list[tuple[float, str]] | None = None) -> None:
        self.cluster = cluster
        self.kinds = kinds
        self.faults: list[Fault] = []
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._out = out
        self._schedule = schedule
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            if self._schedule is not None:
                origin = time.monotonic()
                for at, kind in self._schedule:
                    if self._stop.wait(max(0.0, origin + at - time.monotonic())):
                        return
                    self._inject(kind)
                return
            for turn in range(10**6):
                if self._stop.wait(QUIET) or not self.kinds:
                    return
                self._inject(self.kinds[turn % len(self.kinds)])
        except BaseException as exc:  # noqa: BLE001 - reported by run_check
            self.error = exc

    def _await_leader(self, timeout: float = 10.0) -> int | None:
        # Right after a fault the cluster may still be electing: aim at the next leader.
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            leader = self.cluster.leader()
            if leader is not None or time.monotonic() > deadline:
                return leader
            self._stop.wait(0.1)
        return None

    def _inject(self, kind: str) -> None:
        cluster = self.cluster
        leader = self._await_leader()
        if self._stop.is_set():
            return
        victim = leader if leader is not None else self._random.randrange(cluster.n)
        if kind == "partition":
            others = [i for i in range(cluster.n) if i != victim]
            self._random.shuffle(others)
            minority = [victim] + others[:max(0, (cluster.n - 1) // 2 - 1)]
            majority = [i for i in range(cluster.n) if i not in minority]
            cluster.partition([minority, majority])
            target = f"{sorted(minority)} | {sorted(majority)}"
        elif kind == "kill":
            cluster.kill(victim)
            target = f"node {victim}" + (" (leader)" if victim == leader else "")
        elif kind == "pause":
            cluster.pause(victim)
            target = f"node {victim}" + (" (leader)" if victim == leader else "")
        elif kind == "unreliable":
            cluster.set_unreliable(True)
            target = "all nodes"
        else:
            raise ValueError(f"unknown fault {kind!r}")
        if kind in ("partition", "unreliable"):
            # The nodes read the rules within a poll interval: count the fault from then on.
            time.sleep(2 * FAULT_POLL_INTERVAL)
        fault = Fault(kind, target, time.monotonic())
        self.faults.append(fault)
        print(f"  {fault.start - self.origin:6.1f} s  {kind:<10} {target}", file=self._out,
              flush=True)
        fault.cut_short = self._stop.wait(HOLD)
        if kind == "partition":
            cluster.heal()
        elif kind == "kill":
            cluster.restart(victim)
        elif kind == "pause":
            cluster.resume(victim)
        else:
            cluster.set_unreliable(False)
        fault.end = time.monotonic()

    origin = 0.0


def _recoveries(faults: list[Fault], operations: list[Operation]) -> None:
    for fault in faults:
        returns = [op.return_time for op in operations
                   if op.call_time >= fault.start and op.return_time != NEVER_RETURNED]
        fault.recovery = min(returns) - fault.start if returns else None


def heal_all(cluster: LocalCluster) -> None:
    cluster.heal()
    cluster.set_unreliable(False)
    for i in sorted(cluster.paused):
        cluster.resume(i)
    for i in range(cluster.n):
        if not cluster.is_running(i):
            cluster.restart(i)


def run_check(seconds: float, clients: int, nemesis: list[str], n: int = 5,
              directory: str | None = None, out_dir: str = "cluster-check", seed: int | None = None,
              out: TextIO = sys.stdout, schedule: list[tuple[float, str]] | None = None,
              emulator: bool = False, lab: int = 3) -> tuple[int, CheckReport]:
    """The whole check; returns (exit status, report). `schedule`, if given, replaces the
    round robin: (seconds from the start, fault kind) pairs, each held HOLD seconds."""
    seed = random.randrange(1 << 30) if seed is None else seed
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    ignore_in_git(out_path)
    if emulator:
        return _run_on_emulator(seconds, clients, n, seed, out_path, out)
    with tempfile.TemporaryDirectory(prefix="raftlabs-cluster-") as scratch:
        cluster = LocalCluster(directory or scratch, n=n, lab=lab)
        try:
            cluster.start()
            print(f"cluster: {n} nodes ({', '.join(cluster.addresses)}), {clients} clients, "
                  f"{seconds:g} s, nemesis: {','.join(nemesis) or 'none'}, seed {seed}",
                  file=out, flush=True)
            status, report = _run(cluster, seconds, clients, nemesis, seed, out_path, out, schedule)
        finally:
            cluster.stop()
        leftover = [pid for pid in cluster.pids() if process_alive(pid)]
        print(f"processes left after stop: {len(leftover)}", file=out)
        if leftover:
            status = max(status, EXIT_VIOLATION)
    return status, report


def _run(cluster: LocalCluster, seconds: float, clients: int, nemesis: list[str], seed: int,
         out_path: Path, out: TextIO,
         schedule: list[tuple[float, str]] | None) -> tuple[int, CheckReport]:
    closers = []

    def make_clerk(name: str) -> Clerk:
        clerk, close = clerk_for(cluster.addresses, name)
        closers.append(close)
        return clerk

    workload = Workload(make_clerk, clients, seed)
    chaos = Nemesis(cluster, nemesis, seed, out, schedule)
    start = time.monotonic()
    chaos.origin = start
    workload.start()
    chaos.start()
    time.sleep(seconds)
    chaos.stop()
    heal_all(cluster)
    never = workload.stop(DRAIN_TIMEOUT)
    elapsed = time.monotonic() - start
    final_clerk, close = clerk_for(cluster.addresses, "final-reader")
    closers.append(close)
    finals = {}
    for c in range(clients):
        with workload.recorder.call("final", "get", f"c{c}") as call:
            call.output = finals[c] = final_clerk.get(f"c{c}")
    for close in closers:
        close()
    if chaos.error is not None:
        raise chaos.error
    report = CheckReport(workload.recorder.operations(), chaos.faults, elapsed,
                         never_returned=never)
    _recoveries(report.faults, report.operations)
    report.append_problems = workload.check_appends(finals)
    return _verdict(report, out_path, out)


def _verdict(report: CheckReport, out_path: Path, out: TextIO) -> tuple[int, CheckReport]:
    latencies = report.latencies()
    print(f"operations: {len(report.completed)} completed, {report.never_returned} never returned; "
          f"{report.throughput():.1f} ops/s; "
          f"latency p50 {percentile(latencies, 50) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, 99) * 1000:.1f} ms", file=out)
    for fault in report.faults:
        recovery = "no call returned" if fault.recovery is None else f"{fault.recovery:.2f} s"
        note = " (cut short by the end of the run)" if fault.cut_short else ""
        print(f"  recovery after {fault.kind} of {fault.target}: {recovery}{note}", file=out)
    history = out_path / "history.txt"
    history.write_text(format_history(report.operations))
    result = check_kv(report.operations, timeout=CHECK_TIMEOUT)
    report.outcome = result.result
    page = write_html(result, out_path / "linearizability.html", title="labs cluster check")
    print(f"history: {history} ({len(report.operations)} operations); report: {page}", file=out)
    status = EXIT_OK
    if result.result is CheckOutcome.ILLEGAL:
        print("NOT LINEARIZABLE", file=out)
        print(explain_failure(result), file=out)
        status = EXIT_VIOLATION
    elif result.result is CheckOutcome.UNKNOWN:
        print(f"linearizability: undecided within {CHECK_TIMEOUT:g} s", file=out)
        status = EXIT_UNDECIDED
    else:
        print(f"linearizable ({result.seconds:.2f} s to check)", file=out)
    for problem in report.append_problems:
        print(f"APPENDS: {problem}", file=out)
    if report.append_problems:
        status = EXIT_VIOLATION
    else:
        print("appends: every client's acknowledged appends present once, in order", file=out)
    return status, report


def _run_on_emulator(seconds: float, clients: int, n: int, seed: int, out_path: Path,
                     out: TextIO) -> tuple[int, CheckReport]:
    """The same clients on labrpc's reliable emulated network, for comparison (no faults)."""
    import labrpc
    from kvraft.client import Clerk
    from proto.kvraftpb import KvClient
    from proto.raftpb import RaftClient
    from raft.persister import MemoryPersister

    net = labrpc.Network()
    kvs = []
    for i in range(n):
        ends = []
        for j in range(n):
            end = net.create_client(f"s{i}-to-{j}")
            net.connect(end, f"server-{j}")
            net.enable(end, True)
            ends.append(end)
        server = labrpc.Server(f"server-{i}")
        kv, _ = add_kv_server(server, [RaftClient(e) for e in ends], i, MemoryPersister(), 8192)
        net.add_server(server)
        kvs.append(kv)
    counter = iter(range(10**9))

    def make_clerk(name: str) -> Clerk:
        ends = []
        for j in range(n):
            end = net.create_client(f"{name}-{next(counter)}")
            net.connect(end, f"server-{j}")
            net.enable(end, True)
            ends.append(end)
        return Clerk(name, [KvClient(e) for e in ends])

    print(f"emulator (labrpc, reliable): {n} servers, {clients} clients, {seconds:g} s, "
          f"seed {seed}",
          file=out, flush=True)
    workload = Workload(make_clerk, clients, seed)
    start = time.monotonic()
    workload.start()
    time.sleep(seconds)
    never = workload.stop(DRAIN_TIMEOUT)
    elapsed = time.monotonic() - start
    final = make_clerk("final-reader")
    finals = {}
    for c in range(clients):
        with workload.recorder.call("final", "get", f"c{c}") as call:
            call.output = finals[c] = final.get(f"c{c}")
    for kv in kvs:
        kv.kill()
    net.shutdown()
    report = CheckReport(workload.recorder.operations(), [], elapsed, never_returned=never)
    report.append_problems = workload.check_appends(finals)
    return _verdict(report, out_path, out)
