"""What `labs cluster status` can tell of a node's log without new lab API (cluster/progress.py):
the applied index from the apply channel, the leader's last log index from its start() results,
and the optional log_indexes() hook of a Raft that defines it."""

from __future__ import annotations

import queue
from dataclasses import dataclass

import pytest

from cluster.progress import Progress
from raft.raft import ApplyCommand, ApplySnapshot, NotLeader


@dataclass(frozen=True)
class FakeState:
    term: int
    is_leader: bool


class FakeNode:
    """The lab API of a Raft Node, as far as the runtime uses it."""

    def __init__(self) -> None:
        self.state = FakeState(1, True)
        self.next_index = 1

    def get_state(self) -> FakeState:
        return self.state

    def start(self, command: object) -> tuple[int, int]:
        if not self.state.is_leader:
            raise NotLeader()
        index, self.next_index = self.next_index, self.next_index + 1
        return index, self.state.term


def test_applied_is_the_highest_index_put_on_the_apply_channel():
    progress, channel = Progress(), queue.Queue()
    assert progress.watch_apply_channel(channel)
    node = FakeNode()
    assert progress.indexes(node.get_state).applied is None  # nothing seen yet
    channel.put(ApplyCommand(b"a", 1))
    channel.put_nowait(ApplyCommand(b"b", 2))
    channel.put(ApplySnapshot(b"s", 1, 7))
    channel.put(ApplyCommand(b"c", 5))  # an older index never lowers what was seen
    channel.put("not an apply message")
    assert progress.indexes(node.get_state).applied == 7
    # The service still gets every message, in order.
    assert [channel.get_nowait() for _ in range(5)][-1] == "not an apply message"


def test_a_channel_that_cannot_be_watched_leaves_applied_unknown():
    progress = Progress()
    assert not progress.watch_apply_channel(queue.SimpleQueue())
    assert not progress.watch_apply_channel(None)
    assert progress.indexes(FakeNode().get_state).applied is None


def test_last_log_comes_from_start_while_the_node_leads_in_that_term():
    progress, node = Progress(), FakeNode()
    progress.watch_start(node)
    assert progress.indexes(node.get_state).last_log is None  # a leader that started nothing
    assert node.start("x") == (1, 1) and node.start("y") == (2, 1)  # the results pass through
    indexes = progress.indexes(node.get_state)
    assert (indexes.term, indexes.is_leader, indexes.last_log, indexes.commit) == (1, True, 2, None)
    node.state = FakeState(2, False)
    with pytest.raises(NotLeader):
        node.start("z")
    assert progress.indexes(node.get_state).last_log is None  # a follower's is unknown
    node.state = FakeState(3, True)
    assert progress.indexes(node.get_state).last_log is None  # leads again, started nothing yet
    node.start("w")
    assert progress.indexes(node.get_state).last_log == 3


def test_the_optional_hook_gives_last_log_and_commit():
    class HookedNode(FakeNode):
        def log_indexes(self) -> tuple[int, int]:
            return 9, 6

    progress, node = Progress(), HookedNode()
    node.state = FakeState(4, False)
    progress.watch_start(node)
    indexes = progress.indexes(node.get_state)
    assert (indexes.term, indexes.last_log, indexes.commit) == (4, 9, 6)


@pytest.mark.parametrize("result", [(1,), [3, 2], (1, -1), (1, "2"), None, (True, 1)])
def test_a_hook_that_returns_something_else_is_named(result):
    class BadNode(FakeNode):
        def log_indexes(self) -> object:
            return result

    progress, node = Progress(), BadNode()
    progress.watch_start(node)
    with pytest.raises(TypeError, match=r"Node.log_indexes\(\) returned .*expected a tuple "
                                        r"\(last log index, commit index\)"):
        progress.indexes(node.get_state)


def test_a_node_without_instance_attributes_runs_unwatched():
    class SlotNode:
        __slots__ = ()

        def get_state(self) -> FakeState:
            return FakeState(1, True)

        def start(self, command: object) -> tuple[int, int]:
            return 1, 1

    progress, node = Progress(), SlotNode()
    progress.watch_start(node)
    assert node.start("x") == (1, 1)
    assert progress.indexes(node.get_state).last_log is None
