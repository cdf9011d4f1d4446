"""The framework tests' messages and `Junk` service, compiled from protos/fixture.proto on import.

    from fixturepb import Msg, Handler2Args, JunkClient, JunkService
"""

from pathlib import Path

from proto.exports import export_proto

PROTO_FILE = Path(__file__).parent / "protos" / "fixture.proto"

__all__ = export_proto(PROTO_FILE, globals())
