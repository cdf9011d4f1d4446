"""What the Raft tester (lab 2) and the KV tester (lab 3) share, and the pytest plugin behind them.

The lab testers build a cluster of peers on an emulated network, poke it, and check what it
does. Each suite's `Config` (tests/raft/raft_harness.py, tests/kvraft/kv_harness.py) extends
`Cluster`, which owns the bookkeeping both need:

* the emulated network (`net`), the running peers (`nodes`), the persister saved for each
  server's next instance (`saved`), each server's ends to the others (`end_names`), and what is
  read from them (`rpc_total`, `log_size`, `snapshot_size`, `is_alive`, `live_nodes`);
* the summary line: `begin(title)` starts the measured part, `end()` checks the time limit and
  the background failures, then prints the suite's line through the terminal reporter;
* the 120 s limit, measured from the cluster's creation (`check_timeout`);
* failures found off the test's thread (`record_failure`), raised in the test thread at its
  next check (or during `sleep`), so nothing is lost in a background thread;
* helper threads (`spawn`, `stop_flag`) that end when the test ends, even a failed one;
* the leadership monitor: every 50 ms it asks every live peer for its state, and two peers
  leading in one term fail the test;
* the run's timeline (labs/timeline): the peers' terms and leadership as the monitor samples
  them, what each suite records (crashes, applies, snapshots, clerk operations) and every RPC as
  labrpc carries or loses it. When a test fails, the failure names the page drawn from it
  (`timeline: test-failures/<test>-<time>.timeline.html`) and its events file. LABS_TIMELINE=off
  records nothing.

The plugin half (registered by tests/conftest.py) turns these into fixtures and hooks. A test
that uses the `lab_clusters` fixture, through its suite's `make_config`, is a lab test: it is
marked `lab` and gets a pytest-timeout watchdog shortly after the 120 s limit (method signal:
on expiry every live thread's stack is dumped and the test fails). After the test, every
cluster it built is torn down, and any thread the test started that is still alive 2 s later
fails the test, by name and stack. A thread that dies of an exception while the test runs fails
it too: a peer's thread that raises stops that peer's work silently, and the symptom it leaves
(an agreement that never comes) would not name the cause. A lab test's threads run on one CPU,
one of its own where one is free (labrpc/affinity.py). Under pytest-xdist (`make test_<part>`
runs a part's tests two at a time) a test's printed lines travel with its reports, and the
pytest in control prints them.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, NoReturn, Protocol, TypeVar

import pytest

import labrpc
from labrpc.affinity import one_cpu
from labs.timeline import EVENTS_SUFFIX, PAGE_SUFFIX, Timeline, read_events, recording_enabled
from labs.timeline import write_page as write_timeline_page
from labs.timeline.recorder import EVENTS_LINE, PAGE_LINE, safe_stem
from raft.persister import MemoryPersister

__all__ = [
    "Cluster", "ClusterRegistry", "LeadershipMonitor", "Spawned", "TesterFailure",
    "TesterStopped", "PeerState", "TEST_TIME_LIMIT", "WATCHDOG_SECONDS", "MONITOR_INTERVAL",
]

log = logging.getLogger("tester")

# --- Limits ---------------------------------------------------------------------------------------
TEST_TIME_LIMIT = 120.0           # a whole test, measured from cluster creation
WATCHDOG_MARGIN = 10.0            # pytest-timeout stops a test this long after the limit
WATCHDOG_SECONDS = TEST_TIME_LIMIT + WATCHDOG_MARGIN
MONITOR_INTERVAL = 0.050          # the leadership monitor samples every peer every 50 ms
MONITOR_STOP_TIMEOUT = 1.0        # teardown waits this long for the monitor to stop
KILL_TIMEOUT = 2.0                # teardown: kill() must return within this (peers promise 1 s)
WATCH_INTERVAL = 0.100            # sleep() looks for background failures this often
THREAD_EXIT_GRACE = 2.0           # threads of a test must be gone this long after teardown
THREAD_EXIT_POLL = 0.050
LEAKED_STACK_FRAMES = 4           # innermost frames shown for each thread that did not exit
NETWORK_SHUTDOWN_TIMEOUT = 2.0    # teardown: labrpc handler threads get this long to finish

LAB_FIXTURE = "lab_clusters"      # a test using this fixture (via make_config) is a lab test
FAILURE_DIR = "test-failures"     # under the rootdir: the pages of failed tests
FAILURE_TEXT_LIMIT = 20_000       # characters of the failure a timeline page shows


_end_ids = itertools.count()      # every set of ends a cluster makes gets fresh names


class TesterFailure(AssertionError):
    """A check of the tester failed; the message says what was expected and what was seen."""


class TesterStopped(BaseException):
    """Raised inside a helper thread (a clerk stuck in a minority, say) once the test is being
    torn down, to end the thread quietly. A BaseException, so that code under test catching
    Exception to retry does not swallow it."""


class PeerState(Protocol):
    term: int
    is_leader: bool


class Peer(Protocol):
    """What the monitor and teardown need of a peer (a Raft Node or a KV server Node)."""

    def get_state(self) -> PeerState: ...

    def kill(self) -> None: ...


P = TypeVar("P", bound=Peer)


class Cluster(Generic[P]):
    """The part of a lab tester's config that does not depend on what the peers run.

    It owns the network and, per server i: `nodes[i]` (None while down), `saved[i]` (the
    persister its current or next instance uses; None before its first start) and
    `end_names[i][j]` (its end to server j; None before its first start). `_lock` guards these
    lists and whatever a subclass keeps beside them. Server i is the labrpc server
    `server_name(i)`.

    Subclasses start the peers, then call `start_monitor()`; they implement `summary_line()`,
    and override `shut_down()` when killing a peer takes more than `kill()`.
    """

    server_prefix = "server"  # server i is "<prefix>-<i>" on the network

    def __init__(self, n: int, report: Callable[[str], None] = print) -> None:
        self.t_created = time.monotonic()
        self.n = n
        self._report = report

        self._failures_lock = threading.Lock()
        self._failures: list[str] = []       # apply errors and monitor findings, in order
        self._reported = 0                   # how many of them have been raised already
        self._spawned: list[Spawned] = []
        self._stop_flags: list[threading.Event] = []
        # Set when teardown begins: helper threads then stop quietly instead of failing.
        self.finished = threading.Event()

        self.title = ""
        self.t_begin = time.monotonic()
        self._monitor = LeadershipMonitor(self)
        # What the run did, for the page a failure leaves (None: LABS_TIMELINE=off).
        self.timeline: Timeline | None = Timeline() if recording_enabled() else None
        if self.timeline is not None:
            self.timeline.meta["peers"] = n
        self.linearizability_page: Path | None = None   # lab 3 sets it when it draws one
        self._timeline_lines: list[str] | None = None   # once written: the lines naming it

        self._lock = threading.Lock()
        self.nodes: list[P | None] = [None] * n
        self.saved: list[MemoryPersister | None] = [None] * n
        self.end_names: list[list[str] | None] = [None] * n
        self.net = labrpc.Network()
        self.record_network(self.net)

    # --- what a suite's config provides --------------------------------------------------------

    def summary_line(self, seconds: float) -> str:
        """The line end() prints; `seconds` since begin()."""
        raise NotImplementedError

    def shut_down(self) -> list[str]:
        """Kill every peer, then stop the network (failing calls still in flight); return the
        problems seen doing so."""
        problems = self.kill_all(self.live_nodes())
        self.stop_network()
        return problems

    def start_monitor(self) -> None:
        self._monitor.start()

    def record_network(self, net: labrpc.Network) -> None:
        """Let the timeline record `net`'s calls and faults (call before configuring it)."""
        if self.timeline is not None:
            net.set_trace(self.timeline.events)

    # --- servers, their ends and their persisters ----------------------------------------------

    def server_name(self, i: int) -> str:
        return f"{self.server_prefix}-{i}"

    def new_end_names(self, label: str) -> list[str]:
        """Fresh names for one set of ends to every server: `<label>-to-<j>-<generation>`."""
        generation = next(_end_ids)
        return [f"{label}-to-{j}-{generation}" for j in range(self.n)]

    def make_ends(self, names: list[str], owner: int | str) -> list[labrpc.ClientEnd]:
        """Create the ends `names`, names[j] tied to server j, all disabled; the timeline
        draws them as `owner`'s (a server number, or a clerk's label)."""
        ends = []
        for j, name in enumerate(names):
            end = self.net.create_client(name)
            self.net.connect(end, self.server_name(j))
            ends.append(end)
            if self.timeline is not None:
                self.timeline.end(name, owner, j)
        return ends

    def renew_persister(self, i: int) -> MemoryPersister:
        """Give server i a fresh persister holding what its last one held (an empty one the first
        time): whatever an older instance still writes to the old one is lost, as a crash loses
        it. Hold the lock."""
        old = self.saved[i]
        persister = self.saved[i] = MemoryPersister() if old is None else old.copy()
        return persister

    def is_alive(self, i: int) -> bool:
        with self._lock:
            return self.nodes[i] is not None

    def live_nodes(self) -> list[tuple[int, P]]:
        """(server, node) for every peer that is running now."""
        with self._lock:
            return [(i, node) for i, node in enumerate(self.nodes) if node is not None]

    # --- the network and the counters ------------------------------------------------------------

    def set_unreliable(self, unreliable: bool) -> None:
        self.net.set_reliable(not unreliable)

    def stop_network(self) -> None:
        """Shut the network down; labrpc's handler threads get a moment to finish."""
        self.net.shutdown(NETWORK_SHUTDOWN_TIMEOUT)

    def rpc_total(self) -> int:
        """RPCs sent so far, by anyone (delivered or not)."""
        return self.net.total_count()

    def log_size(self) -> int:
        """The largest persisted Raft state of any server, in bytes."""
        with self._lock:
            persisters = [p for p in self.saved if p is not None]
        return max(p.raft_state_size() for p in persisters)

    def snapshot_size(self) -> int:
        """The largest snapshot of any server, in bytes."""
        with self._lock:
            persisters = [p for p in self.saved if p is not None]
        return max(p.snapshot_size() for p in persisters)

    # --- the summary line ------------------------------------------------------------------------

    def begin(self, title: str) -> None:
        """Start the part of the test the summary line measures."""
        log.info("%s ...", title)
        self.title = title
        if self.timeline is not None:
            self.timeline.meta["title"] = title
            self.timeline.note(f"begin: {title}")
        self.t_begin = time.monotonic()

    def end(self) -> None:
        """Check the time limit and background failures, then print the summary line."""
        self.check_timeout()
        self.check_background_failures()
        self._report(self.summary_line(time.monotonic() - self.t_begin))

    def report(self, line: str) -> None:
        """Print a line of the test's output (summary lines, notes), past output capture."""
        self._report(line)

    def check_timeout(self) -> None:
        if time.monotonic() - self.t_created > TEST_TIME_LIMIT:
            self.fail(f"test took longer than {TEST_TIME_LIMIT:.0f} seconds")

    # --- failures --------------------------------------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        raise TesterFailure(message)

    def record_failure(self, message: str) -> None:
        """Called off the test thread: the test thread raises `message` at its next check."""
        with self._failures_lock:
            if message in self._failures:
                return
            self._failures.append(message)
        log.error("%s", message)

    def check_background_failures(self) -> None:
        """Raise, in the caller's thread, what the monitor or spawned threads found."""
        with self._failures_lock:
            new = self._failures[self._reported:]
            self._reported = len(self._failures)
        if new:
            self.fail("\n".join(new))
        for spawned in list(self._spawned):
            spawned.raise_failure()

    def sleep(self, seconds: float) -> None:
        """Sleep, but raise at once (not after the sleep) what the monitor or spawned threads
        find meanwhile: a clerk that read a wrong value fails the test when it does."""
        deadline = time.monotonic() + seconds
        while True:
            self.check_background_failures()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, WATCH_INTERVAL))

    def unreported_failures(self) -> list[str]:
        with self._failures_lock:
            new = self._failures[self._reported:]
            self._reported = len(self._failures)
        texts = [spawned.failure_text() for spawned in self._spawned]
        return new + [text for text in texts if text is not None]

    # --- helper threads --------------------------------------------------------------------------

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str | None = None) -> Spawned:
        """Run fn(*args) on a new thread; its failure fails the test (at join or next check)."""
        spawned = Spawned(fn, args, name or f"tester-{getattr(fn, '__name__', 'helper')}")
        self._spawned.append(spawned)
        spawned.start()
        return spawned

    def stop_flag(self) -> threading.Event:
        """An Event for a test's helper loops; teardown sets it too, so they end even when
        the test fails before setting it."""
        flag = threading.Event()
        self._stop_flags.append(flag)
        if self.finished.is_set():
            flag.set()
        return flag

    # --- teardown --------------------------------------------------------------------------------

    def cleanup(self, check_time_limit: bool) -> list[str]:
        """Stop the tester's threads, kill every peer and shut the network down.

        Returns the problems found (background failures nobody raised yet, a kill() that
        does not return, the time limit); the fixture fails the test with them."""
        self.finished.set()
        for flag in self._stop_flags:
            flag.set()
        self._monitor.stop()
        if self._monitor.is_alive():
            self._monitor.join(MONITOR_STOP_TIMEOUT)
        problems = self.shut_down()
        problems += self.unreported_failures()
        if check_time_limit and time.monotonic() - self.t_created > TEST_TIME_LIMIT:
            problems.append(f"test took longer than {TEST_TIME_LIMIT:.0f} seconds")
        if self.timeline is not None:
            self.timeline.close()
        return problems

    def write_timeline(self, failure: str) -> list[str]:
        """Write the timeline's events and its page into the timeline's directory; return the
        lines that name them in the failure message (the same lines again if already written:
        a test failing in its call and again in teardown gets one page, up to the first)."""
        timeline = self.timeline
        if self._timeline_lines is not None or timeline is None or timeline.dump_dir is None:
            return self._timeline_lines or []
        stem = f"{timeline.dump_stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        for k in range(1, 100):  # several clusters in one test, or a second within a second
            events_path = timeline.dump_dir / f"{stem}{EVENTS_SUFFIX}"
            if not events_path.exists():
                break
            stem = f"{timeline.dump_stem}-{time.strftime('%Y%m%d-%H%M%S')}-{k + 1}"
        page = timeline.dump_dir / f"{stem}{PAGE_SUFFIX}"
        extra = {}
        if self.linearizability_page is not None:  # beside the page: a relative link
            extra["linearizability"] = self.linearizability_page.name
        try:
            timeline.write_events(events_path, failure=failure[:FAILURE_TEXT_LIMIT],
                                  test=timeline.dump_stem, **extra)
            meta, events = read_events(events_path)
            write_timeline_page(page, meta, events)
        except (OSError, ValueError) as exc:  # the verdict matters more than the page
            self._timeline_lines = [f"(could not write the timeline in {timeline.dump_dir}: {exc})"]
            return self._timeline_lines
        self._timeline_lines = [f"{PAGE_LINE}{_shown(page)}", f"{EVENTS_LINE}{_shown(events_path)}"]
        return self._timeline_lines

    def thread_died(self, args: threading.ExceptHookArgs) -> None:
        """threading.excepthook, while this cluster runs: a thread's uncaught exception."""
        if self.finished.is_set() or isinstance(args.exc_value, labrpc.RpcError):
            # Teardown, or a call that failed: threads of killed peers may fail on the closed
            # network, and which peer a thread belongs to is the student's secret.
            return
        name = args.thread.name if args.thread is not None else "a thread"
        frames = traceback.extract_tb(args.exc_traceback)
        where = ""
        if frames:
            frame = frames[-1]
            where = f" at {_relative(frame.filename)}:{frame.lineno} in {frame.name}()"
        self.record_failure(f"thread {name} died: {args.exc_type.__name__}: {args.exc_value}"
                            f"{where}; a thread that raises stops its work silently (pytest's "
                            f"warnings show the whole traceback)")

    @staticmethod
    def kill_all(nodes: list[tuple[int, P]]) -> list[str]:
        """Kill the peers in parallel, on threads of their own, so that a kill() that hangs is
        reported rather than hanging the run."""
        problems = []
        killers = []
        for i, node in nodes:
            killer = threading.Thread(target=node.kill, name=f"tester-kill-{i}", daemon=True)
            killer.start()
            killers.append((i, killer))
        deadline = time.monotonic() + KILL_TIMEOUT
        for i, killer in killers:
            killer.join(max(0.0, deadline - time.monotonic()))
            if killer.is_alive():
                problems.append(f"server {i}: kill() did not return within {KILL_TIMEOUT:.0f} s")
        return problems


