"""The linearizability checker: verdicts on hand-made KV histories, agreement with a brute-force
search on small random ones, the time budget, the history format, the recorder the KV tests use,
the HTML page and `labs check-history`.

In the hand-made histories times are small integers; operations whose intervals overlap may be
linearized in either order, and one that returned before another was called comes first.
"""

from __future__ import annotations

import ast
import io
import itertools
import math
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from labs.cli import main as labs_main
from labs.linearizability import (
    CheckOutcome,
    HistoryError,
    KvInput,
    KvModel,
    Operation,
    Recorder,
    check_kv,
    check_operations,
    format_history,
    parse_history,
    render_html,
    write_html,
)
from labs.linearizability.generate import (
    duplicate_an_append,
    lose_an_append,
    one_key_appends_history,
    random_kv_history,
    single_clerk_history,
)
from labs.linearizability.model import NEVER_RETURNED, ReadHints

OK, ILLEGAL, UNKNOWN = CheckOutcome.OK, CheckOutcome.ILLEGAL, CheckOutcome.UNKNOWN
REPO_ROOT = Path(__file__).resolve().parents[2]


def get(client: int, key: str, output: str | None, call: float, ret: float) -> Operation:
    return Operation(client, KvInput("get", key), output, call, ret)


def put(client: int, key: str, value: str, call: float, ret: float) -> Operation:
    return Operation(client, KvInput("put", key, value), None, call, ret)


def append(client: int, key: str, value: str, call: float, ret: float) -> Operation:
    return Operation(client, KvInput("append", key, value), None, call, ret)


def verdict(operations: list[Operation], timeout: float | None = 5.0) -> CheckOutcome:
    return check_kv(operations, timeout=timeout).result


def hard_history(appends: int = 24) -> list[Operation]:
    """Many concurrent appends of one value and a get that can never be satisfied but is
    consistent with every prefix: equal values defeat the KV hints, and the search must try
    every subset of the appends (2**appends configurations)."""
    ops = [append(c, "k", "1", 0, 10) for c in range(appends)]
    ops.append(get(appends, "k", "1" * (appends + 1), 0, 10))
    return ops


# --- Verdicts on hand-made histories ------------------------------------------------------------

def test_sequential_history_is_linearizable() -> None:
    ops = [put(0, "k", "a", 0, 1), append(0, "k", "b", 2, 3), get(0, "k", "ab", 4, 5),
           append(1, "k", "c", 6, 7), get(1, "k", "abc", 8, 9)]
    result = check_kv(ops)
    assert result.result is OK and result.ok
    assert [ops[i] for i in result.partitions[0].longest_prefix] == ops


def test_get_of_a_key_never_written_returns_empty() -> None:
    assert verdict([get(0, "k", "", 0, 1)]) is OK
    assert verdict([get(0, "k", "x", 0, 1)]) is ILLEGAL


def test_overlapping_appends_may_take_effect_in_either_order() -> None:
    for seen in ("ab", "ba"):
        ops = [append(0, "k", "a", 0, 10), append(1, "k", "b", 1, 9), get(2, "k", seen, 11, 12)]
        assert verdict(ops) is OK, seen


def test_a_read_overlapping_a_write_may_see_it_or_not() -> None:
    for seen in ("", "v"):
        assert verdict([put(0, "k", "v", 0, 10), get(1, "k", seen, 2, 3)]) is OK, seen


def test_reads_must_agree_on_the_order_of_concurrent_writes() -> None:
    ops = [append(0, "k", "a", 0, 10), append(1, "k", "b", 0, 10),
           get(2, "k", "a", 1, 9), get(3, "k", "b", 1, 9)]
    assert verdict(ops) is ILLEGAL


def test_stale_read_is_not_linearizable() -> None:
    ops = [put(0, "k", "1", 0, 1), put(0, "k", "2", 2, 3), get(1, "k", "1", 4, 5)]
    result = check_kv(ops)
    assert result.result is ILLEGAL and result.illegal
    (failing,) = result.failing()
    assert [failing.operations[i] for i in failing.longest_prefix] == ops[:2]
    assert ops.index(failing.operations[failing.stuck[0]]) == 2


