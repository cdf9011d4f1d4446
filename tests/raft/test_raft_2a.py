"""Lab 2A: leader election. One leader, kept while nothing fails, replaced when it does."""

from __future__ import annotations

import random
import time
import warnings

import labrpc
from raft_harness import ELECTION_TIMEOUT

TERM_CHECK_DELAY = 0.050        # let the followers hear of the new leader's term
TERMS_MOVING = 3                # test_initial_election: this many new terms with no failure fail
MANY_ELECTIONS_SERVERS = 7
MANY_ELECTIONS_ROUNDS = 10      # talent-plan's 10 (MIT runs 9)
MANY_ELECTIONS_CUT = 3          # servers cut per round, drawn independently (1-3 distinct)
STALE_VOTE_NEXT_ELECTION = 5.0  # a candidate with no majority must try again within this
STALE_VOTE_WATCH = 0.5          # how long the tester watches for a leader elected by an old vote
STALE_VOTE_POLL = 0.010
VOTE_TIMER_CANDIDATE = 5.0      # time for S to send a real RequestVote the tester can copy
VOTE_TIMER_PERIOD = 0.040       # the tester asks R for a vote this often ...
VOTE_TIMER_RUN = 1.5            # ... for this long
VOTE_TIMER_SETTLE = 0.100       # R's elections begun this soon after the first request are forgiven
VOTE_TIMER_SOON = 0.100         # an election begun sooner than this after a grant ignored it


def test_initial_election_2a(make_config):
    cfg = make_config(3)
    cfg.begin("Test (2A): initial election")

    leader = cfg.check_one_leader()

    # Give the followers a moment to hear the winner's term; then all must share it.
    time.sleep(TERM_CHECK_DELAY)
    term1 = cfg.check_terms()
    if term1 < 1:
        cfg.fail(f"term is {term1}, but should be at least 1")

    # With no failures, a working leader keeps its followers quiet: the term stays put. One
    # election is forgiven (a heartbeat late on a busy machine); terms that keep moving, or a
    # follower that keeps asking for (pre-)votes under a healthy leader, are not.
    quiet_from = time.monotonic()
    time.sleep(2 * ELECTION_TIMEOUT)
    term2 = cfg.check_terms()
    if term2 - term1 >= TERMS_MOVING:
        cfg.fail(f"the term moved from {term1} to {term2} in {2 * ELECTION_TIMEOUT:.0f} s on a "
                 f"healthy, reliable network: followers keep starting elections")
    if term1 != term2:
        warnings.warn(f"term changed from {term1} to {term2} even though there were no failures",
                      stacklevel=1)
    else:  # the same term: `leader` led it throughout
        cfg.check_quiet_followers(leader, quiet_from, time.monotonic())

    cfg.check_one_leader()
    cfg.end()


def test_reelection_2a(make_config):
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2A): election after network failure")

    leader1 = cfg.check_one_leader()

    # The two servers left behind elect a replacement.
    cfg.disconnect(leader1)
    cfg.check_one_leader()

    # The old leader comes back in an old term: it must step down, not unseat anyone.
    cfg.connect(leader1)
    leader2 = cfg.check_one_leader()

    # One server alone is no majority: it may campaign, but must never win.
    # Alone, each server campaigns again and again, one random election timeout apart.
    cfg.disconnect(leader2)
    cfg.disconnect((leader2 + 1) % servers)
    alone_from = time.monotonic()
    time.sleep(2 * ELECTION_TIMEOUT)

    cfg.check_no_leader()
    cfg.check_election_timeouts_vary(list(range(servers)), alone_from, time.monotonic())

    # Two of three make a majority again.
    cfg.connect((leader2 + 1) % servers)
    cfg.check_one_leader()

    # The third server returning must not leave the cluster leaderless.
    cfg.connect(leader2)
    cfg.check_one_leader()
    cfg.end()


def test_many_election_2a(make_config):
    servers = MANY_ELECTIONS_SERVERS
    cfg = make_config(servers)
    cfg.begin("Test (2A): multiple elections")

    cfg.check_one_leader()
    for _ in range(MANY_ELECTIONS_ROUNDS):
        # Cut up to three servers; at least four of seven remain, still a majority.
        cut = [random.randrange(servers) for _ in range(MANY_ELECTIONS_CUT)]
        for i in cut:
            cfg.disconnect(i)

        # The leader survived the cut, or the majority side elects a new one.
        cfg.check_one_leader()

        for i in cut:
            cfg.connect(i)

    cfg.check_one_leader()
    cfg.end()


def _is_vote(args) -> bool:
    """A RequestVote that asks for a real vote (not a pre-vote, if the peer has pre-votes)."""
    return not getattr(args, "pre_vote", False)


