"""Scenarios and checks that the 3A and 3B tests share: the generic test (clerks appending and
reading while the network fails, servers restart and partitions change), the speed test, and
the checks on what the clerks read."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from kv_harness import ELECTION_TIMEOUT, Config, TesterClerk

# --- The generic test -----------------------------------------------------------------------------
GENERIC_SERVERS = 5
GENERIC_ITERATIONS = 3
GENERIC_CLIENT_SECONDS = 5.0      # clerks work this long in each iteration
CALM_BEFORE_PARTITIONS = 1.0      # ... the first second of it without partitions
APPEND_PER_MILLE = 500            # a clerk's operation: 50% Append,
RANDOM_KEYS_PUT_PER_MILLE = 100   # ... then (random keys only) 10% of the rest Put, the rest Get
LINEARIZABLE_SERVERS = 7          # the random-keys variant: 7 servers,
LINEARIZABLE_CLIENTS = 15         # ... 15 clerks on keys "0".."14"
LOG_SIZE_FACTOR = 2               # Raft state <= 2 x maxraftstate (talent-plan; MIT allows 8x)

# --- The partitioner ------------------------------------------------------------------------------
PARTITION_HOLD = ELECTION_TIMEOUT  # each partition lasts 1 s
PARTITION_JITTER_MS = 200          # ... plus U[0, 200) ms

# --- The speed test -------------------------------------------------------------------------------
SPEED_SERVERS = 3
SPEED_OPS = 1000
HEARTBEAT_INTERVAL = 0.100         # the tester's assumption about heartbeats:
OPS_PER_HEARTBEAT = 3              # ... at least 3 operations must complete per heartbeat
SPEED_MAX_SECONDS_PER_OP = HEARTBEAT_INTERVAL / OPS_PER_HEARTBEAT   # 33.3 ms


def append_value(client: int, n: int) -> str:
    """The value clerk `client` appends n-th: distinct, and no one is a substring of another."""
    return f"x {client} {n} y"


def check(cfg: Config, ck: TesterClerk, key: str, expected: str) -> None:
    """Get(key) through `ck` must return `expected`."""
    value = ck.get(key)
    if value != expected:
        cfg.fail(f"Get({key!r}): expected {_show(expected)}, received {_show(value)}")


def check_clnt_appends(cfg: Config, client: int, value: str, count: int) -> None:
    """`value` holds clerk `client`'s appends 0..count-1, each once and in order."""
    last = -1
    for n in range(count):
        wanted = append_value(client, n)
        offset = value.find(wanted)
        if offset < 0:
            cfg.fail(f"client {client}: missing element {wanted!r} in Append result "
                     f"{_show(value)}")
        if value.rfind(wanted) != offset:
            cfg.fail(f"client {client}: duplicate element {wanted!r} in Append result "
                     f"{_show(value)}")
        if offset <= last:
            cfg.fail(f"client {client}: wrong order for element {wanted!r} in Append result "
                     f"{_show(value)}")
        last = offset


def check_concurrent_appends(cfg: Config, value: str, counts: list[int]) -> None:
    """`value` holds each clerk i's appends 0..counts[i]-1, each once and in clerk order."""
    for client, count in enumerate(counts):
        check_clnt_appends(cfg, client, value, count)


def _show(value: str, limit: int = 120) -> str:
    if len(value) <= limit:
        return repr(value)
    half = limit // 2
    return f"{value[:half]!r}...{value[-half:]!r} ({len(value)} chars)"


def spawn_clients(cfg: Config, nclients: int,
                  body: Callable[[int, TesterClerk], object]) -> list:
    """Start `nclients` clerk threads, each with a clerk of its own reaching every server;
    body(client, clerk) runs on each. Returns their Spawned handles (join() -> body's result)."""

    def run(client: int) -> object:
        ck = cfg.make_client(cfg.all())
        try:
            return body(client, ck)
        finally:
            cfg.delete_client(ck)

    return [cfg.spawn(run, client, name=f"tester-clerk-{client}") for client in range(nclients)]


def partitioner(cfg: Config, stop: threading.Event) -> None:
    """Until `stop`, put each server on side 0 or 1 at random (a side may be empty) and hold
    that partition for 1 s and a bit."""
    while not stop.is_set():
        sides = [random.randrange(2) for _ in range(cfg.n)]
        cfg.partition([i for i in range(cfg.n) if sides[i] == 0],
                      [i for i in range(cfg.n) if sides[i] == 1])
        stop.wait(PARTITION_HOLD + random.randrange(PARTITION_JITTER_MS) / 1000)


