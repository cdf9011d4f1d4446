"""Random KV histories for the checker's tests and benchmark, linearizable by construction.

Each client issues operations one after another; each operation takes effect at a random
instant between its call and its return, and the outputs come from applying the operations to
a dictionary in the order of those instants. `lose_an_append` then breaks such a history the
way a faulty service would: one read misses an append that finished before the read began.
"""

from __future__ import annotations

import random
from dataclasses import replace

from labs.linearizability.model import APPEND, GET, PUT, KvInput, Operation

__all__ = ["random_kv_history", "lose_an_append"]


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
            value = "" if op == GET else f"x {client} {n} y"
            planned.append((effect, client, call, ret, KvInput(op, key, value)))
            now = ret + rng.uniform(0.0, 2.0)
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
