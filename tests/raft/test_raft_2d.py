"""Lab 2D: snapshots. The tester's applier snapshots every SNAPSHOT_INTERVAL commands; Raft
must trim its log to match, keep the persisted state small, and bring lagging or restarted
peers up to date with InstallSnapshot."""

from __future__ import annotations

import random
import time

from raft_harness import SNAPSHOT_INTERVAL

MAX_LOG_SIZE = 2000             # bytes of persisted Raft state allowed with snapshots on
SNAP_COMMON_ROUNDS = 30
SNAP_COMMON_SERVERS = 3
ALL_CRASH_ROUNDS = 5


def random_value() -> int:
    return random.getrandbits(63)


def burst_size() -> int:
    """5..14 commands: sometimes enough for a snapshot, sometimes not (MIT's rule)."""
    return SNAPSHOT_INTERVAL // 2 + random.randrange(SNAPSHOT_INTERVAL)


def snap_common(make_config, title: str, disconnect: bool, reliable: bool, crash: bool) -> None:
    """Rounds of: a follower falls behind (cut off or crashed) while the others commit a burst
    and snapshot it; then it returns and must catch up, by InstallSnapshot if need be."""
    servers = SNAP_COMMON_SERVERS
    cfg = make_config(servers, unreliable=not reliable, snapshot=True)
    cfg.begin(title)

    cfg.one(random_value(), servers, retry=True)
    leader1 = cfg.check_one_leader()

    for round_number in range(SNAP_COMMON_ROUNDS):
        victim, sender = (leader1 + 1) % servers, leader1
        if round_number % 3 == 1:
            sender, victim = (leader1 + 1) % servers, leader1

        if disconnect:
            cfg.disconnect(victim)
            cfg.one(random_value(), servers - 1, retry=True)
        if crash:
            cfg.crash1(victim)
            cfg.one(random_value(), servers - 1, retry=True)

        # Perhaps enough commands for a snapshot, offered without waiting.
        for _ in range(burst_size()):
            cfg.start(sender, random_value())

        if not disconnect and not crash:
            # Everyone must have caught up by plain AppendEntries, so the basic test never
            # needs InstallSnapshot.
            cfg.one(random_value(), servers, retry=True)
        else:
            cfg.one(random_value(), servers - 1, retry=True)

        size = cfg.log_size()
        if size >= MAX_LOG_SIZE:
            cfg.fail(f"Log size too large: {size} bytes of persisted Raft state "
                     f"(limit {MAX_LOG_SIZE})")

        if disconnect:
            # The victim may be far behind, past the leader's snapshot.
            cfg.connect(victim)
            cfg.one(random_value(), servers, retry=True)
            leader1 = cfg.check_one_leader()
        if crash:
            cfg.start1(victim)
            cfg.connect(victim)
            cfg.one(random_value(), servers, retry=True)
            leader1 = cfg.check_one_leader()
    cfg.end()


def test_snapshot_basic_2d(make_config):
    snap_common(make_config, "Test (2D): snapshots basic",
                disconnect=False, reliable=True, crash=False)


def test_snapshot_install_2d(make_config):
    snap_common(make_config, "Test (2D): install snapshots (disconnect)",
                disconnect=True, reliable=True, crash=False)


def test_snapshot_install_unreliable_2d(make_config):
    snap_common(make_config, "Test (2D): install snapshots (disconnect+unreliable)",
                disconnect=True, reliable=False, crash=False)


def test_snapshot_install_crash_2d(make_config):
    snap_common(make_config, "Test (2D): install snapshots (crash)",
                disconnect=False, reliable=True, crash=True)


def test_snapshot_install_unreliable_crash_2d(make_config):
    snap_common(make_config, "Test (2D): install snapshots (unreliable+crash)",
                disconnect=False, reliable=False, crash=True)


def crash_and_restart_all(cfg, servers: int) -> None:
    for i in range(servers):
        cfg.crash1(i)
    for i in range(servers):
        cfg.start1(i)
        cfg.connect(i)


def test_snapshot_all_crash_2d(make_config):
    servers = 3
    cfg = make_config(servers, snapshot=True)
    cfg.begin("Test (2D): crash and restart all servers")

    cfg.one(random_value(), servers, retry=True)
    for _ in range(ALL_CRASH_ROUNDS):
        # Perhaps enough commands for a snapshot.
        for _ in range(burst_size()):
            cfg.one(random_value(), servers, retry=True)
        index1 = cfg.one(random_value(), servers, retry=True)

        crash_and_restart_all(cfg, servers)

        index2 = cfg.one(random_value(), servers, retry=True)
        if index2 < index1 + 1:
            cfg.fail(f"index decreased from {index1} to {index2}")
    cfg.end()


