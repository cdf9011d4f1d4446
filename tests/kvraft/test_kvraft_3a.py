"""Lab 3A: the KV service without snapshots. Clerks' operations take effect exactly once, in
an order consistent with real time, while the network loses and delays messages, servers
restart and partitions come and go; a minority makes no progress, and catches up after a heal."""

from __future__ import annotations

import threading
import time

from kv_harness import ELECTION_TIMEOUT
from kv_scenarios import (
    LINEARIZABLE_CLIENTS,
    append_value,
    check,
    check_concurrent_appends,
    generic_test,
    spawn_clients,
    speed_test,
)

PART = "3A"
ONE_CLIENT = 1
MANY_CLIENTS = 5

ONE_KEY_SERVERS = 3
ONE_KEY_CLIENTS = 5
ONE_KEY_APPENDS = 10            # appends per clerk

ONE_PARTITION_SERVERS = 5
MINORITY_WAIT = 1.0             # a minority's Put and Get must not complete within this
HEAL_SETTLE = ELECTION_TIMEOUT  # after the heal, time for the servers to agree on a new term,
HEAL_COMPLETION_TIMEOUT = 3.0   # ... then both must complete within this (MIT requires only the
                                # Put)


def test_basic_3a(make_config):
    generic_test(make_config, PART, ONE_CLIENT, unreliable=False, crash=False, partitions=False,
                 maxraftstate=None)


def test_speed_3a(make_config):
    speed_test(make_config, PART, maxraftstate=None)


def test_concurrent_3a(make_config):
    generic_test(make_config, PART, MANY_CLIENTS, unreliable=False, crash=False,
                 partitions=False, maxraftstate=None)


def test_unreliable_3a(make_config):
    generic_test(make_config, PART, MANY_CLIENTS, unreliable=True, crash=False,
                 partitions=False, maxraftstate=None)


def test_unreliable_one_key_3a(make_config):
    """Five clerks append to one key over a lossy network: each append lands exactly once."""
    cfg = make_config(ONE_KEY_SERVERS, unreliable=True)
    ck = cfg.make_client(cfg.all())
    cfg.begin(f"Test: concurrent append to same key, unreliable ({PART})")

    ck.put("k", "")

    def appender(client, myck):
        for n in range(ONE_KEY_APPENDS):
            myck.append("k", append_value(client, n))

    for clerk in spawn_clients(cfg, ONE_KEY_CLIENTS, appender):
        clerk.join()

    check_concurrent_appends(cfg, ck.get("k"), [ONE_KEY_APPENDS] * ONE_KEY_CLIENTS)
    cfg.end()


def test_one_partition_3a(make_config):
    """The majority side keeps serving; the side with the old leader does not, and its
    clerks' requests complete once the partition heals."""
    servers = ONE_PARTITION_SERVERS
    cfg = make_config(servers)
    ck = cfg.make_client(cfg.all())

    ck.put("1", "13")

    cfg.begin(f"Test: progress in majority ({PART})")

    p1, p2 = cfg.make_partition()  # the current leader ends up in p2, the minority
    cfg.partition(p1, p2)

    ckp1 = cfg.make_client(p1)   # a clerk of the majority
    ckp2a = cfg.make_client(p2)  # two clerks of the minority
    ckp2b = cfg.make_client(p2)

    ckp1.put("1", "14")
    check(cfg, ckp1, "1", "14")

    cfg.end()

    cfg.begin(f"Test: no progress in minority ({PART})")

    put_done, get_done = threading.Event(), threading.Event()

    def minority_put():
        ckp2a.put("1", "15")
        put_done.set()

    def minority_get():
        ckp2b.get("1")  # another clerk of the minority
        get_done.set()

    put = cfg.spawn(minority_put, name="tester-minority-put")
    get = cfg.spawn(minority_get, name="tester-minority-get")

    cfg.sleep(MINORITY_WAIT)
    if put_done.is_set():
        cfg.fail("Put in minority completed")
    if get_done.is_set():
        cfg.fail("Get in minority completed")

    check(cfg, ckp1, "1", "14")
    ckp1.put("1", "16")
    check(cfg, ckp1, "1", "16")

    cfg.end()

    cfg.begin(f"Test: completion after heal ({PART})")

    cfg.connect_all()
    cfg.connect_client(ckp2a, cfg.all())
    cfg.connect_client(ckp2b, cfg.all())

    cfg.sleep(HEAL_SETTLE)

    deadline = time.monotonic() + HEAL_COMPLETION_TIMEOUT
    heal_budget = HEAL_SETTLE + HEAL_COMPLETION_TIMEOUT
    if not put_done.wait(max(0.0, deadline - time.monotonic())):
        cfg.fail(f"Put in minority did not complete within {heal_budget:.0f} s of the heal")
    if not get_done.wait(max(0.0, deadline - time.monotonic())):
        cfg.fail(f"Get in minority did not complete within {heal_budget:.0f} s of the heal")
    put.join()
    get.join()

    check(cfg, ck, "1", "15")

    cfg.end()


REPLACED_MAJORITY_APPENDS = 6  # entries the majority commits while the old leader is cut off
REPLACED_MINORITY_CLERKS = 3   # clerks whose appends the old leader may start at those indexes
REPLACED_PENDING_WAIT = 0.3    # heal while their first attempt is still waiting (well under 1 s)
REPLACED_ONE_WAY_HEAL = 0.5    # the majority reaches the minority this long before the reverse


