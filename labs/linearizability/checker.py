"""The linearizability search: Wing & Gong's backtracking with Lowe's memoization (WGL).

A history is linearizable if every operation can be given a single instant between its call
and its return such that, taken in the order of those instants, the operations are legal for
the model. The search, per partition of the history:

1. Each operation becomes a call entry and a return entry, sorted by time into a doubly linked
   list (calls before returns at equal times: touching operations count as concurrent).
2. Walk the list from the head. At a call entry, try to linearize that operation next: if the
   model allows it and the resulting (set of linearized operations, state) has not been seen
   before, record the choice on a stack, take the new state, lift both of the operation's
   entries out of the list and start again from the head.
3. Reaching a return entry means an operation that must be linearized by now could not be,
   given the choices so far: undo the last choice (pop, restore the state, put the entries back)
   and try the next call after it. With nothing left to undo, the history is not linearizable.
4. An empty list means every operation was linearized: the history is linearizable.

Lowe's cache is what makes it practical: the future of the search depends only on which
operations are linearized and the state, so a pair seen once never needs exploring again.

Plain WGL notices a wrong choice only at a return entry, possibly much later and after an
exponential number of configurations. Models that describe their reads (`Model.read_hints`)
let this search cut those subtrees off early; without hints it is plain WGL, except that a
stretch of operations one after another is taken without search. See `_check_partition` for
the shortcuts.
"""

from __future__ import annotations

import enum
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labs.linearizability.model import Model, Operation, ReadHints

__all__ = ["CheckOutcome", "PartitionResult", "CheckResult", "check_operations"]

#: How many search steps run between two looks at the clock: a look costs about as much as a
#: step, and a few thousand steps take milliseconds, which is how far a timeout overshoots.
STEPS_PER_CLOCK_CHECK = 2048

#: How far past the operations that may come next the search looks for reads that can no
#: longer become legal. Further costs more per configuration than it saves.
LOOKAHEAD_ENTRIES = 16


class CheckOutcome(str, enum.Enum):
    """The verdict. UNKNOWN means the time budget ran out before a verdict was reached."""

    OK = "ok"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclass
class PartitionResult:
    """The verdict on one partition (one key, for the KV model) and what the search learned.

    `longest_prefix` indexes into `operations`: the longest sequence of operations the search
    managed to linearize (all of them when OK). For ILLEGAL, `stuck` lists the operations that
    real time allows next after that prefix, none of which leads to a linearization, and
    `doomed` the reads that the model's hints say can never become legal after it.
    """

    label: str
    operations: list[Operation]
    outcome: CheckOutcome | None = None  # None: not checked (an earlier partition decided)
    longest_prefix: list[int] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)
    doomed: list[int] = field(default_factory=list)
    search_steps: int = 0


@dataclass
class CheckResult:
    """The verdict on a whole history, with the per-partition detail the visualization uses."""

    result: CheckOutcome
    model: Model
    partitions: list[PartitionResult]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result is CheckOutcome.OK

    @property
    def illegal(self) -> bool:
        return self.result is CheckOutcome.ILLEGAL

    def failing(self) -> list[PartitionResult]:
        """The partitions found not linearizable."""
        return [p for p in self.partitions if p.outcome is CheckOutcome.ILLEGAL]


class _OutOfTime(Exception):
    pass


