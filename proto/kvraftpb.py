"""Lab 3's messages and the `Kv` service, compiled from `kvraft.proto` on first import.

    from proto.kvraftpb import GetRequest, PutAppendRequest, KvClient, KvService
"""

from pathlib import Path

from proto.exports import export_proto

__all__ = export_proto(Path(__file__).with_name("kvraft.proto"), globals())