def test_stale_vote_reply_2a(make_config):
    """A candidate counts only the votes of the election it is running: a reply granted in an
    earlier term says nothing about the current one.

    With the leader cut off, A campaigns; B's vote for A's first election is held back by the
    network, and A's RequestVotes of every later term are lost (as are B's, so that A is the one
    campaigning). Once A runs a later election, B's old reply arrives. Nobody received a
    RequestVote of A's new term, so A must not lead it."""
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2A): vote reply from an earlier election")

    leader = cfg.check_one_leader()
    a, b = (leader + 1) % servers, (leader + 2) % servers
    held = cfg.hold_replies(a, b, "RequestVote", when=_is_vote)

    def later_than_held(term) -> bool:
        return bool(held.held) and term is not None and term > held.held[0].term

    def in_later_election(args) -> bool:
        return _is_vote(args) and later_than_held(getattr(args, "term", None))

    cfg.lose_requests(a, "RequestVote", when=in_later_election)
    cfg.lose_vote_requests([b])
    cfg.disconnect(leader)

    # Wait for A's first election (its reply from B held) and then a later one.
    deadline = time.monotonic() + STALE_VOTE_NEXT_ELECTION
    while not any(who == a and not pre_vote and later_than_held(term)
                  for _, who, (term, pre_vote) in list(cfg.watch.sends)):
        if time.monotonic() > deadline:
            first = f"term {held.held[0].term}" if held.held else "an election"
            cfg.fail(f"server {a} asked for votes in {first} and heard no majority, but started "
                     f"no later election within {STALE_VOTE_NEXT_ELECTION:.0f} s")
        time.sleep(STALE_VOTE_POLL)

    old_term = held.held[0].term
    held.release()
    watch_until = time.monotonic() + STALE_VOTE_WATCH
    while time.monotonic() < watch_until:
        state = cfg.state(a)
        if state.is_leader and state.term > old_term:
            cfg.fail(f"server {a} became leader of term {state.term}, though the network lost "
                     f"every RequestVote it sent in that term: it counted the vote server {b} "
                     f"granted in term {old_term}")
        time.sleep(STALE_VOTE_POLL)

    cfg.lose_requests(a, "RequestVote", None)
    cfg.lose_vote_requests([b], lost=False)
    cfg.connect(leader)
    cfg.check_one_leader()
    cfg.end()


def test_vote_restarts_timer_2a(make_config):
    """Granting a vote restarts the election timer (Figure 2, followers: convert to candidate
    only if the timeout elapses "without receiving AppendEntries from the current leader or
    granting vote to candidate"); otherwise a voter starts a rival election right after voting.

    R is cut off from everyone, and the tester asks it for its vote every 40 ms, each time in a
    new term, with a copy of a RequestVote that S sent earlier (S's log is R's, so R grants
    each one). A voter that restarts its timer on each grant never campaigns; one that does not
    campaigns when its timer, started long before, runs out."""
    servers = 3
    cfg = make_config(servers)
    cfg.begin("Test (2A): granting a vote restarts the election timer")

    # (No Start: this is 2A. S's and R's logs are the same, whatever the leader gave them.)
    leader = cfg.check_one_leader()
    s, r = (leader + 1) % servers, (leader + 2) % servers
    # S campaigns with the leader gone; nothing S sends R as leader may change R's log.
    captured = cfg.capture(s, r, "RequestVote")
    cfg.lose_vote_requests([r])
    cfg.lose_requests(s, "AppendEntries", when=lambda args: True)
    cfg.disconnect(leader)
    deadline = time.monotonic() + VOTE_TIMER_CANDIDATE
    while not any(_is_vote(args) for args in captured):
        if time.monotonic() > deadline:
            cfg.fail(f"with the leader cut off, server {s} sent no RequestVote within "
                     f"{VOTE_TIMER_CANDIDATE:.0f} s")
        time.sleep(STALE_VOTE_POLL)
    request = next(args for args in captured if _is_vote(args))
    cfg.stop_capture(s, r, "RequestVote")
    for i in range(servers):
        cfg.disconnect(i)
    cfg.lose_vote_requests([r], lost=False)
    cfg.lose_requests(s, "AppendEntries", None)

    asked: list[float] = []
    stop = time.monotonic() + VOTE_TIMER_RUN
    while time.monotonic() < stop:
        args = type(request)()
        args.CopyFrom(request)
        args.term = cfg.state(r).term + 1
        asked.append(time.monotonic())
        try:
            cfg.request_vote(r, args)
        except labrpc.RpcError:
            pass  # refused, as a peer may refuse any RPC
        time.sleep(VOTE_TIMER_PERIOD)

    # An election timeout is longer than the 100 ms between heartbeats, or followers of a
    # healthy leader would campaign: an election begun sooner after a grant ignored the grant.
    # (Later ones are forgiven: the tester's own thread may have been kept waiting.)
    for began in cfg.watch.rounds(r, asked[0] + VOTE_TIMER_SETTLE, asked[-1]):
        since = began - max(t for t in asked if t <= began)
        if since < VOTE_TIMER_SOON:
            cfg.fail(f"server {r} began an election {1000 * since:.0f} ms after it was asked for "
                     f"its vote in a new term by a candidate whose log is as up to date as its "
                     f"own: granting a vote restarts the election timer")

    for i in range(servers):
        cfg.connect(i)
    cfg.check_one_leader()
    cfg.end()
