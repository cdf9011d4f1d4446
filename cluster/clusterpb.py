"""The runtime's admin and control messages, compiled from `admin.proto` on first import."""

from pathlib import Path

from proto.exports import export_proto

__all__ = export_proto(Path(__file__).with_name("admin.proto"), globals())
