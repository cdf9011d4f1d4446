"""Lab 3: a fault-tolerant key/value server replicated with Raft (3A), with snapshots (3B).

The tester makes one `KvServer` per server and reaches it through `Node`: the clerks' RPCs
arrive at `Node.get` and `Node.put_append`, and the other servers' Raft peers talk to `kv.rf`.
What the server must guarantee (every operation through the log, each clerk request applied
once, linearizable answers) is in docs/lab3-kvraft.md; how to get there is yours to design.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
### BEGIN SOLUTION 3A
from dataclasses import dataclass, field
### END SOLUTION

import labcodec
from proto.kvraftpb import GetReply, GetRequest, PutAppendReply, PutAppendRequest
### BEGIN SOLUTION 3A 3B
from proto.kvraftpb import Command, KvSnapshot, Op
### END SOLUTION
from proto.raftpb import RaftClient
from raft.persister import Persister
from raft.raft import ApplyCommand, ApplySnapshot, NotLeader, Raft, State
from raft.raft import Node as RaftNode

__all__ = ["KvServer", "Node"]

log = logging.getLogger("kvraft")

### BEGIN SOLUTION 3A
ERR_WRONG_LEADER = "wrong leader"
ERR_TIMEOUT = "timeout"
# A handler gives up after this long (the clerk retries), so a partitioned leader never
# holds a clerk forever; it also re-checks its term this often.
APPLY_WAIT_LIMIT = 1.0
TERM_CHECK_INTERVAL = 0.05


@dataclass
class _Waiter:
    """A handler waiting for the entry at `index` to be applied."""

    command: Command
    term: int
    done: threading.Event = field(default_factory=threading.Event)
    applied_ours: bool = False
    value: str = ""
### END SOLUTION


class KvServer:
    """One server of the service: the key/value state machine and its Raft peer, `self.rf`."""

    def __init__(self, servers: list[RaftClient], me: int, persister: Persister,
                 maxraftstate: int | None) -> None:
        self.me = me
        self.persister = persister
        self.maxraftstate = maxraftstate
        self.apply_ch: queue.Queue[ApplyCommand | ApplySnapshot] = queue.Queue()
        self.rf = RaftNode(Raft(servers, me, persister, self.apply_ch))
        # Your definitions here (3A, 3B).
        ### BEGIN SOLUTION 3A 3B
        # The lock guards the fields below; the apply loop never holds it while calling Raft.
        self._lock = threading.Lock()
        self.data: dict[str, str] = {}
        self.last_seq: dict[str, int] = {}
        self.last_applied = 0
        self._waiters: dict[int, _Waiter] = {}
        self._dead = threading.Event()
        self._restore(persister.snapshot())
        self._applier = threading.Thread(target=self._run_apply_loop, name=f"kv-S{me}-apply",
                                         daemon=True)
        self._applier.start()
        ### END SOLUTION

    ### BEGIN SOLUTION 3A 3B
    # --- serving clerks --------------------------------------------------------------------------

    def submit(self, command: Command) -> tuple[str | None, str]:
        """Run `command` through Raft; return (error or None, Get's value)."""
        if self._dead.is_set():
            return ERR_WRONG_LEADER, ""
        # Start and register under the lock: the apply loop needs it to apply the entry, so
        # the waiter is in place however soon the command commits.
        with self._lock:
            try:
                index, term = self.rf.start(command)
            except NotLeader:
                return ERR_WRONG_LEADER, ""
            waiter = _Waiter(command, term)
            self._waiters[index] = waiter
        try:
            deadline = time.monotonic() + APPLY_WAIT_LIMIT
            while not waiter.done.wait(TERM_CHECK_INTERVAL):
                if self._dead.is_set() or self.rf.get_state() != State(term, True):
                    return ERR_WRONG_LEADER, ""
                if time.monotonic() > deadline:
                    return ERR_TIMEOUT, ""
            if not waiter.applied_ours:
                return ERR_WRONG_LEADER, ""
            return None, waiter.value
        finally:
            with self._lock:
                if self._waiters.get(index) is waiter:
                    del self._waiters[index]

    # --- the state machine ------------------------------------------------------------------------

    def _apply(self, command: Command) -> str:
        """Apply one command exactly once; return the value a Get sees. Hold the lock."""
        if command.op == Op.GET:
            return self.data.get(command.key, "")
        if command.seq > self.last_seq.get(command.client, 0):
            self.last_seq[command.client] = command.seq
            if command.op == Op.PUT:
                self.data[command.key] = command.value
            else:
                self.data[command.key] = self.data.get(command.key, "") + command.value
        return ""

    def _run_apply_loop(self) -> None:
        while not self._dead.is_set():
            try:
                msg = self.apply_ch.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(msg, ApplyCommand):
                self._apply_command(msg)
            elif isinstance(msg, ApplySnapshot):
                if self.rf.cond_install_snapshot(msg.term, msg.index, msg.data):
                    with self._lock:
                        self._restore(msg.data)

    def _apply_command(self, msg: ApplyCommand) -> None:
        command = labcodec.decode(msg.data, Command)
        with self._lock:
            if msg.index <= self.last_applied:
                return
            value = self._apply(command)
            self.last_applied = msg.index
            waiter = self._waiters.get(msg.index)
            if waiter is not None:
                waiter.applied_ours = (waiter.command.client == command.client
                                       and waiter.command.seq == command.seq)
                waiter.value = value
                waiter.done.set()
            snapshot = self._snapshot_if_due()
        if snapshot is not None:
            self.rf.snapshot(msg.index, snapshot)

    # --- snapshots (3B) ---------------------------------------------------------------------------

    def _snapshot_if_due(self) -> bytes | None:
        """The encoded state once Raft's persisted state reaches maxraftstate. Hold the lock."""
        if self.maxraftstate is None or self.persister.raft_state_size() < self.maxraftstate:
            return None
        return labcodec.encode(KvSnapshot(data=self.data, last_seq=self.last_seq,
                                          last_applied=self.last_applied))

    def _restore(self, snapshot: bytes) -> None:
        if not snapshot:
            return
        state = labcodec.decode(snapshot, KvSnapshot)
        self.data = dict(state.data)
        self.last_seq = dict(state.last_seq)
        self.last_applied = state.last_applied

    ### END SOLUTION

    def kill(self) -> None:
        """Stop this server and its Raft peer; like Raft's, its threads must end."""
        self.rf.kill()
        ### BEGIN SOLUTION 3A optional
        self._dead.set()
        if threading.current_thread() is not self._applier:
            self._applier.join(1.0)
        ### END SOLUTION


class Node:
    """The handle the tester holds: the KV service's RPC handlers plus its Raft's state."""

    def __init__(self, kv: KvServer) -> None:
        self.kv = kv

    def kill(self) -> None:
        """Stop the server and its Raft peer."""
        self.kv.kill()

    def term(self) -> int:
        return self.kv.rf.term()

    def is_leader(self) -> bool:
        return self.kv.rf.is_leader()

    def get_state(self) -> State:
        return self.kv.rf.get_state()

    def get(self, args: GetRequest) -> GetReply:
        ### BEGIN SOLUTION 3A
        command = Command(op=Op.GET, key=args.key, client=args.client, seq=args.seq)
        err, value = self.kv.submit(command)
        if err is not None:
            return GetReply(wrong_leader=err == ERR_WRONG_LEADER, err=err)
        return GetReply(value=value)
        ### END SOLUTION

    def put_append(self, args: PutAppendRequest) -> PutAppendReply:
        ### BEGIN SOLUTION 3A
        command = Command(op=args.op, key=args.key, value=args.value, client=args.client,
                          seq=args.seq)
        err, _ = self.kv.submit(command)
        if err is not None:
            return PutAppendReply(wrong_leader=err == ERR_WRONG_LEADER, err=err)
        return PutAppendReply()
        ### END SOLUTION
