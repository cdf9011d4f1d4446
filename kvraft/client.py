"""Lab 3: the clerk, the client library of the KV service.

The tester makes a `Clerk` for each client of the service and calls its get, put and append;
each returns only once the service applied the operation, exactly once (docs/lab3-kvraft.md).
"""

from __future__ import annotations

### BEGIN SOLUTION 3A
import itertools
### END SOLUTION
import logging
import time
### BEGIN SOLUTION 3A
import uuid
### END SOLUTION

from labrpc import RpcError
### BEGIN SOLUTION 3A
from collections.abc import Callable
from typing import Any
### END SOLUTION
from proto.kvraftpb import GetRequest, KvClient, Op, PutAppendRequest

__all__ = ["Clerk"]

log = logging.getLogger("kvraft.client")

### BEGIN SOLUTION 3A
# After asking every server once without success (an election is probably running), pause
# before the next round instead of flooding the network.
ROUND_PAUSE = 0.05
# A lost request or reply says nothing about leadership: ask the server believed to lead once
# more before going round the others (on an unreliable network 1 round trip in 5 is lost).
TRIES_AT_LEADER = 2
### END SOLUTION


class Clerk:
    """Get/Put/Append against the replicated service; each call returns once it took effect."""

    def __init__(self, name: str, servers: list[KvClient]) -> None:
        self.name = name
        self.servers = servers
        # You will have to modify this function (3A).
        ### BEGIN SOLUTION 3A
        # Unique across restarts of the test process, so stale dedup state never matches.
        self.client_id = f"{name}-{uuid.uuid4().hex[:12]}"
        self._seq = itertools.count(1)
        self._leader = 0  # the server that answered last: try it first
        ### END SOLUTION

    def __repr__(self) -> str:
        return f"Clerk({self.name!r})"

    def get(self, key: str) -> str:
        """The current value of `key`, or "" if it has none.

        Keep trying forever, whatever the errors: a Get returns only once it took effect.
        Send an RPC with `self.servers[i].get(GetRequest(...))`; it raises labrpc.RpcError
        when the request or the reply is lost.
        """
        ### BEGIN SOLUTION 3A
        request = GetRequest(key=key, client=self.client_id, seq=next(self._seq))
        value: str = self._call(lambda server: server.get(request)).value
        return value
        ### END SOLUTION

    def put(self, key: str, value: str) -> None:
        """Replace the value of `key`."""
        self._put_append(key, value, Op.PUT)

    def append(self, key: str, value: str) -> None:
        """Append `value` to the value of `key` ("" if it has none)."""
        self._put_append(key, value, Op.APPEND)

    def _put_append(self, key: str, value: str, op: Op) -> None:
        """Shared by put and append; retries until the service applied the request once."""
        ### BEGIN SOLUTION 3A
        request = PutAppendRequest(key=key, value=value, op=op, client=self.client_id,
                                   seq=next(self._seq))
        self._call(lambda server: server.put_append(request))
        ### END SOLUTION

    ### BEGIN SOLUTION 3A
    def _call(self, send: Callable[[KvClient], Any]) -> Any:
        """Try servers from the last known leader on, until one applies the request."""
        while True:
            for offset in range(len(self.servers)):
                i = (self._leader + offset) % len(self.servers)
                for _ in range(TRIES_AT_LEADER if offset == 0 else 1):
                    try:
                        reply = send(self.servers[i])
                    except RpcError:
                        continue  # lost: try again, or the next server
                    if not reply.wrong_leader and not reply.err:
                        self._leader = i
                        return reply
                    break  # it answered that it cannot serve: the next server
            time.sleep(ROUND_PAUSE)
    ### END SOLUTION