class LeadershipMonitor(threading.Thread):
    """Samples every live peer every 50 ms: two servers leading in one term fails the test.

    It remembers each term's leader for the whole test, so a second leader is caught even
    when the two never lead at the same instant."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(name="tester-leadership-monitor", daemon=True)
        self.cluster = cluster
        self._stopped = threading.Event()
        self.leader_of_term: dict[int, int] = {}

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        timeline = self.cluster.timeline
        while not self._stopped.wait(MONITOR_INTERVAL):
            for i, node in self.cluster.live_nodes():
                try:
                    state = node.get_state()
                except Exception as exc:
                    self.cluster.record_failure(f"server {i}: get_state() raised "
                                                f"{type(exc).__name__}: {exc}")
                    continue
                if timeline is not None:
                    timeline.role(i, state.term, state.is_leader)
                if not state.is_leader:
                    continue
                leader = self.leader_of_term.setdefault(state.term, i)
                if leader != i:
                    self.cluster.record_failure(
                        f"term {state.term} has 2 (>1) leaders: servers {leader} and {i} "
                        "(seen by the leadership monitor)")


class Spawned:
    """A helper thread of a test (a clerk, a concurrent one()). join() returns its result
    or raises its failure in the joining thread. A thread ended by TesterStopped (teardown
    began) returns None and is no failure."""

    def __init__(self, fn: Callable[..., Any], args: tuple, name: str) -> None:
        self._fn, self._args = fn, args
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._result: Any = None
        self._error: BaseException | None = None
        self._raised = False

    @property
    def name(self) -> str:
        return self._thread.name

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._fn(*self._args)
        except TesterStopped:
            pass
        except BaseException as exc:
            log.error("%s failed: %s", self._thread.name, exc)
            self._error = exc

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TesterFailure(f"{self._thread.name} did not finish within {timeout} s")
        self.raise_failure()
        return self._result

    def raise_failure(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def failure_text(self) -> str | None:
        if self._error is None or self._raised:
            return None
        self._raised = True
        return f"{self._thread.name} failed: {type(self._error).__name__}: {self._error}"


# --- The pytest plugin ---------------------------------------------------------------------------

_call_report = pytest.StashKey[pytest.TestReport]()


class ClusterRegistry:
    """The `lab_clusters` fixture's value: the clusters a test built, torn down after it.

    A suite's `make_config` fixture builds its Config with `report=registry.report` and hands
    it to `track()`."""

    def __init__(self, reporter: Any, failure_dir: Path | None = None,
                 test_name: str = "test",
                 worker_lines: list[tuple[str, object]] | None = None) -> None:
        self._reporter = reporter
        self.clusters: list[Cluster] = []
        self.failure_dir = failure_dir     # where a failed test's timeline goes
        self.test_name = test_name
        self._worker_lines = worker_lines

    def report(self, line: str) -> None:
        """Write a line past output capture, so summary lines show in plain `make` output.

        In a pytest-xdist worker (`make test_2a` runs a part's tests two at a time) a worker's
        own output reaches no terminal: the line travels with the test's reports instead (as a
        user property), and the controlling pytest prints it (`_ShowWorkerLines`)."""
        if self._worker_lines is not None:
            self._worker_lines.append((WORKER_LINE_PROPERTY, line))
        elif self._reporter is not None:
            self._reporter.write_line(line)
        else:
            print(line, file=sys.__stdout__, flush=True)

    def track(self, cluster: Cluster) -> Cluster:
        self.clusters.append(cluster)
        if cluster.timeline is not None:
            cluster.timeline.dump_dir = self.failure_dir
            cluster.timeline.dump_stem = safe_stem(self.test_name)
        return cluster

    def write_timelines(self, failure: str) -> list[str]:
        """The test failed: write each cluster's timeline; the lines naming the pages."""
        lines: list[str] = []
        for cluster in self.clusters:
            lines += cluster.write_timeline(failure)
        return lines


