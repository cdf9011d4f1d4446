"""Lab 2B: log replication. Commands commit once a majority has them, in the same order
everywhere, and only then; lagging or wrong logs are repaired quickly and cheaply."""

from __future__ import annotations

import random
import string
import threading
import time

from raft_harness import ELECTION_TIMEOUT

BASIC_AGREE_SERVERS = 5          # talent-plan's 5 (MIT uses 3)
BASIC_AGREE_COMMANDS = 3

RPC_BYTES_COMMANDS = 10
RPC_BYTES_COMMAND_SIZE = 5000    # characters in each command
RPC_BYTES_SLACK = 50_000         # allowed beyond one copy of each command per server

RETRY_TRIES = 5                  # concurrent starts, RPC counts: attempts before "term changed
                                 # too often"
RETRY_PAUSE = 3.0                # settle time before each new attempt
CONCURRENT_STARTS = 5

STALE_APPEND_MORE = 2            # entries committed after the one whose AppendEntries comes back

DELAYED_REPLY_HOLD = 0.5         # the held reply comes back this long after its request
DELAYED_REPLY_SETTLE = 0.3       # then the leader has this long to send with what it learnt

LEADER_AGAIN_ENTRIES = 3         # entries only B gets from A in its first term
LEADER_AGAIN_REPLICATION = 0.5   # time for them to reach B

BACKUP_SERVERS = 5
BACKUP_BURST = 50                # commands per step of test_backup_2b

FAST_BACKUP_OLD = 50             # entries of an old term only the follower holds
FAST_BACKUP_NEW = 60             # newer-term entries the leader holds from the same index on
FAST_BACKUP_MAX_APPENDS = 20     # AppendEntries allowed to bring that follower up to date

COUNT_ELECTION_MAX_RPCS = 30     # RPCs allowed to elect the first leader
COUNT_AGREEMENTS = 10
COUNT_SPARE_ROUNDS = 3           # (agreements + 1 + 3 spare) rounds x 3 servers = 42 RPCs at most
COUNT_IDLE_RPCS_PER_SECOND = 20  # an idle 3-server cluster: 3 * 20 = 60 RPCs in one second


def random_text(size: int) -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=size))


def test_basic_agree_2b(make_config):
    servers = BASIC_AGREE_SERVERS
    cfg = make_config(servers)
    cfg.begin("Test (2B): basic agreement")

    for index in range(1, BASIC_AGREE_COMMANDS + 1):
        count, _ = cfg.n_committed(index)
        if count > 0:
            cfg.fail(f"some have committed before Start(): {count} servers applied index {index}")
        xindex = cfg.one(index * 100, servers, retry=False)
        if xindex != index:
            cfg.fail(f"got index {xindex} but expected {index}")
    cfg.end()


def test_rpc_bytes_2b(make_config):
    """Each command should cross the network about once per follower, not once per heartbeat."""
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2B): RPC byte count")

    cfg.one(99, servers, retry=False)
    bytes0 = cfg.bytes_total()
    sent = 0
    for index in range(2, RPC_BYTES_COMMANDS + 2):
        cmd = random_text(RPC_BYTES_COMMAND_SIZE)
        xindex = cfg.one(cmd, servers, retry=False)
        if xindex != index:
            cfg.fail(f"got index {xindex} but expected {index}")
        sent += len(cmd)

    got = cfg.bytes_total() - bytes0
    expected = servers * sent
    if got > expected + RPC_BYTES_SLACK:
        cfg.fail(f"too many RPC bytes; got {got}, expected {expected} "
                 f"(at most {expected + RPC_BYTES_SLACK})")
    cfg.end()