def test_lost_append_is_not_linearizable() -> None:
    ops = [append(0, "k", "a", 0, 1), append(1, "k", "b", 2, 3), get(2, "k", "b", 4, 5)]
    assert verdict(ops) is ILLEGAL


def test_duplicated_append_is_not_linearizable() -> None:
    ops = [append(0, "k", "x", 0, 1), get(1, "k", "xx", 2, 3)]
    assert verdict(ops) is ILLEGAL
    # Even when a retry of the same append is in flight, each call appends once.
    assert verdict([append(0, "k", "x", 0, 5), append(0, "k", "x", 6, 7),
                    get(1, "k", "xx", 8, 9)]) is OK
    assert verdict([append(0, "k", "x", 0, 5), get(1, "k", "xxx", 6, 7)]) is ILLEGAL


def test_put_replaces_and_get_sees_the_last_put() -> None:
    ops = [put(0, "k", "1", 0, 1), append(0, "k", "2", 2, 3), put(1, "k", "3", 4, 5),
           get(2, "k", "3", 6, 7)]
    assert verdict(ops) is OK
    assert verdict(ops[:3] + [get(2, "k", "12", 6, 7)]) is ILLEGAL
    # A get that returned before a put was called cannot see it ...
    assert verdict([get(0, "k", "v", 0, 1), put(1, "k", "v", 2, 3)]) is ILLEGAL
    # ... and once a get has seen a put, a later get cannot miss it.
    assert verdict([put(0, "k", "v", 0, 10), get(1, "k", "v", 1, 2),
                    get(2, "k", "", 3, 4)]) is ILLEGAL


def test_an_operation_that_never_returned_may_take_effect_or_not() -> None:
    never = NEVER_RETURNED
    for seen in ("", "a"):
        assert verdict([append(0, "k", "a", 0, never), get(1, "k", seen, 5, 6)]) is OK
    # but once seen it stays seen; and a get that never returned says nothing.
    assert verdict([append(0, "k", "a", 0, never), get(1, "k", "a", 5, 6),
                    get(1, "k", "", 7, 8), get(2, "k", None, 0, never)]) is ILLEGAL
    assert verdict([append(0, "k", "a", 0, 1), get(2, "k", None, 0, never)]) is OK


def test_each_key_is_checked_on_its_own() -> None:
    ops = [put(0, "a", "1", 0, 1), put(0, "b", "2", 2, 3), get(1, "a", "1", 4, 5),
           get(1, "b", "1", 6, 7)]
    result = check_kv(ops)
    assert result.result is ILLEGAL
    assert [p.label for p in result.partitions] == ["a", "b"]
    assert [p.label for p in result.failing()] == ["b"]
    assert {len(p.operations) for p in result.partitions} == {2}


def test_out_of_time_is_unknown() -> None:
    began = time.monotonic()
    result = check_kv(hard_history(), timeout=0.2)
    assert result.result is UNKNOWN
    assert time.monotonic() - began < 2.0
    assert result.partitions[0].outcome is UNKNOWN


def test_a_quick_failure_is_found_despite_a_hard_key() -> None:
    ops = hard_history() + [put(0, "z", "1", 20, 21), get(1, "z", "2", 22, 23)]
    assert check_kv(ops, timeout=0.3).result is ILLEGAL


# --- Agreement with brute force ------------------------------------------------------------------

def _brute_force(ops: list[Operation]) -> bool:
    """Try every order that respects real time (small histories only)."""
    model = KvModel()

    def extend(done: frozenset[int], state: str) -> bool:
        if len(done) == len(ops):
            return True
        for i, op in enumerate(ops):
            if i in done or any(j not in done and ops[j].return_time < op.call_time
                                for j in range(len(ops))):
                continue
            legal, after = model.step(state, op.input, op.output)
            if legal and extend(done | {i}, after):
                return True
        return False

    return extend(frozenset(), "")