def generic_test(make_config, part: str, nclients: int, unreliable: bool, crash: bool,
                 partitions: bool, maxraftstate: int | None, random_keys: bool = False) -> None:
    """Clerks append to and read keys for 5 s, three times over, while the network is
    unreliable, partitions come and go and/or every server restarts between rounds.

    Each clerk has a key of its own ("0", "1", ...), puts "" first, then appends
    "x <client> <n> y" or checks that a Get returns what it predicts. After each round every
    key must hold its clerk's appends, each once and in order. With random keys, clerks share
    the keys and also put; only the linearizability check of the history judges them."""
    title = "Test: "
    if unreliable:
        title += "unreliable net, "
    if crash:
        title += "restarts, "
    if partitions:
        title += "partitions, "
    if maxraftstate is not None:
        title += "snapshots, "
    if random_keys:
        title += "random keys, "
    title += "many clients" if nclients > 1 else "one client"
    title += f" ({part})"

    servers = LINEARIZABLE_SERVERS if random_keys else GENERIC_SERVERS
    cfg = make_config(servers, unreliable=unreliable, maxraftstate=maxraftstate)
    ck = cfg.make_client(cfg.all())
    cfg.begin(title)

    for _ in range(GENERIC_ITERATIONS):
        clients_done = cfg.stop_flag()
        partitioner_done = cfg.stop_flag()

        # clients_done is bound now: each iteration's clients watch their own flag.
        def client_body(client: int, myck: TesterClerk,
                        clients_done: threading.Event = clients_done) -> int:
            n = 0
            last = ""  # what this clerk's own key must hold (without random keys)
            if not random_keys:
                myck.put(str(client), last)
            while not clients_done.is_set():
                key = str(random.randrange(nclients)) if random_keys else str(client)
                value = append_value(client, n)
                if random.randrange(1000) < APPEND_PER_MILLE:
                    myck.append(key, value)
                    last += value
                    n += 1
                elif random_keys and random.randrange(1000) < RANDOM_KEYS_PUT_PER_MILLE:
                    myck.put(key, value)
                    n += 1
                else:
                    got = myck.get(key)
                    if not random_keys and got != last:
                        cfg.fail(f"get wrong value, key {key!r}: wanted {_show(last)}, "
                                 f"got {_show(got)}")
            return n

        clients = spawn_clients(cfg, nclients, client_body)
        partitioning = None
        if partitions:
            cfg.sleep(CALM_BEFORE_PARTITIONS)  # some operations without interruption first
            partitioning = cfg.spawn(partitioner, cfg, partitioner_done, name="tester-partitioner")
        cfg.sleep(GENERIC_CLIENT_SECONDS)
        clients_done.set()
        partitioner_done.set()

        if partitioning is not None:
            partitioning.join()
            # A clerk may be waiting on a leader cut off in a minority: heal the network and
            # give the servers time to move to a new term, so that its request completes.
            cfg.connect_all()
            cfg.sleep(ELECTION_TIMEOUT)

        if crash:
            for i in range(servers):
                cfg.shutdown_server(i)
            # Shutting down is not instantaneous; let it settle before restarting.
            cfg.sleep(ELECTION_TIMEOUT)
            for i in range(servers):
                cfg.start_server(i)
            cfg.connect_all()

        for client, spawned in enumerate(clients):
            appended = spawned.join()
            value = ck.get(str(client))
            if not random_keys:
                check_clnt_appends(cfg, client, value, appended)

        if maxraftstate is not None:
            # Now that the servers have applied every request, their logs must be trimmed.
            size = cfg.log_size()
            if size > LOG_SIZE_FACTOR * maxraftstate:
                cfg.fail(f"logs were not trimmed ({size} > {LOG_SIZE_FACTOR}*{maxraftstate})")
        else:
            size = cfg.snapshot_size()
            if size > 0:
                cfg.fail(f"snapshot too large ({size} bytes): servers must not snapshot "
                         "when maxraftstate is None")

    cfg.end()  # checks the whole history for linearizability


def speed_test(make_config, part: str, maxraftstate: int | None) -> None:
    """1000 appends by one clerk, one after another, must take at most 33.3 ms each on
    average: at least 3 operations per 100 ms heartbeat, so a leader must not wait for the
    next heartbeat to replicate or commit."""
    cfg = make_config(SPEED_SERVERS, maxraftstate=maxraftstate)
    ck = cfg.make_client(cfg.all())
    cfg.begin(f"Test: ops complete fast enough ({part})")

    # Once the first operation completes, a leader is elected and the servers are serving.
    ck.get("x")
    t0 = time.monotonic()
    for n in range(SPEED_OPS):
        ck.append("x", append_value(0, n))
    per_op = (time.monotonic() - t0) / SPEED_OPS
    check_clnt_appends(cfg, 0, ck.get("x"), SPEED_OPS)

    if per_op > SPEED_MAX_SECONDS_PER_OP:
        cfg.fail(f"Operations completed too slowly {per_op * 1000:.1f} ms/op > "
                 f"{SPEED_MAX_SECONDS_PER_OP * 1000:.1f} ms/op")
    cfg.end()
