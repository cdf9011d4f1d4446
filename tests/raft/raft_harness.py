"""The Raft tester (lab 2): a cluster of Raft peers on an emulated network, and the checks.

`Config` plays the part of the lab's config: it starts, crashes and restarts peers with copies
of their persisted state, cuts and heals their network links, and checks what each peer applies
against what every other peer applied at the same index. Tests drive it through the
`make_config` fixture (see conftest.py), which also tears the cluster down after every test.

What the KV tester needs too (the network, the peers and their saved persisters, the summary
line, the time limit, background failures, helper threads, the leadership monitor, teardown)
comes from `lab_harness.Cluster`. Everything that
runs off the test's own thread (the appliers, the monitor, helper threads a test spawns)
records its failures there; the test thread raises them at its next check, so no failure is
lost in a background thread.
"""

from __future__ import annotations

import itertools
import logging
import queue
import random
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import labcodec
import labrpc
from lab_harness import TEST_TIME_LIMIT, WATCHDOG_SECONDS, Cluster, TesterFailure
from proto.exports import export_proto
from proto.raftpb import RaftClient, RaftService
from raft.raft import ApplyCommand, ApplySnapshot, Node, NotLeader, Raft, State

__all__ = [
    "Config", "TesterFailure", "Entry", "command", "value_of",
    "ELECTION_TIMEOUT", "SNAPSHOT_INTERVAL", "TEST_TIME_LIMIT", "WATCHDOG_SECONDS",
]

log = logging.getLogger("tester")

# The commands the tests commit: raftcmdpb.Entry from command.proto, holding a number or a string.
_commands: dict[str, Any] = {}
export_proto(Path(__file__).with_name("command.proto"), _commands)
Entry = _commands["Entry"]
TesterSnapshot = _commands["TesterSnapshot"]

# --- Timing and limits (the numbers of the Go and Rust testers) --------------------------------
# TEST_TIME_LIMIT (120 s, from config creation) and the watchdog are lab_harness's.
ELECTION_TIMEOUT = 1.0            # "the tester generously allows elections to complete in 1 s"
SNAPSHOT_INTERVAL = 10            # the snapshot applier snapshots after index 9, 19, 29, ...

CHECK_LEADER_ROUNDS = 10          # check_one_leader: up to 10 looks, about 5 s in all,
CHECK_LEADER_SLEEP_MS = 450       # ... each after 450 ms
CHECK_LEADER_JITTER_MS = 100      # ... plus U[0, 100) ms

WAIT_POLLS = 30                   # wait(): 30 polls,
WAIT_FIRST_SLEEP = 0.010          # ... sleeping 10 ms first,
WAIT_DOUBLING_LIMIT = 1.0         # ... doubling while under 1 s (so at most 1.28 s)

ONE_TIMEOUT = 10.0                # one(): give up after 10 s,
ONE_AGREEMENT_TIMEOUT = 2.0       # ... waiting up to 2 s for each accepted Start() to commit,
ONE_COMMIT_POLL = 0.020           # ... polling every 20 ms,
ONE_NO_LEADER_SLEEP = 0.050       # ... and sleeping 50 ms when no peer accepted

APPLIER_STOP_TIMEOUT = 1.0        # crash1 waits this long for a dead peer's applier to drain
APPLY_CH_SIZE = 1                 # messages apply_ch holds before a put waits
APPLIER_POLL = 0.050              # a stopped applier notices it this often, even with the
                                  # sentinel not yet in (a full apply_ch, a service stuck in Raft)

ROUND_GAP = 0.050                 # RequestVotes of one peer further apart than this, or of another
                                  # term, belong to different elections
TIMEOUT_SPREAD = 0.005            # check_election_timeouts_vary: waits this close to the median...
TIMEOUT_SAME_SHARE = 0.75         # ... in this share of them mean one fixed timeout,
TIMEOUT_MIN_WAITS = 6             # ... judged only on at least this many waits

_STOP = object()                  # the sentinel that stops an applier
_MISSING = object()


def command(value: int | str) -> Entry:
    """The Entry the tests commit for `value` (a number, or a string in test_rpc_bytes_2b)."""
    return Entry(text=value) if isinstance(value, str) else Entry(x=value)


def value_of(entry: Entry) -> int | str | None:
    """The value an Entry carries (None if it carries none)."""
    kind = entry.WhichOneof("value")
    return None if kind is None else getattr(entry, kind)


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(value)} chars)"