# The user property under which a pytest-xdist worker sends a lab test's printed lines.
WORKER_LINE_PROPERTY = "lab output"


class _ShowWorkerLines:
    """In the pytest that runs xdist workers: prints the lines a worker's lab test reported
    (`ClusterRegistry.report`) as the test's reports arrive, each line once, in order."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._shown: dict[str, int] = {}   # test id -> lines printed so far

    @pytest.hookimpl(tryfirst=True)  # before the test's progress letter, as in a serial run
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        lines = [str(line) for name, line in report.user_properties
                 if name == WORKER_LINE_PROPERTY]
        shown = self._shown.get(report.nodeid, 0)
        if report.when == "teardown":
            self._shown.pop(report.nodeid, None)
        else:
            self._shown[report.nodeid] = len(lines)
        reporter = self._config.pluginmanager.getplugin("terminalreporter")
        for line in lines[shown:]:
            if reporter is not None:
                # After the progress letters of earlier tests: start a line of its own.
                if getattr(getattr(reporter, "_tw", None), "width_of_current_line", 0):
                    reporter.write("\n")
                reporter.write_line(line)
            else:
                print(line, file=sys.__stdout__, flush=True)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(_ShowWorkerLines(config), "lab-worker-lines")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if LAB_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)
            item.add_marker(pytest.mark.timeout(WATCHDOG_SECONDS))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[_call_report] = report
        registry = getattr(item, "funcargs", {}).get(LAB_FIXTURE)
        if report.failed and isinstance(registry, ClusterRegistry):
            _add_to_failure(report, registry.write_timelines(report.longreprtext))
    return report


def _add_to_failure(report: pytest.TestReport, lines: list[str]) -> None:
    """Append lines to a failure's text, where pytest prints it (and `labs test` keeps it)."""
    if not lines:
        return
    text = "\n".join(lines)
    longrepr = report.longrepr
    if hasattr(longrepr, "addsection"):
        longrepr.addsection("timeline of this run", text)
    elif isinstance(longrepr, str):
        report.longrepr = f"{longrepr}\n{text}"
    elif isinstance(longrepr, tuple) and len(longrepr) == 3:
        report.longrepr = (longrepr[0], longrepr[1], f"{longrepr[2]}\n{text}")


