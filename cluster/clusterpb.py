"""The runtime's admin and control messages, compiled from `admin.proto` on first import."""

from pathlib import Path
from typing import TYPE_CHECKING

from proto.exports import export_proto

__all__ = export_proto(Path(__file__).with_name("admin.proto"), globals())

if TYPE_CHECKING:
    # What mypy sees: the messages from the stub protoc writes beside the generated module, and
    # each service's client and description (as proto/raftpb.py does for the labs' protos).
    from cluster._generated.admin_pb2 import *  # noqa: F403 (the messages of admin.proto)
    from labrpc.service import Service, ServiceClient

    class AdminClient(ServiceClient): ...

    class ControlClient(ServiceClient): ...

    AdminService: Service
    ControlService: Service