class RpcWatch:
    """What the tester sees of the peers' own RPCs, and the tester's hand in delivering them.

    It records when each peer asked for votes (every RequestVote it sent, even into a cut link),
    keeps copies of the requests sent on the links a test captures (to deliver them again late),
    loses the requests a test chooses, and holds back the replies a test chooses until it lets
    them go (a slow network: Go's labrpc delays replies by up to 2 s with long reordering).

    A follower that keeps campaigning under a healthy leader, or peers whose election timeouts
    are one fixed number, show only here: a pre-vote (an optional extension) never moves a term,
    and on a reliable network with no delays a fixed timeout rarely splits a vote. The peers'
    ends report to it on the way out; appending to a list is atomic, so the senders take no
    lock of ours.
    """

    def __init__(self) -> None:
        # (when, sender, (term, pre-vote))
        self.sends: list[tuple[float, int, tuple[Any, bool]]] = []
        # (sender, receiver, rpc) -> a copy of each such request sent on that link
        self.captured: dict[tuple[int, int, str], list[Any]] = {}
        # (sender, rpc) -> which of that sender's requests the network loses
        self.lost: dict[tuple[int, str], Callable[[Any], bool]] = {}
        self.holds: list[ReplyHold] = []
        self.timeline: Any = None   # the cluster's Timeline, which hears of the lost requests

    def record(self, sender: int, args: Any) -> None:
        key = (getattr(args, "term", None), bool(getattr(args, "pre_vote", False)))
        self.sends.append((time.monotonic(), sender, key))

    def rounds(self, sender: int, start: float, stop: float) -> list[float]:
        """When `sender` began each election (round of RequestVotes) in [start, stop].

        A round is a run of RequestVotes for one term; a pre-vote round does not move the term,
        so a pause of ROUND_GAP also starts a new one (so does any pause, for a message with no
        `term` field). Resending a RequestVote within one term stays the same round."""
        begun: list[float] = []
        last_when, last_key = None, None
        for when, who, key in list(self.sends):
            if who != sender:
                continue
            term, pre_vote = key
            new_round = (last_key is None or key != last_key
                         or ((pre_vote or term is None) and when - last_when > ROUND_GAP))
            if new_round and start <= when <= stop:
                begun.append(when)
            last_when, last_key = when, key
        return begun

    def is_lost(self, sender: int, rpc: str, args: Any) -> bool:
        lose = self.lost.get((sender, rpc))
        return lose is not None and lose(args)

    def hold_for(self, sender: int, receiver: int, rpc: str, args: Any) -> ReplyHold | None:
        for hold in list(self.holds):
            if hold.takes(sender, receiver, rpc, args):
                return hold
        return None

    def release_all(self) -> None:
        for hold in list(self.holds):
            hold.release()


class ReplyHold:
    """Replies the network holds back: to the first `count` requests of `rpc` from `sender` to
    `receiver` that `when(args)` accepts. The requests are delivered as usual; each reply
    reaches the sender only after release() (or at once, if that came first)."""

    def __init__(self, sender: int, receiver: int, rpc: str, when: Callable[[Any], bool],
                 count: int) -> None:
        self._link = (sender, receiver, rpc)
        self._when, self._left = when, count
        self._lock = threading.Lock()
        self._released = False
        self._pending: list[tuple[Future, Future]] = []  # (the network's, the sender's)
        self.held: list[Any] = []                          # the requests whose replies it held

    def takes(self, sender: int, receiver: int, rpc: str, args: Any) -> bool:
        """Hold the reply to this request? (Called for each request, in order.)"""
        with self._lock:
            if self._released or self._left == 0 or (sender, receiver, rpc) != self._link:
                return False
            if not self._when(args):
                return False
            self._left -= 1
            self.held.append(args)
            return True

    def delay(self, network: Future) -> Future:
        """The future the sender sees: done when both the network's is and release() was called."""
        sender_side: Future = Future()
        with self._lock:
            if not self._released:
                self._pending.append((network, sender_side))
                return sender_side
        network.add_done_callback(lambda done: _pass_on(done, sender_side))
        return sender_side

    def release(self) -> None:
        """Let the held replies go. Their callbacks may run on this thread: call it from the
        test's thread, which holds no lock of a peer."""
        with self._lock:
            self._released = True
            pending, self._pending = self._pending, []
        for network, sender_side in pending:
            network.add_done_callback(lambda done, to=sender_side: _pass_on(done, to))


def _pass_on(done: Future, to: Future) -> None:
    exc = done.exception()
    if exc is not None:
        to.set_exception(exc)
    else:
        to.set_result(done.result())


