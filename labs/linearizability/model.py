"""What the linearizability checker checks: recorded operations, and a model of the service.

A *model* is the sequential specification of the service: its initial state and a `step` rule
saying whether an operation with a given input and output is legal in a state, and which state
follows. Lab 3's key/value service is `KvModel`. The checker never looks inside states; it only
hashes and compares them, so a state must be immutable and hashable (a str, a tuple, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

__all__ = ["Operation", "Model", "ReadHints", "Viability", "KvInput", "GET", "PUT", "APPEND",
           "KV_OPS"]

#: The return time of an operation that never returned (the client gave up or crashed): it may
#: be linearized at any point after its call, including "never" (after everything else).
NEVER_RETURNED = math.inf


@dataclass(frozen=True, slots=True)
class Operation:
    """One client call as the tester saw it: what was asked, what came back, and when.

    Times only need to be comparable and monotonic (seconds from `time.monotonic()`, or event
    numbers). An operation that returned before another was called is ordered before it;
    overlapping operations may be linearized in either order.
    """

    client: int | str
    input: Any
    output: Any
    call_time: float
    return_time: float = NEVER_RETURNED


class Model(Protocol):
    """The sequential specification the checker tests a history against."""

    def partition(self, operations: Sequence[Operation]) -> list[tuple[str, list[Operation]]]:
        """Split into independently checkable histories, labelled (P-compositionality)."""
        ...

    def init(self) -> Hashable:
        """The initial state."""
        ...

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        """(is the operation legal in `state`, the state after it)."""
        ...

    # Optional: `read_hints(operations) -> ReadHints` (below), to prune the search.

    def describe_operation(self, input: Any, output: Any) -> str:
        """A short label, e.g. "get('k') -> 'v'"."""
        ...

    def describe_state(self, state: Any) -> str:
        """A short rendering of a state for tooltips and reports."""
        ...


GET, PUT, APPEND = "get", "put", "append"
KV_OPS = (GET, PUT, APPEND)


class KvInput(NamedTuple):
    """A clerk call: `op` is "get", "put" or "append"; `value` is unused by get."""

    op: str
    key: str
    value: str = ""


#: (state, bitset of linearized operations) -> can this read still become legal?
Viability = Callable[[Any, int], bool]


class ReadHints(NamedTuple):
    """What a model may tell the checker about one partition, indexed like its operations.

    Bit i of the bitsets the checker passes to the tests stands for operation i. Hints only
    speed the search up; they must never make a linearizable history look illegal:

    - `neutral[i]`: whenever operation i is legal and leaves the state as it was, linearizing
      it at once loses nothing (any linearization placing it later stays valid with it moved
      to now). True of every read.
    - `viable[i]`: for a read, None or a test: False only if, from this state with these
      operations linearized, the read can never become legal.
    - `watchers[i]`: reads whose test may turn False when operation i is linearized; the
      checker runs them right after linearizing it.
    - `inputs`, `step`, `init`: None, or a stand-in for the operations' inputs, the model's
      step and its initial state in the search, under which every read is legal after
      exactly the same sequences of operations as under the originals. The tests then see
      stand-in states too. (`init` None: the model's own.)

    A read whose test says False in the initial state, with nothing linearized, can never be
    legal: the checker gives its verdict without searching.
    """

    neutral: list[bool]
    viable: list[Viability | None]
    watchers: list[tuple[int, ...]]
    inputs: list[Any] | None = None
    step: Callable[[Any, Any, Any], tuple[bool, Any]] | None = None
    init: Any = None

    @classmethod
    def none(cls, n: int) -> ReadHints:
        """No hints: the checker runs plain WGL."""
        return cls([False] * n, [None] * n, [()] * n)
