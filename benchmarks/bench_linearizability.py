"""Benchmarks: how long the checker takes to decide the histories lab 3's tests produce.

- `check_50clients`: a busy 50-client history on 10 keys, like porcupine's test data.
- `check_single_key_long`: the generic test with one clerk (3B's "restarts, snapshots, one
  client"): 10,000 operations on one key, one after another, the value growing to 50 KB.
- `check_one_key_appends`: TestUnreliableOneKey: an empty put, 5 clerks appending to one key
  at once over a lossy network, one get.

`linearizability_metrics` runs them all (a group for `labs bench`).
"""

from __future__ import annotations

import statistics
import time

from labs.linearizability.checker import CheckOutcome
from labs.linearizability.generate import (
    duplicate_an_append,
    lose_an_append,
    one_key_appends_history,
    random_kv_history,
    single_clerk_history,
)
from labs.linearizability.kv_history import check_kv

__all__ = ["check_50clients", "check_single_key_long", "check_one_key_appends",
           "linearizability_metrics"]

CLIENTS = 50
OPS_PER_CLIENT = 34   # 1700 operations, like porcupine's 50-client test histories
KEYS = 10
REPEATS = 5
LONG_OPS = 10_000     # the 3B one-client test records about 9,700
LONG_ROUNDS = (3, 1)  # ... in three rounds, each starting with Put(key, ""); or in one


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


def check_single_key_long(seed: int = 1) -> dict[str, float]:
    """Median seconds (of 5 runs) to decide a generated 10,000-operation history of one
    clerk on one key (no two operations overlap), and the same with one get in the second
    half missing an append; the slower of two shapes: in three rounds, each starting with
    Put(key, "") and writing the same values again (as the test does), and in one round,
    the value growing to 50 KB."""
    ok = illegal = 0.0
    for rounds in LONG_ROUNDS:
        history = single_clerk_history(LONG_OPS, rounds, seed=seed)
        ok = max(ok, _seconds_to_decide(history, CheckOutcome.OK))
        illegal = max(illegal, _seconds_to_decide(lose_an_append(history, seed=seed),
                                                  CheckOutcome.ILLEGAL))
    return {"check_single_key_long_s": round(max(ok, illegal), 4),
            "check_single_key_long_ok_s": round(ok, 4),
            "check_single_key_long_illegal_s": round(illegal, 4)}


def check_one_key_appends(seeds: range = range(5)) -> dict[str, float]:
    """The slowest, over a few seeds, of the median seconds (of 5 runs) to decide a
    generated TestUnreliableOneKey history: as recorded, with an append lost, and with an
    append applied twice."""
    worst = 0.0
    for seed in seeds:
        history = one_key_appends_history(seed=seed)
        worst = max(worst, _seconds_to_decide(history, CheckOutcome.OK),
                    _seconds_to_decide(lose_an_append(history, seed), CheckOutcome.ILLEGAL),
                    _seconds_to_decide(duplicate_an_append(history, seed),
                                       CheckOutcome.ILLEGAL))
    return {"check_one_key_appends_s": round(worst, 4)}


def linearizability_metrics() -> dict[str, float]:
    """Every benchmark of this module."""
    return {**check_50clients(), **check_single_key_long(), **check_one_key_appends()}
