"""A stand-in for Raft in the Raft tester, for tests of the tester's own tools (the timeline).

It runs no thread and sends no RPC: each peer is in term 1, the peers in `LEADERS` claim to lead
it, and a leader's `start()` applies the command at once on its own apply channel. With two
leaders it is the deliberately broken Raft that makes a lab test fail fast (the leadership
monitor sees two leaders in one term within 50 ms). Being independent of raft/raft.py, the tests
that use it pass the same in a student's handout, whatever state the student's Raft is in.

    import raft_harness, scripted_raft
    monkeypatch.setattr(raft_harness, "Raft", scripted_raft.ScriptedRaft)
    monkeypatch.setattr(raft_harness, "Node", scripted_raft.ScriptedNode)
"""

from __future__ import annotations

import queue
from typing import Any

import labcodec
from raft.raft import ApplyCommand, NotLeader, State

__all__ = ["ScriptedRaft", "ScriptedNode", "LEADERS"]

LEADERS = {0}   # the peers that claim to lead term 1 (two of them: a broken Raft)


class ScriptedRaft:
    def __init__(self, peers: list[Any], me: int, persister: Any, apply_ch: queue.Queue) -> None:
        self.me = me
        self.apply_ch = apply_ch
        self.leader = me in LEADERS
        self.last_index = 0
        self.killed = False


class ScriptedNode:
    def __init__(self, raft: ScriptedRaft) -> None:
        self.raft = raft

    def start(self, command: Any) -> tuple[int, int]:
        if not self.raft.leader or self.raft.killed:
            raise NotLeader()
        self.raft.last_index += 1
        self.raft.apply_ch.put(ApplyCommand(labcodec.encode(command), self.raft.last_index))
        return self.raft.last_index, 1

    def term(self) -> int:
        return 1

    def is_leader(self) -> bool:
        return self.raft.leader

    def get_state(self) -> State:
        return State(1, self.raft.leader)

    def snapshot(self, index: int, data: bytes) -> None:
        pass

    def cond_install_snapshot(self, term: int, index: int, data: bytes) -> bool:
        return False

    def kill(self) -> None:
        self.raft.killed = True