def _random_one_key_history(rng: random.Random, max_ops: int, kinds: list[str],
                            pick_value: Callable[[int, int], str], wrong_read_chance: float,
                            wrong_reads: Callable[[str], list[str]]) -> list[Operation]:
    """Up to `max_ops` operations on one key by up to 4 clients, outputs from a random
    linearization; a read is then made wrong (one of `wrong_reads(state)`) with the given
    chance, and some calls never return. `pick_value(client, n)` gives written values."""
    plan = []
    busy_until = [0.0] * 4
    for n in range(rng.randint(1, max_ops)):
        client = rng.randrange(4)
        call = busy_until[client] + rng.choice([0, 0.5, 1, 2])
        ret = NEVER_RETURNED if rng.random() < 0.05 else call + rng.choice([0, 1, 2, 3, 6])
        busy_until[client] = call + 100 if math.isinf(ret) else ret
        kind = rng.choice(kinds)
        plan.append((rng.uniform(call, min(ret, call + 10)), client, kind,
                     pick_value(client, n), call, ret))
    ops = []
    state = ""
    for _, client, kind, value, call, ret in sorted(plan):
        if kind == "get":
            output: str | None = state
            if rng.random() < wrong_read_chance:
                output = rng.choice(wrong_reads(state))
            if math.isinf(ret) and rng.random() < 0.5:
                output = None
            ops.append(get(client, "k", output, call, ret))
        else:
            state = value if kind == "put" else state + value
            ops.append((put if kind == "put" else append)(client, "k", value, call, ret))
    return ops


def _random_small_history(rng: random.Random) -> list[Operation]:
    """Up to 7 operations; values sometimes unique, sometimes repeated or empty."""
    unique = rng.random() < 0.5
    return _random_one_key_history(
        rng, 7, ["get", "get", "put", "append", "append"],
        lambda client, n: f"v{n}" if unique else rng.choice(["a", "b", "ab", ""]),
        0.2, lambda state: ["", "a", state + "b", state[:-1], state[::-1]])


class _PlainKvModel(KvModel):
    """The KV model without its hints: the checker runs plain WGL."""

    def read_hints(self, operations):
        return ReadHints.none(len(operations))


def test_agrees_with_brute_force_on_small_random_histories() -> None:
    rng = random.Random(6824)
    seen = set()
    for _ in range(400):
        ops = _random_small_history(rng)
        expected = _brute_force(ops)
        seen.add(expected)
        assert (verdict(ops) is OK) == expected, ops
        assert (check_operations(_PlainKvModel(), ops).result is OK) == expected, ops
    assert seen == {True, False}


def test_brute_force_respects_real_time() -> None:
    # b returned before a was called, so b comes first: the reference itself must know that.
    ops = [append(0, "k", "a", 5, 6), append(1, "k", "b", 0, 1)]
    assert _brute_force(ops + [get(2, "k", "ba", 7, 8)])
    assert not _brute_force(ops + [get(2, "k", "ab", 7, 8)])


def test_hints_agree_with_plain_search_on_generated_histories() -> None:
    for seed in range(3):
        history = random_kv_history(clients=6, ops_per_client=12, keys=2, seed=seed,
                                    put_share=0.2)
        for ops in (history, lose_an_append(history, seed)):
            plain = check_operations(_PlainKvModel(), ops, timeout=10).result
            assert plain is not UNKNOWN
            assert check_kv(ops, timeout=10).result is plain


def test_generated_50_client_history_is_decided() -> None:
    history = random_kv_history(clients=50, ops_per_client=34, keys=10, seed=3)
    assert len(history) == 1700 and len({op.client for op in history}) == 50
    assert check_kv(history, timeout=10).result is OK
    broken = lose_an_append(history, seed=3)
    result = check_kv(broken, timeout=10)
    assert result.result is ILLEGAL
    (failing,) = result.failing()
    culprit = next(i for i, (a, b) in enumerate(zip(history, broken, strict=True)) if a != b)
    assert broken[culprit] in [failing.operations[i] for i in failing.doomed + failing.stuck]


