"""cluster.transport: labrpc's client API and error kinds over real gRPC, deadlines, and the
fault interceptor with labrpc's numbers. Servers listen on 127.0.0.1 only."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from cluster.clusterpb import (
    AdminClient,
    AdminService,
    ControlClient,
    ControlRequest,
    StatusReply,
    StatusRequest,
)
from cluster.control import free_ports
from cluster.transport import FaultInterceptor, FaultRules, GrpcEnd, GrpcServer, connect
from labrpc import Disconnected, RemoteError, Stopped, Timeout, Unimplemented
from labrpc.network import DEAD_END_DELAY_MS, DROP_REPLY_PROBABILITY, DROP_REQUEST_PROBABILITY


class Admin:
    """A handler whose behaviour each test sets."""

    def __init__(self) -> None:
        self.calls = 0
        self.behaviour = "ok"
        self.release = threading.Event()

    def status(self, _: StatusRequest) -> StatusReply:
        self.calls += 1
        if self.behaviour == "stopped":
            raise Stopped("peer was killed")
        if self.behaviour == "bug":
            raise ZeroDivisionError("division by zero")
        if self.behaviour == "wrong type":
            return StatusRequest()
        if self.behaviour == "slow":
            self.release.wait(10)
        return StatusReply(id=7, term=self.calls)


@pytest.fixture
def served():
    admin = Admin()
    server = GrpcServer("127.0.0.1:0")
    server.add_service(AdminService, admin)
    port = server.start()
    ends: list[GrpcEnd] = []

    def end(deadline: float = 2.0, interceptor=None) -> GrpcEnd:
        e = GrpcEnd("test", connect(f"127.0.0.1:{port}", interceptor), deadline=deadline)
        ends.append(e)
        return e

    yield admin, end, port
    admin.release.set()
    for e in ends:
        e.close()
    server.stop(0)


def test_blocking_call_and_future_return_the_reply(served):
    admin, end, _ = served
    client = AdminClient(end())
    assert client.status(StatusRequest()).term == 1
    future = client.status.future(StatusRequest())
    assert isinstance(future, Future)
    assert future.result(5).term == 2
    assert admin.calls == 2


@pytest.mark.parametrize("behaviour, kind, text", [
    ("stopped", Stopped, "peer was killed"),
    ("bug", RemoteError, "ZeroDivisionError: division by zero"),
    ("wrong type", RemoteError, "returned StatusRequest, not StatusReply"),
])
def test_a_handler_failure_reaches_the_caller_as_labrpc_does(served, behaviour, kind, text):
    admin, end, _ = served
    admin.behaviour = behaviour
    client = AdminClient(end())
    with pytest.raises(kind, match=text):
        client.status(StatusRequest())
    with pytest.raises(kind, match=text):
        client.status.future(StatusRequest()).result(5)


def test_an_unknown_service_is_unimplemented(served):
    _, end, _ = served
    with pytest.raises(Unimplemented):
        ControlClient(end()).do(ControlRequest(command="kill"))
    with pytest.raises(Unimplemented):
        ControlClient(end()).do.future(ControlRequest()).result(5)


def test_a_service_object_without_the_method_is_unimplemented():
    server = GrpcServer("127.0.0.1:0")
    server.add_service(AdminService, object())
    port = server.start()
    end = GrpcEnd("test", connect(f"127.0.0.1:{port}"))
    try:
        with pytest.raises(Unimplemented, match="no method status"):
            AdminClient(end).status(StatusRequest())
    finally:
        end.close()
        server.stop(0)


def test_no_server_is_disconnected_quickly():
    port = free_ports(1)[0]
    end = GrpcEnd("test", connect(f"127.0.0.1:{port}"), deadline=5.0)
    try:
        start = time.monotonic()
        with pytest.raises(Disconnected):
            AdminClient(end).status(StatusRequest())
        with pytest.raises(Disconnected):
            AdminClient(end).status.future(StatusRequest()).result(10)
        # Refused at once, not after the deadline: a dead peer costs a caller nothing.
        assert time.monotonic() - start < 4.0
    finally:
        end.close()


def test_a_slow_handler_times_out_at_the_deadline(served):
    admin, end, _ = served
    admin.behaviour = "slow"
    client = AdminClient(end(deadline=0.3))
    start = time.monotonic()
    with pytest.raises(Timeout):
        client.status(StatusRequest())
    assert 0.25 <= time.monotonic() - start < 3.0
    start = time.monotonic()
    future = client.status.future(StatusRequest())
    assert time.monotonic() - start < 0.25, ".future() must not wait for the reply"
    with pytest.raises(Timeout):
        future.result(5)


def test_closing_the_end_stops_calls_in_flight_and_later(served):
    admin, end, _ = served
    admin.behaviour = "slow"
    e = end(deadline=10.0)
    future = AdminClient(e).status.future(StatusRequest())
    time.sleep(0.2)
    e.close()
    with pytest.raises(Stopped):
        future.result(5)
    with pytest.raises(Stopped):
        AdminClient(e).status(StatusRequest())


def test_a_bad_deadline_is_refused():
    with pytest.raises(ValueError, match="deadline must be positive"):
        GrpcEnd("x", connect("127.0.0.1:1"), deadline=0)


def test_a_port_in_use_fails_the_start_loudly():
    first = GrpcServer("127.0.0.1:0")
    port = first.start()
    second = GrpcServer(f"127.0.0.1:{port}")
    try:
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            second.start()
    finally:
        first.stop(0)
        second.stop(0)


# --- the fault interceptor -----------------------------------------------------------------------

@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(8)
    yield pool
    pool.shutdown(wait=True)


def test_a_partition_cuts_calls_between_groups_only(served, executor):
    admin, end, _ = served
    rules = FaultRules()
    rules.set([[0, 1], [2]], unreliable=False)
    to_other_side = AdminClient(end(interceptor=FaultInterceptor(rules, 0, 2, executor)))
    to_same_side = AdminClient(end(interceptor=FaultInterceptor(rules, 0, 1, executor)))
    start = time.monotonic()
    with pytest.raises(Disconnected, match="partition"):
        to_other_side.status(StatusRequest())
    with pytest.raises(Disconnected, match="partition"):
        to_other_side.status.future(StatusRequest()).result(5)
    assert time.monotonic() - start < 2 * DEAD_END_DELAY_MS / 1000 + 1.0
    assert admin.calls == 0, "a cut-off call must never reach the handler"
    assert to_same_side.status(StatusRequest()).id == 7
    rules.set(None, unreliable=False)
    assert to_other_side.status(StatusRequest()).id == 7


def test_unreliable_loses_requests_and_replies_at_labrpcs_rates(served, executor):
    admin, end, _ = served
    rules = FaultRules()
    rules.set(None, unreliable=True)
    # A seeded generator: the same drops every run, so the bounds below never flake.
    client = AdminClient(end(interceptor=FaultInterceptor(rules, 0, 1, executor, random.Random(5))))
    calls, requests_lost, replies_lost = 400, 0, 0
    for _ in range(calls):
        try:
            client.status(StatusRequest())
        except Timeout as exc:
            if "request lost" in str(exc):
                requests_lost += 1
            else:
                assert "reply lost" in str(exc)
                replies_lost += 1
    # A lost request never ran the handler; a lost reply did.
    assert admin.calls == calls - requests_lost
    assert abs(requests_lost / calls - DROP_REQUEST_PROBABILITY) < 0.05
    assert abs(replies_lost / admin.calls - DROP_REPLY_PROBABILITY) < 0.05
    rules.set(None, unreliable=False)
    before = admin.calls
    for _ in range(50):
        client.status(StatusRequest())
    assert admin.calls == before + 50
