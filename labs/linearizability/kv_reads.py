"""What gets tell the checker: the KV model's hints that let the search prune early.

Plain WGL learns that a linearization went wrong only when it reaches the return of an
operation it could not place, which can be a long way (and an exponential number of
configurations) after the wrong choice. A get's output says a lot about the choices that lead
to it, so the checker asks of the gets about to come: can this one still become legal from the
current configuration? "No" lets it abandon the configuration at once. The answers must never
be "no" wrongly; "yes" is always safe.

Decompositions. The value a get returns was built by the last put before it (or by the empty
initial value: a put of "" is the same) followed by appends (an append of "" adds nothing).
When the output can be cut into such values -- the value of a put or nothing, then append
values -- in exactly one way, its *decomposition* names the values that built it, in order.
The lab's values ("x <client> <n> y") are never a prefix of one another, so an output is cut
by reading it from left to right (`_Decoder`), resuming from an earlier output it extends.

States as trie nodes. The decompositions of all the gets form a trie (a forest: the empty
value and each put value that starts one are roots). When every output has at most one
decomposition, the search runs on nodes instead of strings: the state is the node of the
values written since the last put, or OFF when they start no get's decomposition (then no
get can be legal before the next put, and none of their extensions starts one either). A value
equal to a get's output was built by its decomposition, so every get is legal after exactly
the same sequences of operations as with strings; but a step is a dictionary look-up instead
of copying a string that grows to tens of kilobytes, a state hashes in constant time, and the
orders of writes that no get reads all come to the same OFF (which spares the search the
factorially many ways of ordering them).

Viability. A get can still become legal only if
- its decomposition can start afresh: a put of its base value (of "" for the empty base) that
  may come before it is still to come, and none of the operations of its decomposition has
  been linearized; or
- the current node is on the path to the get's node, and -- when every non-empty value is
  written by a single operation, so that values name operations -- the operations linearized
  among those of the decomposition are exactly those on the path to the current node.
Every write of the decomposition is also watched by the first get that reads it: linearizing
it too early, or out of order, abandons the configuration at once.

Never legal. A get whose output has no decomposition, or whose decomposition needs one
operation twice or one called after the get returned, can never be legal: its test always
says no, and the checker gives the verdict before searching.

When some output has several decompositions the search keeps string states, with a weaker
prefix test for such gets (`_string_hints`).
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from typing import Any

from labs.linearizability.model import APPEND, GET, PUT, Operation, ReadHints, Viability

__all__ = ["read_hints", "unique_split", "OFF"]

#: The state when the values written since the last put start no get's decomposition.
OFF = -1
_EMPTY = 0       # the root of the empty value: the initial state, and a put of ""
_NEVER = -2      # the node of a get that can never be legal (no state is)
_AMBIGUOUS = -3  # an output with several decompositions

# The kinds of the search's stand-in inputs (`_trie_step`).
_GET, _PUT, _APPEND, _NOTHING = 0, 1, 2, 3

#: How many recent outputs a decomposition may resume from.
_RESUME_FROM = 4


def read_hints(operations: Sequence[Operation]) -> ReadHints:
    """The checker's hints for one key's history (see `ReadHints`)."""
    hints = _trie_hints(operations)
    return hints if hints is not None else _string_hints(operations)


# --- Decompositions --------------------------------------------------------------------------

class _Trie:
    """Decompositions sharing their prefixes. Node 0 is the empty value; each put value that
    begins a decomposition is a root of its own. Children are numbered after their parents."""

    def __init__(self) -> None:
        self.parent = [-1]
        self.label = [""]  # the value written last on the path to the node
        self.edges: dict[tuple[int, str], int] = {}
        self.roots: dict[str, int] = {}

    def root(self, value: str) -> int:
        node = self.roots.get(value)
        if node is None:
            node = self.roots[value] = self._new(-1, value)
        return node

    def child(self, node: int, value: str) -> int:
        key = (node, value)
        found = self.edges.get(key)
        if found is None:
            found = self.edges[key] = self._new(node, value)
        return found

    def _new(self, parent: int, label: str) -> int:
        self.parent.append(parent)
        self.label.append(label)
        return len(self.parent) - 1


class _Decoder:
    """Finds the node of an output's decomposition: `_EMPTY` for "", None when there is
    none, `_AMBIGUOUS` when there are several."""

    def __init__(self, puts: set[str], appends: set[str], trie: _Trie) -> None:
        self.puts, self.appends, self.trie = puts, appends, trie
        self.values = puts | appends
        self.lengths = sorted({len(v) for v in self.values})
        self.prefix_free = _prefix_free(self.values)
        self.recent: deque[tuple[str, int]] = deque(maxlen=_RESUME_FROM)
        self.known: dict[str, int | None] = {}

    def decode(self, output: str) -> int | None:
        if not output:
            return _EMPTY
        if self.prefix_free:
            return self._read(output)
        if output not in self.known:
            self.known[output] = self._count(output)
        return self.known[output]

    def _read(self, output: str) -> int | None:
        """Left to right: no value is a prefix of another, so at most one starts anywhere.

        If the output extends an earlier one, its decomposition extends that one's (the cut
        is the same up to there), so only the rest is read."""
        node = -1
        pos = 0
        size = len(output)
        for text, at in reversed(self.recent):
            if len(text) <= size and output.startswith(text):
                node, pos = at, len(text)
                if pos == size:
                    return node
                break
        if node < 0:
            first = self._value_at(output, 0)
            if first is None:
                return None
            pos = len(first)
            rest = self._appends_from(output, pos)
            if rest is None:
                return None
            as_put, as_append = first in self.puts, first in self.appends
            if as_put and as_append:  # a base, or the first append on the empty value
                return _AMBIGUOUS
            node = self.trie.root(first) if as_put else self.trie.child(_EMPTY, first)
        else:
            rest = self._appends_from(output, pos)
            if rest is None:
                return None
        for value in rest:
            node = self.trie.child(node, value)
        self.recent.append((output, node))
        return node

    def _value_at(self, output: str, pos: int) -> str | None:
        end = len(output)
        for length in self.lengths:
            if pos + length > end:
                return None
            value = output[pos:pos + length]
            if value in self.values:
                return value
        return None

    def _appends_from(self, output: str, pos: int) -> list[str] | None:
        """The append values that make up output[pos:], or None."""
        values, appends, lengths = self.values, self.appends, self.lengths
        end = len(output)
        found = []
        while pos < end:
            for length in lengths:
                if pos + length > end:
                    return None
                value = output[pos:pos + length]
                if value in values:
                    break
            else:
                return None
            if value not in appends:
                return None
            found.append(value)
            pos += length
        return found

    def _count(self, output: str) -> int | None:
        """Any values: count the decompositions (up to two) by dynamic programming."""
        ways, split = _splits(output, {p: (True, p) for p in self.puts},
                              {a: (False, a) for a in self.appends}, self.lengths)
        if ways == 0:
            return None
        if ways > 1:
            return _AMBIGUOUS
        node = _EMPTY
        for is_put, value in split:
            node = self.trie.root(value) if is_put else self.trie.child(node, value)
        return node


def _prefix_free(values: set[str]) -> bool:
    """No value is a prefix of another (in sorted order, a value's extensions follow it)."""
    ordered = sorted(values)
    return not any(b.startswith(a) for a, b in itertools.pairwise(ordered))


def _splits(output: str, puts: dict[str, Any], appends: dict[str, Any],
            lengths: list[int]) -> tuple[int, list[Any]]:
    """(the number of ways, capped at 2, to cut `output` into an optional put value then
    append values; the items of the put and appends of the cut when there is one way)."""
    end = len(output)
    ways = {0: 1}  # position in the output -> number of cuts of output[:position]
    came_from: dict[int, tuple[int, Any]] = {}
    for value, item in puts.items():
        if value and output.startswith(value):
            ways[len(value)] = min(2, ways.get(len(value), 0) + 1)
            came_from[len(value)] = (0, item)
    # Visit only the positions some cut reaches, in increasing order.
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
            if length == 0:
                continue
            item = appends.get(output[pos:stop])
            if item is not None:
                if stop not in ways:
                    ways[stop] = 0
                    heapq.heappush(frontier, stop)
                ways[stop] = min(2, ways[stop] + count)
                came_from[stop] = (pos, item)
    total = ways.get(end, 0)
    if total != 1:
        return total, []
    split = []
    pos = end
    while pos:
        pos, item = came_from[pos]
        split.append(item)
    split.reverse()
    return 1, split


def unique_split(output: str, puts: dict[str, int], appends: dict[str, int],
                 lengths: list[int] | None = None) -> list[int] | None:
    """The operations whose values concatenate to `output` (an optional put, then appends),
    given value -> operation index maps (and the sorted lengths of the append values, if
    known); None unless there is exactly one such sequence. Empty values count as nothing."""
    if lengths is None:
        lengths = sorted({len(v) for v in appends})
    ways, split = _splits(output, puts, appends, lengths)
    return split if ways == 1 else None


# --- Hints on trie nodes -----------------------------------------------------------------------

def _trie_hints(operations: Sequence[Operation]) -> ReadHints | None:
    """The hints with trie nodes for states; None if some output has several
    decompositions."""
    puts, appends, writers = _written_values(operations)
    trie = _Trie()
    target = _decode_outputs(operations, _Decoder(puts, appends, trie))
    if target is None:
        return None
    # Preorder numbers: a node is on the path to another iff the other's number falls in
    # the node's subtree's range [first[node], last[node]].
    first, last = _preorder(trie.parent)
    # When values name operations: the operations on the path to each node.
    one_writer = all(len(w) == 1 for w in writers.values())
    built = _rule_out_impossible(operations, trie, writers, target) if one_writer else None
    tests = _viability_tests(operations, trie, target, first, last, built)
    watchers: list[tuple[int, ...]] = [()] * len(operations)
    if one_writer:
        watchers = _first_readers(operations, trie, writers, target)
    inputs, neutral = _trie_inputs(operations, trie, target)
    return ReadHints(neutral, tests, watchers, inputs, _trie_step, _EMPTY)


def _written_values(operations: Sequence[Operation]
                    ) -> tuple[set[str], set[str], dict[str, list[int]]]:
    """The non-empty values put, those appended, and the operations writing each."""
    puts: set[str] = set()
    appends: set[str] = set()
    writers: dict[str, list[int]] = {}
    for i, op in enumerate(operations):
        inp = op.input
        if inp.op != GET and inp.value:
            (puts if inp.op == PUT else appends).add(inp.value)
            writers.setdefault(inp.value, []).append(i)
    return puts, appends, writers


def _decode_outputs(operations: Sequence[Operation], decoder: _Decoder) -> dict[int, int] | None:
    """Each get with an output -> the trie node of its decomposition (`_NEVER` if it has
    none); None if some output has several."""
    target: dict[int, int] = {}
    for r, op in enumerate(operations):
        if op.input.op == GET and op.output is not None:
            node = decoder.decode(op.output)
            if node == _AMBIGUOUS:
                return None
            target[r] = _NEVER if node is None else node
    return target


def _rule_out_impossible(operations: Sequence[Operation], trie: _Trie,
                         writers: dict[str, list[int]], target: dict[int, int]) -> list[int]:
    """Values name operations: mark `_NEVER` each get whose decomposition needs an operation
    twice or one called after the get returned. Returns, per node, the operations on the
    path to it (a bit mask)."""
    parent, label = trie.parent, trie.label
    size = len(parent)
    built = [0] * size
    impossible = [False] * size
    latest = [-float("inf")] * size  # the latest call among the operations on the path
    for node in range(1, size):
        w = writers[label[node]][0]
        bit = 1 << w
        p = parent[node]
        if p >= 0:
            impossible[node] = impossible[p] or bool(built[p] & bit)
            built[node] = built[p] | bit
            latest[node] = max(latest[p], operations[w].call_time)
        else:
            built[node] = bit
            latest[node] = operations[w].call_time
    for r, t in target.items():
        if t >= 0 and (impossible[t] or latest[t] > operations[r].return_time):
            target[r] = _NEVER
    return built


def _resets_by_value(operations: Sequence[Operation]
                     ) -> dict[str, tuple[list[float], list[int]]]:
    """Per put value: the calls of the puts that reset to it, in time order, and the union of
    the first k of those operations (a bit mask) for each k."""
    put_calls: dict[str, list[tuple[float, int]]] = {}
    for i, op in enumerate(operations):
        if op.input.op == PUT:
            put_calls.setdefault(op.input.value, []).append((op.call_time, i))
    resets_by_value: dict[str, tuple[list[float], list[int]]] = {}
    for value, calls in put_calls.items():
        calls.sort()
        masks = [0]
        for _, i in calls:
            masks.append(masks[-1] | 1 << i)
        resets_by_value[value] = ([c for c, _ in calls], masks)
    return resets_by_value


def _viability_tests(operations: Sequence[Operation], trie: _Trie, target: dict[int, int],
                     first: list[int], last: list[int],
                     built: list[int] | None) -> list[Viability | None]:
    """Each get's viability test (None for the operations that are not gets with an
    output)."""
    parent, label = trie.parent, trie.label
    root = list(range(len(parent)))
    for node in range(1, len(parent)):
        if parent[node] >= 0:
            root[node] = root[parent[node]]
    resets_by_value = _resets_by_value(operations)
    tests: list[Viability | None] = [None] * len(operations)
    made: dict[tuple[int, int], Viability] = {}  # gets that read the same often share a test
    for r, t in target.items():
        if t < 0:
            tests[r] = _never
            continue
        # The puts of the get's base value that may come before it.
        reset_calls, masks = resets_by_value.get(label[root[t]], ([], [0]))
        resets = masks[bisect_right(reset_calls, operations[r].return_time)]
        test = made.get((t, resets))
        if test is None:
            test = made[t, resets] = _node_test(t, first, last, built, resets)
        tests[r] = test
    return tests


def _first_readers(operations: Sequence[Operation], trie: _Trie, writers: dict[str, list[int]],
                   target: dict[int, int]) -> list[tuple[int, ...]]:
    """Values name operations: each write of a decomposition is watched by the first get (by
    call time) that reads it. (A write may label several nodes, one per order of the writes
    before it that gets read; a node's ancestors are claimed with it.)"""
    parent, label = trie.parent, trie.label
    watchers: list[tuple[int, ...]] = [()] * len(operations)
    claimed = [False] * len(parent)
    for r in sorted(target, key=lambda r: operations[r].call_time):
        node = target[r]
        while node > 0 and not claimed[node]:
            claimed[node] = True
            w = writers[label[node]][0]
            if not watchers[w]:
                watchers[w] = (r,)
            node = parent[node]
    return watchers


def _trie_inputs(operations: Sequence[Operation], trie: _Trie, target: dict[int, int]
                 ) -> tuple[list[Any], list[bool]]:
    """The search's stand-in inputs (the node a get needs, a put's root, an append's edges),
    and which operations are neutral."""
    by_value: dict[str, dict[int, int]] = {}
    for (node, value), child in trie.edges.items():
        by_value.setdefault(value, {})[node] = child
    inputs: list[Any] = []
    neutral = [False] * len(operations)
    for i, op in enumerate(operations):
        inp = op.input
        if inp.op == GET:
            inputs.append((_GET, target.get(i)))
            neutral[i] = True
        elif inp.op == PUT:
            node = _EMPTY if not inp.value else trie.roots.get(inp.value, OFF)
            inputs.append((_PUT, node))
            neutral[i] = node == OFF
        elif not inp.value:
            inputs.append((_NOTHING, None))
            neutral[i] = True
        else:
            edges = by_value.get(inp.value)
            inputs.append((_APPEND, edges or {}))
            neutral[i] = edges is None
    # `neutral` for a write no get reads (it leads to OFF from anywhere): once in OFF, taking
    # it at once loses nothing. Moved there from a later place, it leaves the states before
    # that place as they were (OFF stays OFF), and changes only those from that place to the
    # next put, which were OFF: no get with an output was legal in them, and every other
    # operation is legal anywhere.
    return inputs, neutral


def _preorder(parent: list[int]) -> tuple[list[int], list[int]]:
    """For a forest given by parents (children numbered after parents): each node's
    preorder number, and the largest number in its subtree."""
    size = len(parent)
    children: list[list[int]] = [[] for _ in range(size)]
    roots: list[int] = []
    for node in range(size):
        (children[parent[node]] if parent[node] >= 0 else roots).append(node)
    first = [0] * size
    count = 0
    stack = roots[::-1]
    while stack:
        node = stack.pop()
        first[node] = count
        count += 1
        stack.extend(reversed(children[node]))
    subtree = [1] * size
    for node in range(size - 1, 0, -1):
        if parent[node] >= 0:
            subtree[parent[node]] += subtree[node]
    return first, [first[node] + subtree[node] - 1 for node in range(size)]


def _never(state: Any, linearized: int) -> bool:
    return False


def _node_test(target: int, first: list[int], last: list[int], built: list[int] | None,
               resets: int) -> Viability:
    at = first[target]
    if built is None:
        def viable(state: int, linearized: int) -> bool:
            if state >= 0 and first[state] <= at <= last[state]:
                return True
            return bool(resets & ~linearized)
        return viable

    needed = built[target]

    def viable_by_operations(state: int, linearized: int) -> bool:
        done = linearized & needed
        if not done and resets & ~linearized:
            return True
        return state >= 0 and first[state] <= at <= last[state] and done == built[state]
    return viable_by_operations


def _trie_step(state: int, input: tuple[int, Any], output: str | None) -> tuple[bool, int]:
    """The KV step on trie nodes (see the module's docstring)."""
    kind, arg = input
    if kind == _GET:
        return arg is None or arg == state, state
    if kind == _APPEND:
        return True, arg.get(state, OFF)
    if kind == _PUT:
        return True, arg
    return True, state


# --- Hints on strings, when some output has several decompositions ----------------------------

def _string_hints(operations: Sequence[Operation]) -> ReadHints:
    """Tests on string states. With distinct non-empty values, a get whose output splits into
    the values of operations in one way has the split test (below); any other has: the
    current value is a prefix of the output (appends only extend it), or a put that is still
    to come and may come before the get sets a prefix of it."""
    writes = [(i, op) for i, op in enumerate(operations) if op.input.op != GET]
    values = [op.input.value for _, op in writes]
    distinct = "" not in values and len(set(values)) == len(values)
    puts = {op.input.value: i for i, op in writes if op.input.op == PUT}
    put_ops = [(i, op) for i, op in writes if op.input.op == PUT]
    appends = {op.input.value: i for i, op in writes if op.input.op == APPEND}
    lengths = sorted({len(v) for v in appends})
    splits: dict[str, list[int] | None] = {}
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
            rescue = 0
            for i, op in put_ops:
                if op.call_time <= read.return_time and output.startswith(op.input.value):
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
    neutral = [op.input.op == GET or (op.input.op == APPEND and not op.input.value)
               for op in operations]
    return ReadHints(neutral, tests, watchers)


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