def check_operations(model: Model, operations: Sequence[Operation],
                     timeout: float | None = None) -> CheckResult:
    """Decide whether `operations` is linearizable with respect to `model`.

    `timeout` (seconds; None for no limit) bounds the whole check; when it runs out the result
    is UNKNOWN unless a partition was already found illegal. Partitions are checked one after
    another, smallest first (so that one hard partition does not hide a quick failure in
    another), and the check stops at the first illegal one.
    """
    began = time.monotonic()
    deadline = None if timeout is None else began + timeout
    partitions = [PartitionResult(label, list(ops)) for label, ops in model.partition(operations)]
    verdict = CheckOutcome.OK
    # The search allocates many small objects but makes no reference cycles: the cyclic
    # garbage collector would only walk the growing cache again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for partition in sorted(partitions, key=lambda p: len(p.operations)):
            try:
                _check_partition(model, partition, deadline)
            except _OutOfTime:
                partition.outcome = verdict = CheckOutcome.UNKNOWN
                break
            if partition.outcome is CheckOutcome.ILLEGAL:
                verdict = CheckOutcome.ILLEGAL
                break
    finally:
        if collecting:
            gc.enable()
    return CheckResult(verdict, model, partitions, time.monotonic() - began)


def _sorted_entries(operations: Sequence[Operation]) -> list[tuple[int, bool]]:
    """(operation index, is_call) in time order; at equal times calls come first."""
    events = [(op.call_time, 0, i) for i, op in enumerate(operations)]
    events += [(op.return_time, 1, i) for i, op in enumerate(operations)]
    events.sort()
    return [(i, kind == 0) for _, kind, i in events]