def test_empty_values() -> None:
    # A put of "" empties the value; an append of "" changes nothing.
    assert verdict([append(0, "k", "a", 0, 1), put(0, "k", "", 2, 3),
                    get(1, "k", "", 4, 5)]) is OK
    assert verdict([append(0, "k", "a", 0, 1), put(0, "k", "", 2, 3),
                    get(1, "k", "a", 4, 5)]) is ILLEGAL
    assert verdict([append(0, "k", "a", 0, 1), append(0, "k", "", 2, 3),
                    get(1, "k", "a", 4, 5)]) is OK
    # A put of "" may still empty the value if it may come before the get, not otherwise.
    assert verdict([append(0, "k", "a", 0, 1), put(1, "k", "", 0, 10),
                    get(2, "k", "", 2, 3)]) is OK
    assert verdict([append(0, "k", "a", 0, 1), put(1, "k", "", 5, 10),
                    get(2, "k", "", 2, 3)]) is ILLEGAL
    # After it, appends build the value afresh, in either order if they overlap.
    ops = [put(0, "k", "x", 0, 1), put(1, "k", "", 2, 3), append(0, "k", "a", 4, 10),
           append(1, "k", "b", 4, 10)]
    assert verdict(ops + [get(2, "k", "ba", 11, 12)]) is OK
    assert verdict(ops + [get(2, "k", "xab", 11, 12)]) is ILLEGAL