class _WatchedEnd:
    """Server `sender`'s end to server `receiver`: tells the RpcWatch of each RequestVote
    it sends, keeps a copy of each request on a link the tester captures, loses the requests
    the tester chooses, and holds back the replies it chooses."""

    __slots__ = ("_end", "_watch", "_sender", "_receiver", "name")

    def __init__(self, end: labrpc.ClientEnd, watch: RpcWatch, sender: int,
                 receiver: int) -> None:
        self._end, self._watch, self.name = end, watch, end.name
        self._sender, self._receiver = sender, receiver

    def _note(self, method: Any, args: Any) -> None:
        if method.name == "RequestVote":
            self._watch.record(self._sender, args)
        captured = self._watch.captured.get((self._sender, self._receiver, method.name))
        if captured is not None:
            captured.append(args)

    def _lost(self, method: Any, args: Any) -> labrpc.Timeout | None:
        if self._watch.is_lost(self._sender, method.name, args):
            if self._watch.timeline is not None:
                self._watch.timeline.lost(self._sender, self._receiver, method.name)
            return labrpc.Timeout(f"{self.name}: the network lost this {method.name}")
        return None

    def call(self, method: Any, args: Any) -> Any:
        self._note(method, args)
        lost = self._lost(method, args)
        if lost is not None:
            raise lost
        hold = self._watch.hold_for(self._sender, self._receiver, method.name, args)
        if hold is None:
            return self._end.call(method, args)
        return hold.delay(self._end.call_future(method, args)).result()

    def call_future(self, method: Any, args: Any) -> Future:
        self._note(method, args)
        lost = self._lost(method, args)
        if lost is not None:
            future: Future = Future()
            future.set_exception(lost)
            return future
        hold = self._watch.hold_for(self._sender, self._receiver, method.name, args)
        if hold is None:
            return self._end.call_future(method, args)
        return hold.delay(self._end.call_future(method, args))


