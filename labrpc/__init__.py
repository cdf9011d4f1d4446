"""labrpc: an emulated network for the Raft and KV labs (loss, delay, reordering, partitions).

    net = labrpc.Network()
    end = net.create_client("client-0")           # ends start disabled
    server = labrpc.Server("server-0")
    server.add_service(raftpb.RaftService, node)  # calls reach node.request_vote(args)
    net.add_server(server)
    net.connect(end, "server-0"); net.enable(end, True)
    reply = RaftClient(end).request_vote(args)    # or .request_vote.future(args)
"""

from labrpc.errors import (
    Disconnected,
    RemoteError,
    RpcError,
    Stopped,
    Timeout,
    Unimplemented,
)
from labrpc.network import ClientEnd, Network, Server
from labrpc.service import Method, Service, ServiceClient, services_of, snake_case

__all__ = [
    "Network", "ClientEnd", "Server", "Service", "Method", "ServiceClient", "services_of",
    "snake_case", "RpcError", "Timeout", "Disconnected", "Stopped", "Unimplemented", "RemoteError",
]
