"""The KV tester (lab 3): a replicated key/value service on an emulated network, its clerks, and
the checks.

`Config` plays the part of the lab's KV config. Each server is one labrpc server hosting two
services: the Raft peer (`kv.rf`, for the other servers' Raft) and the KV service (`Node(kv)`,
for the clerks). The tester starts and shuts servers down with copies of their persisted state,
partitions the servers among themselves, and hands out clerks whose ends reach chosen servers.

Every clerk operation a test makes goes through a `TesterClerk`, which records it in the
test's history (`labs.linearizability.Recorder`) with its call and return times on the
monotonic clock. `end()` checks that history for linearizability with a 1 s budget: a verdict
of "not linearizable" fails the test and leaves the history and an HTML picture of it in
test-failures/; running out of time passes, with a note. What the Raft tester has too (the
network, the servers and their saved persisters, summary line, time limit, background
failures, the leadership monitor, teardown) comes from `lab_harness.Cluster`.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import labrpc
from kvraft.client import Clerk
from kvraft.server import KvServer
from kvraft.server import Node as KvNode
from lab_harness import Cluster, TesterStopped
from labs.linearizability import (
    CheckOutcome,
    CheckResult,
    Recorder,
    check_kv,
    format_history,
    write_html,
)
from labs.linearizability.kv_history import LINEARIZABILITY_CHECK_TIMEOUT
from labs.linearizability.model import APPEND, GET, PUT
from labs.linearizability.visualize import explain_failure
from proto.kvraftpb import KvClient, KvService
from proto.raftpb import RaftClient, RaftService

__all__ = ["Config", "TesterClerk", "ELECTION_TIMEOUT", "LINEARIZABILITY_CHECK_TIMEOUT"]

log = logging.getLogger("tester")

# --- Timing (the numbers of the Go and Rust testers) ---------------------------------------------
ELECTION_TIMEOUT = 1.0                # "the tester generously allows elections to complete in 1 s"
# LINEARIZABILITY_CHECK_TIMEOUT (1 s) is the checker's: past it, the history is assumed ok.

FAILURE_DIR = "test-failures"         # under the rootdir: illegal histories and their pictures


class _ClerkEnd:
    """A clerk's end to one server, wrapping the network's end. Once the test is tearing down,
    every call raises TesterStopped, so a clerk retrying forever (in a minority, say) ends with
    the test."""

    __slots__ = ("_end", "_finished", "name")

    def __init__(self, end: labrpc.ClientEnd, finished: threading.Event) -> None:
        self._end, self._finished, self.name = end, finished, end.name

    def call(self, method: Any, args: Any) -> Any:
        if self._finished.is_set():
            raise TesterStopped("the test is over")
        return self._end.call(method, args)

    def call_future(self, method: Any, args: Any) -> Future:
        if self._finished.is_set():
            raise TesterStopped("the test is over")
        return self._end.call_future(method, args)


class TesterClerk:
    """A clerk of the service under test that records each of its operations in the history.

    `id` names the clerk in the history (one lane per clerk in the HTML picture); `end_names[j]`
    is its end to server j."""

    def __init__(self, cfg: Config, id: int, clerk: Clerk, end_names: list[str]) -> None:
        self.cfg = cfg
        self.id = id
        self.clerk = clerk
        self.end_names = end_names

    def __repr__(self) -> str:
        return f"TesterClerk({self.id})"

    def get(self, key: str) -> str:
        self.cfg.count_op()
        with self.cfg.history.call(self.id, GET, key) as call:
            value = self.clerk.get(key)
            if not isinstance(value, str):
                self.cfg.fail(f"clerk {self.id}: get({key!r}) returned "
                              f"{type(value).__name__} {value!r:.60}, expected a str")
            call.output = value
        return value

    def put(self, key: str, value: str) -> None:
        self.cfg.count_op()
        with self.cfg.history.call(self.id, PUT, key, value):
            self.clerk.put(key, value)

    def append(self, key: str, value: str) -> None:
        self.cfg.count_op()
        with self.cfg.history.call(self.id, APPEND, key, value):
            self.clerk.append(key, value)


class Config(Cluster[KvNode]):
    """A KV service of `n` servers, its clerks and the bookkeeping the checks need.

    Per server i, `Cluster` keeps `nodes[i]` (None while shut down), `saved[i]` and
    `end_names[i][j]` (its Raft end to server j). `_lock` guards these and `clerks`.
    `maxraftstate` is None when servers must not snapshot (3A).
    """

    server_prefix = "kv"

    def __init__(self, n: int, unreliable: bool = False, maxraftstate: int | None = None,
                 report: Callable[[str], None] = print, failure_dir: Path | None = None,
                 test_name: str = "test") -> None:
        super().__init__(n, report)
        self.maxraftstate = maxraftstate
        self.failure_dir = failure_dir if failure_dir is not None else Path.cwd() / FAILURE_DIR
        self.test_name = test_name
        # Long delays off: a call to a dead end fails within 100 ms, so clerks move on fast.
        self.net.set_long_delays(False)

        self.clerks: dict[int, TesterClerk] = {}
        self._clerk_ids = itertools.count()
        # Each clerk call, recorded when it returns (or is abandoned at teardown).
        self.history = Recorder()
        if self.timeline is not None:
            self.timeline.extra_events = self._timeline_ops
        self._ops = 0
        self.rpcs_begin = self.ops_begin = 0

        try:
            for i in range(n):
                self.start_server(i)
            self.connect_all()
            self.net.set_reliable(not unreliable)
            self.start_monitor()
        except BaseException:
            self.cleanup(check_time_limit=False)  # no fixture will see this config
            raise

    def all(self) -> list[int]:
        return list(range(self.n))

    # --- the summary line ------------------------------------------------------------------------

    def begin(self, title: str) -> None:
        """Start the part of the test the summary line measures."""
        super().begin(title)
        self.rpcs_begin = self.rpc_total()
        with self._lock:
            self.ops_begin = self._ops

    def end(self) -> None:
        """Check the history so far, then the time limit and background failures, and print
        the summary line."""
        self.check_history()
        super().end()

    def summary_line(self, seconds: float) -> str:
        """Seconds, servers, RPCs (the clerks' too) and clerk operations since begin()."""
        rpcs = self.rpc_total() - self.rpcs_begin
        with self._lock:
            ops = self._ops - self.ops_begin
        return f"{self.title} ... Passed --  {seconds:4.1f}  {self.n} {rpcs:5d} {ops:4d}"

    def count_op(self) -> None:
        with self._lock:
            self._ops += 1

    # --- the network between servers --------------------------------------------------------------

    def _enable_links(self, i: int, others: Iterable[int], enabled: bool) -> None:
        """Enable or disable the Raft ends from i to each of `others` and back."""
        with self._lock:
            ends = []
            for j in others:
                if self.end_names[i] is not None:
                    ends.append(self.end_names[i][j])
                if self.end_names[j] is not None:
                    ends.append(self.end_names[j][i])
        for end in ends:
            self.net.enable(end, enabled)

    def connect(self, i: int, to: Iterable[int]) -> None:
        """Let server i and each server in `to` reach each other."""
        self._enable_links(i, list(to), True)

    def disconnect(self, i: int, from_: Iterable[int]) -> None:
        """Cut server i off from each server in `from_`, both ways."""
        self._enable_links(i, list(from_), False)

    def connect_one_way(self, senders: Iterable[int], receivers: Iterable[int]) -> None:
        """Let each server in `senders` call each server in `receivers` (and hear its replies),
        leaving the calls the other way as they are: half a heal."""
        receivers = list(receivers)
        with self._lock:
            ends = [self.end_names[i][j] for i in senders if self.end_names[i] is not None
                    for j in receivers]
        for end in ends:
            self.net.enable(end, True)

    def connect_all(self) -> None:
        """Heal every partition between the servers."""
        for i in range(self.n):
            self.connect(i, self.all())

    def partition(self, p1: Iterable[int], p2: Iterable[int]) -> None:
        """Split the servers into two groups that cannot reach each other. Clerks' ends are
        left alone: a clerk may still reach a server in either group."""
        p1, p2 = list(p1), list(p2)
        log.info("partition %s | %s", p1, p2)
        for group, other in ((p1, p2), (p2, p1)):
            for i in group:
                self.disconnect(i, other)
                self.connect(i, group)

    def make_partition(self) -> tuple[list[int], list[int]]:
        """A majority without the current leader and a minority that has it (last)."""
        leader = self.leader()
        leader = 0 if leader is None else leader
        others = [i for i in range(self.n) if i != leader]
        majority = self.n // 2 + 1
        return others[:majority], others[majority:] + [leader]

    def leader(self) -> int | None:
        """A running server whose Raft peer claims to lead, or None."""
        for i, node in self.live_nodes():
            if node.is_leader():
                return i
        return None

    # --- starting and shutting down servers -------------------------------------------------------

    def start_server(self, i: int) -> None:
        """Start server i (again) from its persisted state. Its Raft ends start disabled;
        clerks' ends to it work at once."""
        log.info("start_server(%d)", i)
        names = self.new_end_names(f"kv-{i}-raft")
        ends = self.make_ends(names, i)
        with self._lock:
            self.end_names[i] = names
            # A fresh persister holding the last persisted state: whatever an older instance
            # still writes to its own persister is not seen by this one.
            persister = self.renew_persister(i)
        kv = KvServer([RaftClient(end) for end in ends], i, persister, self.maxraftstate)
        node = KvNode(kv)
        with self._lock:
            self.nodes[i] = node
        server = labrpc.Server(self.server_name(i))
        server.add_service(KvService, node)
        server.add_service(RaftService, kv.rf)
        self.net.add_server(server)
        if self.timeline is not None:
            self.timeline.start(i)

    def shutdown_server(self, i: int) -> None:
        """Stop server i as a crash would, keeping what it had persisted."""
        log.info("shutdown_server(%d)", i)
        self.disconnect(i, self.all())
        # Delete the server before replacing its persister: calls in flight fail now, so no
        # clerk hears "done" for an operation persisted only in the persister dropped below.
        self.net.delete_server(self.server_name(i))
        with self._lock:
            if self.saved[i] is not None:
                self.renew_persister(i)
            node = self.nodes[i]
            self.nodes[i] = None
        if node is not None:
            if self.timeline is not None:
                self.timeline.crash(i)
            node.kill()

    # --- clerks -----------------------------------------------------------------------------------

    def make_client(self, to: Iterable[int]) -> TesterClerk:
        """A new clerk with a fresh end to every server, only those to `to` enabled. The clerk
        gets its ends in random order, so it cannot assume server 0 leads."""
        clerk_id = next(self._clerk_ids)
        names = self.new_end_names(f"clerk-{clerk_id}")
        ends = [_ClerkEnd(end, self.finished) for end in self.make_ends(names, f"C{clerk_id}")]
        shuffled = ends[:]
        random.shuffle(shuffled)
        clerk = Clerk(f"clerk-{clerk_id}", [KvClient(end) for end in shuffled])
        tester_clerk = TesterClerk(self, clerk_id, clerk, names)
        with self._lock:
            self.clerks[clerk_id] = tester_clerk
        self.connect_client(tester_clerk, to)
        return tester_clerk

    def delete_client(self, ck: TesterClerk) -> None:
        """Forget a clerk the test no longer uses."""
        with self._lock:
            self.clerks.pop(ck.id, None)

    def connect_client(self, ck: TesterClerk, to: Iterable[int]) -> None:
        """Let the clerk reach each server in `to` (as well as those it reached before)."""
        for j in to:
            self.net.enable(ck.end_names[j], True)

    def disconnect_client(self, ck: TesterClerk, from_: Iterable[int]) -> None:
        for j in from_:
            self.net.enable(ck.end_names[j], False)

    # --- linearizability --------------------------------------------------------------------------

    def check_history(self) -> CheckResult:
        """Check every clerk operation recorded so far against the KV model, with a 1 s budget.

        Not linearizable fails the test, naming the files that show why; out of time prints a
        note and passes, as the original testers do. Operations still in flight are not in the
        history yet, so tests check when none is (or none can have taken effect)."""
        result = check_kv(self.history.operations(), timeout=LINEARIZABILITY_CHECK_TIMEOUT)
        if result.result is CheckOutcome.UNKNOWN:
            self.report("info: linearizability check timed out, assuming history is ok")
        elif result.result is CheckOutcome.ILLEGAL:
            self.fail("history is not linearizable\n" + explain_failure(result)
                      + self._save_failure(result))
        return result

    def _save_failure(self, result: CheckResult) -> str:
        """Write the history (for `labs check-history`) and its HTML picture to the failure
        directory; return the lines naming them for the failure message."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.test_name)
        stem = f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
        history = self.failure_dir / f"{stem}.txt"
        page = self.failure_dir / f"{stem}.linearizability.html"
        try:
            self.failure_dir.mkdir(parents=True, exist_ok=True)
            history.write_text(format_history(self.history.operations()), encoding="utf-8")
            write_html(result, page, title=self.test_name)
        except OSError as exc:  # the verdict matters more than the files
            return f"\n(could not save the history in {self.failure_dir}: {exc})"
        self.linearizability_page = page  # the timeline page links to it
        return f"\nvisualization: {page.resolve()}\nhistory: {history.resolve()}"

    def _timeline_ops(self) -> list[tuple]:
        """The clerks' calls as timeline events (times on the timeline's clock)."""
        events = []
        for op in self.history.operations():
            ret = None if op.return_time == math.inf else op.return_time
            events.append(("op", op.call_time, op.client, op.input.op, op.input.key,
                           op.input.value, op.output, ret))
        return events

    # Teardown (lab_harness's cleanup): Cluster.shut_down kills every server, then stops the
    # network, failing calls still in flight.
