"""Lab 3's messages and the `Kv` service, compiled from `kvraft.proto` on first import.

    from proto.kvraftpb import GetRequest, PutAppendRequest, KvClient, KvService
"""

from pathlib import Path
from typing import TYPE_CHECKING

from proto.exports import export_proto

__all__ = export_proto(Path(__file__).with_name("kvraft.proto"), globals())

if TYPE_CHECKING:
    # What mypy and editors see: the messages from the stub protoc writes beside the generated
    # module (on first import, or `make proto`), and the service's client and description.
    from labrpc.service import Service, ServiceClient
    from proto._generated.kvraft_pb2 import *  # noqa: F403 (the messages change with kvraft.proto)

    class KvClient(ServiceClient): ...

    KvService: Service