class Config(Cluster[Node]):
    """A cluster of `n` Raft peers and the bookkeeping the checks need.

    Besides what `Cluster` keeps per server i (`nodes[i]`, None while crashed, `saved[i]`,
    `end_names[i]`): `connected[i]`, and `logs[i]`, every index -> value the tester has seen i
    apply (kept across restarts, so a restarted peer that re-applies must apply the same
    values). `_lock` guards all of these.
    """

    server_prefix = "raft"

    def __init__(self, n: int, unreliable: bool = False, snapshot: bool = False,
                 report: Callable[[str], None] = print) -> None:
        super().__init__(n, report)
        self.snapshot = snapshot
        self.net.set_reliable(not unreliable)
        self.net.set_long_delays(True)

        self.connected = [False] * n
        self.logs: list[dict[int, Any]] = [{} for _ in range(n)]
        self.max_index = 0
        self._appliers: list[_Applier | None] = [None] * n
        self.rpcs_begin = self.bytes_begin = self.max_index_begin = 0
        self.watch = RpcWatch()
        self.watch.timeline = self.timeline

        try:
            for i in range(n):
                self.start1(i)
            for i in range(n):
                self.connect(i)
            self.start_monitor()
        except BaseException:
            self.cleanup(check_time_limit=False)  # no fixture will see this config
            raise

    # --- the summary line ------------------------------------------------------------------------

    def begin(self, title: str) -> None:
        """Start the part of the test the summary line measures."""
        super().begin(title)
        self.rpcs_begin = self.rpc_total()
        self.bytes_begin = self.bytes_total()
        with self._lock:
            self.max_index_begin = self.max_index

    def summary_line(self, seconds: float) -> str:
        """Seconds, peers, RPCs, bytes and committed-index increase since begin()."""
        rpcs = self.rpc_total() - self.rpcs_begin
        nbytes = self.bytes_total() - self.bytes_begin
        with self._lock:
            committed = self.max_index - self.max_index_begin
        return (f"{self.title} ... Passed -- {seconds:4.1f}  {self.n} {rpcs:4d} "
                f"{nbytes:6d} {committed:4d}")

    # --- counters --------------------------------------------------------------------------------

    def rpc_count(self, i: int) -> int:
        """RPCs delivered to server i so far."""
        return self.net.count(self.server_name(i))

    def bytes_total(self) -> int:
        return self.net.total_bytes()

    # --- the network -----------------------------------------------------------------------------

    def set_long_reordering(self, long_reordering: bool) -> None:
        self.net.set_long_reordering(long_reordering)

    def connect(self, i: int) -> None:
        """Attach server i: enable its ends to and from every connected server (itself too)."""
        log.info("connect(%d)", i)
        with self._lock:
            self.connected[i] = True
            ends = [self.end_names[i][j] for j in range(self.n)
                    if self.connected[j] and self.end_names[i] is not None]
            ends += [self.end_names[j][i] for j in range(self.n)
                     if self.connected[j] and self.end_names[j] is not None]
        for end in ends:
            self.net.enable(end, True)

    def cut_link(self, i: int, j: int) -> None:
        """Disable the ends between servers i and j only, both ways (a partial partition)."""
        log.info("cut_link(%d, %d)", i, j)
        with self._lock:
            ends = [names[k] for names, k in ((self.end_names[i], j), (self.end_names[j], i))
                    if names is not None]
        for end in ends:
            self.net.enable(end, False)

    def disconnect(self, i: int) -> None:
        """Detach server i: disable every end from it and to it. The peer keeps running."""
        log.info("disconnect(%d)", i)
        with self._lock:
            self.connected[i] = False
            ends = list(self.end_names[i] or [])
            ends += [names[i] for names in self.end_names if names is not None]
        for end in ends:
            self.net.enable(end, False)

    def is_connected(self, i: int) -> bool:
        with self._lock:
            return self.connected[i]

    # --- crashing and restarting peers -----------------------------------------------------------

    def crash1(self, i: int) -> None:
        """Kill server i as a crash would, keeping what it had persisted."""
        log.info("crash1(%d)", i)
        self.disconnect(i)
        # Delete the server before copying its persister: its in-flight calls fail now, so no
        # peer ever hears a reply about state that the copy below might not hold.
        self.net.delete_server(self.server_name(i))
        with self._lock:
            # The new persister starts from the old one's contents; whatever the dying instance
            # writes to the old one from now on is lost, as a crash loses it.
            self.renew_persister(i)
            node, applier = self.nodes[i], self._appliers[i]
        if node is not None:
            if self.timeline is not None:
                self.timeline.crash(i)
            if applier is not None:
                applier.node_killed()
            node.kill()
            with self._lock:
                self.nodes[i] = None
                self._appliers[i] = None
            if applier is not None:
                applier.stop(APPLIER_STOP_TIMEOUT)
        with self._lock:
            self.renew_persister(i)

    def kill_in_place(self, *servers: int) -> None:
        """Kill these servers' peers but leave their servers on the network, still reachable:
        calls to them now meet a killed Raft, which must neither answer nor change state. All
        are killed before any applier is stopped, so that they die at about the same moment."""
        log.info("kill_in_place(%s)", ", ".join(map(str, servers)))
        victims = []
        with self._lock:
            for i in servers:
                victims.append((self.nodes[i], self._appliers[i]))
                self.nodes[i] = None
                self._appliers[i] = None
        for i, (node, applier) in zip(servers, victims, strict=True):
            if self.timeline is not None and node is not None:
                self.timeline.crash(i)
            if applier is not None:
                applier.node_killed()
            if node is not None:
                node.kill()
        for _, applier in victims:
            if applier is not None:
                applier.stop(APPLIER_STOP_TIMEOUT)

    def start1(self, i: int) -> None:
        """Start server i, or restart it from its persisted state. It starts disconnected."""
        log.info("start1(%d)", i)
        self.crash1(i)
        names = self.new_end_names(f"raft-{i}")
        ends = self.make_ends(names, i)
        with self._lock:
            self.end_names[i] = names
            persister = self.renew_persister(i)
        # A restarted peer resumes after its snapshot, as its service would: the tester loads
        # the snapshot as i's applied state (checked against the others), and i's first apply
        # must be the index right after it. Without a snapshot it re-applies from index 1.
        last_applied = 0
        if self.snapshot and persister.snapshot_size() > 0:
            last_applied = self._install_tester_snapshot(i, persister.snapshot(), "restarted from")
        if self.timeline is not None:
            self.timeline.start(i)
            if last_applied:
                self.timeline.install(i, last_applied)
        # One message at a time, like Go's unbuffered applyCh: a put waits until the service
        # took the previous message, so a Raft that puts while holding its lock deadlocks with
        # a service calling back into it (snapshot(), cond_install_snapshot()), as in Go.
        apply_ch: queue.Queue = queue.Queue(maxsize=APPLY_CH_SIZE)
        peers = [RaftClient(_WatchedEnd(end, self.watch, i, j)) for j, end in enumerate(ends)]
        node = Node(Raft(peers, i, persister, apply_ch))
        applier = _Applier(self, i, node, apply_ch, last_applied)
        with self._lock:
            self.nodes[i] = node
            self._appliers[i] = applier
        applier.start()
        server = labrpc.Server(self.server_name(i))
        server.add_service(RaftService, node)
        self.net.add_server(server)

    def _connected_nodes(self) -> list[tuple[int, Node]]:
        with self._lock:
            return [(i, node) for i, node in enumerate(self.nodes)
                    if node is not None and self.connected[i]]

    # --- talking to peers ------------------------------------------------------------------------

    def start(self, i: int, value: int | str) -> tuple[int, int] | None:
        """Call Start(value) on server i: (index, term), or None if it is not the leader
        (or is crashed)."""
        with self._lock:
            node = self.nodes[i]
        if node is None:
            return None
        try:
            return node.start(command(value))
        except NotLeader:
            return None

    def state(self, i: int) -> State:
        with self._lock:
            node = self.nodes[i]
        if node is None:
            self.fail(f"server {i} is crashed; it has no state")
        return node.get_state()

    # --- leader and term checks ------------------------------------------------------------------

    def check_one_leader(self) -> int:
        """Wait (about 5 s at most) until the connected servers have a leader; return it."""
        for _ in range(CHECK_LEADER_ROUNDS):
            time.sleep((CHECK_LEADER_SLEEP_MS + random.randrange(CHECK_LEADER_JITTER_MS)) / 1000)
            self.check_background_failures()
            leaders: dict[int, list[int]] = defaultdict(list)
            for i, node in self._connected_nodes():
                state = node.get_state()
                if state.is_leader:
                    leaders[state.term].append(i)
            for term, servers in leaders.items():
                if len(servers) > 1:
                    self.fail(f"term {term} has {len(servers)} (>1) leaders: servers {servers}")
            if leaders:
                return leaders[max(leaders)][0]
        self.fail("expected one leader, got none")

    def check_terms(self) -> int:
        """Every connected server must be in the same term; return it (-1 if none is)."""
        term, first = -1, None
        for i, node in self._connected_nodes():
            xterm = node.term()
            if first is None:
                term, first = xterm, i
            elif xterm != term:
                self.fail(f"servers disagree on term: server {first} is in term {term}, "
                          f"server {i} in term {xterm}")
        return term

    def check_no_leader(self) -> None:
        for i, node in self._connected_nodes():
            if node.is_leader():
                self.fail(f"expected no leader among connected servers, "
                          f"but {i} claims to be leader")

    def lose_vote_requests(self, servers: list[int], lost: bool = True) -> None:
        """From now on the network loses (or delivers again) every RequestVote these servers
        send: they cannot campaign, though they hear everything else."""
        for i in servers:
            self.lose_requests(i, "RequestVote", (lambda _: True) if lost else None)

    def lose_requests(self, i: int, rpc: str, when: Callable[[Any], bool] | None) -> None:
        """From now on the network loses each `rpc` request of server i that `when(args)`
        accepts (None: loses none of them again)."""
        log.info("lose_requests(%d, %s, %s)", i, rpc, "none" if when is None else "some")
        if when is None:
            self.watch.lost.pop((i, rpc), None)
        else:
            self.watch.lost[(i, rpc)] = when

    def hold_replies(self, i: int, j: int, rpc: str, when: Callable[[Any], bool] = lambda _: True,
                     count: int = 1) -> ReplyHold:
        """Hold back the replies to the next `count` `rpc` requests server i sends server j
        that `when(args)` accepts (the requests arrive as usual) until `release()`; teardown
        releases every hold."""
        hold = ReplyHold(i, j, rpc, when, count)
        self.watch.holds.append(hold)
        return hold

    def capture(self, i: int, j: int, rpc: str = "AppendEntries") -> list[Any]:
        """From now on keep a copy of every `rpc` request server i sends to server j, in
        order; the list returned fills in as they are sent."""
        captured: list[Any] = []
        self.watch.captured[(i, j, rpc)] = captured
        return captured

    def stop_capture(self, i: int, j: int, rpc: str = "AppendEntries") -> None:
        self.watch.captured.pop((i, j, rpc), None)

    def deliver_late(self, j: int, args: Any) -> None:
        """The network hands server j a copy of an AppendEntries request it delivered long
        ago (networks duplicate and delay messages); the reply goes nowhere."""
        with self._lock:
            node = self.nodes[j]
        if node is None:
            self.fail(f"server {j} is crashed; nothing can be delivered to it")
        log.info("deliver_late(%d): AppendEntries after %d with %d entries", j,
                 getattr(args, "prev_log_index", -1), len(getattr(args, "entries", [])))
        try:
            node.append_entries(args)
        except labrpc.RpcError:
            pass  # refused, as a peer may refuse any RPC

    def request_vote(self, j: int, args: Any) -> Any:
        """The tester itself asks server j for its vote (straight to its handler); returns the
        reply."""
        with self._lock:
            node = self.nodes[j]
        if node is None:
            self.fail(f"server {j} is crashed; it cannot be asked for a vote")
        return node.request_vote(args)

    def check_quiet_followers(self, leader: int, start: float, stop: float) -> None:
        """With `leader` healthy and the network reliable from `start` to `stop`, no other peer
        may keep campaigning: a pre-vote refused once (a late heartbeat on a busy machine) is
        forgiven, a third round of RequestVotes is not."""
        for i in range(self.n):
            rounds = self.watch.rounds(i, start, stop)
            if i != leader and len(rounds) >= 3:
                self.fail(f"server {i} began {len(rounds)} elections (rounds of RequestVote) in "
                          f"{stop - start:.1f} s while leader {leader} was healthy and the network "
                          f"reliable: a follower must reset its election timer whenever it hears "
                          f"from the current leader")

    def check_election_timeouts_vary(self, servers: list[int], start: float, stop: float) -> None:
        """`servers`, each cut off from all others from `start` to `stop`, campaign again and
        again; the waits between one's elections are its election timeouts, which must be
        random, or candidates that time out together split the vote together forever."""
        waits: list[float] = []
        for i in servers:
            rounds = self.watch.rounds(i, start, stop)
            waits += [later - earlier for earlier, later in itertools.pairwise(rounds)]
        if len(waits) < TIMEOUT_MIN_WAITS:
            return  # too few elections in the window to judge (long timeouts): no verdict
        median = statistics.median(waits)
        same = sum(abs(wait - median) <= TIMEOUT_SPREAD for wait in waits)
        if same >= TIMEOUT_SAME_SHARE * len(waits):
            self.fail(f"election timeouts are not randomised: {same} of the {len(waits)} waits "
                      f"between elections of isolated servers {servers} were {median * 1000:.0f} "
                      f"ms (within {TIMEOUT_SPREAD * 1000:.0f} ms); each election must restart "
                      f"its timer with a new random timeout")

    # --- agreement -------------------------------------------------------------------------------

    def n_committed(self, index: int) -> tuple[int, Any]:
        """How many servers have applied `index`, and the value they applied (all must agree)."""
        self.check_background_failures()
        count, value, first = 0, None, None
        with self._lock:
            applied = [(i, self.logs[i][index]) for i in range(self.n) if index in self.logs[i]]
        for i, value1 in applied:
            if count > 0 and value1 != value:
                self.fail(f"committed values do not match: index {index}, "
                          f"server {first} applied {_show(value)}, "
                          f"server {i} applied {_show(value1)}")
            if count == 0:
                first = i
            count += 1
            value = value1
        return count, value

    def wait(self, index: int, n: int, start_term: int | None = None) -> Any:
        """Wait until at least n servers have applied `index`; return the value.

        Returns None if some server has moved past `start_term` meanwhile: the entry may then
        never commit, which is not a failure."""
        delay = WAIT_FIRST_SLEEP
        for _ in range(WAIT_POLLS):
            count, _ = self.n_committed(index)
            if count >= n:
                break
            time.sleep(delay)
            if delay < WAIT_DOUBLING_LIMIT:
                delay *= 2
            if start_term is not None:
                for _, node in self.live_nodes():
                    if node.term() > start_term:
                        return None
        count, value = self.n_committed(index)
        if count < n:
            self.fail(f"only {count} decided for index {index}; wanted {n}")
        return value

    def one(self, value: int | str, expected_servers: int, retry: bool) -> int | None:
        """Get `value` committed on at least `expected_servers` servers; return its index.

        Offers the value to each connected server in turn until one accepts, then waits 2 s
        for the commit. With retry it offers again after a failed wait; it fails after 10 s.
        Returns None (quietly) only in helper threads, once the test is tearing down."""
        t0 = time.monotonic()
        starts = 0
        observed = "no server accepted Start()"
        while time.monotonic() - t0 < ONE_TIMEOUT and not self.finished.is_set():
            index = None
            for _ in range(self.n):
                starts = (starts + 1) % self.n
                with self._lock:
                    node = self.nodes[starts] if self.connected[starts] else None
                if node is None:
                    continue
                try:
                    index, _ = node.start(command(value))
                    break
                except NotLeader:
                    pass
            if index is None:
                self.finished.wait(ONE_NO_LEADER_SLEEP)
                continue
            # Somebody claimed to be the leader and took the value: wait for agreement.
            t1 = time.monotonic()
            while time.monotonic() - t1 < ONE_AGREEMENT_TIMEOUT and not self.finished.is_set():
                count, committed = self.n_committed(index)
                if count > 0 and count >= expected_servers and committed == value:
                    return index
                observed = (f"index {index} applied by {count} server(s)"
                            + (f" with value {_show(committed)}" if count else "")
                            + f"; wanted {expected_servers} with value {_show(value)}")
                self.finished.wait(ONE_COMMIT_POLL)
            if not retry and not self.finished.is_set():
                self.fail(f"one({_show(value)}) failed to reach agreement: {observed}")
        if not self.finished.is_set():
            self.fail(f"one({_show(value)}) failed to reach agreement in {ONE_TIMEOUT:.0f} s: "
                      f"{observed}")
        return None

    # --- apply bookkeeping (called by the appliers) ----------------------------------------------

    def _mismatch(self, i: int, index: int, value: Any) -> str | None:
        """An error if another server applied something else at `index`. Hold the lock."""
        for j in range(self.n):
            old = self.logs[j].get(index, _MISSING)
            if j != i and old is not _MISSING and old != value:
                return (f"commit index={index} server={i} {_show(value)} != "
                        f"server={j} {_show(old)}")
        return None

    def _record_apply(self, i: int, index: int, value: Any,
                      record: bool = True) -> tuple[str | None, bool]:
        """Record that server i applied `value` at `index` (only check it when not `record`).
        Returns (a mismatch error or None, whether i had applied index - 1)."""
        with self._lock:
            error = self._mismatch(i, index, value)
            old = self.logs[i].get(index, _MISSING)
            if error is None and old is not _MISSING and old != value:
                error = (f"server {i} applied {_show(value)} at index {index}, where it had "
                         f"applied {_show(old)} before")
            prev_ok = index - 1 in self.logs[i]
            if record:
                self.logs[i][index] = value
                self.max_index = max(self.max_index, index)
        return error, prev_ok

    def _tester_snapshot(self, i: int, index: int) -> bytes:
        """The tester's snapshot of server i through `index`: every value i applied so far."""
        with self._lock:
            values = [self.logs[i].get(k) for k in range(1, index + 1)]
        if None in values:
            self.record_failure(f"apply error: server {i} snapshots through {index} but never "
                                f"applied index {values.index(None) + 1}")
            return b""
        return labcodec.encode(TesterSnapshot(last_included_index=index,
                                              log=[command(v) for v in values]))

    def _install_tester_snapshot(self, i: int, data: bytes, how: str) -> int:
        """Make a snapshot server i installed (or restarted from) its applied state; check each
        value against the other servers. Returns the snapshot's last index."""
        try:
            snapshot = labcodec.decode(data, TesterSnapshot)
        except labcodec.DecodeError as exc:
            self.record_failure(f"apply error: server {i} {how} a snapshot that is not the "
                                f"tester's ({len(data)} bytes): {exc}")
            return 0
        index = snapshot.last_included_index
        values = [value_of(entry) for entry in snapshot.log]
        if len(values) != index:
            self.record_failure(f"apply error: server {i} {how} a snapshot through {index} "
                                f"holding {len(values)} values")
        with self._lock:
            for k, value in enumerate(values, start=1):
                error = self._mismatch(i, k, value)
                if error is not None:
                    self.record_failure(f"apply error: server {i} {how} a snapshot that "
                                        f"disagrees with another server: {error}")
                    break
            self.logs[i] = dict(enumerate(values, start=1))
            self.max_index = max(self.max_index, index)
        return index

    def snapshot_again(self, i: int, index: int) -> None:
        """Server i's service hands Raft a snapshot through `index` late: one it made before a
        newer snapshot replaced it (a slow service, overtaken by an InstallSnapshot)."""
        with self._lock:
            node = self.nodes[i]
        if node is None:
            self.fail(f"server {i} is crashed; its service cannot snapshot")
        log.info("snapshot_again(%d, %d)", i, index)
        data = self._tester_snapshot(i, index)
        try:
            node.snapshot(index, data)
        except Exception as exc:
            self.fail(f"server {i}: snapshot({index}), older than its latest snapshot, raised "
                      f"{type(exc).__name__}: {exc}; a snapshot at or before the current one "
                      f"must be ignored")

    def hold_snapshots(self, i: int) -> threading.Event:
        """From now on, server i's applier (this instance of it) receives each ApplySnapshot but
        does not answer cond_install_snapshot until i is crashed. Returns an Event set when the
        first ApplySnapshot arrives."""
        with self._lock:
            applier = self._appliers[i]
        if applier is None:
            self.fail(f"server {i} is crashed; it has no applier")
        return applier.hold_snapshots()

    # --- teardown (called by lab_harness's cleanup) -----------------------------------------------

    def shut_down(self) -> list[str]:
        """Kill every peer (what they still apply no longer counts), then stop the network."""
        self.watch.release_all()  # no peer thread stays blocked on a held reply
        with self._lock:
            nodes = [(i, node) for i, node in enumerate(self.nodes) if node is not None]
            appliers = [a for a in self._appliers if a is not None]
        for applier in appliers:
            applier.node_killed()
        problems = self.kill_all(nodes)
        for applier in appliers:
            applier.stop(0)
        self.stop_network()
        return problems


