"""Benchmark: how long the checker takes to decide a busy 50-client KV history."""

from __future__ import annotations

import statistics
import time

from labs.linearizability.checker import CheckOutcome
from labs.linearizability.generate import lose_an_append, random_kv_history
from labs.linearizability.kv_history import check_kv

CLIENTS = 50
OPS_PER_CLIENT = 34   # 1700 operations, like porcupine's 50-client test histories
KEYS = 10
REPEATS = 5


def _seconds_to_decide(history: list, expected: CheckOutcome) -> float:
    times = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        result = check_kv(history, timeout=None)
        times.append(time.perf_counter() - began)
        if result.result is not expected:
            raise RuntimeError(f"the checker said {result.result}, expected {expected}")
    return statistics.median(times)


def check_50clients(seed: int = 1) -> dict[str, float]:
    """Median seconds (of 5 runs) to decide a generated 50-client, 1700-operation history on
    10 keys: a linearizable one, and the same with one get missing an append."""
    history = random_kv_history(CLIENTS, OPS_PER_CLIENT, KEYS, seed=seed)
    broken = lose_an_append(history, seed=seed)
    ok = _seconds_to_decide(history, CheckOutcome.OK)
    illegal = _seconds_to_decide(broken, CheckOutcome.ILLEGAL)
    return {"check_50clients_s": round(max(ok, illegal), 4),
            "check_50clients_ok_s": round(ok, 4),
            "check_50clients_illegal_s": round(illegal, 4)}