def test_snapshot_init_2d(make_config):
    """A restarted peer must keep the snapshot it loaded: a later persist must save it again,
    not drop it."""
    servers = 3
    cfg = make_config(servers, snapshot=True)
    cfg.begin("Test (2D): snapshot initialization after crash")

    cfg.one(random_value(), servers, retry=True)
    for _ in range(SNAPSHOT_INTERVAL + 1):  # enough for a snapshot
        cfg.one(random_value(), servers, retry=True)

    crash_and_restart_all(cfg, servers)
    # One command, so that every peer persists its state again.
    cfg.one(random_value(), servers, retry=True)

    crash_and_restart_all(cfg, servers)
    # A peer that lost its snapshot at the last persist fails here.
    cfg.one(random_value(), servers, retry=True)
    cfg.end()


SNAPSHOT_EDGE_ACK_WAIT = 0.3     # for the follower's last acknowledgement to reach the leader


def test_snapshot_edge_2d(make_config):
    """A follower that lacks exactly one entry, the last one a snapshot replaced, needs that
    snapshot: the leader no longer has the entry, nor the term of the one before it.

    F holds 1-8 and the leader knows it; with F cut off the others commit 9-11 and snapshot
    through 9. When F returns, its next index is 9, the snapshot's last index: a leader that
    sends AppendEntries there reads positions before the start of its log."""
    servers = 3
    cfg = make_config(servers, snapshot=True)
    cfg.begin("Test (2D): a follower lacks only the snapshot's last entry")

    for _ in range(SNAPSHOT_INTERVAL - 2):      # indices 1-8, everywhere
        cfg.one(random_value(), servers, retry=True)
    cfg.sleep(SNAPSHOT_EDGE_ACK_WAIT)
    leader = cfg.check_one_leader()
    f = (leader + 1) % servers
    cfg.disconnect(f)
    for _ in range(3):                          # 9-11; the others snapshot through 9
        cfg.one(random_value(), servers - 1, retry=True)
    cfg.connect(f)
    for _ in range(2):
        cfg.one(random_value(), servers, retry=True)
    cfg.end()


def test_older_snapshot_from_service_2d(make_config):
    """The service may hand Raft a snapshot older than the one Raft holds (it was slow, and an
    InstallSnapshot overtook it): Raft ignores it, and keeps its newer snapshot and the log
    after it."""
    servers = 3
    cfg = make_config(servers, snapshot=True)
    cfg.begin("Test (2D): the service hands over an older snapshot")

    for _ in range(2 * SNAPSHOT_INTERVAL + 1):  # every server snapshots through 19
        cfg.one(random_value(), servers, retry=True)
    for i in range(servers):
        cfg.snapshot_again(i, SNAPSHOT_INTERVAL - 1)
    for _ in range(3):
        cfg.one(random_value(), servers, retry=True)

    # What each one persisted must still hold: restarted, they go on from their snapshots.
    crash_and_restart_all(cfg, servers)
    cfg.one(random_value(), servers, retry=True)
    if cfg.log_size() >= MAX_LOG_SIZE:
        cfg.fail(f"log size too large: {cfg.log_size()} bytes")
    cfg.end()


SNAPSHOT_ARRIVAL_LIMIT = 10.0    # seconds for the leader to send the lagging follower a snapshot
SNAPSHOT_REPLY_GRACE = 0.5       # ... and for the follower's reply to reach the leader


def test_crash_before_snapshot_install_2d(make_config):
    """A follower that answered InstallSnapshot holds those entries from then on, as far as the
    leader knows: a crash before its service took the snapshot must not lose them, or the
    leader waits forever on a log that no longer exists."""
    servers = 3
    cfg = make_config(servers, snapshot=True)
    cfg.begin("Test (2D): crash after the snapshot reply, before the service installs it")

    cfg.one(random_value(), servers, retry=True)
    leader = cfg.check_one_leader()
    victim = (leader + 1) % servers
    cfg.disconnect(victim)
    for _ in range(2 * SNAPSHOT_INTERVAL + 1):  # the others snapshot past the victim's log
        cfg.one(random_value(), servers - 1, retry=True)

    arrived = cfg.hold_snapshots(victim)
    cfg.connect(victim)
    if not arrived.wait(SNAPSHOT_ARRIVAL_LIMIT):
        cfg.fail(f"server {victim} received no snapshot within {SNAPSHOT_ARRIVAL_LIMIT:.0f} s "
                 "of rejoining, though the others had snapshotted past its log")
    time.sleep(SNAPSHOT_REPLY_GRACE)
    cfg.crash1(victim)  # its service never answered cond_install_snapshot
    cfg.start1(victim)
    cfg.connect(victim)
    for _ in range(3):
        cfg.one(random_value(), servers, retry=True)
    cfg.end()