def _check_partition(model: Model, partition: PartitionResult, deadline: float | None) -> None:
    """Run the search on one partition; fill in its outcome (raise _OutOfTime past deadline).

    On top of plain WGL:
    - An operation that overlaps no other operation still to be linearized (no other call
      comes before its return) is the only one that may come next ("sequential"), and the
      operations linearized before it are all those called before it. So the configuration
      it leads to is known by the operation and the new state, a small key to cache instead
      of the set of every operation linearized so far: a sequential stretch of the history
      costs a step per operation, and no search. If it is illegal, the configuration fails.

    With hints from the model:
    - A read that can never become legal even from the start decides the partition at once.
    - A read that is legal now (or another neutral operation that is legal and changes
      nothing now) is linearized now, and only that is tried ("forced"): any linearization
      placing it later stays valid with it moved here, since it changes no state and
      everything that had to precede it already has (the walk from the head meets no return
      entry before its call). If the forced choice fails, the configuration fails.
    - A configuration is abandoned ("dead") as soon as a read among the operations that may
      come next, or among the next LOOKAHEAD_ENTRIES entries, can no longer become legal.
    - A write is not linearized if a read it affects can no longer become legal after it.

    The loop below is the search's inner loop: what runs at every step or in every
    configuration stays inline (a call there costs a few percent of the whole check); setting
    up, backtracking and reporting a failure are the functions it calls.
    """
    operations = partition.operations
    outputs = [op.output for op in operations]
    bits = [1 << i for i in range(len(operations))]
    hints, inputs, step, initial = _search_inputs(model, operations)
    neutral, viable, watchers = hints.neutral, hints.viable, hints.watchers
    entries = _EntryList(operations)
    head, tail = 0, entries.tail
    op_of, return_of, nxt, prv = entries.op_of, entries.return_of, entries.nxt, entries.prv

    if _read_never_legal(initial, viable):
        _record_illegal(partition, entries.order, [], initial, step, inputs, outputs, viable)
        return

    cache: set[tuple[int, Any]] = set()  # (linearized operations, state)
    sequential_seen: set[tuple[int, Any]] = set()  # (sequential operation, state after it)
    # One frame per linearized operation: (its call entry, the state before it, forced).
    stack: list[tuple[int, Any, bool]] = []
    state = initial
    linearized = 0
    # The longest run of linearized operations so far; its first `shared` ones are known to
    # be the bottom of the stack, so it grows without copying while the search goes forward.
    longest: list[int] = []
    shared = 0
    steps = 0
    clock_countdown = STEPS_PER_CLOCK_CHECK
    entry = head
    fresh = True  # a configuration just entered: examine its reads first
    while nxt[head] != tail:
        clock_countdown -= 1
        if not clock_countdown:
            clock_countdown = STEPS_PER_CLOCK_CHECK
            steps += STEPS_PER_CLOCK_CHECK
            if deadline is not None and time.monotonic() > deadline:
                partition.search_steps = steps
                partition.longest_prefix = longest
                raise _OutOfTime
        forced = dead = sequential = False
        if fresh:
            fresh = False
            entry = nxt[head]
            if nxt[entry] == return_of[entry]:
                forced = sequential = True  # the only operation that may come next
            else:
                # Examine the operations that may come next: the first neutral one that is
                # legal and changes nothing is forced; a read among them, or among the next
                # LOOKAHEAD_ENTRIES entries, that can no longer become legal makes the
                # configuration dead; else the walk starts at the head. (Inline: as a function
                # it cost 3% of the 50-client benchmark.)
                while return_of[entry] >= 0:
                    i = op_of[entry]
                    if neutral[i]:
                        legal, new_state = step(state, inputs[i], outputs[i])
                        if legal and new_state == state:
                            forced = True
                            break
                        test = viable[i]
                        if test is not None and not test(state, linearized):
                            dead = True
                            break
                    entry = nxt[entry]
                else:
                    for _ in range(LOOKAHEAD_ENTRIES):
                        if entry == tail:
                            break
                        if return_of[entry] >= 0:
                            test = viable[op_of[entry]]
                            if test is not None and not test(state, linearized):
                                dead = True
                                break
                        entry = nxt[entry]
                    entry = nxt[head]
        ret = return_of[entry]
        if ret >= 0 and not dead:
            # A call entry: try to linearize its operation next.
            i = op_of[entry]
            legal, new_state = step(state, inputs[i], outputs[i])
            if legal:
                new_linearized = linearized | bits[i]
                if sequential:
                    key, seen = (i, new_state), sequential_seen
                else:
                    key, seen = (new_linearized, new_state), cache
                if key in seen:
                    legal = False
                else:
                    seen.add(key)
                if legal:  # would a read this write affects be doomed? (inline: hot)
                    for r in watchers[i]:
                        if not viable[r](new_state, new_linearized):  # type: ignore[misc]
                            legal = False
                            break
                if legal:
                    stack.append((entry, state, forced))
                    state = new_state
                    linearized = new_linearized
                    # Lift the call and the return entry out of the list.
                    before, after = prv[entry], nxt[entry]
                    nxt[before] = after
                    prv[after] = before
                    before, after = prv[ret], nxt[ret]
                    nxt[before] = after
                    prv[after] = before
                    if len(stack) > len(longest):
                        if shared == len(longest):
                            longest.append(i)
                        else:
                            longest = [op_of[e] for e, _, _ in stack]
                        shared = len(longest)
                    fresh = True
                    continue
            if not forced:
                entry = nxt[entry]
                continue
        # A return entry, a dead configuration or a forced choice already explored: undo the
        # last choice, and go on undoing while the choice undone was a forced one.
        undone = _undo_choices(entries, stack, linearized, bits)
        if undone is None:  # nothing left to undo: no linearization
            _record_illegal(partition, entries.order, longest, initial, step, inputs, outputs,
                            viable)
            partition.search_steps = steps + STEPS_PER_CLOCK_CHECK - clock_countdown
            return
        entry, state, linearized = undone
        if shared > len(stack):
            shared = len(stack)
        entry = nxt[entry]
    partition.outcome = CheckOutcome.OK
    partition.longest_prefix = [op_of[e] for e, _, _ in stack]
    partition.search_steps = steps + STEPS_PER_CLOCK_CHECK - clock_countdown


