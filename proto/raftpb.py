"""Lab 2's messages and the `Raft` service, compiled from `raft.proto` on first import.

    from proto.raftpb import RequestVoteArgs, RequestVoteReply, RaftClient, RaftService
"""

from pathlib import Path

from proto.exports import export_proto

__all__ = export_proto(Path(__file__).with_name("raft.proto"), globals())
