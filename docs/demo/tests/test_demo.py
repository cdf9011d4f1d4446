"""A neutral demo for docs/tools.md: toy peers that write debug() lines, and a deadlock.

No Raft here, so the guide can show `labs logs` and a hung run's thread dump without showing
anyone's solution. From the repository root:

    LOG_LEVEL=debug labs test test_token_ring_demo -n 1 --seed 1 --tests-dir docs/demo/tests
    labs test test_deadlock_demo -n 1 --timeout 2 --seed 1 --tests-dir docs/demo/tests

Neither is a lab test (`make test` never collects docs/), and the second hangs on purpose.
"""

from __future__ import annotations

import threading

from labdebug import Topic, debug

PEERS = 3
ROUNDS = 2


def test_token_ring_demo() -> None:
    """Three peers pass a token round a ring twice; each pass is one debug line per peer."""
    turns = [threading.Event() for _ in range(PEERS)]
    received: list[tuple[int, int]] = []

    def peer(me: int) -> None:
        for round_ in range(1, ROUNDS + 1):
            turns[me].wait(timeout=5)
            turns[me].clear()
            debug(Topic.TIMER, "S%d woke up in round %d", me, round_)
            received.append((me, round_))
            successor = (me + 1) % PEERS
            debug(Topic.INFO, "S%d passes the token to S%d", me, successor)
            turns[successor].set()

    threads = [threading.Thread(target=peer, args=(i,), name=f"demo-S{i}") for i in range(PEERS)]
    for thread in threads:
        thread.start()
    debug(Topic.TEST, "S0 gets the token first")
    turns[0].set()
    for thread in threads:
        thread.join(timeout=5)
    assert received == [(i, r) for r in range(1, ROUNDS + 1) for i in range(PEERS)]


def test_deadlock_demo() -> None:
    """Two threads take two locks in opposite orders and wait for each other for ever: the
    classic deadlock, for `labs test --timeout` to catch and dump."""
    first, second = threading.Lock(), threading.Lock()
    both_hold_one = threading.Barrier(2)

    def take(mine: threading.Lock, theirs: threading.Lock) -> None:
        with mine:
            both_hold_one.wait()
            with theirs:  # never acquired: the other thread holds it and waits for `mine`
                pass

    workers = [threading.Thread(target=take, args=(first, second), name="demo-worker-1",
                                daemon=True),
               threading.Thread(target=take, args=(second, first), name="demo-worker-2",
                                daemon=True)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