class _EntryList:
    """The call and return entries of a partition's operations as a doubly linked list in
    time order, kept in flat arrays indexed by entry number: 0 is the head sentinel, 1..2n the
    entries in time order, 2n+1 the tail sentinel. For a call entry, `return_of` holds its
    return entry; for a return entry, -1. The first entry is always a call."""

    __slots__ = ("order", "tail", "op_of", "return_of", "nxt", "prv")

    def __init__(self, operations: Sequence[Operation]) -> None:
        n = len(operations)
        self.order = _sorted_entries(operations)
        self.tail = tail = 2 * n + 1
        self.op_of = [-1] * (tail + 1)
        self.return_of = [-1] * (tail + 1)
        call_entry = [0] * n
        for entry, (i, is_call) in enumerate(self.order, start=1):
            self.op_of[entry] = i
            if is_call:
                call_entry[i] = entry
            else:
                self.return_of[call_entry[i]] = entry
        self.nxt = list(range(1, tail + 2))
        self.prv = list(range(-1, tail))


def _search_inputs(model: Model, operations: list[Operation]
                   ) -> tuple[ReadHints, list[Any], Any, Any]:
    """The model's hints for these operations (none if it gives none), and the inputs, the
    step function and the initial state the search runs on (the hints may replace the
    model's own with faster stand-ins)."""
    hints_for = getattr(model, "read_hints", None)
    hints = hints_for(operations) if hints_for else ReadHints.none(len(operations))
    inputs = hints.inputs or [op.input for op in operations]
    step = hints.step or model.step
    initial = model.init() if hints.init is None else hints.init
    return hints, inputs, step, initial


def _read_never_legal(initial: Any, viable: list[Any]) -> bool:
    """Whether a read can never become legal, even from the start."""
    return any(test is not None and not test(initial, 0) for test in viable)


def _undo_choices(entries: _EntryList, stack: list[tuple[int, Any, bool]], linearized: int,
                  bits: list[int]) -> tuple[int, Any, int] | None:
    """Undo the last choice, and go on undoing while the choice undone was a forced one: put
    the operations' entries back in the list. Returns the call entry of the choice undone last
    (to try the next entry after it), the state before it and the operations then linearized;
    None when the stack ran out first."""
    nxt, prv, return_of, op_of = entries.nxt, entries.prv, entries.return_of, entries.op_of
    while stack:
        entry, state, forced = stack.pop()
        linearized ^= bits[op_of[entry]]
        # Put the entries back: the return entry first, as they were lifted in the other
        # order and a lifted entry still points at its old neighbours.
        ret = return_of[entry]
        nxt[prv[ret]] = ret
        prv[nxt[ret]] = ret
        nxt[prv[entry]] = entry
        prv[nxt[entry]] = entry
        if not forced:
            return entry, state, linearized
    return None


def _record_illegal(partition: PartitionResult, order: list[tuple[int, bool]],
                    longest: list[int], initial: Any, step: Any, inputs: list[Any],
                    outputs: list[Any], viable: list[Any]) -> None:
    """The partition is not linearizable: record how far the search got and where it stuck."""
    partition.outcome = CheckOutcome.ILLEGAL
    partition.longest_prefix = longest
    partition.stuck = _candidates_after(order, longest)
    partition.doomed = _doomed_after(longest, initial, step, inputs, outputs, viable)


def _doomed_after(prefix: list[int], state: Any, step: Any, inputs: list[Any],
                  outputs: list[Any], viable: list[Any]) -> list[int]:
    """The reads whose viability test fails once `prefix` is linearized."""
    linearized = 0
    for i in prefix:
        state = step(state, inputs[i], outputs[i])[1]
        linearized |= 1 << i
    return [r for r, test in enumerate(viable)
            if test is not None and not linearized >> r & 1 and not test(state, linearized)]


def _candidates_after(order: list[tuple[int, bool]], prefix: list[int]) -> list[int]:
    """The operations real time allows right after `prefix`: those called before the first
    return of an operation outside it.

    After the longest prefix the search found, none of them leads anywhere: the model rejects
    it, or (when the model gives hints) accepts it but some read can then never be legal.
    """
    done = set(prefix)
    candidates = []
    for i, is_call in order:
        if i in done:
            continue
        if not is_call:
            break
        candidates.append(i)
    return candidates
