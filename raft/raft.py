"""Lab 2: a Raft peer (election 2A, log replication 2B, persistence 2C, snapshots 2D).

The tester (and, in lab 3, your KV server) drives a peer through `Node`:

    node = Node(Raft(peers, me, persister, apply_ch))
    index, term = node.start(command)   # raises NotLeader on a non-leader
    ...                                 # committed commands arrive on apply_ch as ApplyCommand

Figure 2 of the extended Raft paper is the specification; the lab guide is docs/lab2-raft.md.
"""
from __future__ import annotations

import logging
import queue
import random
import threading
import time
### BEGIN SOLUTION 2A
from collections.abc import Callable
from concurrent.futures import Future
### END SOLUTION
from dataclasses import dataclass
### BEGIN SOLUTION 2A
from enum import Enum
### END SOLUTION

import labcodec
from labrpc import RpcError
### BEGIN SOLUTION 2A
from labrpc import Stopped, Timeout
from labrpc.service import BoundRpc
### END SOLUTION
from labdebug import Topic, debug
from proto.raftpb import RaftClient, RequestVoteArgs, RequestVoteReply
### BEGIN SOLUTION 2A 2B 2C 2D
from proto.raftpb import (
    AppendEntriesArgs, AppendEntriesReply, InstallSnapshotArgs, InstallSnapshotReply, LogEntry,
    PersistentState,
)
### END SOLUTION
from raft.persister import Persister

__all__ = ["ApplyCommand", "ApplySnapshot", "ApplyMsg", "State", "NotLeader", "Raft", "Node"]

log = logging.getLogger("raft")

### BEGIN SOLUTION 2A
# How this solution is laid out, following Figure 2 section by section:
# * `Log`: the entries after the last snapshot, indexed from 1 as in the paper.
# * `Raft`: the state of Figure 2 and its rules as plain methods that change state under one
#   lock and do no network I/O (`_handle_*` for RPCs received, `_on_*_reply` for replies).
# * Threads, at the end of `Raft`: an election ticker, one replicator per peer and an applier.
#   They only wait, send RPCs and feed the apply queue; the rules above make every decision.

# Timing. The tester expects a new leader within 5 s of a failure and at most 10 RPCs per second
# per pair of peers when idle, so heartbeats go every 100 ms. An election timeout must outlast
# the heartbeats an unreliable network loses in a row (1 request in 10, each up to 27 ms late):
# an idle, unreliable 5-server cluster held 19 needless elections a minute with 200-400 ms,
# 7 with 250-450 ms and 0-1 with 300-500 ms (`labs bench`, raft_idle_unreliable_elections_per_min).
# 300-500 ms still elects well within the tester's first look for a leader (450 ms), and the
# spread splits few votes.
HEARTBEAT_INTERVAL = 0.100
ELECTION_TIMEOUT_MIN = 0.300
ELECTION_TIMEOUT_MAX = 0.500
# A follower learns a new commit index from the leader's next AppendEntries. When the commit
# index is all that is new, the leader waits this long before sending it: a busy service's next
# command usually comes sooner and carries it along. Without the wait every command costs two
# AppendEntries per follower (its entry, then its commit), and the extra RPCs slow the service
# down more than the followers' later apply does: one clerk's operations on 5 servers took
# 0.94 ms each without the wait and 0.75 ms with it.
COMMIT_ONLY_DELAY = 0.005
# A leader that has heard from no majority for this long steps down (the dissertation's
# "check quorum", section 6.2): cut off, it would otherwise go on accepting commands that can
# never commit, and clients would wait on it until it hears of a newer term. By this time the
# followers it lost may be electing a successor, so it is the shortest election timeout.
LEADER_QUORUM_TIMEOUT = ELECTION_TIMEOUT_MIN
# Before an election a peer asks whether it could win (the dissertation's pre-vote, section
# 9.6). Peers that heard from a leader this recently say no: the asker only missed heartbeats.
# A peer cut off for a while then rejoins without a raised term that would depose a leader.
LEADER_CONTACT_WINDOW = 2 * HEARTBEAT_INTERVAL
KILL_JOIN_TIMEOUT = 1.0
### END SOLUTION


@dataclass(frozen=True)
class ApplyCommand:
    """A committed command: `data` is the encoded command given to `start()`."""

    data: bytes
    index: int


@dataclass(frozen=True)
class ApplySnapshot:
    """A snapshot from the leader; the service answers with `cond_install_snapshot`."""

    data: bytes
    term: int
    index: int


ApplyMsg = ApplyCommand | ApplySnapshot


@dataclass(frozen=True)
class State:
    term: int
    is_leader: bool


