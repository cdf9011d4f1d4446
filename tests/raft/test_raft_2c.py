"""Lab 2C: persistence. Peers crash and restart from what they saved; nothing committed is
lost or changed, even with crashes in the worst places (Figure 8) and a lossy network."""

from __future__ import annotations

import logging
import random
import time

from raft_harness import ELECTION_TIMEOUT

log = logging.getLogger("tester")

PERSIST2_ROUNDS = 5

FORCED_ATTEMPTS = 5                    # Figure 8, forced: tries to hand a chosen leader its entry
FORCED_REPLICATION_WAIT = 0.5 * ELECTION_TIMEOUT  # (a) time for S1's entry to reach S2
FORCED_COMMIT_WINDOW = ELECTION_TIMEOUT           # (c) time a counting leader needs to commit
FORCED_COMMIT_POLL = 0.020

FIGURE8_ROUNDS = 1000
FIGURE8_LONG_SLEEP_PER_MILLE = 100     # 1 round in 10 sleeps up to half an election timeout,
FIGURE8_SHORT_SLEEP_MS = 13            # ... the others U[0, 13) ms
FIGURE8_MIN_UP = 3                     # below 3 live servers, revive one
FIGURE8_UNRELIABLE_VALUES = 10_000     # Figure 8 (unreliable) commits values below 10000
FIGURE8_LONG_REORDERING_ROUND = 200    # ... and turns on long reordering at round 200
FIGURE8_UNRELIABLE_CUT_PER_MILLE = 500  # ... and cuts the leader in half of the rounds

UNRELIABLE_AGREE_ROUNDS = 50           # rounds 1..49
UNRELIABLE_AGREE_CONCURRENT = 4        # helper one()s per round

CHURN_CLIENTS = 3
CHURN_ROUNDS = 20
CHURN_DISCONNECT_PER_MILLE = 200
CHURN_RESTART_PER_MILLE = 500
CHURN_CRASH_PER_MILLE = 200
CHURN_ROUND_SLEEP = 0.7 * ELECTION_TIMEOUT  # under an election timeout, but not far under
CHURN_COMMIT_POLLS_MS = (10, 20, 50, 100, 200)
CHURN_IDLE_BASE_MS = 79                # a client that found no leader sleeps 79 + 17*me ms
CHURN_IDLE_STEP_MS = 17


def random_value() -> int:
    return random.getrandbits(63)


def basic_persistence(make_config, unreliable: bool, title: str) -> None:
    servers = 3
    cfg = make_config(servers, unreliable=unreliable)
    cfg.begin(title)

    cfg.one(11, servers, retry=True)

    # Crash and restart every server.
    for i in range(servers):
        cfg.start1(i)
    for i in range(servers):
        cfg.disconnect(i)
        cfg.connect(i)
    cfg.one(12, servers, retry=True)

    # Restart the leader.
    leader1 = cfg.check_one_leader()
    cfg.disconnect(leader1)
    cfg.start1(leader1)
    cfg.connect(leader1)
    cfg.one(13, servers, retry=True)

    # The leader misses a commit while away, then restarts.
    leader2 = cfg.check_one_leader()
    cfg.disconnect(leader2)
    cfg.one(14, servers - 1, retry=True)
    cfg.start1(leader2)
    cfg.connect(leader2)
    cfg.wait(4, servers)  # leader2 must catch up before i3 goes

    # A follower misses a commit while away, then restarts.
    i3 = (cfg.check_one_leader() + 1) % servers
    cfg.disconnect(i3)
    cfg.one(15, servers - 1, retry=True)
    cfg.start1(i3)
    cfg.connect(i3)

    cfg.one(16, servers, retry=True)
    cfg.end()


def test_persist1_2c(make_config):
    basic_persistence(make_config, unreliable=False, title="Test (2C): basic persistence")


def test_persist1_unreliable_2c(make_config):
    basic_persistence(make_config, unreliable=True,
                      title="Test (2C): basic persistence (unreliable)")


def test_vote_survives_crash_2c(make_config):
    """A peer saves its vote before granting it: restarted, it must not vote again in that term.

    W wins a fresh election, term t, with V's vote, while C is down (it crashed in the term
    before). V crashes and restarts and follows W again; C restarts cut off from W only, so it
    times out and asks V for its vote, in term t if it asks at once. A V that forgot its vote
    grants it, and C becomes a second leader of term t. (A peer that holds a pre-vote first
    is asked nothing: V still hears from its leader.)"""
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2C): a vote survives a crash")

    first = cfg.check_one_leader()
    c = (first + 1) % servers
    cfg.crash1(c)
    cfg.crash1(first)            # the other server elects a leader, or first does on return
    cfg.start1(first)
    cfg.connect(first)
    w = cfg.check_one_leader()
    v = 3 - c - w                # the voter: the third server

    cfg.crash1(v)
    cfg.start1(v)
    cfg.connect(v)
    cfg.start1(c)
    cfg.connect(c)
    cfg.cut_link(w, c)
    cfg.sleep(2 * ELECTION_TIMEOUT)  # C campaigns; the monitor fails a second leader of a term

    cfg.disconnect(c)
    cfg.connect(c)
    cfg.one(random_value(), servers, retry=True)
    cfg.end()


