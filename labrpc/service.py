"""RPC services described by `.proto` files: typed client stubs and server-side dispatch.

A `service Raft { rpc AppendEntries(AppendEntriesArgs) returns (AppendEntriesReply); }` becomes
`Service("Raft", {"AppendEntries": Method(...)})`. Its client class has a blocking method
`append_entries(args)` and `append_entries.future(args)`; a server routes "Raft.AppendEntries"
to the registered object's `append_entries(self, args)`.
"""

from __future__ import annotations

import re
from concurrent.futures import Future
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

if TYPE_CHECKING:
    from labrpc.network import ClientEnd

__all__ = ["Method", "Service", "services_of", "snake_case"]


def snake_case(name: str) -> str:
    """`AppendEntries` -> `append_entries`, `PutAppend` -> `put_append`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


# eq=False: a Method is its own identity, so hashing one (servers remember their route per
# Method, on every call) costs no more than hashing any object.
@dataclass(frozen=True, eq=False)
class Method:
    """One rpc of a service: its wire name, Python attribute and message types."""

    service: str
    name: str
    attr: str
    request_type: type[Message]
    reply_type: type[Message]

    @property
    def full_name(self) -> str:
        return f"{self.service}.{self.name}"


class Service:
    """A service of a compiled `.proto` module, with a typed client class."""

    def __init__(self, name: str, methods: dict[str, Method]) -> None:
        self.name = name
        self.methods = methods
        self.client_class: type[ServiceClient] = _make_client_class(self)

    def __repr__(self) -> str:
        return f"Service({self.name!r}, rpcs={list(self.methods)})"


def services_of(module: ModuleType) -> dict[str, Service]:
    """Every service declared in a generated `_pb2` module, by name."""
    services = {}
    for descriptor in module.DESCRIPTOR.services_by_name.values():
        methods = {}
        for m in descriptor.methods:
            methods[m.name] = Method(
                service=descriptor.name,
                name=m.name,
                attr=snake_case(m.name),
                request_type=getattr(module, m.input_type.name),
                reply_type=getattr(module, m.output_type.name),
            )
        services[descriptor.name] = Service(descriptor.name, methods)
    return services


class BoundRpc:
    """`client.request_vote`: call it to block for the reply, or `.future(args)` to not wait."""

    __slots__ = ("_end", "_method")

    def __init__(self, end: ClientEnd, method: Method) -> None:
        self._end = end
        self._method = method

    def __call__(self, args: Message) -> Any:
        return self._end.call(self._method, args)

    def future(self, args: Message) -> Future[Any]:
        """Send now; the Future resolves to the reply or to an `RpcError`."""
        return self._end.call_future(self._method, args)

    def __repr__(self) -> str:
        return f"<rpc {self._method.full_name} via {self._end.name!r}>"


class ServiceClient:
    """Base of the generated client classes (`RaftClient`, `KvClient`)."""

    service: Service

    def __init__(self, end: ClientEnd) -> None:
        self.end = end
        for method in self.service.methods.values():
            setattr(self, method.attr, BoundRpc(end, method))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.end.name!r})"

    if TYPE_CHECKING:
        # __init__ sets one BoundRpc per method of the service; a type checker knows only that.
        def __getattr__(self, name: str) -> BoundRpc: ...


def _make_client_class(service: Service) -> type[ServiceClient]:
    doc = f"Client stub of service {service.name}: " + ", ".join(
        f"{m.attr}({m.request_type.__name__}) -> {m.reply_type.__name__}"
        for m in service.methods.values()
    )
    return type(f"{service.name}Client", (ServiceClient,), {"service": service, "__doc__": doc})