def test_follower_failure_2b(make_config):
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2B): test progressive failure of followers")

    cfg.one(101, servers, retry=False)

    # One follower gone: the leader and the other follower still agree.
    leader1 = cfg.check_one_leader()
    cfg.disconnect((leader1 + 1) % servers)
    cfg.one(102, servers - 1, retry=False)
    time.sleep(ELECTION_TIMEOUT)
    cfg.one(103, servers - 1, retry=False)

    # Both followers gone: the leader takes a command but cannot commit it.
    leader2 = cfg.check_one_leader()
    cfg.disconnect((leader2 + 1) % servers)
    cfg.disconnect((leader2 + 2) % servers)
    started = cfg.start(leader2, 104)
    if started is None:
        cfg.fail(f"leader {leader2} rejected Start()")
    index, _ = started
    if index != 4:
        cfg.fail(f"expected index 4, got {index}")

    time.sleep(2 * ELECTION_TIMEOUT)
    count, _ = cfg.n_committed(index)
    if count > 0:
        cfg.fail(f"{count} committed but no majority")
    cfg.end()


def test_leader_failure_2b(make_config):
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2B): test failure of leaders")

    cfg.one(101, servers, retry=False)

    # The first leader goes; the other two elect a new one and carry on.
    leader1 = cfg.check_one_leader()
    cfg.disconnect(leader1)
    cfg.one(102, servers - 1, retry=False)
    time.sleep(ELECTION_TIMEOUT)
    cfg.one(103, servers - 1, retry=False)

    # The second leader goes too: one server is left connected, so nothing may commit,
    # whoever accepts the command.
    leader2 = cfg.check_one_leader()
    cfg.disconnect(leader2)
    for i in range(servers):
        cfg.start(i, 104)

    time.sleep(2 * ELECTION_TIMEOUT)
    count, _ = cfg.n_committed(4)
    if count > 0:
        cfg.fail(f"{count} committed but no majority")
    cfg.end()


def test_fail_agree_2b(make_config):
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2B): agreement after follower reconnects")

    cfg.one(101, servers, retry=False)

    # A follower leaves; the remaining two keep committing without it.
    leader = cfg.check_one_leader()
    cfg.disconnect((leader + 1) % servers)
    cfg.one(102, servers - 1, retry=False)
    cfg.one(103, servers - 1, retry=False)
    time.sleep(ELECTION_TIMEOUT)
    cfg.one(104, servers - 1, retry=False)
    cfg.one(105, servers - 1, retry=False)

    # It returns, catches up, and takes part in new agreements.
    cfg.connect((leader + 1) % servers)
    cfg.one(106, servers, retry=True)
    time.sleep(ELECTION_TIMEOUT)
    cfg.one(107, servers, retry=True)
    cfg.end()


def test_fail_no_agree_2b(make_config):
    servers = 5
    cfg = make_config(servers)
    cfg.begin("Test (2B): no agreement if too many followers disconnect")

    cfg.one(10, servers, retry=False)

    # Three of five followers gone: the leader accepts a command it can never commit.
    leader = cfg.check_one_leader()
    for k in (1, 2, 3):
        cfg.disconnect((leader + k) % servers)
    started = cfg.start(leader, 20)
    if started is None:
        cfg.fail(f"leader {leader} rejected Start()")
    index, _ = started
    if index != 2:
        cfg.fail(f"expected index 2, got {index}")

    time.sleep(2 * ELECTION_TIMEOUT)
    count, _ = cfg.n_committed(index)
    if count > 0:
        cfg.fail(f"{count} committed but no majority")

    # Heal. The three may have elected a leader of their own and dropped index 2, so the
    # next command lands at index 2 or 3.
    for k in (1, 2, 3):
        cfg.connect((leader + k) % servers)
    leader2 = cfg.check_one_leader()
    started2 = cfg.start(leader2, 30)
    if started2 is None:
        cfg.fail(f"leader2 {leader2} rejected Start()")
    index2, _ = started2
    if not 2 <= index2 <= 3:
        cfg.fail(f"unexpected index {index2}, expected 2 or 3")

    cfg.one(1000, servers, retry=True)
    cfg.end()