def test_minority_requests_overwritten_3a(make_config):
    """Clerks of the minority send appends to the old leader shortly before the heal. A Raft
    without check quorum still leads there and starts them at indexes that the majority has
    meanwhile filled with other appends; after the heal the old leader applies those other
    entries at the indexes its clerks wait on. A server must answer "success" only for a command
    it applied as its own: each minority append must end up in the value exactly once."""
    cfg = make_config(ONE_PARTITION_SERVERS)
    ck = cfg.make_client(cfg.all())
    ck.put("k", "")
    cfg.begin(f"Test: minority requests overwritten by a new leader ({PART})")

    majority, minority = cfg.make_partition()  # the current leader ends up in the minority
    cfg.partition(majority, minority)
    majority_client = REPLACED_MINORITY_CLERKS  # clients 0.. are the minority's clerks
    ckp1 = cfg.make_client(majority)
    for n in range(REPLACED_MAJORITY_APPENDS):
        ckp1.append("k", append_value(majority_client, n))

    minority_clerks = [cfg.make_client(minority) for _ in range(REPLACED_MINORITY_CLERKS)]
    done = [threading.Event() for _ in minority_clerks]

    def minority_append(client: int) -> None:
        minority_clerks[client].append("k", append_value(client, 0))
        done[client].set()

    appenders = [cfg.spawn(minority_append, client, name=f"tester-minority-append-{client}")
                 for client in range(REPLACED_MINORITY_CLERKS)]
    cfg.sleep(REPLACED_PENDING_WAIT)
    if any(event.is_set() for event in done):
        cfg.fail("an Append in the minority completed")

    # Heal in two steps. First only the majority reaches the minority: the old leader learns
    # of the new term from the new leader's AppendEntries, which also bring the entries that
    # replace its own, rather than from the replies to its own heartbeats, which carry no entries.
    cfg.connect_one_way(majority, minority)
    cfg.sleep(REPLACED_ONE_WAY_HEAL)
    cfg.connect_all()
    for clerk in minority_clerks:
        cfg.connect_client(clerk, cfg.all())
    budget = REPLACED_ONE_WAY_HEAL + HEAL_SETTLE + HEAL_COMPLETION_TIMEOUT
    deadline = time.monotonic() + budget
    for client, event in enumerate(done):
        if not event.wait(max(0.0, deadline - time.monotonic())):
            cfg.fail(f"minority client {client}'s Append did not complete within {budget:.0f} s "
                     "of the heal")
    for appender in appenders:
        appender.join()

    counts = [1] * REPLACED_MINORITY_CLERKS + [REPLACED_MAJORITY_APPENDS]
    check_concurrent_appends(cfg, ck.get("k"), counts)
    cfg.end()


def test_many_partitions_one_client_3a(make_config):
    generic_test(make_config, PART, ONE_CLIENT, unreliable=False, crash=False, partitions=True,
                 maxraftstate=None)


def test_many_partitions_many_clients_3a(make_config):
    generic_test(make_config, PART, MANY_CLIENTS, unreliable=False, crash=False,
                 partitions=True, maxraftstate=None)


def test_persist_one_client_3a(make_config):
    generic_test(make_config, PART, ONE_CLIENT, unreliable=False, crash=True, partitions=False,
                 maxraftstate=None)


def test_persist_concurrent_3a(make_config):
    generic_test(make_config, PART, MANY_CLIENTS, unreliable=False, crash=True,
                 partitions=False, maxraftstate=None)


def test_persist_concurrent_unreliable_3a(make_config):
    generic_test(make_config, PART, MANY_CLIENTS, unreliable=True, crash=True,
                 partitions=False, maxraftstate=None)


def test_persist_partition_3a(make_config):
    generic_test(make_config, PART, MANY_CLIENTS, unreliable=False, crash=True,
                 partitions=True, maxraftstate=None)


def test_persist_partition_unreliable_3a(make_config):
    generic_test(make_config, PART, MANY_CLIENTS, unreliable=True, crash=True,
                 partitions=True, maxraftstate=None)


def test_persist_partition_unreliable_linearizable_3a(make_config):
    generic_test(make_config, PART, LINEARIZABLE_CLIENTS, unreliable=True, crash=True,
                 partitions=True, maxraftstate=None, random_keys=True)


ONE_SERVER_OPS = 300
ONE_SERVER_ELECTION_LIMIT = 5.0  # seconds for a lone server to elect itself


def test_one_server_3a(make_config):
    """A one-server service on a reliable network answers every request at the first attempt:
    its server is the leader, and an entry that commits the moment it is started is still
    answered as the request's own (not as "wrong leader")."""
    cfg = make_config(1)
    ck = cfg.make_client(cfg.all())
    cfg.begin(f"Test: one server answers every request at once ({PART})")

    deadline = time.monotonic() + ONE_SERVER_ELECTION_LIMIT
    while cfg.leader() is None:
        if time.monotonic() > deadline:
            cfg.fail(f"a one-server service elected no leader in {ONE_SERVER_ELECTION_LIMIT:.0f} s")
        time.sleep(0.05)
    rpcs_before = cfg.rpc_total()
    expected = ""
    for n in range(ONE_SERVER_OPS):
        value = append_value(0, n)
        ck.append("k", value)
        expected += value
    check(cfg, ck, "k", expected)
    rpcs = cfg.rpc_total() - rpcs_before
    if rpcs != ONE_SERVER_OPS + 1:
        cfg.fail(f"{ONE_SERVER_OPS + 1} requests to the only server took {rpcs} RPCs: some were "
                 "refused or lost on a reliable network with a single, stable leader")
    cfg.end()