class _Applier(threading.Thread):
    """Reads one peer instance's apply queue and checks every applied command.

    The snapshot applier (2D) also calls snapshot() after each index i with
    (i + 1) % SNAPSHOT_INTERVAL == 0, its data a TesterSnapshot of every value applied through
    i, and answers each ApplySnapshot with cond_install_snapshot(), taking the snapshot's values
    as the server's applied state when it says yes (checked against the other servers)."""

    def __init__(self, cfg: Config, server: int, node: Node, apply_ch: queue.Queue,
                 last_applied: int) -> None:
        super().__init__(name=f"tester-applier-{server}", daemon=True)
        self.cfg = cfg
        self.server = server
        self.node = node
        self.apply_ch = apply_ch
        # Snapshot mode: the index applied last (the next apply must be the one after it).
        self.last_applied = last_applied
        self._killed = threading.Event()
        self._stopped = threading.Event()
        self._holding = False
        self._snapshot_arrived = threading.Event()

    def hold_snapshots(self) -> threading.Event:
        self._holding = True
        return self._snapshot_arrived

    def node_killed(self) -> None:
        """The peer is being killed: what it still applies no longer counts."""
        self._killed.set()

    def stop(self, timeout: float) -> None:
        self._killed.set()
        self._stopped.set()
        try:
            self.apply_ch.put_nowait(_STOP)  # wakes the applier at once if there is room
        except queue.Full:
            pass  # it drains what is queued and then sees _stopped
        if timeout > 0:
            self.join(timeout)

    def run(self) -> None:
        while True:
            try:
                msg = self.apply_ch.get(timeout=APPLIER_POLL)
            except queue.Empty:
                if self._stopped.is_set():
                    return
                continue
            if msg is _STOP:
                return
            if self._killed.is_set():
                # What a dead instance still applies is not recorded, but it must agree.
                if isinstance(msg, ApplyCommand):
                    self._check_zombie_apply(msg)
                continue  # drain until the sentinel
            try:
                if isinstance(msg, ApplyCommand):
                    self._apply_command(msg)
                elif isinstance(msg, ApplySnapshot):
                    if self.cfg.snapshot:
                        self._apply_snapshot(msg)
                else:
                    self._error(f"server {self.server} put {msg!r:.80} on the apply queue; "
                                "expected ApplyCommand or ApplySnapshot")
            except Exception as exc:  # keep reading, so Raft never blocks on a dead applier
                log.exception("applier of server %d failed", self.server)
                self._error(f"server {self.server}: applying {msg!r:.80} raised "
                            f"{type(exc).__name__}: {exc}")

    def _error(self, message: str) -> None:
        self.cfg.record_failure(f"apply error: {message}")

    def _decode(self, msg: ApplyCommand) -> Any:
        try:
            return value_of(labcodec.decode(msg.data, Entry))
        except labcodec.DecodeError as exc:
            self._error(f"server {self.server} applied bytes at index {msg.index} that are not "
                        f"a tester command: {exc}")
            return _MISSING

    def _check_zombie_apply(self, msg: ApplyCommand) -> None:
        value = self._decode(msg)
        if value is not _MISSING:
            error, _ = self.cfg._record_apply(self.server, msg.index, value, record=False)
            if error is not None:
                self._error(f"after it was killed: {error}")

    def _apply_command(self, msg: ApplyCommand) -> None:
        i, index = self.server, msg.index
        value = self._decode(msg)
        if value is _MISSING:
            return
        error = None
        if self.cfg.snapshot and index != self.last_applied + 1:
            error = (f"server {i} apply out of order, expected index {self.last_applied + 1}, "
                     f"got {index}")
        else:
            error, prev_ok = self.cfg._record_apply(i, index, value)
            if index > 1 and not prev_ok and error is None:
                error = f"server {i} apply out of order {index}"
        self.last_applied = index
        timeline = self.cfg.timeline
        if timeline is not None:
            timeline.apply(i, index)
        if error is not None:
            self._error(error)
        if self.cfg.snapshot and (index + 1) % SNAPSHOT_INTERVAL == 0:
            if timeline is not None:
                timeline.snapshot(i, index)
            self.node.snapshot(index, self.cfg._tester_snapshot(i, index))

    def _apply_snapshot(self, msg: ApplySnapshot) -> None:
        if self._holding:
            # The test decides when this peer crashes; until then its service says nothing.
            self._snapshot_arrived.set()
            self._killed.wait()
            return
        if not self.node.cond_install_snapshot(msg.term, msg.index, msg.data):
            return
        if msg.index < self.last_applied:
            self._error(f"server {self.server} went back in time: it switched to a snapshot "
                        f"through index {msg.index} after applying index {self.last_applied} "
                        f"(an older snapshot than the applied state must be refused)")
        index = self.cfg._install_tester_snapshot(self.server, msg.data, "installed")
        if index != msg.index:
            self._error(f"server {self.server} delivered ApplySnapshot(index={msg.index}) whose "
                        f"data ends at index {index}")
        self.last_applied = msg.index
        if self.cfg.timeline is not None:
            self.cfg.timeline.install(self.server, msg.index)
