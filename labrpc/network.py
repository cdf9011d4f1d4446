"""An emulated network that loses, delays and reorders RPCs, for testing Raft and KV.

It follows the Go labrpc of the MIT 6.824 labs. Every rule of the fault model is a named constant
below, with the reason it exists, and is applied at one place in `Network`, in the order a call
meets it:

1. Every call counts in `total_count()` and its request bytes in `total_bytes()`.
2. The call reads the network once, when it starts: the server its end reaches, and whether the
   network is reliable and reorders replies. It keeps these values to the end, even if they change
   while it is in flight (Go reads them once too).
3. An end that is disabled, connected to no server, or whose server was deleted fails the call
   after a random delay (`DEAD_END_DELAY_MS`, or `LONG_DEAD_END_DELAY_MS` with long delays); no
   handler runs.
4. Otherwise the server the end reached has accepted the request. On an unreliable network the
   request first waits `SHORT_DELAY_MS`, then is dropped with probability
   `DROP_REQUEST_PROBABILITY` (the handler never runs).
5. The handler runs on a worker thread, on the accepted server, even if meanwhile the end was
   disabled or the server deleted or replaced; `count(server)` counts it. Only its reply is lost:
   when its end or server dies, the caller fails at once (`Stopped`), whether the handler has
   started yet or not, and the handler's effects stay. (Why: a client must never see a positive
   reply to a write that a crashed server saved into a persister the tester has since replaced.)
   A handler may refuse a call by raising an `RpcError` (e.g. `Stopped` from a killed peer); the
   caller gets that very error.
6. On an unreliable network the reply is dropped with probability `DROP_REPLY_PROBABILITY`
   (the handler's effects stay).
7. With long reordering, a reply is held back with probability `REORDER_PROBABILITY` for
   `REORDER_BASE_MS + U[0, 1 + U[0, REORDER_SPREAD_MS))` ms.
8. A delivered reply adds its bytes to `total_bytes()`.

After `shutdown()` no handler starts and every unfinished call fails with `Stopped`.
Arguments and replies cross only as encoded bytes, so the two sides never share an object.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from google.protobuf.message import Message

import labcodec
from labrpc.errors import (
    Disconnected,
    RemoteError,
    RpcError,
    Stopped,
    Timeout,
    Unimplemented,
)
from labrpc.scheduling import TimerQueue, WorkerPool
from labrpc.service import Method, Service

log = logging.getLogger("labrpc")

__all__ = ["Network", "ClientEnd", "Server"]

# --- The fault model: the numbers of the Go labrpc, each with the reason it is there ---------
# Why: concurrent RPCs overtake one another, which exposes races between them.
SHORT_DELAY_MS = 27                  # unreliable: each request first waits U[0, 27) ms
# Why: networks lose messages; a lost request never reaches the handler.
DROP_REQUEST_PROBABILITY = 0.1       # unreliable: then 1 request in 10 is lost
# Why: a lost reply looks like a lost request, so a retried operation must be safe to repeat.
DROP_REPLY_PROBABILITY = 0.1         # unreliable: and 1 reply in 10 after the handler ran
# Why: KV clerks must be able to try the servers one after another in quick succession.
DEAD_END_DELAY_MS = 100              # a call on a dead end fails after U[0, 100) ms
# Why: a leader that sends RPCs synchronously (waits for each reply) stalls and fails the tests.
LONG_DEAD_END_DELAY_MS = 7000        # ... or after U[0, 7000) ms with long delays on
# Why: replies from old terms arrive late, which exposes a peer that trusts a stale reply.
REORDER_PROBABILITY = 600 / 900      # long reordering: 2 replies in 3 are held back
REORDER_BASE_MS = 200                # ... for 200 ms
REORDER_SPREAD_MS = 2000             # ... plus U[0, 1 + U[0, 2000)) ms, skewed to short waits

# `Network()` without a seed takes it from here when set (`labs test --seed` sets it per run), so
# a failed run can be repeated with the same drops, delays and reorderings.
SEED_ENV = "LABRPC_SEED"

_now = time.monotonic  # the clock of trace events (labs/timeline)

_server_ids = itertools.count(1)
_network_ids = itertools.count(1)

# A server's way to one rpc: the bound handler, the request decoder, the reply type, the rpc.
_Route = tuple[Callable[[Message], Message], Callable[[bytes], Message], type[Message], Method]


class Server:
    """A named machine hosting services; one object per registered service name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.id = next(_server_ids)  # tells a restarted server from the one it replaced
        self._services: dict[str, tuple[Service, Any]] = {}
        self._routes: dict[Method, _Route] = {}  # see `_route`

    def add_service(self, service: Service, implementation: Any) -> None:
        """Route calls of `service` to `implementation`'s snake_case methods."""
        if service.name in self._services:
            raise ValueError(
                f"service {service.name!r} is already registered on server {self.name!r}")
        self._services[service.name] = (service, implementation)
        self._routes.clear()

    def dispatch(self, full_name: str, request: bytes) -> bytes:
        """Decode `request`, run `Service.Method` and return the encoded reply.

        A handler that raises an `RpcError` refuses the call: that error reaches the caller as it
        is, with nothing logged. Any other exception is logged with its traceback and becomes a
        `RemoteError`.
        """
        service_name, _, method_name = full_name.partition(".")
        return self._invoke(self._method(service_name, method_name)[0], request)

    def _invoke(self, method: Method, request: bytes) -> bytes:
        """`dispatch` for a call whose `Method` the caller already holds (every labrpc call)."""
        route = self._routes.get(method)
        if route is None:
            route = self._route(method)
        handler, decode, reply_type, method = route
        try:
            args = decode(request)
        except Exception:
            args = labcodec.decode(request, method.request_type)  # raises labcodec's error
        try:
            reply = handler(args)
        except RpcError:
            raise  # the handler refuses the call (a killed peer raises Stopped): not a bug
        except Exception as exc:
            log.exception("handler %s.%s on server %r raised",
                          type(self._services[method.service][1]).__name__, method.attr,
                          self.name)
            raise RemoteError(f"{method.full_name} on server {self.name!r} raised "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(reply, reply_type):
            raise RemoteError(
                f"{type(self._services[method.service][1]).__name__}.{method.attr}() returned "
                f"{type(reply).__name__}, expected {reply_type.__name__}"
            )
        try:
            return reply.SerializeToString()
        except Exception:
            return labcodec.encode(reply)  # raises labcodec's error

    def _route(self, method: Method) -> _Route:
        """Find the handler of `method` on this server and remember it: every later call of the
        same rpc then costs one dictionary lookup (a call is made thousands of times a second)."""
        # The server's own description of the rpc decides how its request is read.
        own, implementation = self._method(method.service, method.name)
        handler = getattr(implementation, own.attr, None)
        if handler is None:
            raise Unimplemented(
                f"{type(implementation).__name__} has no method {own.attr}() "
                f"for rpc {own.full_name} on server {self.name!r}"
            )
        route = (handler, own.request_type.FromString, own.reply_type, own)
        self._routes[method] = route
        return route

    def _method(self, service_name: str, method_name: str) -> tuple[Method, Any]:
        """This server's `Method` for `service_name.method_name`, and the object serving it."""
        entry = self._services.get(service_name)
        if entry is None:
            raise Unimplemented(f"server {self.name!r} has no service {service_name!r} "
                                f"(call {service_name}.{method_name})")
        service, implementation = entry
        method = service.methods.get(method_name)
        if method is None:
            raise Unimplemented(f"service {service_name} has no rpc {method_name!r} "
                                f"(call {service_name}.{method_name})")
        return method, implementation

    def __repr__(self) -> str:
        return f"Server({self.name!r}, services={list(self._services)})"


class ClientEnd:
    """One client's end of a wire; `Network.connect` ties it to a server."""

    def __init__(self, network: Network, name: str) -> None:
        self.network = network
        self.name = name

    def call(self, method: Method, args: Message) -> Any:
        """Send `args` and block until the reply arrives or the call fails (`RpcError`)."""
        call = self.network._start_call(self, method, args, None)
        call._done.acquire()  # released once, by whichever thread finishes the call
        if call.error is not None:
            raise call.error
        try:
            return method.reply_type.FromString(call.reply)
        except Exception:
            return labcodec.decode(call.reply, method.reply_type)  # raises labcodec's error

    def call_future(self, method: Method, args: Message) -> Future[Any]:
        """Send `args` and return a Future of the reply at once."""
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        self.network._start_call(self, method, args, future)
        return future

    def __repr__(self) -> str:
        return f"ClientEnd({self.name!r})"


class _EndState:
    __slots__ = ("enabled", "server_name")

    def __init__(self) -> None:
        self.enabled = False  # ends start disabled, as in the originals
        self.server_name: str | None = None


# A call is ACTIVE from acceptance until its handler returns: only then can its server's death
# fail it (its handler runs all the same). Once a reply or failure is on its way it is SETTLED
# and waits only for delivery.
_ACTIVE, _SETTLED = 0, 1


class _Call:
    """One call in flight. Its `server`, and whether it is `reliable` and reordered
    (`long_reordering`), are read from the network when the call starts, under its lock."""

    __slots__ = ("end_name", "end", "method", "request", "server", "reliable", "long_reordering",
                 "phase", "reply", "error", "finished", "_done", "_future", "seq")
    # Set only when the call finishes (see `finished`), not in __init__: a call is made
    # thousands of times a second, and the common path reads them once.
    reply: bytes              # b"" when it failed
    error: RpcError | None
    _done: threading.Lock     # only for a blocking caller
    seq: int                  # its number, set only while a timeline records (labs/timeline)

    def __init__(self, end_name: str, end: _EndState, method: Method, request: bytes,
                 server: Server | None, reliable: bool, long_reordering: bool,
                 future: Future[Any] | None) -> None:
        self.end_name = end_name
        self.end = end
        self.method = method
        self.request = request
        self.server = server
        self.reliable = reliable
        self.long_reordering = long_reordering
        self.phase = _ACTIVE
        self.finished = False  # `reply` and `error` are set when it finishes
        self._future = future
        if future is None:  # a blocking caller waits on this lock, acquired until the call ends
            self._done = done = threading.Lock()
            done.acquire()

    @property
    def blocks_caller(self) -> bool:
        """True if a caller is blocked in `call` (no Future) waiting for this call to end."""
        return self._future is None

    def wake(self) -> None:
        """Hand the outcome to the caller: release a blocked caller, or complete the Future."""
        future = self._future
        if future is None:
            self._done.release()
        elif self.error is not None:
            future.set_exception(self.error)
        else:
            try:
                future.set_result(labcodec.decode(self.reply, self.method.reply_type))
            except labcodec.Error as exc:
                future.set_exception(exc)


class Network:
    """The emulated network: ends, servers, the fault model and the traffic counters."""

    def __init__(self, seed: int | None = None) -> None:
        if seed is None and os.environ.get(SEED_ENV):
            seed = int(os.environ[SEED_ENV])
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._reliable = True
        self._long_delays = False
        self._long_reordering = False
        self._ends: dict[str, _EndState] = {}
        # By name; an end connected to nothing looks up None, which names no server.
        self._servers: dict[str | None, Server] = {}
        self._server_counts: dict[str, int] = {}
        self._total_count = 0
        self._total_bytes = 0
        self._unfinished: set[_Call] = set()
        self._closed = False
        name = f"labrpc{next(_network_ids)}"
        self._timers = TimerQueue(name)
        self._workers = WorkerPool(name)
        # Where the calls' events go when a tester records a timeline (labs/timeline): a list,
        # appended to without a lock of its own (list.append is atomic), or None.
        self._trace: list[tuple[Any, ...]] | None = None

    # --- configuration ----------------------------------------------------------------------------

    def set_trace(self, events: list[tuple[Any, ...]] | None) -> None:
        """Append the network's events to `events` from now on (None: stop). Each is a tuple
        `(kind, time.monotonic(), ...)`; labs/timeline/recorder.py lists the kinds."""
        self._trace = events

    def _traced(self, *event: Any) -> None:
        trace = self._trace
        if trace is not None:
            trace.append((event[0], _now(), *event[1:]))

    def set_reliable(self, reliable: bool) -> None:
        """Calls started from now on are (un)reliable; calls in flight keep what they started
        with."""
        with self._lock:
            self._reliable = reliable
        self._traced("net", "reliable", reliable)

    def set_long_delays(self, long_delays: bool) -> None:
        """Dead ends fail after up to 7 s instead of 100 ms."""
        with self._lock:
            self._long_delays = long_delays
        self._traced("net", "long_delays", long_delays)

    def set_long_reordering(self, long_reordering: bool) -> None:
        """Hold back 2 replies in 3 by 200..2200 ms, for calls started from now on."""
        with self._lock:
            self._long_reordering = long_reordering
        self._traced("net", "long_reordering", long_reordering)

    def create_client(self, name: str) -> ClientEnd:
        """A new end, disabled and connected to nothing."""
        with self._lock:
            if name in self._ends:
                raise ValueError(f"client end {name!r} already exists")
            self._ends[name] = _EndState()
        return ClientEnd(self, name)

    def connect(self, end: ClientEnd | str, server_name: str) -> None:
        with self._lock:
            self._end_state(end).server_name = server_name

    def enable(self, end: ClientEnd | str, enabled: bool) -> None:
        with self._lock:
            self._end_state(end).enabled = enabled
            failed = [] if enabled else self._fail_dead_calls()
        self._traced("enable", end if isinstance(end, str) else end.name, enabled)
        _wake(failed)

    def add_server(self, server: Server) -> None:
        """Register (or replace) the server called `server.name`."""
        with self._lock:
            self._servers[server.name] = server
            self._server_counts.setdefault(server.name, 0)
            failed = self._fail_dead_calls()
        self._traced("server", server.name, True)
        _wake(failed)

    def delete_server(self, name: str) -> None:
        """Crash a server: calls in flight to it fail at once, and their replies are lost."""
        with self._lock:
            self._servers.pop(name, None)
            failed = self._fail_dead_calls()
        self._traced("server", name, False)
        _wake(failed)

    # --- counters ---------------------------------------------------------------------------------

    def count(self, server_name: str) -> int:
        """Calls handed to `server_name`'s handlers (a dropped request is not)."""
        with self._lock:
            return self._server_counts.get(server_name, 0)

    def total_count(self) -> int:
        """Every call made, delivered or not."""
        with self._lock:
            return self._total_count

    def total_bytes(self) -> int:
        """Request bytes of every call plus reply bytes of every delivered reply."""
        with self._lock:
            return self._total_bytes

    # --- shutdown ---------------------------------------------------------------------------------

    def shutdown(self, timeout: float = 2.0) -> list[threading.Thread]:
        """Fail every unfinished call and stop the network's threads; no handler starts after it.

        Returns the threads still busy after `timeout`: workers running a handler, or the
        thread handing the failures to Future callbacks, if a callback blocks (a handler or
        callback that never returns cannot be stopped from outside; the caller decides what
        that means). Shutdown itself never waits longer than that for either.
        """
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            calls = list(self._unfinished)
            for call in calls:
                self._finish(call, error=Stopped("the network was shut down"))
        # Blocked callers first: releasing them cannot block. A Future's callbacks run where it
        # completes, and one may wait for a lock that a blocked caller holds (a peer that calls
        # while holding its lock): they get a thread of their own, waited for up to `timeout`.
        _wake([call for call in calls if call.blocks_caller])
        waker = threading.Thread(target=_wake, name="labrpc-shutdown-callbacks", daemon=True,
                                 args=([call for call in calls if not call.blocks_caller],))
        waker.start()
        waker.join(timeout)
        self._timers.close(timeout)
        busy = self._workers.close(timeout)
        return busy + [waker] if waker.is_alive() else busy

    # --- the life of a call -----------------------------------------------------------------------

    def _end_state(self, end: ClientEnd | str) -> _EndState:
        name = end if isinstance(end, str) else end.name
        try:
            return self._ends[name]
        except KeyError:
            raise ValueError(f"no client end named {name!r}") from None

    def _is_dead(self, call: _Call) -> bool:
        """Whether the call's end no longer reaches the server that accepted it. Hold the lock."""
        end = call.end  # (an end connected to nothing has server_name None, which no server has)
        return not end.enabled or self._servers.get(end.server_name) is not call.server

    def _start_call(self, end: ClientEnd, method: Method, args: Message,
                    future: Future[Any] | None) -> _Call:
        if not isinstance(args, method.request_type):
            raise TypeError(f"{method.full_name} takes {method.request_type.__name__}, "
                            f"got {type(args).__name__}")
        # labcodec.encode, less the type check just made; a failure still raises its error.
        try:
            request = args.SerializeToString()
        except Exception:
            request = labcodec.encode(args)
        # (This path runs for every call: its lock is taken without `with`, which costs twice
        # as much, and the reliable case does nothing more than it must.)
        lock = self._lock
        lock.acquire()
        try:
            if self._closed:
                raise Stopped("the network was shut down")
            self._total_count += 1
            self._total_bytes += len(request)
            state = self._ends[end.name]
            server = self._servers.get(state.server_name) if state.enabled else None
            reliable = self._reliable
            call = _Call(end.name, state, method, request, server, reliable,
                         self._long_reordering, future)
            self._unfinished.add(call)
            trace = self._trace
            if trace is not None:
                call.seq = self._total_count
                trace.append(("call", _now(), call.seq, end.name, method.name,
                              None if server is None else server.name))
            if server is None:
                call.phase = _SETTLED
                limit = LONG_DEAD_END_DELAY_MS if self._long_delays else DEAD_END_DELAY_MS
                error = Disconnected(f"end {end.name!r} reaches no server")
                self._timers.schedule(self._random.randrange(limit) / 1000, self._finish_later,
                                      call, b"", error)
                return call
            # Accepted: from here on the call belongs to this server, whatever becomes of it.
            if not reliable:
                delay = self._random.randrange(SHORT_DELAY_MS) / 1000
                if self._random.random() < DROP_REQUEST_PROBABILITY:
                    call.phase = _SETTLED
                    if trace is not None:
                        trace.append(("drop", _now(), call.seq))
                    self._timers.schedule(delay, self._finish_later, call, b"",
                                          Timeout(f"{method.full_name}: request lost"))
                else:
                    self._timers.schedule(delay, self._dispatch_later, call)
                return call
            self._server_counts[server.name] += 1
        finally:
            lock.release()
        # Hand the job over last: a blocking caller goes straight on to wait for its reply.
        try:
            self._workers.submit(self._run_handler, call)
        except RuntimeError:  # the pool closed: shutdown has already failed the call
            pass
        return call

    def _dispatch_later(self, call: _Call) -> None:
        """After the short delay: hand the request to the server that accepted it, whether or not
        that server still lives (its reply is lost if it died, but its handler runs, as in Go)."""
        server = call.server
        assert server is not None  # only accepted calls are dispatched
        with self._lock:
            if self._closed:
                return
            self._server_counts[server.name] += 1
        try:
            self._workers.submit(self._run_handler, call)
        except RuntimeError:  # the pool closed: shutdown has already failed the call
            pass

    def _run_handler(self, call: _Call) -> Callable[[], None] | None:
        """Run a call's handler on a worker thread. For a blocking caller, return the wake-up
        instead of doing it: the worker does it last, just before it waits for its next job,
        so the woken caller never has to wait for the worker to let go of the interpreter."""
        if self._closed:  # read without the lock: a handler that starts now began before shutdown
            return None
        trace = self._trace
        if trace is not None:
            trace.append(("run", _now(), getattr(call, "seq", 0)))
        method, server = call.method, call.server
        assert server is not None  # only accepted calls reach a handler
        try:
            reply, error = server._invoke(method, call.request), None
        except RpcError as exc:
            reply, error = b"", exc
        except labcodec.Error as exc:
            reply, error = b"", RemoteError(f"{method.full_name}: {exc}")
        lock = self._lock
        lock.acquire()
        try:
            if call.finished:  # the caller was failed already (its server died, or shutdown)
                return None
            end = call.end
            if (call.reliable and not call.long_reordering and end.enabled
                    and self._servers.get(end.server_name) is call.server):
                # The common case, `_finish` written out: a reply on a reliable network.
                call.finished = True
                self._unfinished.discard(call)
                if error is None:
                    self._total_bytes += len(reply)
                call.reply, call.error = reply, error
                if trace is not None:
                    trace.append(("done", _now(), getattr(call, "seq", 0),
                                  "ok" if error is None else type(error).__name__))
            elif self._is_dead(call):
                # The server crashed or was cut off while handling: its answer never arrives, so
                # a client never sees a positive reply to a write that the crashed server saved
                # into a persister the tester has since replaced.
                self._finish(call, error=Stopped(f"server {server.name!r} died during "
                                                 f"{method.full_name}"))
            elif not call.reliable and self._random.random() < DROP_REPLY_PROBABILITY:
                self._finish(call, error=Timeout(f"{method.full_name}: reply lost"))
            elif call.long_reordering and self._random.random() < REORDER_PROBABILITY:
                spread = self._random.randrange(1 + self._random.randrange(REORDER_SPREAD_MS))
                call.phase = _SETTLED
                self._timers.schedule((REORDER_BASE_MS + spread) / 1000, self._finish_later,
                                      call, reply, error)
                return None
            else:
                self._finish(call, reply, error)
        finally:
            lock.release()
        if call._future is None:
            return call._done.release
        call.wake()
        return None

    def _finish_later(self, call: _Call, reply: bytes, error: RpcError | None) -> None:
        with self._lock:
            if call.finished:  # shutdown failed it meanwhile and completes its Future itself
                return
            self._finish(call, reply, error)
        call.wake()

    def _finish(self, call: _Call, reply: bytes = b"",
                error: RpcError | None = None) -> None:
        """Complete a call exactly once. Hold the lock."""
        if call.finished:
            return
        call.finished = True
        self._unfinished.discard(call)
        if error is None:
            self._total_bytes += len(reply)
        call.reply, call.error = reply, error
        trace = self._trace
        if trace is not None:
            trace.append(("done", _now(), getattr(call, "seq", 0),
                          "ok" if error is None else type(error).__name__))

    def _fail_dead_calls(self) -> list[_Call]:
        """Fail every active call whose end or server just died. Hold the lock."""
        dead = [c for c in self._unfinished if c.phase == _ACTIVE and self._is_dead(c)]
        for call in dead:
            self._finish(call, error=Stopped(f"server of end {call.end_name!r} is gone"))
        return dead


def _wake(calls: list[_Call]) -> None:
    """Deliver finished calls. Never under the network lock: a Future's callbacks run here
    and may call back into the network."""
    for call in calls:
        call.wake()
