"""The labs' RPC services over real gRPC, with labrpc's client API and error kinds.

    server = GrpcServer("127.0.0.1:7001")
    server.add_service(RaftService, node)          # calls reach node.request_vote(args) ...
    server.start()
    end = GrpcEnd("to-1", connect("127.0.0.1:7001"), deadline=1.0)
    reply = RaftClient(end).request_vote(args)     # or .request_vote.future(args)

`GrpcEnd` has what `labrpc.ServiceClient` needs of an end (`name`, `call`, `call_future`), so
`raft.py` and the clerk use it unchanged. Every call has a deadline. A failed call raises a
`labrpc.RpcError`, chosen so that code written against the emulator reacts the same way:

| what happened                                      | error          |
|----------------------------------------------------|----------------|
| no reply before the deadline, or a fault rule lost it | `Timeout`   |
| the peer cannot be reached (down, refused, cut off) | `Disconnected` |
| the channel was closed, or the handler raised `Stopped` | `Stopped`  |
| the server has no such service or rpc             | `Unimplemented` |
| the handler raised any other exception            | `RemoteError`  |

A handler that raises an `RpcError` (a killed peer raising `Stopped`) sends that very kind to
the caller, as labrpc does. Services are named `<proto package>.<Service>` on the wire, as
grpcio-tools' generated stubs name them.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import grpc
from google.protobuf.message import Message

from labrpc import Disconnected, RemoteError, RpcError, Stopped, Timeout, Unimplemented
from labrpc.network import (
    DEAD_END_DELAY_MS,
    DROP_REPLY_PROBABILITY,
    DROP_REQUEST_PROBABILITY,
    SHORT_DELAY_MS,
)
from labrpc.service import Method, Service

__all__ = ["GrpcServer", "GrpcEnd", "as_client_end", "FaultRules", "FaultInterceptor", "connect",
           "grpc_service_name", "DEFAULT_DEADLINE"]

log = logging.getLogger("cluster.transport")

_Request = TypeVar("_Request")
_Reply = TypeVar("_Reply")

if TYPE_CHECKING:
    from labrpc.network import ClientEnd

if TYPE_CHECKING:
    # grpcio's stubs name what an interceptor returns: a grpc.Call that is also a grpc.Future.
    from grpc import _CallFuture
else:
    class _CallFuture(grpc.Call, grpc.Future, Generic[_Reply]):
        """At run time grpc has no such class; the stubs' name for a Call that is a Future."""

# A call with no reply after this long fails with Timeout. Long enough for a KV handler that
# waits for its entry to commit on a loaded machine; short enough that a paused peer (SIGSTOP)
# costs a caller seconds, not minutes.
DEFAULT_DEADLINE = 2.0

# A restarted peer must be reachable again within about a second: gRPC's default reconnect
# backoff grows to two minutes, which would keep a restarted follower cut off.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)
# Refuse to share a port: two nodes bound to one port (SO_REUSEPORT, gRPC's default on Linux)
# would split a peer's traffic between them. A port in use must fail the start loudly.
SERVER_OPTIONS = (("grpc.so_reuseport", 0),)

# How a handler's RpcError crosses the wire: "labrpc.Stopped: peer was killed" in the details.
_KIND_PREFIX = "labrpc."
_KINDS: dict[str, type[RpcError]] = {
    cls.__name__: cls for cls in (Timeout, Disconnected, Stopped, Unimplemented, RemoteError)}


def grpc_service_name(service: Service) -> str:
    """`raftpb.Raft`: the proto package and the service name, as protoc names it."""
    method = next(iter(service.methods.values()))
    package = method.request_type.DESCRIPTOR.file.package
    return f"{package}.{service.name}" if package else service.name


def _method_path(method: Method) -> str:
    package = method.request_type.DESCRIPTOR.file.package
    return f"/{package + '.' if package else ''}{method.service}/{method.name}"


# --- server -------------------------------------------------------------------------------------

