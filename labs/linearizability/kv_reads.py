"""What gets tell the checker: the KV model's hints that let the search prune early.

Plain WGL learns that a linearization went wrong only when it reaches the return of an
operation it could not place, which can be a long way (and an exponential number of
configurations) after the wrong choice. A get's output says a lot about the choices that lead
to it, so the checker asks of the gets about to come: can this one still become legal from the
current configuration? "No" lets it abandon the configuration at once. The answers must never
be "no" wrongly; "yes" is always safe.

The value a get returns was built by the last put before it (or the empty initial value)
followed by appends. When every put and append value of the key is distinct and non-empty and
the output splits into those values in exactly one way (true for the lab's "x <client> <n> y"
values), the split names the operations that built the output, in order. Then a get can still
become legal only if

- its put is still to come (and may come before the get), and so are all of its appends; or
- the current value is a prefix of the output, and the operations linearized so far among those
  of the split are exactly the ones that built that prefix. (A prefix of the output splits
  uniquely too, so the linearized operations that built the current value are the first j of
  the split; it is enough to check that no others are linearized, by counting.)

Otherwise it falls back to: the current value is a prefix of the output (appends only extend
it), or a put that is still to come and may come before the get sets a prefix of it.

Two more hints follow from the splits: a write is watched by the first get whose split holds
it (linearizing it too early, or out of order, kills that get at once), and the writes that
no get read are made indistinguishable (`_step_with_unread_writes`).
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from typing import Sequence

from labs.linearizability.model import APPEND, GET, PUT, KvInput, Operation, ReadHints, Viability

__all__ = ["read_hints", "unique_split", "UNREAD"]

#: The value of every write that no get read, in the search (see `_step_with_unread_writes`).
UNREAD = "\0"


def read_hints(operations: Sequence[Operation]) -> ReadHints:
    """The checker's hints for one key's history (see `ReadHints`)."""
    writes = [(i, op) for i, op in enumerate(operations) if op.input.op != GET]
    values = [op.input.value for _, op in writes]
    distinct = "" not in values and len(set(values)) == len(values)
    puts = {op.input.value: i for i, op in writes if op.input.op == PUT}
    appends = {op.input.value: i for i, op in writes if op.input.op == APPEND}
    lengths = sorted({len(v) for v in appends})
    splits: dict[str, list[int] | None] = {}
    every_split_unique = distinct
    tests: list[Viability | None] = [None] * len(operations)
    first_reader: dict[int, int] = {}  # write -> the earliest get whose split holds it
    for r, read in enumerate(operations):
        if read.input.op != GET or read.output is None:
            continue
        output = read.output
        split = None
        if distinct:
            if output not in splits:
                splits[output] = unique_split(output, puts, appends, lengths)
            split = splits[output]
        if split is None:
            every_split_unique = False
            rescue = 0
            for i, op in writes:
                if (op.input.op == PUT and op.call_time <= read.return_time
                        and output.startswith(op.input.value)):
                    rescue |= 1 << i
            tests[r] = _prefix_test(output, rescue)
            continue
        may_reset = (bool(split) and operations[split[0]].input.op == PUT
                     and operations[split[0]].call_time <= read.return_time)
        tests[r] = _split_test(output, split, operations, may_reset)
        for w in split:
            if w not in first_reader or read.call_time < operations[first_reader[w]].call_time:
                first_reader[w] = r
    watchers: list[tuple[int, ...]] = [()] * len(operations)
    for w, r in first_reader.items():
        watchers[w] = (r,)
    neutral = [op.input.op == GET for op in operations]
    if not every_split_unique or any(op.output is not None and UNREAD in op.output
                                     for op in operations):
        return ReadHints(neutral, tests, watchers)
    inputs = [op.input._replace(value=UNREAD) if op.input.op != GET and i not in first_reader
              else op.input for i, op in enumerate(operations)]
    for i, op in enumerate(operations):
        if op.input.op != GET and i not in first_reader:
            neutral[i] = True
    return ReadHints(neutral, tests, watchers, inputs, _step_with_unread_writes)


def unique_split(output: str, puts: dict[str, int], appends: dict[str, int],
                 lengths: list[int] | None = None) -> list[int] | None:
    """The operations whose values concatenate to `output` (an optional put, then appends),
    given value -> operation index maps (and the sorted lengths of the append values, if
    known); None unless there is exactly one such sequence."""
    end = len(output)
    if lengths is None:
        lengths = sorted({len(v) for v in appends})
    ways = {0: 1}  # position in the output -> number of splits of output[:position]
    came_from: dict[int, tuple[int, int]] = {}
    for value, i in puts.items():
        if output.startswith(value):
            ways[len(value)] = ways.get(len(value), 0) + 1
            came_from[len(value)] = (0, i)
    # Visit only the positions some split reaches, in increasing order.
    frontier = sorted(ways)
    while frontier:
        pos = heapq.heappop(frontier)
        if pos == end:
            break
        count = ways[pos]
        for length in lengths:
            stop = pos + length
            if stop > end:
                break
            i = appends.get(output[pos:stop], -1)
            if i >= 0:
                if stop not in ways:
                    ways[stop] = 0
                    heapq.heappush(frontier, stop)
                ways[stop] += count
                came_from[stop] = (pos, i)
    if ways.get(end) != 1:
        return None
    split = []
    pos = end
    while pos:
        pos, i = came_from[pos]
        split.append(i)
    split.reverse()
    return split


def _prefix_test(output: str, rescue: int) -> Viability:
    def viable(state: str, linearized: int) -> bool:
        return bool(rescue & ~linearized) or output.startswith(state)
    return viable


def _split_test(output: str, split: list[int], operations: Sequence[Operation],
                may_reset: bool) -> Viability:
    ends = [0]  # ends[j]: the length of the output's prefix built by the first j operations
    everything = 0
    for i in split:
        ends.append(ends[-1] + len(operations[i].input.value))
        everything |= 1 << i

    def viable(state: str, linearized: int) -> bool:
        done = linearized & everything
        if may_reset and not done:
            return True
        if not output.startswith(state):
            return False
        j = bisect_right(ends, len(state)) - 1
        return ends[j] == len(state) and done.bit_count() == j
    return viable


def _step_with_unread_writes(state: str, input: KvInput, output: str | None) -> tuple[bool, str]:
    """The KV step in which the writes that no get read all write UNREAD, and a value
    holding UNREAD stays UNREAD until a put.

    While a write nobody read is part of the value, no get is legal: the get's output would
    split into values that include the write's. So all such values are alike to every get, but
    the plain step would tell apart every order of the writes until a put hides them, which on
    a busy key is factorially many configurations. Here they coincide; and in such a value a
    further unread write changes nothing, so the checker can take it at once (`neutral`):
    moved from wherever it was, it only spares some gets-free stretch its UNREAD.
    """
    op = input.op
    if op == GET:
        return output is None or output == state, state
    if op == PUT or input.value == UNREAD:
        return True, input.value
    return True, UNREAD if state == UNREAD else state + input.value