class NotLeader(Exception):
    """`start()` was called on a peer that is not the leader."""


### BEGIN SOLUTION 2A 2B
class Role(Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"  # timed out; asking whether an election could be won
    CANDIDATE = "candidate"
    LEADER = "leader"


class Log:
    """The log after the snapshot: entry `i` (1-based, as in the paper) is at position
    `i - snapshot_index - 1` of `entries`; `snapshot_index`/`snapshot_term` describe the last
    entry the snapshot replaced (0/0 without a snapshot)."""

    def __init__(self, snapshot_index: int = 0, snapshot_term: int = 0,
                 entries: list[LogEntry] | None = None) -> None:
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self.entries: list[LogEntry] = entries or []

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def has(self, index: int) -> bool:
        """True if the term of entry `index` is known (in the log, or the snapshot's last)."""
        return self.snapshot_index <= index <= self.last_index

    def term_at(self, index: int) -> int:
        if index == self.snapshot_index:
            return self.snapshot_term
        return self.entries[index - self.snapshot_index - 1].term

    def entry(self, index: int) -> LogEntry:
        return self.entries[index - self.snapshot_index - 1]

    def entries_from(self, index: int) -> list[LogEntry]:
        return self.entries[index - self.snapshot_index - 1:]

    def first_index_of_term(self, index: int) -> int:
        """The first index (after the snapshot) holding the same term as entry `index`."""
        term = self.term_at(index)
        while index - 1 > self.snapshot_index and self.term_at(index - 1) == term:
            index -= 1
        return index

    def last_index_of_term(self, term: int) -> int | None:
        """The last index holding `term`, or None if no entry after the snapshot has it."""
        for index in range(self.last_index, self.snapshot_index, -1):
            entry_term = self.term_at(index)
            if entry_term == term:
                return index
            if entry_term < term:
                break
        return None

    def append(self, entries: list[LogEntry]) -> None:
        self.entries.extend(entries)

    def truncate_after(self, index: int) -> None:
        """Delete every entry after `index`."""
        del self.entries[index - self.snapshot_index:]

    def compact(self, index: int, term: int) -> None:
        """Drop everything up to `index`, now covered by a snapshot whose last entry has `term`.
        Entries after `index` stay if entry `index` matches `term` (section 7, step 6)."""
        if self.has(index) and index <= self.last_index and self.term_at(index) == term:
            self.entries = self.entries_from(index + 1)
        else:
            self.entries = []
        self.snapshot_index, self.snapshot_term = index, term
### END SOLUTION


class Raft:
    """One Raft peer: Figure 2's state and rules, plus the threads that drive them."""

    def __init__(self, peers: list[RaftClient], me: int, persister: Persister,
                 apply_ch: queue.Queue[ApplyMsg]) -> None:
        self.peers = peers
        self.me = me
        self.persister = persister
        self.apply_ch = apply_ch
        # Your data here (2A, 2B, 2C, 2D): Figure 2 lists the state every peer keeps.
        #
        # Choose a concurrency paradigm before you write much: the RPC handlers, your timers
        # and the applier all touch this state from different threads. One lock around all of
        # it, held only briefly and never while sending an RPC or putting on apply_ch, is the
        # simplest design that works; threading.Condition objects on that lock let threads
        # wait for "a new entry", "a new commit index" or "the timeout passed".
        ### BEGIN SOLUTION 2A 2B 2C 2D
        # One lock guards every field below; each Condition waits on it.
        self._lock = threading.Lock()
        self._dead = False

        # Persistent state on all servers (saved before answering any RPC).
        self.current_term = 0
        self.voted_for: int | None = None
        self.log = Log()

        # Volatile state on all servers.
        self.role = Role.FOLLOWER
        self.commit_index = 0
        self.last_applied = 0
        self.election_deadline = 0.0
        self.leader_contact = 0.0  # when a leader of our term last reached us

        # Volatile state on candidates: who voted for us in `current_term` (pre-candidates:
        # who would vote for us in the next term).
        self.votes: set[int] = set()

        # Volatile state on leaders (reinitialized after election).
        self.next_index = [1] * len(peers)
        self.match_index = [0] * len(peers)
        self.last_sent = [0.0] * len(peers)       # when the last RPC to each peer left
        self.in_flight = [False] * len(peers)      # an RPC to the peer awaits its reply
        self.commit_sent = [0] * len(peers)        # the leader_commit last sent to each peer
        self.last_heard = [0.0] * len(peers)       # when each peer last answered in our term

        # A rejected AppendEntries that taught us nothing new about `peer` (next_index did not
        # move): resend only with the next heartbeat, never in a loop of instant retries.
        self.heartbeat_only = [False] * len(peers)

        # Snapshot hand-off to the service (2D): a snapshot installed from the leader waits
        # here until the applier delivers it, in order with the commands around it.
        self.pending_snapshot: ApplySnapshot | None = None

        # Notified when the role changes (elected, or back to follower): the ticker then
        # watches the other deadline (election timeout, or contact with a majority).
        self._ticker_wakeup = threading.Condition(self._lock)
        # One per peer, notified when there is something to send it: a new entry, a new
        # commit index, its reply to the last RPC, or our election.
        self._replicator_wakeups = [threading.Condition(self._lock) for _ in peers]
        # Notified when commit_index moves or a snapshot from the leader is installed.
        self._applier_wakeup = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        ### END SOLUTION

        # Initialize from the state persisted before a crash.
        self._restore(persister.raft_state())
        ### BEGIN SOLUTION 2A 2D
        self.commit_index = self.last_applied = self.log.snapshot_index
        self._reset_election_timer()
        ### END SOLUTION

    # ---------------------------------------------------------------------------------------------
    # Persistence (Figure 2: "updated on stable storage before responding to RPCs")

    ### BEGIN SOLUTION 2C
    def _encode_state(self) -> bytes:
        state = PersistentState(
            current_term=self.current_term,
            snapshot_index=self.log.snapshot_index,
            snapshot_term=self.log.snapshot_term,
        )
        if self.voted_for is not None:
            state.voted_for = self.voted_for
        state.log.extend(self.log.entries)
        return labcodec.encode(state)
    ### END SOLUTION

    def _persist(self) -> None:
        """Save the persistent state of Figure 2 with the persister (2C).

        Define a message for it in raft.proto (say PersistentState) and encode it:

            state = PersistentState(current_term=self.current_term, ...)
            self.persister.save_raft_state(labcodec.encode(state))
        """
        ### BEGIN SOLUTION 2C optional
        self.persister.save_raft_state(self._encode_state())
        debug(Topic.PERSIST, "S%d saved term %d, vote %s, log through %d", self.me,
              self.current_term, self.voted_for, self.log.last_index)
        ### END SOLUTION

    ### BEGIN SOLUTION 2D
    def _persist_with_snapshot(self, snapshot: bytes) -> None:
        self.persister.save_state_and_snapshot(self._encode_state(), snapshot)
    ### END SOLUTION

    def _restore(self, data: bytes) -> None:
        """Bring back the state saved by `_persist` (2C).

            state = labcodec.decode(data, PersistentState)
            self.current_term = state.current_term
            ...
        """
        if not data:
            return  # a first boot: nothing was saved
        ### BEGIN SOLUTION 2C
        state = labcodec.decode(data, PersistentState)
        self.current_term = state.current_term
        self.voted_for = state.voted_for if state.HasField("voted_for") else None
        self.log = Log(state.snapshot_index, state.snapshot_term, list(state.log))
        ### END SOLUTION

    ### BEGIN SOLUTION 2A 2B 2C 2D
    # ---------------------------------------------------------------------------------------------
    # Rules for all servers

    def _become_follower(self, term: int) -> None:
        """A higher term was seen: adopt it and forget our vote (Figure 2, all servers)."""
        if term > self.current_term:
            debug(Topic.TERM, "S%d term %d -> %d", self.me, self.current_term, term)
            self.current_term, self.voted_for = term, None
            self._persist()
        if self.role is not Role.FOLLOWER:
            debug(Topic.TERM, "S%d back to follower in term %d", self.me, self.current_term)
            if self.role is Role.LEADER:
                # A leader's election deadline passed long ago: without a fresh timeout it
                # would start an election at once and depose the leader that just outranked it.
                self._reset_election_timer()
            self.role = Role.FOLLOWER
            self._ticker_wakeup.notify()

    def _refuse_if_killed(self) -> None:
        """A killed peer is a crashed machine: it answers nothing and changes nothing."""
        if self._dead:
            raise Stopped(f"S{self.me} was killed")

    def _reset_election_timer(self) -> None:
        timeout = random.uniform(ELECTION_TIMEOUT_MIN, ELECTION_TIMEOUT_MAX)
        self.election_deadline = time.monotonic() + timeout

    def _is_up_to_date(self, last_log_index: int, last_log_term: int) -> bool:
        """The election restriction (section 5.4.1): is a candidate's log at least as recent?"""
        if last_log_term != self.log.last_term:
            return last_log_term > self.log.last_term
        return last_log_index >= self.log.last_index

    # ---------------------------------------------------------------------------------------------
    # RequestVote RPC: receiver implementation

    def _handle_request_vote(self, args: RequestVoteArgs) -> RequestVoteReply:
        if args.pre_vote:
            return self._handle_pre_vote(args)
        if args.term > self.current_term:
            self._become_follower(args.term)
        if args.term < self.current_term:
            return RequestVoteReply(term=self.current_term, vote_granted=False)
        if (self.voted_for in (None, args.candidate_id)
                and self._is_up_to_date(args.last_log_index, args.last_log_term)):
            if self.voted_for is None:
                self.voted_for = args.candidate_id
                self._persist()
            self._reset_election_timer()
            debug(Topic.VOTE, "S%d granted vote to S%d in term %d", self.me, args.candidate_id,
                  self.current_term)
            return RequestVoteReply(term=self.current_term, vote_granted=True)
        return RequestVoteReply(term=self.current_term, vote_granted=False)

    def _handle_pre_vote(self, args: RequestVoteArgs) -> RequestVoteReply:
        """Would we vote for this candidate in `args.term`? Answering changes nothing here."""
        heard_from_leader = (self.role is Role.LEADER
                             or time.monotonic() - self.leader_contact < LEADER_CONTACT_WINDOW)
        granted = (args.term > self.current_term and not heard_from_leader
                   and self._is_up_to_date(args.last_log_index, args.last_log_term))
        return RequestVoteReply(term=self.current_term, vote_granted=granted)

    # ---------------------------------------------------------------------------------------------
    # Candidates (section 5.2), after a pre-vote (section 9.6 of the dissertation)

    def _start_pre_vote(self) -> RequestVoteArgs:
        """Election timeout: ask whether a majority would vote for us in the next term."""
        self.role = Role.PRE_CANDIDATE
        self.votes = {self.me}
        self._reset_election_timer()  # no majority by then: ask again
        debug(Topic.VOTE, "S%d election timeout: pre-vote for term %d", self.me,
              self.current_term + 1)
        return RequestVoteArgs(term=self.current_term + 1, candidate_id=self.me,
                               last_log_index=self.log.last_index,
                               last_log_term=self.log.last_term, pre_vote=True)

    def _on_pre_vote_reply(self, peer: int, args: RequestVoteArgs, reply: RequestVoteReply) -> None:
        if reply.term > self.current_term:
            self._become_follower(reply.term)
            return
        if self.role is not Role.PRE_CANDIDATE or args.term != self.current_term + 1:
            return  # a stale reply
        if reply.vote_granted:
            self.votes.add(peer)
            if self._won_pre_vote():
                self._ticker_wakeup.notify()  # the ticker starts the real election

    def _won_pre_vote(self) -> bool:
        return self.role is Role.PRE_CANDIDATE and len(self.votes) * 2 > len(self.peers)

    def _start_election(self) -> RequestVoteArgs:
        """Election timeout: increment the term, vote for ourselves, ask everyone else."""
        self.role = Role.CANDIDATE
        self.current_term += 1
        self.voted_for = self.me
        self.votes = set()
        self._persist()
        self._reset_election_timer()
        debug(Topic.TERM, "S%d election timeout: candidate for term %d", self.me, self.current_term)
        self._count_vote(self.me)  # alone, a one-server cluster's candidate is already elected
        return RequestVoteArgs(term=self.current_term, candidate_id=self.me,
                               last_log_index=self.log.last_index, last_log_term=self.log.last_term)

    def _on_vote_reply(self, peer: int, args: RequestVoteArgs, reply: RequestVoteReply) -> None:
        if reply.term > self.current_term:
            self._become_follower(reply.term)
            return
        if self.role is not Role.CANDIDATE or self.current_term != args.term:
            return  # a stale reply from an election we are no longer running
        if reply.vote_granted:
            self._count_vote(peer)

    def _count_vote(self, peer: int) -> None:
        """Votes from a majority of the servers: become leader (section 5.2)."""
        self.votes.add(peer)
        if len(self.votes) * 2 > len(self.peers):
            self._become_leader()

    # ---------------------------------------------------------------------------------------------
    # Leaders (sections 5.3, 5.4)

    def _become_leader(self) -> None:
        debug(Topic.LEADER, "S%d leader of term %d, log through %d", self.me, self.current_term,
              self.log.last_index)
        self.role = Role.LEADER
        for peer in range(len(self.peers)):
            self.next_index[peer] = self.log.last_index + 1
            self.match_index[peer] = 0
            self.last_sent[peer] = 0.0  # announce ourselves with a heartbeat right away
            self.commit_sent[peer] = 0
            self.last_heard[peer] = time.monotonic()  # a fresh leader has its voters' support
        self.match_index[self.me] = self.log.last_index
        for wakeup in self._replicator_wakeups:
            wakeup.notify()
        self._ticker_wakeup.notify()  # it now watches for contact with a majority

    def _quorum_contact_deadline(self) -> float:
        """When we will have heard from no majority for LEADER_QUORUM_TIMEOUT (check quorum)."""
        others = sorted((t for peer, t in enumerate(self.last_heard) if peer != self.me),
                        reverse=True)
        needed = len(self.peers) // 2  # answers from others that make a majority with us
        if needed == 0:
            return float("inf")  # alone we are a majority
        return others[needed - 1] + LEADER_QUORUM_TIMEOUT

    def _step_down_without_quorum(self) -> None:
        debug(Topic.LEADER, "S%d heard from no majority: steps down in term %d", self.me,
              self.current_term)
        self._become_follower(self.current_term)

    def _start_command(self, command: bytes) -> tuple[int, int]:
        """Start(): append to our own log; the replicators send it at once."""
        if self._dead:
            raise NotLeader(f"S{self.me} was killed")
        if self.role is not Role.LEADER:
            raise NotLeader(f"S{self.me} is not the leader (term {self.current_term})")
        self.log.append([LogEntry(term=self.current_term, command=command)])
        self._persist()
        self.match_index[self.me] = self.log.last_index
        self._advance_commit_index()  # our own copy is a majority of a one-server cluster
        for peer, wakeup in enumerate(self._replicator_wakeups):
            if peer != self.me:
                wakeup.notify()
        return self.log.last_index, self.current_term

    def _next_send_time(self, peer: int) -> float:
        """When `peer` is due its next AppendEntries: new entries as soon as the last RPC is
        answered, a new commit index alone COMMIT_ONLY_DELAY after the last send, and otherwise
        a heartbeat HEARTBEAT_INTERVAL after it."""
        heartbeat = self.last_sent[peer] + HEARTBEAT_INTERVAL
        if self.in_flight[peer] or self.heartbeat_only[peer]:
            return heartbeat
        if self.next_index[peer] <= self.log.last_index:
            return 0.0  # at once
        if self.commit_sent[peer] < self.commit_index:
            return min(heartbeat, self.last_sent[peer] + COMMIT_ONLY_DELAY)
        return heartbeat

    def _replication_args(self, peer: int) -> AppendEntriesArgs | InstallSnapshotArgs:
        """What `peer` needs next: entries from next_index, or our snapshot if they are gone."""
        next_index = self.next_index[peer]
        self.heartbeat_only[peer] = False
        if next_index <= self.log.snapshot_index:
            return InstallSnapshotArgs(
                term=self.current_term, leader_id=self.me,
                last_included_index=self.log.snapshot_index,
                last_included_term=self.log.snapshot_term, data=self.persister.snapshot())
        prev = next_index - 1
        self.commit_sent[peer] = self.commit_index
        return AppendEntriesArgs(
            term=self.current_term, leader_id=self.me, prev_log_index=prev,
            prev_log_term=self.log.term_at(prev), entries=self.log.entries_from(next_index),
            leader_commit=self.commit_index)

    def _on_append_entries_reply(self, peer: int, args: AppendEntriesArgs,
                                 reply: AppendEntriesReply) -> None:
        if reply.term > self.current_term:
            self._become_follower(reply.term)
            return
        if self.role is not Role.LEADER or self.current_term != args.term:
            return
        self.last_heard[peer] = time.monotonic()
        if reply.success:
            match = args.prev_log_index + len(args.entries)
            if match > self.match_index[peer]:
                self.match_index[peer] = match
                self._advance_commit_index()
            self.next_index[peer] = max(self.next_index[peer], match + 1)
            return
        # Fast backup (section 5.3, end): skip the follower's whole conflicting term at once.
        if reply.conflict_term:
            last = self.log.last_index_of_term(reply.conflict_term)
            next_index = last + 1 if last is not None else reply.conflict_index
        else:
            next_index = reply.conflict_index
        backed_up = max(self.match_index[peer] + 1, min(next_index, args.prev_log_index))
        # A rejection that does not move next_index (a stale reply, or a follower that lost
        # entries it had acknowledged) would come back the same if resent now.
        self.heartbeat_only[peer] = backed_up == self.next_index[peer]
        self.next_index[peer] = backed_up
        debug(Topic.APPEND, "S%d backs up S%d: rejected after %d, next index %d", self.me, peer,
              args.prev_log_index, self.next_index[peer])

    def _on_install_snapshot_reply(self, peer: int, args: InstallSnapshotArgs,
                                   reply: InstallSnapshotReply) -> None:
        if reply.term > self.current_term:
            self._become_follower(reply.term)
            return
        if self.role is not Role.LEADER or self.current_term != args.term:
            return
        self.last_heard[peer] = time.monotonic()
        self.match_index[peer] = max(self.match_index[peer], args.last_included_index)
        self.next_index[peer] = max(self.next_index[peer], args.last_included_index + 1)

    def _advance_commit_index(self) -> None:
        """Commit the highest N replicated on a majority, if log[N] is from our term (5.4.2)."""
        # The majority-th highest match index is the highest N that a majority holds.
        n = sorted(self.match_index, reverse=True)[len(self.peers) // 2]
        if n <= self.commit_index or self.log.term_at(n) != self.current_term:
            return  # older terms commit only indirectly, with an entry of ours (Figure 8)
        self.commit_index = n
        debug(Topic.COMMIT, "S%d commit index %d", self.me, n)
        self._applier_wakeup.notify()
        for peer, wakeup in enumerate(self._replicator_wakeups):
            if peer != self.me:
                wakeup.notify()

    # ---------------------------------------------------------------------------------------------
    # AppendEntries RPC: receiver implementation

    def _accept_leader(self, term: int) -> None:
        """A valid leader for `term` exists: follow it and hold off our own election."""
        self._become_follower(term)
        self._reset_election_timer()
        self.leader_contact = time.monotonic()

    def _handle_append_entries(self, args: AppendEntriesArgs) -> AppendEntriesReply:
        if args.term < self.current_term:
            return AppendEntriesReply(term=self.current_term, success=False)
        self._accept_leader(args.term)
        prev, entries = args.prev_log_index, list(args.entries)
        if prev < self.log.snapshot_index:
            # The start of this batch is already in our snapshot, hence committed: skip it.
            skip = self.log.snapshot_index - prev
            if skip > len(entries):
                return AppendEntriesReply(term=self.current_term, success=True)
            prev, entries = self.log.snapshot_index, entries[skip:]
        elif prev > self.log.last_index:
            return AppendEntriesReply(term=self.current_term, success=False, conflict_term=0,
                                      conflict_index=self.log.last_index + 1)
        elif self.log.term_at(prev) != args.prev_log_term:
            return AppendEntriesReply(term=self.current_term, success=False,
                                      conflict_term=self.log.term_at(prev),
                                      conflict_index=self.log.first_index_of_term(prev))
        # Delete a conflicting entry and all that follow it; append entries not in the log.
        # Entries that match stay: a delayed, shorter AppendEntries must not shorten the log.
        changed = False
        for offset, entry in enumerate(entries):
            index = prev + 1 + offset
            if index <= self.log.last_index and self.log.term_at(index) == entry.term:
                continue
            self.log.truncate_after(index - 1)
            self.log.append(entries[offset:])
            debug(Topic.APPEND, "S%d appended %d entries after %d from S%d", self.me,
                  len(entries) - offset, index - 1, args.leader_id)
            changed = True
            break
        if changed:
            self._persist()
        last_new = prev + len(entries)
        if args.leader_commit > self.commit_index:
            self.commit_index = max(self.commit_index, min(args.leader_commit, last_new))
            self._applier_wakeup.notify()
        return AppendEntriesReply(term=self.current_term, success=True)

    # ---------------------------------------------------------------------------------------------
    # InstallSnapshot RPC (Figure 13) and the service's snapshots (section 7)

    def _handle_install_snapshot(self, args: InstallSnapshotArgs) -> InstallSnapshotReply:
        if args.term < self.current_term:
            return InstallSnapshotReply(term=self.current_term)
        self._accept_leader(args.term)
        index, term = args.last_included_index, args.last_included_term
        if index <= self.commit_index:
            return InstallSnapshotReply(term=self.current_term)  # we hold all it covers already
        # Install it now, before replying: the leader takes the reply to mean that we hold
        # every entry through `index`, and a crash right after the reply must not lose them.
        # Keep the entries that follow it if our log agrees at `index` (steps 6-7).
        self.log.compact(index, term)
        self.commit_index = self.last_applied = index
        self._persist_with_snapshot(args.data)
        debug(Topic.SNAPSHOT, "S%d installed the leader's snapshot through %d", self.me, index)
        # The applier hands it to the service after the commands it already took out, and
        # before any command after `index` (a newer snapshot replaces one not delivered yet).
        self.pending_snapshot = ApplySnapshot(args.data, term, index)
        self._applier_wakeup.notify()
        return InstallSnapshotReply(term=self.current_term)

    def _cond_install_snapshot(self, term: int, index: int, data: bytes) -> bool:
        """May the service switch to a snapshot the applier delivered? Always: it was installed
        when it arrived, every command before it reached the service first and none after it."""
        return not self._dead

    def _snapshot(self, index: int, data: bytes) -> None:
        """The service has a snapshot of every command through `index`: drop them from the log."""
        if self._dead or index <= self.log.snapshot_index:
            return  # a crashed machine saves nothing; or an older snapshot than the one we have
        if index > self.last_applied:
            raise ValueError(f"snapshot({index}) is beyond the last applied index "
                             f"{self.last_applied}")
        self.log.compact(index, self.log.term_at(index))
        self._persist_with_snapshot(data)
        debug(Topic.SNAPSHOT, "S%d snapshot through %d", self.me, index)

    # ---------------------------------------------------------------------------------------------
    # Applying committed entries (Figure 2: "if commitIndex > lastApplied, apply")

    def _next_apply_batch(self) -> list[ApplyMsg]:
        batch: list[ApplyMsg] = []
        if self.pending_snapshot is not None:
            batch.append(self.pending_snapshot)
            self.pending_snapshot = None
        first = self.last_applied + 1
        batch += [ApplyCommand(self.log.entry(i).command, i)
                  for i in range(first, self.commit_index + 1)]
        self.last_applied = self.commit_index
        return batch

    def _has_work_to_apply(self) -> bool:
        return self.pending_snapshot is not None or self.last_applied < self.commit_index

    ### END SOLUTION

    # ---------------------------------------------------------------------------------------------
    # Threads: they wait, send and deliver; the rules above decide.
    #
    # Sending an RPC: `self.peers[i]` is a RaftClient for peer i.
    #     reply = self.peers[i].request_vote(args)   # blocks; raises labrpc.RpcError when the
    #                                                # request or reply is lost or i is down
    #     future = self.peers[i].request_vote.future(args)   # returns at once
    #     future.add_done_callback(on_reply)                 # on_reply(future) runs later, on a
    #                                                        # network thread: take the lock there
    # A call can take seconds to fail, so never hold the lock while one is in progress.

    ### BEGIN SOLUTION 2A 2B 2C 2D
    def start_threads(self) -> None:
        self._spawn(self._run_ticker, "ticker")
        self._spawn(self._run_applier, "applier")
        for peer in range(len(self.peers)):
            if peer != self.me:
                self._spawn(self._run_replicator, f"replicator-{peer}", peer)

    def _spawn(self, target: Callable[..., None], role: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=f"raft-S{self.me}-{role}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run_ticker(self) -> None:
        """Hold a pre-vote, then an election, whenever the election timeout passes without a
        leader; as leader, step down once no majority has answered for LEADER_QUORUM_TIMEOUT."""
        while True:
            with self._lock:
                while not self._dead:
                    now = time.monotonic()
                    if self.role is Role.LEADER:
                        deadline = self._quorum_contact_deadline()
                        if now >= deadline:
                            self._step_down_without_quorum()
                            continue
                    elif self._won_pre_vote() or now >= self.election_deadline:
                        break
                    else:
                        deadline = self.election_deadline
                    self._ticker_wakeup.wait(None if deadline == float("inf") else deadline - now)
                if self._dead:
                    return
                if self._won_pre_vote():
                    args, on_reply = self._start_election(), self._on_vote_reply
                else:
                    args, on_reply = self._start_pre_vote(), self._on_pre_vote_reply
            for peer, client in enumerate(self.peers):
                if peer != self.me:
                    self._send(client.request_vote, args, peer, on_reply)

    def _run_replicator(self, peer: int) -> None:
        """While leader: keep `peer` up to date, and send heartbeats when there is nothing new."""
        wakeup = self._replicator_wakeups[peer]
        client = self.peers[peer]
        while True:
            with self._lock:
                while not self._dead:
                    if self.role is Role.LEADER:
                        wait = self._next_send_time(peer) - time.monotonic()
                        if wait <= 0:
                            break
                        wakeup.wait(wait)
                    else:
                        wakeup.wait()
                if self._dead:
                    return
                args = self._replication_args(peer)
                self.last_sent[peer] = time.monotonic()
                self.in_flight[peer] = True
            if isinstance(args, AppendEntriesArgs):
                self._send(client.append_entries, args, peer, self._on_append_entries_reply)
            else:
                self._send(client.install_snapshot, args, peer, self._on_install_snapshot_reply)

    def _send(self, rpc: BoundRpc, args: labcodec.Message, peer: int,
              on_reply: Callable[..., None]) -> None:
        """Send without waiting; the reply (or failure) is handled under the lock when it comes."""
        def done(future: Future[labcodec.Message]) -> None:
            with self._lock:
                if self._dead:
                    return
                if not isinstance(args, RequestVoteArgs):
                    self.in_flight[peer] = False
                try:
                    reply = future.result()
                except Timeout:
                    # The network lost the request or the reply; the peer itself is up. Resend
                    # now rather than at the next heartbeat, so that loss alone never keeps a
                    # follower behind or makes it look gone (check quorum).
                    if self.role is Role.LEADER and not isinstance(args, RequestVoteArgs):
                        self.last_sent[peer] = 0.0
                        self._replicator_wakeups[peer].notify()
                    return
                except RpcError:
                    return  # no answer (the peer is down or cut off): the next heartbeat tries
                on_reply(peer, args, reply)
                if self.role is Role.LEADER:
                    self._replicator_wakeups[peer].notify()
        try:
            rpc.future(args).add_done_callback(done)
        except RpcError:
            pass  # the network is shut down

    def _run_applier(self) -> None:
        """Deliver committed entries in order, never holding the lock while putting."""
        while True:
            with self._lock:
                while not self._dead and not self._has_work_to_apply():
                    self._applier_wakeup.wait()
                if self._dead:
                    return
                batch = self._next_apply_batch()
            for msg in batch:
                self.apply_ch.put(msg)

    ### END SOLUTION

    def kill(self) -> None:
        """Stop every thread this peer started (see Node.kill)."""
        ### BEGIN SOLUTION 2A optional
        with self._lock:
            self._dead = True
            for condition in (self._ticker_wakeup, self._applier_wakeup, *self._replicator_wakeups):
                condition.notify_all()
        current = threading.current_thread()
        deadline = time.monotonic() + KILL_JOIN_TIMEOUT
        for thread in self._threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        ### END SOLUTION


class Node:
    """The handle the tester and the KV server hold: the public API of one Raft peer."""

    def __init__(self, raft: Raft) -> None:
        self.raft = raft
        # Start your peer's background work here: election timer, heartbeats, applier.
        ### BEGIN SOLUTION 2A
        raft.start_threads()
        ### END SOLUTION

    def start(self, command: labcodec.Message) -> tuple[int, int]:
        """Start agreement on `command` (a protobuf message); return (index, term) at once.

        Raises NotLeader if this peer is not the leader. The entry may still never commit.
        """
        ### BEGIN SOLUTION 2B
        data = labcodec.encode(command)
        with self.raft._lock:
            return self.raft._start_command(data)
        ### END SOLUTION

    def term(self) -> int:
        return self.get_state().term

    def is_leader(self) -> bool:
        return self.get_state().is_leader

    def get_state(self) -> State:
        ### BEGIN SOLUTION 2A
        with self.raft._lock:
            return State(self.raft.current_term, self.raft.role is Role.LEADER)
        ### END SOLUTION

    def kill(self) -> None:
        """Stop this peer for good.

        The tester calls kill() when it crashes a peer and at the end of every test, then
        starts a new Raft from the persister. A killed peer's threads must stop (within a
        second) and it must not send, vote or apply any more: a zombie that still answers RPCs
        or writes to apply_ch breaks the tests that follow.
        """
        self.raft.kill()

    def snapshot(self, index: int, data: bytes) -> None:
        """The service has applied everything through `index`; `data` replaces that prefix."""
        ### BEGIN SOLUTION 2D
        with self.raft._lock:
            self.raft._snapshot(index, data)
        ### END SOLUTION

    def cond_install_snapshot(self, term: int, index: int, data: bytes) -> bool:
        """Answer to an ApplySnapshot: True if the service should switch to this snapshot."""
        ### BEGIN SOLUTION 2D
        with self.raft._lock:
            return self.raft._cond_install_snapshot(term, index, data)
        ### END SOLUTION

    # RPC handlers, called by labrpc for the `Raft` service of raft.proto: each rpc declared
    # there needs a method here, its name in snake_case, taking the request message and
    # returning the reply message, like request_vote below.

    def request_vote(self, args: RequestVoteArgs) -> RequestVoteReply:
        ### BEGIN SOLUTION 2A
        with self.raft._lock:
            self.raft._refuse_if_killed()
            return self.raft._handle_request_vote(args)
        ### END SOLUTION

    ### BEGIN SOLUTION 2A 2B
    def append_entries(self, args: AppendEntriesArgs) -> AppendEntriesReply:
        with self.raft._lock:
            self.raft._refuse_if_killed()
            return self.raft._handle_append_entries(args)
    ### END SOLUTION

    ### BEGIN SOLUTION 2D
    def install_snapshot(self, args: InstallSnapshotArgs) -> InstallSnapshotReply:
        with self.raft._lock:
            self.raft._refuse_if_killed()
            return self.raft._handle_install_snapshot(args)
    ### END SOLUTION