class GrpcServer:
    """Serves labrpc `Service`s (from `proto/*.proto`) on one address, over gRPC."""

    def __init__(self, address: str, max_workers: int = 32, name: str = "grpc") -> None:
        self.address = address
        self.port: int | None = None
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix=f"{name}-handler")
        self._server = grpc.server(self._executor, options=SERVER_OPTIONS)

    def add_service(self, service: Service, implementation: Any) -> None:
        """Route each rpc of `service` to `implementation.<rpc in snake_case>(args)`."""
        handlers = {
            m.name: grpc.unary_unary_rpc_method_handler(
                _handler(m, implementation),
                request_deserializer=m.request_type.FromString,
                response_serializer=m.reply_type.SerializeToString)
            for m in service.methods.values()}
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(grpc_service_name(service), handlers),))

    def start(self) -> int:
        """Bind and serve; return the port. Raises OSError if the address cannot be bound."""
        try:
            port = self._server.add_insecure_port(self.address)
        except RuntimeError as exc:  # grpcio raises RuntimeError on a failed bind
            raise OSError(f"cannot listen on {self.address}: {exc}") from None
        if port == 0:
            raise OSError(f"cannot listen on {self.address} (address in use?)")
        self.port = port
        self._server.start()
        return port

    def stop(self, grace: float | None = None) -> None:
        """Stop serving: calls in flight fail (after `grace` seconds if given); threads end."""
        self._server.stop(grace).wait()
        self._executor.shutdown(wait=True, cancel_futures=True)


def _handler(method: Method,
             implementation: Any) -> Callable[[Message, grpc.ServicerContext], Message]:
    function = getattr(implementation, method.attr, None)

    def handle(request: Message, context: grpc.ServicerContext) -> Message:
        if function is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          f"{type(implementation).__name__} has no method {method.attr}() "
                          f"for rpc {method.full_name}")
        try:
            reply = function(request)
        except RpcError as exc:  # the handler refuses the call (a killed peer): pass the kind on
            status = grpc.StatusCode.UNAVAILABLE
            details = f"{_KIND_PREFIX}{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug in the handler: the caller sees RemoteError
            log.exception("handler %s raised", method.full_name)
            status, details = grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}"
        else:
            if isinstance(reply, method.reply_type):
                return reply
            status = grpc.StatusCode.UNKNOWN
            details = (f"{method.full_name} returned {type(reply).__name__}, "
                       f"not {method.reply_type.__name__}")
        context.abort(status, details)
        raise AssertionError("unreachable: abort raises")

    return handle


# --- client -------------------------------------------------------------------------------------

def connect(address: str,
            interceptor: grpc.UnaryUnaryClientInterceptor | None = None) -> grpc.Channel:
    """A channel to `address` (host:port), passing `interceptor` if given."""
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    return grpc.intercept_channel(channel, interceptor) if interceptor is not None else channel


def translate(error: grpc.RpcError, what: str) -> RpcError:
    """The labrpc error kind for a failed gRPC call."""
    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else None) or ""
    if details.startswith(_KIND_PREFIX):
        kind, _, message = details[len(_KIND_PREFIX):].partition(": ")
        if kind in _KINDS:
            return _KINDS[kind](message)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return Timeout(f"{what}: no reply before the deadline")
    if code is grpc.StatusCode.UNAVAILABLE:
        return Disconnected(f"{what}: unreachable ({details})")
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return Unimplemented(f"{what}: {details}")
    if code is grpc.StatusCode.CANCELLED:
        return Stopped(f"{what}: cancelled ({details})")
    return RemoteError(f"{what}: {code.name if code else 'error'}: {details}")


