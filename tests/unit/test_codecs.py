"""Codecs: JSON, MessagePack, raw bytes and protobuf. Never pickle."""

from __future__ import annotations

import dataclasses
from typing import Any, TypedDict

import msgspec
import pytest
from google.protobuf.struct_pb2 import Struct
from google.protobuf.wrappers_pb2 import StringValue

from busrpc import Codec, CodecError
from busrpc._core import (
    JSON,
    MSGPACK,
    PROTOBUF,
    RAW,
    codec_for_content_type,
    default_codec_for,
)


class Hello(msgspec.Struct):
    name: str
    tags: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Labels(TypedDict):
    name: str


VALUES: list[tuple[object, Any]] = [
    (Hello(name="ada", tags=["a"]), Hello),
    (Point(1, 2), Point),
    (Labels(name="x"), Labels),
    ({"a": 1}, dict[str, int]),
    ("text", str),
    (42, int),
    ([1.5, None], list[float | None]),
]


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
@pytest.mark.parametrize(("value", "tp"), VALUES, ids=[type(v).__name__ for v, _ in VALUES])
def test_msgspec_codecs_round_trip(codec: Codec, value: object, tp: Any) -> None:
    data = codec.encode(value)
    assert isinstance(data, bytes)
    assert codec.decode(data, tp) == value


def test_json_is_plain_json() -> None:
    assert JSON.encode(Hello(name="ada")) == b'{"name":"ada","tags":[]}'
    assert JSON.decode(b'{"name":"ada"}', Hello) == Hello(name="ada")
    assert JSON.content_type == "application/json"
    assert MSGPACK.content_type == "application/msgpack"


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
@pytest.mark.parametrize("data", [b"", b"\xff\x00garbage", b"[1,2,3]"])
def test_bad_input_raises_codec_error(codec: Codec, data: bytes) -> None:
    with pytest.raises(CodecError):
        codec.decode(data, Hello)


def test_wrong_type_raises_codec_error() -> None:
    with pytest.raises(CodecError, match="Hello"):
        JSON.decode(b'{"name": 5}', Hello)
    with pytest.raises(CodecError):
        MSGPACK.decode(MSGPACK.encode({"name": 5}), Hello)


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_unencodable_value_raises_codec_error(codec: Codec) -> None:
    with pytest.raises(CodecError):
        codec.encode(object())


def test_pickle_payloads_are_never_unpickled() -> None:
    # pickle.dumps({"name": "ada"}, protocol=4), spelled out: the tests never import pickle
    payload = b"\x80\x04\x95\x11\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x04name\x94\x8c\x03ada\x94s."
    for codec in (JSON, MSGPACK):
        with pytest.raises(CodecError):
            codec.decode(payload, Hello)
    with pytest.raises(CodecError):
        codec_for_content_type("application/python-pickle")


def test_raw_codec_passes_bytes_through() -> None:
    assert RAW.encode(b"\x00\x01") == b"\x00\x01"
    assert RAW.encode(bytearray(b"ab")) == b"ab"
    assert RAW.encode(memoryview(b"cd")) == b"cd"
    assert RAW.decode(b"\xff", bytes) == b"\xff"
    assert RAW.content_type == "application/octet-stream"
    with pytest.raises(CodecError):
        RAW.encode("text")
    with pytest.raises(CodecError):
        RAW.decode(b"x", str)


def test_protobuf_round_trip() -> None:
    value = StringValue(value="hi")
    assert PROTOBUF.decode(PROTOBUF.encode(value), StringValue) == value
    struct = Struct()
    struct.update({"a": 1.0, "b": "two"})
    assert PROTOBUF.decode(PROTOBUF.encode(struct), Struct) == struct
    assert PROTOBUF.content_type == "application/x-protobuf"


def test_protobuf_bad_input_raises_codec_error() -> None:
    with pytest.raises(CodecError):
        PROTOBUF.decode(b"\xff\xff\xff", StringValue)
    with pytest.raises(CodecError):
        PROTOBUF.encode(Hello(name="not protobuf"))
    with pytest.raises(CodecError):
        PROTOBUF.decode(b"", Hello)


def test_codec_for_content_type() -> None:
    assert codec_for_content_type("application/json") is JSON
    assert codec_for_content_type("application/json; charset=utf-8") is JSON
    assert codec_for_content_type("Application/MsgPack") is MSGPACK
    assert codec_for_content_type("application/x-msgpack") is MSGPACK
    assert codec_for_content_type("application/x-protobuf") is PROTOBUF
    assert codec_for_content_type("application/protobuf") is PROTOBUF
    assert codec_for_content_type("application/octet-stream") is RAW
    with pytest.raises(CodecError, match="text/csv"):
        codec_for_content_type("text/csv")


def test_default_codec_for() -> None:
    assert default_codec_for(Hello) is JSON
    assert default_codec_for(dict[str, int]) is JSON
    assert default_codec_for(bytes) is RAW
    assert default_codec_for(StringValue) is PROTOBUF


def test_builtin_codecs_are_codecs() -> None:
    for codec in (JSON, MSGPACK, RAW, PROTOBUF):
        assert isinstance(codec, Codec)


@pytest.mark.parametrize(
    ("codec", "data"),
    [(JSON, b"[" * 100_000 + b"]" * 100_000), (MSGPACK, b"\x91" * 100_000 + b"\x90")],
    ids=["json", "msgpack"],
)
def test_issue_6_a_body_nested_too_deep_is_a_codec_error(codec: Codec, data: bytes) -> None:
    # msgspec raises RecursionError, not DecodeError: a server must still answer
    # malformed_request, and a client get an RpcError, not a crash.
    with pytest.raises(CodecError):
        codec.decode(data, list)
