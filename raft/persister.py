"""Where a Raft peer keeps the state that must survive a crash (lab 2C/2D).

The tester hands each peer a `Persister`. On a crash it gives the restarted peer a `copy()`
of it, so anything the peer saved before the crash is visible and anything the dead peer
writes afterwards is not.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

__all__ = ["Persister", "PersisterBase", "MemoryPersister"]


@runtime_checkable
class Persister(Protocol):
    def raft_state(self) -> bytes:
        """The last state given to `save_raft_state` or `save_state_and_snapshot` (b"" if none)."""

    def snapshot(self) -> bytes:
        """The last snapshot saved with `save_state_and_snapshot` (b"" if none)."""

    def save_raft_state(self, state: bytes) -> None:
        """Replace the Raft state, keeping the snapshot."""

    def save_state_and_snapshot(self, state: bytes, snapshot: bytes) -> None:
        """Replace the Raft state and the snapshot together, atomically."""

    def raft_state_size(self) -> int:
        """Length in bytes of the saved Raft state."""

    def snapshot_size(self) -> int:
        """Length in bytes of the saved snapshot."""


class PersisterBase:
    """The `Persister` protocol over a state and snapshot kept in memory under a lock.

    Every save goes through `_store`, with the lock held, so saves happen one at a time and in
    the order they were made; a subclass that keeps the pair somewhere else too (a file)
    overrides `_store` to write it there before keeping it in memory.
    """

    def __init__(self, raft_state: bytes = b"", snapshot: bytes = b"") -> None:
        self._lock = threading.Lock()
        self._raft_state = bytes(raft_state)
        self._snapshot = bytes(snapshot)

    def raft_state(self) -> bytes:
        with self._lock:
            return self._raft_state

    def snapshot(self) -> bytes:
        with self._lock:
            return self._snapshot

    def save_raft_state(self, state: bytes) -> None:
        with self._lock:
            self._store(bytes(state), self._snapshot)

    def save_state_and_snapshot(self, state: bytes, snapshot: bytes) -> None:
        with self._lock:
            self._store(bytes(state), bytes(snapshot))

    def raft_state_size(self) -> int:
        with self._lock:
            return len(self._raft_state)

    def snapshot_size(self) -> int:
        with self._lock:
            return len(self._snapshot)

    def _store(self, state: bytes, snapshot: bytes) -> None:
        """Make (state, snapshot) the saved pair; called with the lock held."""
        self._raft_state, self._snapshot = state, snapshot


class MemoryPersister(PersisterBase):
    """A thread-safe in-memory `Persister`; the tester's stand-in for a disk."""

    def copy(self) -> MemoryPersister:
        """An independent persister holding the same state and snapshot."""
        with self._lock:
            return MemoryPersister(self._raft_state, self._snapshot)
