"""Random KV histories for the checker's tests and benchmark, linearizable by construction.

Each client issues operations one after another; each operation takes effect at a random
instant between its call and its return, and the outputs come from applying the operations to
a dictionary in the order of those instants. `lose_an_append` and `duplicate_an_append` then
break such a history the way a faulty service would: one read misses an append that finished
before the read began, or sees one append applied twice.

Besides the many-key mix (`random_kv_history`), two shapes of lab 3's tests:
`one_key_appends_history` (TestUnreliableOneKey: an empty put, then clerks appending to one
key concurrently over a lossy network, then one get) and `single_clerk_history` (the generic
test with one clerk: thousands of sequential appends and gets of one growing value).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

from labs.linearizability.model import APPEND, GET, PUT, KvInput, Operation

__all__ = ["random_kv_history", "one_key_appends_history", "single_clerk_history",
           "lose_an_append", "duplicate_an_append"]


def random_kv_history(clients: int = 50, ops_per_client: int = 34, keys: int = 10,
                      seed: int = 0, put_share: float = 0.05,
                      get_share: float = 0.45) -> list[Operation]:
    """A linearizable history of `clients * ops_per_client` operations on `keys` keys.

    Durations are mostly short with an occasional slow call (a retried RPC), so at any moment
    about three quarters of the clients have an operation in flight: realistic overlap.
    Values are "x <client> <n> y", unique per operation, as in porcupine's KV test data.
    """
    rng = random.Random(seed)
    planned: list[tuple[float, int, float, float, KvInput]] = []
    for client in range(clients):
        now = rng.uniform(0.0, 5.0)
        for n in range(ops_per_client):
            duration = rng.uniform(1.0, 8.0) * (5.0 if rng.random() < 0.1 else 1.0)
            call, ret = now, now + duration
            effect = rng.uniform(call, ret)
            key = str(rng.randrange(keys))
            draw = rng.random()
            op = GET if draw < get_share else PUT if draw < get_share + put_share else APPEND
            value = "" if op == GET else append_value(client, n)
            planned.append((effect, client, call, ret, KvInput(op, key, value)))
            now = ret + rng.uniform(0.0, 2.0)
    return _apply(planned)


def append_value(client: int, n: int) -> str:
    """The value client `client` appends n-th in lab 3's tests (no one is a prefix of another)."""
    return f"x {client} {n} y"


def one_key_appends_history(clients: int = 5, appends_per_client: int = 10, seed: int = 0,
                            initial_put: bool = True,
                            max_latency: float = 0.2) -> list[Operation]:
    """TestUnreliableOneKey's history: a clerk puts "" to key "k", then `clients` clerks
    (0, 1, ...) each append "x <client> <n> y" for n = 0, 1, ... one after another, all at the
    same time, and once they are done the first clerk (number `clients`) gets "k".

    Over an unreliable network a call takes anything from 0 to `max_latency` seconds (lost
    requests and replies are retried; the service applies each append once), so the appends
    of different clerks overlap heavily. Linearizable by construction.
    """
    rng = random.Random(seed)
    main = clients
    planned: list[tuple[float, int, float, float, KvInput]] = []
    now = 0.0
    if initial_put:
        ret = now + rng.uniform(0.0, max_latency)
        planned.append((rng.uniform(now, ret), main, now, ret, KvInput(PUT, "k", "")))
        now = ret
    last_return = now
    for client in range(clients):
        t = now + rng.uniform(0.0, 0.002)  # the clerk threads start
        for n in range(appends_per_client):
            ret = t + rng.uniform(0.0, max_latency)
            planned.append((rng.uniform(t, ret), client, t, ret,
                            KvInput(APPEND, "k", append_value(client, n))))
            last_return = max(last_return, ret)
            t = ret + rng.uniform(0.0, 0.0005)
    call = last_return + rng.uniform(0.0, 0.002)
    ret = call + rng.uniform(0.0, max_latency)
    planned.append((rng.uniform(call, ret), main, call, ret, KvInput(GET, "k")))
    return _apply(planned)