def _small_history_with_empty_values(rng: random.Random) -> list[Operation]:
    """Up to 8 operations with the values the KV hints treat specially: unique ones none of
    which is a prefix of another (like the lab's) mixed with empty ones, or a few values,
    possibly empty, repeated."""
    unique = rng.random() < 0.5

    def pick_value(client: int, n: int) -> str:
        if unique:
            return "" if rng.random() < 0.25 else f"x {client} {n} y"
        return rng.choice(["a", "b", "", ""])

    return _random_one_key_history(
        rng, 8, ["get", "get", "put", "append", "append", "append"], pick_value, 0.25,
        lambda state: ["", "a", state + "b", state[:-1], state[:len(state) // 2],
                       state + state[-7:], state[7:]])


def test_agrees_with_brute_force_with_empty_and_repeated_values() -> None:
    rng = random.Random(3824)
    seen = set()
    for _ in range(600):
        ops = _small_history_with_empty_values(rng)
        expected = _brute_force(ops)
        seen.add(expected)
        assert (verdict(ops) is OK) == expected, ops
    assert seen == {True, False}


def test_concurrent_appends_to_one_key_after_an_empty_put() -> None:
    """TestUnreliableOneKey's history: Put("k", ""), five clerks appending to "k" at once
    over a lossy network (calls of 0-200 ms), one get of everything. The empty put used to
    leave it undecided; it must be decided at once, lost and doubled appends included."""
    for seed in range(6):
        history = one_key_appends_history(seed=seed)
        assert len(history) == 52 and history[0].input == KvInput("put", "k", "")
        assert max(sum(op.call_time <= t < op.return_time for op in history)
                   for t in (op.call_time for op in history)) == 5  # every clerk busy at once
        result = check_kv(history, timeout=5)
        assert result.result is OK, seed
        # a few steps per operation: the get's output says which order the appends took
        assert result.partitions[0].search_steps < 10 * len(history)
        for broken in (lose_an_append(history, seed), duplicate_an_append(history, seed)):
            result = check_kv(broken, timeout=5)
            assert result.result is ILLEGAL, seed
            (failing,) = result.failing()
            assert failing.operations[-1].input.op == "get"
            assert len(history) - 1 in failing.doomed  # the get is blamed
        assert check_kv(one_key_appends_history(seed=seed, initial_put=False),
                        timeout=5).result is OK


def test_long_sequential_history_on_one_key() -> None:
    """The generic test with one clerk (3B's "restarts, snapshots, one client"): 10,000
    operations on one key, none overlapping another, a Put(key, "") starting each round,
    gets of the whole value. Taken in order, without search."""
    history = single_clerk_history(10_000, iterations=3, seed=4)
    assert len(history) == 10_000
    assert all(a.return_time < b.call_time for a, b in itertools.pairwise(history))
    assert sum(op.input == KvInput("put", "0", "") for op in history) == 3
    result = check_kv(history, timeout=5)
    assert result.result is OK
    assert result.partitions[0].search_steps == len(history)
    assert check_kv(lose_an_append(history, seed=4), timeout=5).result is ILLEGAL

    one_round = single_clerk_history(10_000, iterations=1, seed=4)
    assert max(len(op.output or "") for op in one_round) > 40_000
    assert check_kv(one_round, timeout=5).result is OK
    assert check_kv(duplicate_an_append(one_round, seed=4), timeout=5).result is ILLEGAL
    # A get late in the history returns what an earlier one did: stale.
    gets = [i for i, op in enumerate(one_round) if op.input.op == "get"]
    stale = list(one_round)
    stale[gets[-10]] = replace(stale[gets[-10]], output=one_round[gets[-100]].output)
    result = check_kv(stale, timeout=5)
    assert result.result is ILLEGAL
    (failing,) = result.failing()
    assert failing.longest_prefix == list(range(gets[-10]))
    assert gets[-10] in failing.doomed + failing.stuck


# --- The history format --------------------------------------------------------------------------

SAMPLE = """\
{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}
{:process 1, :type :invoke, :f :get, :key "0", :value nil}
{:process 0, :type :ok, :f :append, :key "0", :value "x 0 0 y"}
{:process 1, :type :ok, :f :get, :key "0", :value "x 0 0 y"}
{:process 0, :type :invoke, :f :put, :key "1", :value "{p, :q \\"open\\"}"}

; a comment, then a put that failed and a get nobody heard back from
{:process 2, :type :invoke, :f :put, :key "1", :value "q"}
{:process 2, :type :fail, :f :put, :key "1", :value "q"}
{:process 3, :type :invoke, :f :get, :key "1", :value nil}
{:process 3, :type :info, :f :get, :key "1", :value nil}
"""


def test_parse_history() -> None:
    ops = parse_history(SAMPLE.splitlines())
    assert ops == [
        append(0, "0", "x 0 0 y", 0, 2),
        get(1, "0", "x 0 0 y", 1, 3),
        put(0, "1", "{p, :q \"open\"}", 4, NEVER_RETURNED),  # no reply by the end: pending
        get(3, "1", None, 7, NEVER_RETURNED),  # :info: pending, output unknown
    ]
    assert verdict(ops) is OK


def test_format_history_reads_back() -> None:
    history = random_kv_history(clients=5, ops_per_client=10, keys=3, seed=1)
    history.append(append(99, "0", 'a "quoted"\\ value', 1.5, NEVER_RETURNED))
    back = parse_history(format_history(history).splitlines())
    # Times become event numbers; everything else, and the order of events, is kept.
    strip = lambda ops: sorted((o.client, o.input, o.output) for o in ops)  # noqa: E731
    assert strip(back) == strip(history)
    assert check_kv(back).result is check_kv(history).result is OK


@pytest.mark.parametrize("line, problem", [
    ('{:process 0, :type :invoke, :f :get, :key "0" :value nil', "expected one map"),
    ('{:process 0, :f :get, :key "0", :value nil}', "no :type"),
    ('{:process 0, :type :start, :f :get, :key "0", :value nil}', ":type must be one of"),
    ('{:process 0, :type :invoke, :f :cas, :key "0", :value nil}', ":f must be one of"),
    ('{:process 0, :type :invoke, :f :get, :value nil}', "no :key"),
    ('{:process 0, :type :invoke, :f :put, :key "0", :value nil}', "needs a string :value"),
    ('{:process 0, :type :invoke, :f :get, :key "0", :value "unterminated}', "unexpected text"),
    ('{:process 0, :type :invoke, :f :get, :key "0", :value nil, :key "1"}', "appears twice"),
    ('{:process 5, :type :ok, :f :get, :key "0", :value ""}', "no outstanding :invoke"),
    ('{:process 1, :type :invoke, :f :get, :key "0", :value nil}', "invokes again"),
    ('{:process 1, :type :ok, :f :get, :key "9", :value ""}', "was :f :get on :key '0'"),
    ("(:process 1)", "unexpected text"),
])
def test_unreadable_lines_are_named(line: str, problem: str) -> None:
    lines = ['{:process 1, :type :invoke, :f :get, :key "0", :value nil}', "", line]
    with pytest.raises(HistoryError) as caught:
        parse_history(lines)
    assert caught.value.line == 3
    assert str(caught.value).startswith("line 3: ") and problem in str(caught.value)


# --- The recorder --------------------------------------------------------------------------------

def test_recorder_from_many_threads() -> None:
    recorder = Recorder()
    store: dict[str, str] = {}
    lock = threading.Lock()  # a trivially linearizable "service"

    def client(c: int) -> None:
        for n in range(20):
            key = str(n % 3)
            if n % 2:
                with recorder.call(c, "append", key, f"x {c} {n} y"):
                    with lock:
                        store[key] = store.get(key, "") + f"x {c} {n} y"
            else:
                with recorder.call(c, "get", key) as call:
                    with lock:
                        call.output = store.get(key, "")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ops = recorder.operations()
    assert len(recorder) == len(ops) == 160
    assert all(op.call_time <= op.return_time for op in ops)
    assert check_kv(ops).result is OK


def test_recorder_keeps_one_string_for_equal_outputs_of_a_key() -> None:
    # A history of long appended values must not hold a copy per get (see Recorder).
    recorder = Recorder()
    value = "x 0 1 y" * 1000

    def copy() -> str:  # an equal string, not the same object
        return (value + ".")[:-1]

    for n in range(3):
        recorder.record(0, "get", "k", "", copy(), 3 * n, 3 * n + 1)
    recorder.record(0, "append", "k", "x 0 2 y", None, 10, 11)
    recorder.record(0, "get", "k", "", value + "x 0 2 y", 12, 13)
    recorder.record(1, "get", "other", "", copy(), 14, 15)
    first, second, third, _, longer, other = recorder.operations()
    assert second.output is first.output and third.output is first.output
    assert longer.output == value + "x 0 2 y" and other.output == value
    assert other.output is not first.output  # keys never share: each is checked on its own
    assert check_kv(recorder.operations()).result is not OK  # the key was never written


def test_recorder_logs_a_failed_call_as_never_returned() -> None:
    recorder = Recorder()
    with pytest.raises(TimeoutError):
        with recorder.call(0, "put", "k", "v"):
            raise TimeoutError
    recorder.record(1, "get", "k", "", "v", 1e9, 1e9 + 1)
    (pending, read) = recorder.operations()
    assert pending.return_time == NEVER_RETURNED and pending.input == KvInput("put", "k", "v")
    assert check_kv(recorder.operations()).result is OK
    with pytest.raises(ValueError):
        recorder.record(0, "cas", "k", "", None, 0, 1)


# --- The page ------------------------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.classes: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.classes.extend((values.get("class") or "").split())
        self.external.extend(v for k, v in attrs if k in ("src", "href") and v
                             and not v.startswith("#"))
        if tag not in ("meta", "line", "polyline", "text", "br"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("line", "polyline", "text"):
            return
        assert self.open and self.open.pop() == tag, f"</{tag}> closes nothing"


def test_html_shows_lanes_prefix_and_culprits(tmp_path: Path) -> None:
    ops = [put(0, "k", "1", 0, 1), append(1, "k", "2", 2, 3), get(2, "k", "1", 4, 5),
           put(3, "other", "x", 0, 5)]
    result = check_kv(ops)
    page = write_html(result, tmp_path / "page.html", title="stale read")
    text = page.read_text(encoding="utf-8")
    tags = _Tags()
    tags.feed(text)
    assert tags.open == [] and tags.external == []
    assert "<style>" in text and "<script>" in text and "<svg" in text
    for client in (0, 1, 2):
        assert f">client {client}</div>" in text
    assert tags.classes.count("lin") >= 2 and tags.classes.count("stuck") >= 1
    assert "get(&#x27;k&#x27;) -&gt; &#x27;1&#x27;" in text
    assert "not linearizable" in text and "Jump to the first error" in text
    assert render_html(result, title="stale read") == text


# --- labs check-history --------------------------------------------------------------------------

def _write(path: Path, ops: list[Operation]) -> Path:
    path.write_text(format_history(ops), encoding="utf-8")
    return path


def test_cli_linearizable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = _write(tmp_path / "ok.txt", random_kv_history(clients=10, ops_per_client=10, seed=2))
    assert labs_main(["check-history", str(history)]) == 0
    assert capsys.readouterr().out.startswith("linearizable (100 operations, 10 clients")
    assert not list(tmp_path.glob("*.html"))


def test_cli_not_linearizable_writes_the_page(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    history = random_kv_history(clients=10, ops_per_client=10, keys=2, seed=2)
    path = _write(tmp_path / "bad.txt", lose_an_append(history, seed=2))
    assert labs_main(["check-history", str(path)]) == 1
    out = capsys.readouterr().out
    page = tmp_path / "bad.linearizability.html"
    assert out.startswith("not linearizable") and f"visualization: {page}" in out
    text = page.read_text(encoding="utf-8")
    assert all(f">client {c}</div>" in text for c in range(10))
    # --html chooses the file; stdin writes beside the current directory
    assert labs_main(["check-history", str(path), "--html", str(tmp_path / "x.html")]) == 1
    assert (tmp_path / "x.html").exists()


def test_cli_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(format_history(
        [put(0, "k", "1", 0, 1), get(1, "k", "2", 2, 3)])))
    assert labs_main(["check-history", "-"]) == 1
    assert "visualization: history.linearizability.html" in capsys.readouterr().out
    assert (tmp_path / "history.linearizability.html").exists()


def test_cli_summary_counts_one_in_the_singular(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    one = _write(tmp_path / "one.txt", [put(0, "k", "1", 0, 1)])
    assert labs_main(["check-history", str(one)]) == 0
    assert capsys.readouterr().out.startswith("linearizable (1 operation, 1 client, 1 key, ")
    two = _write(tmp_path / "two.txt", [put(0, "k", "1", 0, 1), get(1, "j", "", 2, 3)])
    assert labs_main(["check-history", str(two)]) == 0
    assert capsys.readouterr().out.startswith("linearizable (2 operations, 2 clients, 2 keys, ")


def test_cli_undecided(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "hard.txt", hard_history())
    assert labs_main(["check-history", str(path), "--timeout", "0.2"]) == 2
    assert capsys.readouterr().out.startswith("undecided: no verdict within 0.2 s")


def test_cli_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.txt"
    path.write_text(SAMPLE + '{:process 9, :type :ok, :f :get, :key "0", :value "x"}\n')
    assert labs_main(["check-history", str(path)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: line 12: ") and "process 9" in err
    assert labs_main(["check-history", str(tmp_path / "missing.txt")]) == 3
    assert "cannot read" in capsys.readouterr().err


def test_cli_entry_point(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.txt", [put(0, "k", "1", 0, 1), get(1, "k", "1", 2, 3)])
    run = subprocess.run([sys.executable, "-m", "labs", "check-history", str(path)],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("linearizable")




def _imports_within(package: Path, prefix: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports, at the top or inside a function."""
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        module = f"{prefix}.{path.stem}"
        graph[module] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            graph[module].update(n for n in names if n.startswith(prefix + ".") and n != module)
    return graph


def test_the_checker_modules_import_each_other_without_a_cycle() -> None:
    import labs.linearizability as package

    graph = _imports_within(Path(package.__file__).parent, "labs.linearizability")
    assert graph["labs.linearizability.kv_model"] >= {"labs.linearizability.kv_reads"}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for imported in graph.get(module, ()):
                visit(imported, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())