class GrpcEnd:
    """A client end over a gRPC channel, for `RaftClient(end)` / `KvClient(end)`."""

    def __init__(self, name: str, channel: grpc.Channel,
                 deadline: float = DEFAULT_DEADLINE) -> None:
        if deadline <= 0:
            raise ValueError(f"deadline must be positive, not {deadline}")
        self.name = name
        self.deadline = deadline
        self._channel = channel
        self._lock = threading.Lock()
        self._closed = False
        self._stubs: dict[str, grpc.UnaryUnaryMultiCallable[Message, Message]] = {}

    def _stub(self, method: Method) -> grpc.UnaryUnaryMultiCallable[Message, Message]:
        with self._lock:
            if self._closed:
                raise Stopped(f"{method.full_name} via {self.name}: the end is closed")
            stub = self._stubs.get(method.full_name)
            if stub is None:
                stub = self._channel.unary_unary(
                    _method_path(method), request_serializer=method.request_type.SerializeToString,
                    response_deserializer=method.reply_type.FromString)
                self._stubs[method.full_name] = stub
            return stub

    def call(self, method: Method, args: Message) -> Any:
        """Send `args`; block for the reply or raise a `labrpc.RpcError`."""
        stub = self._stub(method)
        try:
            return stub(args, timeout=self.deadline)
        except grpc.RpcError as exc:
            raise translate(exc, method.full_name) from None
        except ValueError as exc:  # the channel was closed meanwhile
            raise Stopped(f"{method.full_name} via {self.name}: {exc}") from None

    def call_future(self, method: Method, args: Message) -> Future[Message]:
        """Send `args` now; the Future resolves to the reply or to a `labrpc.RpcError`."""
        result: Future[Message] = Future()
        result.set_running_or_notify_cancel()
        try:
            call = self._stub(method).future(args, timeout=self.deadline)
        except RpcError as exc:
            result.set_exception(exc)
            return result
        except ValueError as exc:
            result.set_exception(Stopped(f"{method.full_name} via {self.name}: {exc}"))
            return result

        def done(call: grpc.Future[Message]) -> None:
            try:
                reply = call.result()
            except grpc.RpcError as exc:
                result.set_exception(translate(exc, method.full_name))
            except grpc.FutureCancelledError:
                result.set_exception(Stopped(f"{method.full_name}: cancelled"))
            except Exception as exc:  # noqa: BLE001 - a Future must always resolve
                result.set_exception(Stopped(f"{method.full_name}: {type(exc).__name__}: {exc}"))
            else:
                result.set_result(reply)

        call.add_done_callback(done)
        return result

    def close(self) -> None:
        """Close the channel: calls in flight fail with `Stopped`, new ones too."""
        with self._lock:
            self._closed = True
        self._channel.close()

    def __repr__(self) -> str:
        return f"GrpcEnd({self.name!r})"


def as_client_end(end: GrpcEnd) -> ClientEnd:
    """`end`, for the client classes of labrpc (`RaftClient(as_client_end(end))`).

    They are typed to take labrpc's emulated `ClientEnd`, but use only what `GrpcEnd` has too
    (`name`, `call`, `call_future`); a Protocol of those in labrpc.service would make this cast
    unnecessary. The cast changes nothing at run time."""
    return cast("ClientEnd", end)


# --- fault injection ------------------------------------------------------------------------------

