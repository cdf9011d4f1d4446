"""How far a node's log has got, as far as the runtime can tell without new lab API.

The lab API of a Raft peer (`Node.get_state`, `start`, `kill`, ...) says nothing of log or
commit indexes, and the cluster runs the student's `raft/raft.py` unchanged. So `labs cluster
status` shows what the runtime can see for itself, and labels it for what it is:

- **applied**: the highest index delivered on the peer's apply channel (an `ApplyCommand`'s, or
  an `ApplySnapshot`'s). Raft applies only what is committed, so applied <= commit index.
- **last log**: the index that the last successful `start()` on this peer returned, shown only
  while the peer is still leader in the term of that call (a leader's log grows only through
  `start()` within its term; a follower's last index cannot be seen through the API).
- **commit**: unknown through the API.

A Raft may define the optional hook `Node.log_indexes() -> tuple[int, int]`, returning its last
log index and its commit index; when it does, status shows those instead. Nothing requires it:
the lab tests never call it, and without it status shows "-" where it cannot know.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LOG_INDEXES_HOOK", "Progress", "LogIndexes"]

# The name of the optional hook on a Raft `Node` (see the module's docstring).
LOG_INDEXES_HOOK = "log_indexes"


class _State(Protocol):
    @property
    def term(self) -> int: ...

    @property
    def is_leader(self) -> bool: ...


@dataclass(frozen=True)
class LogIndexes:
    """One node's indexes for `labs cluster status`; None where the runtime cannot know."""

    term: int
    is_leader: bool
    last_log: int | None
    commit: int | None
    applied: int | None


class Progress:
    """Watches one Raft peer from outside: its apply channel and its `start()` calls.

    `watch_apply_channel` and `watch_start` wrap the `put` of the peer's apply queue and the
    peer's `start` on those instances only, so the peer's code runs unchanged and the runtime
    sees each result as it happens. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._applied: int | None = None
        self._started: tuple[int, int] | None = None  # (term, index) of the last start()
        self._hook: Callable[[], object] | None = None

    # --- what the peer does ---------------------------------------------------------------------

    def saw_applied(self, message: object) -> None:
        """Note a message of the apply channel (anything without an int `index` is ignored)."""
        index = getattr(message, "index", None)
        if isinstance(index, int) and not isinstance(index, bool):
            with self._lock:
                if self._applied is None or index > self._applied:
                    self._applied = index

    def watch_apply_channel(self, channel: object) -> bool:
        """See every message `put` on `channel` (a `queue.Queue`); False if it cannot be watched
        (another kind of channel), in which case applied shows as unknown."""
        if not isinstance(channel, queue.Queue):
            return False
        put = channel.put

        def watched_put(item: Any, block: bool = True, timeout: float | None = None) -> None:
            put(item, block, timeout)
            self.saw_applied(item)

        # An instance attribute shadows the class's method; put_nowait calls self.put, so both
        # go through the wrapper.
        vars(channel)["put"] = watched_put
        return True

    def watch_start(self, node: object) -> None:
        """Remember the (index, term) of each successful `node.start(...)`, and find the optional
        `log_indexes` hook."""
        hook = getattr(node, LOG_INDEXES_HOOK, None)
        self._hook = hook if callable(hook) else None
        start = getattr(node, "start", None)
        if not callable(start):
            return

        def watched_start(*args: Any, **kwargs: Any) -> Any:
            result = start(*args, **kwargs)
            try:
                index, term = result
            except (TypeError, ValueError):
                return result  # not the lab's (index, term): nothing to learn from it
            if isinstance(index, int) and isinstance(term, int):
                with self._lock:
                    if self._started is None or (term, index) > self._started:
                        self._started = (term, index)
            return result

        try:
            vars(node)["start"] = watched_start
        except TypeError:
            pass  # an object without a __dict__ (__slots__): last log stays unknown

    # --- what status shows ----------------------------------------------------------------------

    def indexes(self, get_state: Callable[[], _State]) -> LogIndexes:
        """The node's state now; raises what `get_state()` or the hook raise (shown as the
        node's error), and TypeError if the hook returns something else than two ints."""
        state = get_state()
        with self._lock:
            applied, started = self._applied, self._started
        if self._hook is not None:
            hook_last_log, hook_commit = _check_hook_result(self._hook())
            return LogIndexes(state.term, state.is_leader, hook_last_log, hook_commit, applied)
        last_log: int | None = None
        if started is not None and state.is_leader and started[0] == state.term:
            last_log = started[1]
        return LogIndexes(state.term, state.is_leader, last_log, None, applied)


def _check_hook_result(result: object) -> tuple[int, int]:
    if (isinstance(result, tuple) and len(result) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in result)):
        return result[0], result[1]
    raise TypeError(f"Node.{LOG_INDEXES_HOOK}() returned {result!r}; expected a tuple "
                    "(last log index, commit index) of two ints >= 0")