@pytest.fixture
def lab_clusters(request: pytest.FixtureRequest):
    """Tracks the clusters a test builds; afterwards tears them down and fails the test on
    problems found then: unraised background failures, a kill() that hangs, the time limit
    (only if the test passed otherwise), and threads still running 2 s after teardown."""
    in_worker = hasattr(request.config, "workerinput")  # set by pytest-xdist in its workers
    registry = ClusterRegistry(request.config.pluginmanager.getplugin("terminalreporter"),
                               request.config.rootpath / FAILURE_DIR, request.node.name,
                               worker_lines=request.node.user_properties if in_worker else None)
    threads_before = set(threading.enumerate())
    previous_hook = threading.excepthook

    def thread_died(args: threading.ExceptHookArgs) -> None:
        for cluster in registry.clusters:
            cluster.thread_died(args)
        previous_hook(args)  # pytest's own hook (a warning) and the traceback

    threading.excepthook = thread_died
    # The test's threads all run on one CPU (it claims a free one): a wake-up across cores costs
    # ~10x one on the same core, and the GIL gives a test no use of a second core anyway. See
    # labrpc/affinity.py. The clusters' threads start in the test body, so they inherit it.
    with one_cpu():
        try:
            yield registry
        finally:
            threading.excepthook = previous_hook

        call = request.node.stash.get(_call_report, None)
        passed = call is not None and call.passed
        problems = []
        for cluster in registry.clusters:
            problems += cluster.cleanup(check_time_limit=passed)
    leaked = threads_still_running(threads_before)
    if leaked:
        problems.append(f"{len(leaked)} thread(s) still running {THREAD_EXIT_GRACE:.0f} s after "
                        "teardown:\n" + "\n".join(describe_thread(t) for t in leaked))
    if problems:
        problems += registry.write_timelines("\n".join(problems))
        pytest.fail("\n".join(problems), pytrace=False)


def _shown(path: Path) -> str:
    """A file the failure names: relative to the working directory when inside it (the
    repository root, usually: `test-failures/...`), else absolute."""
    path = path.resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _relative(filename: str) -> str:
    """A source path relative to the working directory when it is inside it."""
    try:
        return os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename


def threads_still_running(threads_before: set[threading.Thread]) -> list[threading.Thread]:
    """The threads started since `threads_before` that are still alive after the grace period."""
    deadline = time.monotonic() + THREAD_EXIT_GRACE
    while True:
        leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        if not leaked or time.monotonic() >= deadline:
            return leaked
        time.sleep(THREAD_EXIT_POLL)


def describe_thread(thread: threading.Thread) -> str:
    """A thread's name and its innermost frames (outside the threading module)."""
    frame = sys._current_frames().get(thread.ident)
    if frame is None:
        return f"  {thread.name}"
    frames = [f for f in traceback.extract_stack(frame) if f.filename != threading.__file__]
    stack = traceback.format_list(frames[-LEAKED_STACK_FRAMES:] or traceback.extract_stack(frame))
    return f"  {thread.name}, at:\n" + "".join("    " + line.replace("\n", "\n    ").rstrip() + "\n"
                                              for line in stack).rstrip()
