"""labcodec: encode and decode the protobuf messages that cross the lab network.

Every RPC argument, reply, log entry and persisted state in the labs goes through these two
functions, so a wrong type or corrupt bytes fail in one place with a message that says which.

    data = labcodec.encode(RequestVoteArgs(term=3))
    args = labcodec.decode(data, RequestVoteArgs)
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError as _ProtobufDecodeError
from google.protobuf.message import Message

__all__ = ["Error", "EncodeError", "DecodeError", "encode", "decode", "Message"]

M = TypeVar("M", bound=Message)


class Error(Exception):
    """Base class of every labcodec error."""


class EncodeError(Error):
    """A value could not be encoded (not a protobuf message, or a required part missing)."""


class DecodeError(Error):
    """Bytes could not be decoded into the requested message type."""


def encode(msg: Message) -> bytes:
    """Serialize a protobuf message to its wire bytes."""
    if not isinstance(msg, Message):
        raise EncodeError(
            f"cannot encode {type(msg).__name__} {msg!r:.60}: not a protobuf message "
            "(define it in a .proto file under proto/)"
        )
    try:
        return msg.SerializeToString()
    except Exception as exc:  # EncodeError of protobuf, or an uninitialized message
        raise EncodeError(f"cannot encode {type(msg).__name__}: {exc}") from exc


def decode(data: bytes | bytearray | memoryview, message_type: type[M]) -> M:
    """Parse wire bytes into a new message of `message_type`; empty bytes give the default."""
    if not (isinstance(message_type, type) and issubclass(message_type, Message)):
        raise DecodeError(f"cannot decode into {message_type!r}: not a protobuf message type")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(
            f"cannot decode {type(data).__name__} as {message_type.__name__}: expected bytes"
        )
    msg = message_type()
    try:
        msg.ParseFromString(bytes(data))
    except _ProtobufDecodeError as exc:
        raise DecodeError(
            f"corrupt wire data for {message_type.__name__} ({len(data)} bytes): {exc}"
        ) from exc
    except Exception as exc:
        raise DecodeError(f"cannot decode {message_type.__name__}: {exc}") from exc
    return msg