def single_clerk_history(ops: int = 10_000, iterations: int = 3, seed: int = 0,
                         append_share: float = 0.5) -> list[Operation]:
    """The generic test's history with one clerk and no concurrency: `ops` operations on key
    "0", none overlapping another, in `iterations` rounds.

    Each round, clerk 0 puts "" to "0", then appends "x 0 <n> y" (n = 0, 1, ... afresh each
    round, so the rounds write the same values) or gets the whole value so far, and at the
    end of the round clerk 1 gets it once more. A round of 5000 operations grows the value to
    about 25 KB. Linearizable by construction.
    """
    rng = random.Random(seed)
    planned: list[tuple[float, int, float, float, KvInput]] = []
    now = 0.0

    def call(client: int, inp: KvInput) -> None:
        nonlocal now
        duration = rng.uniform(0.0002, 0.002)
        if rng.random() < 0.002:
            duration += rng.uniform(0.1, 1.0)  # a leader change, a restart
        planned.append((rng.uniform(now, now + duration), client, now, now + duration, inp))
        now += duration + rng.uniform(0.00001, 0.0002)

    for round_ in range(iterations):
        # this round's share of the operations: the put, the body, clerk 1's get
        body = ops // iterations + (round_ < ops % iterations) - 2
        call(0, KvInput(PUT, "0", ""))
        n = 0
        for _ in range(body):
            if rng.random() < append_share:
                call(0, KvInput(APPEND, "0", append_value(0, n)))
                n += 1
            else:
                call(0, KvInput(GET, "0"))
        now += rng.uniform(0.001, 0.01)
        call(1, KvInput(GET, "0"))
    return _apply(planned)


def _apply(planned: list[tuple[float, int, float, float, KvInput]]) -> list[Operation]:
    """The operations (effect time, client, call, return, input), outputs from applying them
    in the order of their effect times, sorted by call time."""
    planned.sort(key=lambda p: p[0])
    store: dict[str, str] = {}
    history = []
    for _, client, call, ret, inp in planned:
        output = None
        if inp.op == GET:
            output = store.get(inp.key, "")
        elif inp.op == PUT:
            store[inp.key] = inp.value
        else:
            store[inp.key] = store.get(inp.key, "") + inp.value
        history.append(Operation(client, inp, output, call, ret))
    history.sort(key=lambda op: op.call_time)
    return history


def lose_an_append(history: list[Operation], seed: int = 0) -> list[Operation]:
    """A copy of `history` in which one late get misses an append that it must have seen.

    The append X returned before the get was called, so every linearization has X before the
    get. X overlaps no put on its key, so no put can be moved before it to hide it either;
    since values are unique, no linearization can produce the get's new output.
    """
    rng = random.Random(seed)
    gets = [i for i, op in enumerate(history)
            if op.input.op == GET and op.call_time > history[len(history) // 2].call_time]
    rng.shuffle(gets)
    for g in gets:
        read = history[g]
        for x in history:
            if (x.input.op != APPEND or x.input.key != read.input.key
                    or x.return_time >= read.call_time or x.input.value not in read.output):
                continue
            if any(p.input.op == PUT and p.input.key == x.input.key
                   and p.call_time <= x.return_time and x.call_time <= p.return_time
                   for p in history):
                continue
            broken = list(history)
            broken[g] = replace(read, output=read.output.replace(x.input.value, "", 1))
            return broken
    raise ValueError("no get in the second half of the history reads a suitable append")


def duplicate_an_append(history: list[Operation], seed: int = 0) -> list[Operation]:
    """A copy of `history` in which one late get sees an append applied twice (a retried
    request the service failed to recognize), right after its first copy.

    Only an append whose value no other write of the key has is doubled, and the generators'
    values are such that none is a prefix of another, so the get's new output can be cut into
    written values only one way, with the doubled value twice: no linearization produces it.
    """
    rng = random.Random(seed)
    gets = [i for i, op in enumerate(history)
            if op.input.op == GET and op.output
            and op.call_time >= history[len(history) // 2].call_time]
    rng.shuffle(gets)
    writers = Counter((op.input.key, op.input.value) for op in history if op.input.op != GET)
    for g in gets:
        read = history[g]
        candidates = [x.input.value for x in history
                      if x.input.op == APPEND and x.input.key == read.input.key
                      and x.input.value and writers[read.input.key, x.input.value] == 1
                      and x.input.value in read.output
                      and read.output.count(x.input.value) == 1]
        if not candidates:
            continue
        value = rng.choice(candidates)
        at = read.output.index(value) + len(value)
        broken = list(history)
        broken[g] = replace(read, output=read.output[:at] + value + read.output[at:])
        return broken
    raise ValueError("no get in the second half of the history reads a suitable append")