def test_concurrent_starts_2b(make_config):
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2B): concurrent Start()s")

    def attempt() -> bool:
        """One try; False if the term moved on and the try proves nothing."""
        leader = cfg.check_one_leader()
        first = cfg.start(leader, 1)
        if first is None:
            return False  # the leader moved on at once
        _, term = first

        indexes: list[int] = []
        lock = threading.Lock()

        def start_one(value: int) -> None:
            started = cfg.start(leader, value)
            if started is not None and started[1] == term:
                with lock:
                    indexes.append(started[0])

        starters = [cfg.spawn(start_one, 100 + k, name=f"tester-start-{100 + k}")
                    for k in range(CONCURRENT_STARTS)]
        for starter in starters:
            starter.join()

        if any(cfg.state(j).term != term for j in range(servers)):
            return False  # a new term: not every Start() can be expected to commit

        committed = []
        for index in indexes:
            value = cfg.wait(index, servers, term)
            if value is None:
                return False  # peers moved on to a later term
            if not isinstance(value, int):
                cfg.fail(f"value {value!r} at index {index} is not a number")
            committed.append(value)

        for value in range(100, 100 + CONCURRENT_STARTS):
            if value not in committed:
                cfg.fail(f"cmd {value} missing in {committed}")
        return True

    for attempt_number in range(RETRY_TRIES):
        if attempt_number > 0:
            time.sleep(RETRY_PAUSE)  # let the cluster settle
        if attempt():
            break
    else:
        cfg.fail("term changed too often")
    cfg.end()


def test_rejoin_2b(make_config):
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2B): rejoin of partitioned leader")

    cfg.one(101, servers, retry=True)

    # The leader is cut off and takes commands that can never commit.
    leader1 = cfg.check_one_leader()
    cfg.disconnect(leader1)
    for value in (102, 103, 104):
        cfg.start(leader1, value)

    # The other two elect a leader and commit, index 2 included.
    cfg.one(103, 2, retry=True)

    # That leader is cut off in turn, and the old one returns: it must give up its
    # uncommitted entries and accept the new leader's log.
    leader2 = cfg.check_one_leader()
    cfg.disconnect(leader2)
    cfg.connect(leader1)
    cfg.one(104, 2, retry=True)

    cfg.connect(leader2)
    cfg.one(105, servers, retry=True)
    cfg.end()


def test_stale_append_entries_2b(make_config):
    """A follower deletes entries only from the first one that conflicts: an old AppendEntries
    of the current leader, handed over again late (networks duplicate and delay messages), must
    not shorten its log.

    F holds entries 1-4, committed by the leader and F while G is cut off; then the network
    hands F again every AppendEntries the leader sent it while entry 2 was new. A follower that
    deletes everything after the request's previous index loses 3 and 4, committed as they are;
    with the leader cut off, F leads G and commits something else at index 3."""
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2B): old AppendEntries delivered again")

    cfg.one(random.getrandbits(63), servers, retry=True)
    leader = cfg.check_one_leader()
    f, g = (leader + 1) % servers, (leader + 2) % servers
    cfg.disconnect(g)
    captured = cfg.capture(leader, f)
    cfg.one(random.getrandbits(63), 2, retry=True)   # index 2: what F will see again
    cfg.stop_capture(leader, f)
    for _ in range(STALE_APPEND_MORE):               # indices 3 and 4
        cfg.one(random.getrandbits(63), 2, retry=True)

    for args in captured:
        cfg.deliver_late(f, args)

    # Without the leader, F (the only one holding index 2) leads G; index 3 keeps its value.
    cfg.disconnect(leader)
    cfg.connect(g)
    cfg.one(random.getrandbits(63), 2, retry=True)
    cfg.connect(leader)
    cfg.one(random.getrandbits(63), servers, retry=True)
    cfg.end()