def test_persist2_2c(make_config):
    servers = 5
    cfg = make_config(servers)
    cfg.begin("Test (2C): more persistence")

    index = 1
    for _ in range(PERSIST2_ROUNDS):
        cfg.one(10 + index, servers, retry=True)
        index += 1

        leader1 = cfg.check_one_leader()
        cfg.disconnect((leader1 + 1) % servers)
        cfg.disconnect((leader1 + 2) % servers)
        cfg.one(10 + index, servers - 2, retry=True)
        index += 1

        # The two that missed the last commit restart on their own; when an up-to-date
        # server joins them, only it can win an election, so nothing committed is lost.
        cfg.disconnect((leader1 + 0) % servers)
        cfg.disconnect((leader1 + 3) % servers)
        cfg.disconnect((leader1 + 4) % servers)
        cfg.start1((leader1 + 1) % servers)
        cfg.start1((leader1 + 2) % servers)
        cfg.connect((leader1 + 1) % servers)
        cfg.connect((leader1 + 2) % servers)
        time.sleep(ELECTION_TIMEOUT)

        cfg.start1((leader1 + 3) % servers)
        cfg.connect((leader1 + 3) % servers)
        cfg.one(10 + index, servers - 2, retry=True)
        index += 1

        cfg.connect((leader1 + 4) % servers)
        cfg.connect((leader1 + 0) % servers)

    cfg.one(1000, servers, retry=True)
    cfg.end()


def partitioned_leader_crash(make_config, unreliable: bool, title: str) -> None:
    servers = 3
    cfg = make_config(servers, unreliable=unreliable)
    cfg.begin(title)

    cfg.one(101, 3, retry=True)

    leader = cfg.check_one_leader()
    cfg.disconnect((leader + 2) % servers)
    cfg.one(102, 2, retry=True)

    # Both servers that hold 102 crash; the one without it comes back first, then the old
    # leader restarts from its saved log and must bring 102 along.
    cfg.crash1((leader + 0) % servers)
    cfg.crash1((leader + 1) % servers)
    cfg.connect((leader + 2) % servers)
    cfg.start1((leader + 0) % servers)
    cfg.connect((leader + 0) % servers)
    cfg.one(103, 2, retry=True)

    cfg.start1((leader + 1) % servers)
    cfg.connect((leader + 1) % servers)
    cfg.one(104, servers, retry=True)
    cfg.end()


def test_persist3_2c(make_config):
    partitioned_leader_crash(
        make_config, unreliable=False,
        title="Test (2C): partitioned leader and one follower crash, leader restarts")


def test_persist3_unreliable_2c(make_config):
    partitioned_leader_crash(
        make_config, unreliable=True,
        title="Test (2C): partitioned leader and one follower crash, leader restarts (unreliable)")


def lead_and_start(cfg, group: list[int], value: int,
                   keep_follower: bool) -> tuple[int, int | None, int]:
    """With the servers of `group` connected (and no others), wait for their leader, cut off
    every other member (but one follower if `keep_follower`) and offer the leader `value`.

    Whoever wins is the leader the scenario wants: the tester only decides who else hears of
    the entry. A leader deposed before it took the value (a random timeout) makes us try
    again. Returns (leader, the follower kept or None, the value's index)."""
    for attempt in range(1, FORCED_ATTEMPTS + 1):
        for i in group:
            cfg.connect(i)
        leader = cfg.check_one_leader()
        follower = next(i for i in group if i != leader) if keep_follower else None
        for i in group:
            if i not in (leader, follower):
                cfg.disconnect(i)
        started = cfg.start(leader, value)
        if started is not None:
            return leader, follower, started[0]
        log.info("figure 8, forced: leader %d refused Start() (attempt %d); trying again",
                 leader, attempt)
    cfg.fail(f"no leader of servers {group} kept its leadership long enough to take one "
             f"Start() ({FORCED_ATTEMPTS} tries, reliable network)")


