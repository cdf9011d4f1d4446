"""The labs' protobuf messages and RPC services.

`raft.proto` (lab 2) and `kvraft.proto` (lab 3) are student-owned: add fields and rpcs there.
Each has one obvious import that compiles it on first use:

    from proto.raftpb import RequestVoteArgs, RaftClient
    from proto.kvraftpb import GetRequest, KvClient
"""

from proto.compiler import ProtoCompileError, compile_proto, load_proto

__all__ = ["ProtoCompileError", "compile_proto", "load_proto"]