def test_delayed_append_reply_2b(make_config):
    """A leader learns from a success reply what the request it answers says: the follower
    holds the entries through that request's prev_log_index + len(entries), no more.

    The network holds back F's reply to the first AppendEntries that carries a new entry; the
    leader meanwhile sends again (a heartbeat, or after a timeout) and hears F's answer to that.
    Then the old reply arrives. A leader that adds the entries of each success reply to
    next_index counts them twice: next_index passes the end of its log."""
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2B): delayed AppendEntries reply")

    cfg.one(random.getrandbits(63), servers, retry=True)
    leader = cfg.check_one_leader()
    f = (leader + 1) % servers
    held = cfg.hold_replies(leader, f, "AppendEntries",
                            when=lambda args: len(getattr(args, "entries", ())) > 0)
    cfg.one(random.getrandbits(63), 2, retry=True)
    cfg.sleep(DELAYED_REPLY_HOLD)
    held.release()
    cfg.sleep(DELAYED_REPLY_SETTLE)

    for _ in range(2):
        cfg.one(random.getrandbits(63), servers, retry=True)
    cfg.end()


def test_leader_again_2b(make_config):
    """A leader starts each term from nothing it knew as leader before: match_index of its
    followers back to 0. A follower's log may have been cut by another leader in between.

    A leads and gives B entries 2-4 that never commit (C, D, E are cut off); C, D and E then
    commit others at 2 and 3, A joins them and takes their log, and A becomes leader again (the
    network loses every other server's vote requests) while B, still cut off, holds A's old
    entries. A leader that kept B's old match index never backs up below it, and B never
    catches up."""
    servers = 5
    cfg = make_config(servers)
    cfg.begin("Test (2B): leader again after another leader cut a follower's log")

    cfg.one(random.getrandbits(63), servers, retry=True)
    a = cfg.check_one_leader()
    b, rest = (a + 1) % servers, [(a + k) % servers for k in (2, 3, 4)]
    for i in rest:
        cfg.disconnect(i)
    for _ in range(LEADER_AGAIN_ENTRIES):
        cfg.start(a, random.getrandbits(63))
    cfg.sleep(LEADER_AGAIN_REPLICATION)            # B holds them; A counts B's match index

    cfg.disconnect(a)
    cfg.disconnect(b)
    for i in rest:
        cfg.connect(i)
    cfg.one(random.getrandbits(63), len(rest), retry=True)
    cfg.connect(a)
    cfg.one(random.getrandbits(63), len(rest) + 1, retry=True)  # A takes the new log; B not

    # A alone may campaign: with the current leader cut off, A wins.
    cfg.lose_vote_requests([i for i in range(servers) if i != a])
    leader = cfg.check_one_leader()
    if leader != a:
        cfg.disconnect(leader)
        if cfg.check_one_leader() != a:
            cfg.fail(f"server {a} did not win while the others' vote requests were lost")
    cfg.one(random.getrandbits(63), servers - 2, retry=True)
    cfg.lose_vote_requests(list(range(servers)), lost=False)
    for i in range(servers):
        cfg.connect(i)
    cfg.one(random.getrandbits(63), servers, retry=True)
    cfg.end()


def test_backup_2b(make_config):
    servers = BACKUP_SERVERS
    cfg = make_config(servers)
    cfg.begin("Test (2B): leader backs up quickly over incorrect follower logs")

    cfg.one(random.getrandbits(63), servers, retry=True)

    # The leader and one follower are left alone and take commands that never commit.
    leader1 = cfg.check_one_leader()
    for k in (2, 3, 4):
        cfg.disconnect((leader1 + k) % servers)
    for _ in range(BACKUP_BURST):
        cfg.start(leader1, random.getrandbits(63))
    time.sleep(ELECTION_TIMEOUT / 2)

    # Swap sides: the other three elect a leader and commit many commands.
    cfg.disconnect((leader1 + 0) % servers)
    cfg.disconnect((leader1 + 1) % servers)
    for k in (2, 3, 4):
        cfg.connect((leader1 + k) % servers)
    for _ in range(BACKUP_BURST):
        cfg.one(random.getrandbits(63), 3, retry=True)

    # Of those three, the leader and one follower take commands that never commit.
    leader2 = cfg.check_one_leader()
    other = (leader1 + 2) % servers
    if leader2 == other:
        other = (leader2 + 1) % servers
    cfg.disconnect(other)
    for _ in range(BACKUP_BURST):
        cfg.start(leader2, random.getrandbits(63))
    time.sleep(ELECTION_TIMEOUT / 2)

    # The first pair and `other` make a majority: the leader must walk back over long
    # stretches of wrong entries to repair the first pair's logs.
    for i in range(servers):
        cfg.disconnect(i)
    cfg.connect((leader1 + 0) % servers)
    cfg.connect((leader1 + 1) % servers)
    cfg.connect(other)
    for _ in range(BACKUP_BURST):
        cfg.one(random.getrandbits(63), 3, retry=True)

    # Everyone together.
    for i in range(servers):
        cfg.connect(i)
    cfg.one(random.getrandbits(63), servers, retry=True)
    cfg.end()


