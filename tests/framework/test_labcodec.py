"""labcodec: protobuf messages round-trip, and every failure is a labcodec.Error naming the type."""

from __future__ import annotations

import pytest

import labcodec
from fixturepb import Msg


def test_msg_round_trips_equal() -> None:
    msg = Msg(type=Msg.PUT, id=42, name="the answer", payload=[bytes([7] * 3), bytes([7] * 3)])
    data = labcodec.encode(msg)
    assert isinstance(data, bytes) and data
    decoded = labcodec.decode(data, Msg)
    assert decoded == msg
    assert decoded.type == Msg.PUT and decoded.id == 42 and decoded.name == "the answer"
    assert list(decoded.payload) == [b"\x07\x07\x07", b"\x07\x07\x07"]


def test_decoding_empty_bytes_gives_default_msg() -> None:
    msg = labcodec.decode(b"", Msg)
    assert msg == Msg()
    assert msg.type == Msg.UNKNOWN and msg.id == 0 and msg.name == "" and not msg.payload
    assert labcodec.encode(Msg()) == b""


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = labcodec.encode(Msg(id=7))
    assert labcodec.decode(bytearray(data), Msg).id == 7
    assert labcodec.decode(memoryview(data), Msg).id == 7


@pytest.mark.parametrize("corrupt", [
    b"\x1a\x05ab",          # field 3 (name) claims 5 bytes, 2 follow
    b"\x10\xff\xff\xff",    # field 2 (id): a varint cut short
    b"\x1a\x02\xff\xfe",    # field 3 (name): not UTF-8
], ids=["truncated-length", "truncated-varint", "bad-utf8"])
def test_corrupt_bytes_raise_decode_error_naming_the_type(corrupt: bytes) -> None:
    with pytest.raises(labcodec.DecodeError, match="Msg") as failure:
        labcodec.decode(corrupt, Msg)
    assert isinstance(failure.value, labcodec.Error)


def test_decode_of_non_bytes_or_into_non_message_raises_decode_error() -> None:
    with pytest.raises(labcodec.DecodeError, match="Msg"):
        labcodec.decode("text", Msg)
    with pytest.raises(labcodec.DecodeError, match="not a protobuf message type"):
        labcodec.decode(b"", dict)


@pytest.mark.parametrize("value", ["text", {"id": 42}, 42, None, Msg], ids=repr)
def test_encoding_a_non_message_raises_encode_error(value: object) -> None:
    with pytest.raises(labcodec.EncodeError, match="not a protobuf message") as failure:
        labcodec.encode(value)
    assert isinstance(failure.value, labcodec.Error)


def test_encode_and_decode_errors_subclass_labcodec_error() -> None:
    assert issubclass(labcodec.EncodeError, labcodec.Error)
    assert issubclass(labcodec.DecodeError, labcodec.Error)
    assert not issubclass(labcodec.EncodeError, labcodec.DecodeError)