def test_figure_8_scenario_2c(make_config):
    """Figure 8 of the paper, step by step, with the tester choosing who hears what.

    A leader that commits an entry of an earlier term because a majority holds it (instead
    of only through an entry of its own term, section 5.4.2) commits S1's entry in (c); in
    (d) S5 overwrites it and commits its own entry at that index, which the appliers report
    as two values committed at one index. The tester decides only who is connected; any
    server that can win an election under those links plays the part, and when a correct
    Raft takes another course (a leader that appends an entry of its own on election, say)
    the test goes on and only checks that everything committed agrees."""
    servers = 5
    cfg = make_config(servers)
    cfg.begin("Test (2C): Figure 8, forced")

    cfg.one(random_value(), servers, retry=True)  # every log now ends with a committed entry

    # (a) S1 leads and takes an entry that reaches S2 only; then S1 crashes.
    value_a = random_value()
    s1, s2, index_a = lead_and_start(cfg, list(range(servers)), value_a, keep_follower=True)
    cfg.sleep(FORCED_REPLICATION_WAIT)
    cfg.crash1(s1)
    cfg.disconnect(s2)

    # (b) S5 is elected by S3 and S4, takes an entry at the same index that no one else gets
    # (it is cut off first), and crashes. Its term is later than S1's: S3 and S4 knew S1's.
    rest = [i for i in range(servers) if i not in (s1, s2)]
    value_b = random_value()
    s5, _, index_b = lead_and_start(cfg, rest, value_b, keep_follower=False)
    cfg.crash1(s5)
    s3, s4 = [i for i in rest if i != s5]  # cut off when S5 took its entry

    # (c) S1 restarts; with S2 and S3 it elects S1 or S2 (S3's log is behind theirs) in a term
    # later than S5's (S3 voted in it). The leader brings S3 the entry of (a), so a majority
    # holds it: a leader that commits by counting replicas commits it now. No entry of this
    # term reaches a majority (the paper's leader has one that reaches no one; ours has none).
    cfg.start1(s1)
    for i in (s1, s2, s3):
        cfg.connect(i)
    leader_c = cfg.check_one_leader()
    deadline = time.monotonic() + FORCED_COMMIT_WINDOW
    while time.monotonic() < deadline and cfg.n_committed(index_a)[0] == 0:
        cfg.sleep(FORCED_COMMIT_POLL)
    count_c, _ = cfg.n_committed(index_a)

    # (d) That leader crashes and the other of S1 and S2 is cut off; S5 restarts and, with
    # S3 and S4, elects the only one of them that can win: S5 (its last entry's term beats
    # S3's and S4's). It overwrites the entry of (a) and commits its own at that index. Had
    # the entry of (a) been committed in (c), two servers now applied different values there.
    cfg.crash1(leader_c)
    for i in (s1, s2):
        cfg.disconnect(i)
    cfg.start1(s5)
    cfg.connect(s5)
    cfg.connect(s4)
    cfg.one(random_value(), servers - 2, retry=True)
    count_d, value_d = cfg.n_committed(index_a)
    log.info("figure 8, forced: S1=%d took index %d, S5=%d index %d; leader in (c) %d, "
             "%d applied index %d in (c); then %d applied %s there (%s)", s1, index_a, s5,
             index_b, leader_c, count_c, index_a, count_d, value_d,
             "S5's" if value_d == value_b else "S1's" if value_d == value_a else "other")

    # Everyone back: the logs must converge, with nothing committed lost or changed.
    for i in range(servers):
        if not cfg.is_alive(i):
            cfg.start1(i)
        cfg.connect(i)
    cfg.one(random_value(), servers, retry=True)
    cfg.end()