def test_fast_backup_2b(make_config):
    """A leader finds where a follower's log agrees with its own in a few AppendEntries, not
    one per conflicting entry: the follower names the term of its conflicting entry and where
    that term begins, and the leader skips the whole term (section 5.3; the lab text requires
    this optimisation).

    F holds 50 entries of an old term that never committed; the others commit 60 of a newer
    term from the same index on. A new leader is then elected with F back: F's log is too short
    for its first AppendEntries, and F's entries conflict from there down. Skipping the old term
    takes three AppendEntries (a few more with heartbeats and the new entry); backing up one
    entry at a time takes about 50."""
    servers = 5
    cfg = make_config(servers)
    cfg.begin("Test (2B): leader skips a follower's conflicting term at once")

    cfg.one(random.getrandbits(63), servers, retry=True)
    leader1 = cfg.check_one_leader()
    f = (leader1 + 1) % servers
    rest = [(leader1 + k) % servers for k in (2, 3, 4)]
    for i in rest:
        cfg.disconnect(i)
    for _ in range(FAST_BACKUP_OLD):
        cfg.start(leader1, random.getrandbits(63))
    time.sleep(ELECTION_TIMEOUT / 2)          # F takes them; they never commit

    cfg.disconnect(leader1)
    cfg.disconnect(f)
    for i in rest:
        cfg.connect(i)
    cfg.one(random.getrandbits(63), len(rest), retry=True)
    leader2 = cfg.check_one_leader()
    for _ in range(FAST_BACKUP_NEW):
        cfg.start(leader2, random.getrandbits(63))
    cfg.one(random.getrandbits(63), len(rest), retry=True)

    # The leader of the three leaves and F returns: the next leader knows nothing of F's log.
    captured = [cfg.capture(i, f) for i in rest]
    cfg.disconnect(leader2)
    cfg.connect(f)
    cfg.one(random.getrandbits(63), len(rest), retry=True)
    for i in rest:
        cfg.stop_capture(i, f)
    appends = sum(len(requests) for requests in captured)
    if appends > FAST_BACKUP_MAX_APPENDS:
        cfg.fail(f"the leader sent server {f} {appends} AppendEntries before it held the new "
                 f"entry, to get past {FAST_BACKUP_OLD} conflicting entries of one term (at most "
                 f"{FAST_BACKUP_MAX_APPENDS} allowed): back next_index up over a whole "
                 f"conflicting term at once, not one entry per round trip")

    for i in range(servers):
        cfg.connect(i)
    cfg.one(random.getrandbits(63), servers, retry=True)
    cfg.end()