class FaultRules:
    """The controller's rules for one node's outgoing calls: who it can reach, and whether its
    calls are unreliable (labrpc's drops and delays). Thread-safe; replaced as a whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: list[frozenset[int]] | None = None  # None: everyone reaches everyone
        self._unreliable = False

    def set(self, groups: list[list[int]] | None, unreliable: bool) -> None:
        with self._lock:
            self._groups = None if groups is None else [frozenset(g) for g in groups]
            self._unreliable = unreliable

    def reachable(self, source: int, target: int) -> bool:
        with self._lock:
            if self._groups is None or source == target:
                return True
            return any(source in g and target in g for g in self._groups)

    @property
    def unreliable(self) -> bool:
        with self._lock:
            return self._unreliable


class _InjectedError(grpc.RpcError):
    """A failure the fault rules made up; `translate` maps it like a real one."""

    def __init__(self, kind: type[RpcError], message: str) -> None:
        super().__init__(message)
        self._details = f"{_KIND_PREFIX}{kind.__name__}: {message}"

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return self._details


class _DeferredCall(_CallFuture[_Reply]):
    """A call the interceptor runs later on its own thread (after a delay, or to fail it):
    what `intercept_unary_unary` must return, a `grpc.Call` that is also a `grpc.Future`."""

    def __init__(self, future: Future[_Reply]) -> None:
        self._future = future

    # grpc.Future
    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return not self._future.done()

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> _Reply:
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> Exception | None:
        error = self._future.exception(timeout)
        # The faulty call raises only Exceptions; a BaseException (KeyboardInterrupt) would
        # have ended the executor's thread instead of reaching the future.
        return error if error is None or isinstance(error, Exception) else Exception(error)

    def traceback(self, timeout: float | None = None) -> Any:
        error = self._future.exception(timeout)
        return None if error is None else error.__traceback__

    def add_done_callback(self, fn: Callable[[grpc.Future[_Reply]], None]) -> None:
        self._future.add_done_callback(lambda _: fn(self))

    # grpc.Call
    def is_active(self) -> bool:
        return not self._future.done()

    def time_remaining(self) -> float:
        # The deadline is the real call's, which has not started or has ended: none left here.
        return 0.0

    def add_callback(self, callback: Callable[[], None]) -> bool:
        self._future.add_done_callback(lambda _: callback())
        return True

    def initial_metadata(self) -> Any:
        return ()

    def trailing_metadata(self) -> Any:
        return ()

    def code(self) -> grpc.StatusCode:
        error = self._future.exception()
        if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
            return error.code()
        return grpc.StatusCode.OK

    def details(self) -> str:
        error = self._future.exception()
        if isinstance(error, grpc.RpcError) and hasattr(error, "details"):
            return error.details() or ""
        return ""


class FaultInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Applies `rules` to the calls from node `source` to node `target`.

    Cut off: the call fails with Disconnected after U[0, DEAD_END_DELAY_MS) ms, as a dead end
    of labrpc does. Unreliable: the request waits U[0, SHORT_DELAY_MS) ms, is lost with
    DROP_REQUEST_PROBABILITY (Timeout, the handler never runs), and its reply is lost with
    DROP_REPLY_PROBABILITY (Timeout, the handler ran). The numbers are labrpc's own constants.
    With no rule in force a call passes straight through.
    """

    def __init__(self, rules: FaultRules, source: int, target: int, executor: ThreadPoolExecutor,
                 rng: random.Random | None = None) -> None:
        self._rules = rules
        self._source = source
        self._target = target
        self._executor = executor
        self._random = rng or random.Random()

    def intercept_unary_unary(
            self, continuation: Callable[[grpc.ClientCallDetails, _Request], _CallFuture[_Reply]],
            client_call_details: grpc.ClientCallDetails, request: _Request) -> _CallFuture[_Reply]:
        cut_off = not self._rules.reachable(self._source, self._target)
        unreliable = self._rules.unreliable
        if not cut_off and not unreliable:
            return continuation(client_call_details, request)
        what = f"{client_call_details.method} to node {self._target}"
        # The waits run on the executor, never on the caller's thread: Raft's ticker sends its
        # RequestVotes one after another and must not sleep between them.
        return _DeferredCall(self._executor.submit(
            self._faulty_call, continuation, client_call_details, request, cut_off, what))

    def _faulty_call(
            self, continuation: Callable[[grpc.ClientCallDetails, _Request], _CallFuture[_Reply]],
            details: grpc.ClientCallDetails, request: _Request, cut_off: bool,
            what: str) -> _Reply:
        if cut_off:
            threading.Event().wait(self._random.randrange(DEAD_END_DELAY_MS) / 1000)
            raise _InjectedError(Disconnected, f"{what}: cut off by a partition")
        threading.Event().wait(self._random.randrange(SHORT_DELAY_MS) / 1000)
        if self._random.random() < DROP_REQUEST_PROBABILITY:
            raise _InjectedError(Timeout, f"{what}: request lost (unreliable)")
        reply = continuation(details, request).result()
        if self._random.random() < DROP_REPLY_PROBABILITY:
            raise _InjectedError(Timeout, f"{what}: reply lost (unreliable)")
        return reply