def figure8_sleep() -> None:
    """Mostly a few milliseconds, sometimes up to half an election timeout."""
    if random.randrange(1000) < FIGURE8_LONG_SLEEP_PER_MILLE:
        time.sleep(random.randrange(int(ELECTION_TIMEOUT * 1000) // 2) / 1000)
    else:
        time.sleep(random.randrange(FIGURE8_SHORT_SLEEP_MS) / 1000)


def test_figure_8_2c(make_config):
    """Leaders crash soon after taking commands, in every pattern, so that entries of old
    terms sit on some servers and not others: the situation of Figure 8 in the paper."""
    servers = 5
    cfg = make_config(servers)
    cfg.begin("Test (2C): Figure 8")

    cfg.one(random_value(), 1, retry=True)

    nup = servers
    for _ in range(FIGURE8_ROUNDS):
        leader = None
        for i in range(servers):
            if cfg.is_alive(i) and cfg.start(i, random_value()) is not None:
                leader = i

        figure8_sleep()

        if leader is not None:
            cfg.crash1(leader)
            nup -= 1

        if nup < FIGURE8_MIN_UP:
            s = random.randrange(servers)
            if not cfg.is_alive(s):
                cfg.start1(s)
                cfg.connect(s)
                nup += 1

    for i in range(servers):
        if not cfg.is_alive(i):
            cfg.start1(i)
            cfg.connect(i)

    cfg.one(random_value(), servers, retry=True)
    cfg.end()


def test_unreliable_agree_2c(make_config):
    servers = 5
    cfg = make_config(servers, unreliable=True)
    cfg.begin("Test (2C): unreliable agreement")

    helpers = []
    for round_number in range(1, UNRELIABLE_AGREE_ROUNDS):
        for k in range(UNRELIABLE_AGREE_CONCURRENT):
            value = 100 * round_number + k
            helpers.append(cfg.spawn(cfg.one, value, 1, True, name=f"tester-one-{value}"))
        cfg.one(round_number, 1, retry=True)

    cfg.set_unreliable(False)
    for helper in helpers:
        helper.join()

    cfg.one(100, servers, retry=True)
    cfg.end()


def test_figure_8_unreliable_2c(make_config):
    servers = 5
    cfg = make_config(servers, unreliable=True)
    cfg.begin("Test (2C): Figure 8 (unreliable)")

    cfg.one(random.randrange(FIGURE8_UNRELIABLE_VALUES), 1, retry=True)

    nup = servers
    for round_number in range(FIGURE8_ROUNDS):
        if round_number == FIGURE8_LONG_REORDERING_ROUND:
            cfg.set_long_reordering(True)
        leader = None
        for i in range(servers):
            started = cfg.start(i, random.randrange(FIGURE8_UNRELIABLE_VALUES))
            if started is not None and cfg.is_connected(i):
                leader = i

        figure8_sleep()

        if leader is not None and random.randrange(1000) < FIGURE8_UNRELIABLE_CUT_PER_MILLE:
            cfg.disconnect(leader)
            nup -= 1

        if nup < FIGURE8_MIN_UP:
            s = random.randrange(servers)
            if not cfg.is_connected(s):
                cfg.connect(s)
                nup += 1

    for i in range(servers):
        if not cfg.is_connected(i):
            cfg.connect(i)

    cfg.one(random.randrange(FIGURE8_UNRELIABLE_VALUES), servers, retry=True)
    cfg.end()


def churn(make_config, unreliable: bool, title: str) -> None:
    """Clients keep offering commands while servers are cut off, crashed and restarted at
    random; every command a client saw committed must be in the final log."""
    servers = 5
    cfg = make_config(servers, unreliable=unreliable)
    cfg.begin(title)
    stop = cfg.stop_flag()

    def client(me: int) -> list[int]:
        committed = []
        while not stop.is_set():
            x = random_value()
            index = None
            for i in range(servers):
                # Try them all; maybe one of them is the leader.
                started = cfg.start(i, x)
                if started is not None:
                    index = started[0]
            if index is None:
                time.sleep((CHURN_IDLE_BASE_MS + CHURN_IDLE_STEP_MS * me) / 1000)
                continue
            # The leader may or may not commit the value; don't wait long to find out.
            for pause_ms in CHURN_COMMIT_POLLS_MS:
                count, value = cfg.n_committed(index)
                if count > 0:
                    if value == x:
                        committed.append(x)
                    break
                time.sleep(pause_ms / 1000)
        return committed

    clients = [cfg.spawn(client, me, name=f"tester-churn-client-{me}")
               for me in range(CHURN_CLIENTS)]

    for _ in range(CHURN_ROUNDS):
        if random.randrange(1000) < CHURN_DISCONNECT_PER_MILLE:
            cfg.disconnect(random.randrange(servers))
        if random.randrange(1000) < CHURN_RESTART_PER_MILLE:
            i = random.randrange(servers)
            if not cfg.is_alive(i):
                cfg.start1(i)
            cfg.connect(i)
        if random.randrange(1000) < CHURN_CRASH_PER_MILLE:
            i = random.randrange(servers)
            if cfg.is_alive(i):
                cfg.crash1(i)
        cfg.sleep(CHURN_ROUND_SLEEP)  # a client that failed fails the test now, not at the end

    cfg.sleep(ELECTION_TIMEOUT)
    cfg.set_unreliable(False)
    for i in range(servers):
        if not cfg.is_alive(i):
            cfg.start1(i)
        cfg.connect(i)

    stop.set()
    values = []
    for me, c in enumerate(clients):
        client_values = c.join()
        if not client_values:
            cfg.fail(f"client {me} committed no values")  # talent-plan's rule; MIT allows it
        values += [(me, v) for v in client_values]

    time.sleep(ELECTION_TIMEOUT)
    last_index = cfg.one(random_value(), servers, retry=True)
    log = {}
    for index in range(1, last_index + 1):
        log[cfg.wait(index, servers)] = index
    for me, v in values:
        if v not in log:
            cfg.fail(f"didn't find a value: {v}, committed by client {me}, is not in the log "
                     f"at indexes 1..{last_index}")
    cfg.end()


def test_reliable_churn_2c(make_config):
    churn(make_config, unreliable=False, title="Test (2C): churn")


def test_unreliable_churn_2c(make_config):
    churn(make_config, unreliable=True, title="Test (2C): unreliable churn")
