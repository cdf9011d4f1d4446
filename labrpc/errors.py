"""The errors an RPC can end with. Every failed call raises a subclass of `RpcError`.

A handler may raise one too, to refuse a call (a killed peer: `raise Stopped("peer was killed")`):
the caller gets that very error, and nothing is logged.
"""

from __future__ import annotations

__all__ = [
    "RpcError", "Timeout", "Disconnected", "Stopped", "Unimplemented", "RemoteError",
]


class RpcError(Exception):
    """An RPC did not produce a reply. Raft treats every kind the same: no answer."""


class Timeout(RpcError):
    """The unreliable network dropped the request or the reply."""


class Disconnected(RpcError):
    """The client end is disabled, connected to no server, or its server was deleted."""


class Stopped(RpcError):
    """The server died (was deleted or cut off) while the call was in flight, the network shut
    down, or the handler refused the call (a killed peer)."""


class Unimplemented(RpcError):
    """The server has no such service, or the service object has no method for the rpc."""


class RemoteError(RpcError):
    """The handler raised an exception; its type and message are in this error's message."""
