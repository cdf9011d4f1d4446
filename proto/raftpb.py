"""Lab 2's messages and the `Raft` service, compiled from `raft.proto` on first import.

    from proto.raftpb import RequestVoteArgs, RequestVoteReply, RaftClient, RaftService
"""

from pathlib import Path
from typing import TYPE_CHECKING

from proto.exports import export_proto

__all__ = export_proto(Path(__file__).with_name("raft.proto"), globals())

if TYPE_CHECKING:
    # What mypy and editors see: the messages from the stub protoc writes beside the generated
    # module (on first import, or `make proto`), and the service's client and description.
    from labrpc.service import Service, ServiceClient
    from proto._generated.raft_pb2 import *  # noqa: F403 (the messages change with raft.proto)

    class RaftClient(ServiceClient): ...

    RaftService: Service