def test_count_2b(make_config):
    """The cluster must not send many more RPCs than agreement needs (about 10 per second
    per pair of peers when idle)."""
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2B): RPC counts aren't too high")

    def rpcs() -> int:
        return sum(cfg.rpc_count(j) for j in range(servers))

    cfg.check_one_leader()
    total1 = rpcs()
    if not 1 <= total1 <= COUNT_ELECTION_MAX_RPCS:
        cfg.fail(f"too many or few RPCs ({total1}) to elect initial leader")

    def attempt() -> int | None:
        """One try: the RPC total at its end, or None if the term moved on."""
        leader = cfg.check_one_leader()
        total1 = rpcs()
        first = cfg.start(leader, 1)
        if first is None:
            return None  # the leader moved on at once
        start_index, term = first

        cmds = []
        for k in range(1, COUNT_AGREEMENTS + 2):
            x = random.getrandbits(31)
            cmds.append(x)
            started = cfg.start(leader, x)
            if started is None or started[1] != term:
                return None  # no longer leader: the term changed
            if started[0] != start_index + k:
                cfg.fail(f"Start() failed: command {k} went to index {started[0]}, "
                         f"expected {start_index + k}")

        for k in range(1, COUNT_AGREEMENTS + 1):
            value = cfg.wait(start_index + k, servers, term)
            if value is None:
                return None  # the term changed: try again
            if value != cmds[k - 1]:
                cfg.fail(f"wrong value {value} committed for index {start_index + k}; "
                         f"expected {cmds[k - 1]} (commands {cmds})")

        terms = [cfg.state(j).term for j in range(servers)]
        total2 = rpcs()
        if any(t != term for t in terms):
            return None  # a new term: low RPC counts cannot be expected
        limit = (COUNT_AGREEMENTS + 1 + COUNT_SPARE_ROUNDS) * servers
        if total2 - total1 > limit:
            cfg.fail(f"too many RPCs ({total2 - total1}) for {COUNT_AGREEMENTS} entries "
                     f"(at most {limit})")
        return total2

    for attempt_number in range(RETRY_TRIES):
        if attempt_number > 0:
            time.sleep(RETRY_PAUSE)  # let the cluster settle
        total2 = attempt()
        if total2 is not None:
            break
    else:
        cfg.fail("term changed too often")

    time.sleep(ELECTION_TIMEOUT)
    total3 = rpcs()
    idle_limit = servers * COUNT_IDLE_RPCS_PER_SECOND
    if total3 - total2 > idle_limit:
        cfg.fail(f"too many RPCs ({total3 - total2}) for 1 second of idleness "
                 f"(at most {idle_limit})")
    cfg.end()


KILLED_PEER_GRACE = 1.5          # seconds a buggy cluster needs to show a killed peer's answer


def test_killed_peers_stay_silent_2b(make_config):
    """A killed peer is a crashed machine even while the network still reaches it: it must not
    acknowledge entries (or its leader could count a replica that is gone) nor grant votes."""
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2B): killed peers acknowledge nothing and grant no votes")

    cfg.one(101, servers, retry=False)
    leader = cfg.check_one_leader()
    followers = [(leader + 1) % servers, (leader + 2) % servers]
    cfg.kill_in_place(*followers)
    # A leader may step down once it hears from no majority; if it already did, there is no
    # Start() to check in this run (the vote check below still runs).
    started = cfg.start(leader, 102)
    time.sleep(KILLED_PEER_GRACE)
    if started is not None:
        count, _ = cfg.n_committed(started[0])
        if count > 0:
            cfg.fail(f"index {started[0]} committed although both followers of leader {leader} "
                     "were killed: a killed peer answered AppendEntries")

    # Bring the followers back, then kill the leader and one of them: the last one standing
    # can only win an election with votes from killed peers.
    for follower in followers:
        cfg.start1(follower)
        cfg.connect(follower)
    cfg.one(103, servers, retry=True)
    leader = cfg.check_one_leader()
    survivor = (leader + 1) % servers
    cfg.kill_in_place(leader, (leader + 2) % servers)
    time.sleep(KILLED_PEER_GRACE)
    if cfg.state(survivor).is_leader:
        cfg.fail(f"server {survivor} became leader with both other peers killed: "
                 "a killed peer granted a vote")
    cfg.end()


def test_one_server_2b(make_config):
    """A cluster of one: its only server is a majority, so it elects itself and commits alone."""
    cfg = make_config(1)
    cfg.begin("Test (2B): a one-server cluster elects itself and commits")

    cfg.check_one_leader()
    for value in range(201, 201 + BASIC_AGREE_COMMANDS):
        cfg.one(value, 1, retry=False)
    cfg.end()
