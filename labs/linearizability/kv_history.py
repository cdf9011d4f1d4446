"""Recording what lab 3's clerks did, and checking it: the helper the KV tests use.

    recorder = Recorder()
    # in each client thread:
    with recorder.call(client, "append", key, value):
        clerk.append(key, value)
    with recorder.call(client, "get", key) as call:
        call.output = clerk.get(key)
    # at the end:
    result = check_kv(recorder.operations(), timeout=1.0)
    if result.illegal:
        print(write_html(result, "linearizability.html"))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from labs.linearizability.checker import CheckResult, check_operations
from labs.linearizability.kv_model import KvModel
from labs.linearizability.model import GET, KV_OPS, NEVER_RETURNED, KvInput, Operation
from labs.linearizability.visualize import write_html

__all__ = ["Recorder", "PendingCall", "check_kv", "write_html", "LINEARIZABILITY_CHECK_TIMEOUT"]

#: The labs' time budget for a check (seconds); an undecided check counts as a pass.
LINEARIZABILITY_CHECK_TIMEOUT = 1.0


class PendingCall:
    """A call in progress; set `output` to what a get returned before the `with` block ends."""

    __slots__ = ("client", "input", "output", "call_time")

    def __init__(self, client: int | str, input: KvInput, call_time: float) -> None:
        self.client = client
        self.input = input
        self.output: str | None = None
        self.call_time = call_time


class Recorder:
    """A thread-safe log of clerk calls, each with its call and return times.

    `clock` must be monotonic and shared by all threads (the default, `time.monotonic`, is).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._operations: list[Operation] = []  # guarded by _lock
        # Per key, the output of its latest get (guarded by _lock). A get's output is the whole
        # value of its key, and the lab's tests grow values by appending for seconds: a history
        # holds thousands of long strings (610 MB of them in "restarts, snapshots, one client
        # (3B)" on a 2-core VM). About half of the gets return what the key's previous get did;
        # those share its string instead of keeping a copy each.
        self._last_output: dict[str, str] = {}

    def record(self, client: int | str, op: str, key: str, value: str, output: str | None,
               call_time: float, return_time: float) -> None:
        """Log one call. `value` is what a put or append wrote and `output` what a get
        returned (each ignored for the other kind); a `return_time` of math.inf
        (`NEVER_RETURNED`) means the call never returned, and then a get's output is None."""
        if op not in KV_OPS:
            raise ValueError(f"op must be one of {', '.join(KV_OPS)}, not {op!r}")
        if return_time < call_time:
            raise ValueError(f"returned at {return_time} before being called at {call_time}")
        if op == GET:
            value = ""
            if output is None and return_time != NEVER_RETURNED:
                raise ValueError("a get that returned needs its output")
        else:
            output = None
        with self._lock:
            if output is not None:
                previous = self._last_output.get(key)
                if previous == output:
                    output = previous
                else:
                    self._last_output[key] = output
            self._operations.append(
                Operation(client, KvInput(op, key, value), output, call_time, return_time))

    @contextmanager
    def call(self, client: int | str, op: str, key: str, value: str = "") -> Iterator[PendingCall]:
        """Time the clerk call made in the `with` block.

        If the block raises, the call is logged as never returned: it may or may not have
        taken effect, and a get's result is unknown.
        """
        if op not in KV_OPS:
            raise ValueError(f"op must be one of {', '.join(KV_OPS)}, not {op!r}")
        pending = PendingCall(client, KvInput(op, key, value if op != GET else ""), self._clock())
        try:
            yield pending
        except BaseException:
            self.record(client, op, key, value, None, pending.call_time, NEVER_RETURNED)
            raise
        self.record(client, op, key, value, pending.output, pending.call_time, self._clock())

    def operations(self) -> list[Operation]:
        """A copy of everything logged so far, in call order."""
        with self._lock:
            return sorted(self._operations, key=lambda op: op.call_time)

    def __len__(self) -> int:
        with self._lock:
            return len(self._operations)


def check_kv(operations: Sequence[Operation],
             timeout: float | None = LINEARIZABILITY_CHECK_TIMEOUT) -> CheckResult:
    """Check KV operations against the key/value model, each key on its own."""
    return check_operations(KvModel(), operations, timeout)
