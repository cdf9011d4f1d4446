"""Lab 3B: the KV service with snapshots (maxraftstate = 1000 bytes). Raft's persisted state
stays small, snapshots stay small, a lagging server catches up through InstallSnapshot, and
everything 3A asks still holds across restarts from snapshots."""

from __future__ import annotations

from kv_harness import ELECTION_TIMEOUT
from kv_scenarios import LINEARIZABLE_CLIENTS, LOG_SIZE_FACTOR, check, generic_test, speed_test

PART = "3B"
MAXRAFTSTATE = 1000              # bytes of persisted Raft state before a server must snapshot
ONE_CLIENT = 1
MANY_CLIENTS = 5
RECOVER_MANY_CLIENTS = 20

SNAPSHOT_RPC_SERVERS = 3
SNAPSHOT_RPC_PUTS = 50           # puts the majority makes while server 2 is cut off

SNAPSHOT_SIZE_SERVERS = 3
SNAPSHOT_SIZE_ROUNDS = 200       # rounds of Put x=0, Get, Put x=1, Get
MAX_SNAPSHOT_SIZE = 500          # bytes: the data is one short key, so a snapshot stays tiny


def check_log_trimmed(cfg) -> None:
    size = cfg.log_size()
    if size > LOG_SIZE_FACTOR * MAXRAFTSTATE:
        cfg.fail(f"logs were not trimmed ({size} > {LOG_SIZE_FACTOR}*{MAXRAFTSTATE})")


def test_snapshot_rpc_3b(make_config):
    """A server cut off while the others snapshot past it must catch up by InstallSnapshot."""
    cfg = make_config(SNAPSHOT_RPC_SERVERS, maxraftstate=MAXRAFTSTATE)
    ck = cfg.make_client(cfg.all())
    cfg.begin(f"Test: InstallSnapshot RPC ({PART})")

    ck.put("a", "A")
    check(cfg, ck, "a", "A")

    # Many puts in the majority {0, 1}: enough to make them snapshot and trim their logs.
    cfg.partition([0, 1], [2])
    ck1 = cfg.make_client([0, 1])
    for i in range(SNAPSHOT_RPC_PUTS):
        ck1.put(str(i), str(i))
    cfg.sleep(ELECTION_TIMEOUT)
    ck1.put("b", "B")

    check_log_trimmed(cfg)

    # Now a majority needs server 2, which lags behind the others' snapshots.
    cfg.partition([0, 2], [1])
    ck2 = cfg.make_client([0, 2])
    ck2.put("c", "C")
    ck2.put("d", "D")
    check(cfg, ck2, "a", "A")
    check(cfg, ck2, "b", "B")
    check(cfg, ck2, "1", "1")
    last = str(SNAPSHOT_RPC_PUTS - 1)
    check(cfg, ck2, last, last)

    # Everybody together again.
    cfg.partition([0, 1, 2], [])
    ck.put("e", "E")
    check(cfg, ck, "c", "C")
    check(cfg, ck, "e", "E")
    check(cfg, ck, "1", "1")

    cfg.end()


def test_snapshot_size_3b(make_config):
    """Many operations on one key: the logs are trimmed, and snapshots hold the data only."""
    cfg = make_config(SNAPSHOT_SIZE_SERVERS, maxraftstate=MAXRAFTSTATE)
    ck = cfg.make_client(cfg.all())
    cfg.begin(f"Test: snapshot size is reasonable ({PART})")

    for _ in range(SNAPSHOT_SIZE_ROUNDS):
        ck.put("x", "0")
        check(cfg, ck, "x", "0")
        ck.put("x", "1")
        check(cfg, ck, "x", "1")

    check_log_trimmed(cfg)
    size = cfg.snapshot_size()
    if size > MAX_SNAPSHOT_SIZE:
        cfg.fail(f"snapshot too large ({size} > {MAX_SNAPSHOT_SIZE})")

    cfg.end()


def test_speed_3b(make_config):
    speed_test(make_config, PART, maxraftstate=MAXRAFTSTATE)


def test_snapshot_recover_3b(make_config):
    generic_test(make_config, PART, ONE_CLIENT, unreliable=False, crash=True, partitions=False,
                 maxraftstate=MAXRAFTSTATE)


def test_snapshot_recover_many_clients_3b(make_config):
    generic_test(make_config, PART, RECOVER_MANY_CLIENTS, unreliable=False, crash=True,
                 partitions=False, maxraftstate=MAXRAFTSTATE)


def test_snapshot_unreliable_3b(make_config):
    generic_test(make_config, PART, MANY_CLIENTS, unreliable=True, crash=False,
                 partitions=False, maxraftstate=MAXRAFTSTATE)


def test_snapshot_unreliable_recover_3b(make_config):
    generic_test(make_config, PART, MANY_CLIENTS, unreliable=True, crash=True,
                 partitions=False, maxraftstate=MAXRAFTSTATE)


def test_snapshot_unreliable_recover_concurrent_partition_3b(make_config):
    generic_test(make_config, PART, MANY_CLIENTS, unreliable=True, crash=True,
                 partitions=True, maxraftstate=MAXRAFTSTATE)


def test_snapshot_unreliable_recover_concurrent_partition_linearizable_3b(make_config):
    generic_test(make_config, PART, LINEARIZABLE_CLIENTS, unreliable=True, crash=True,
                 partitions=True, maxraftstate=MAXRAFTSTATE, random_keys=True)
