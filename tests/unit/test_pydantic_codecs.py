"""pydantic models in the JSON and msgpack codecs, and types no codec supports."""

from __future__ import annotations

import datetime
import subprocess
import sys
from typing import Any

import msgspec
import pydantic
import pytest

import busrpc
from busrpc import Codec, CodecError
from busrpc._core import JSON, MSGPACK, default_codec_for
from busrpc.rpc import Method


class User(pydantic.BaseModel):
    user_id: int = pydantic.Field(alias="userId")
    name: str
    joined: datetime.datetime | None = None
    home: pydantic.AnyUrl | None = None


class Team(msgspec.Struct):
    lead: User
    members: list[User] = []


class Plain:
    """Neither msgspec nor pydantic can encode this."""


ADA = User(userId=1, name="ada", joined=datetime.datetime(2020, 1, 2, tzinfo=datetime.UTC))
CODECS = [pytest.param(JSON, id="json"), pytest.param(MSGPACK, id="msgpack")]


def test_import_busrpc_does_not_import_pydantic() -> None:
    code = "import sys, busrpc, busrpc.rpc, busrpc.service; print('pydantic' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "False"


def test_json_writes_a_model_as_pydantic_does_by_alias() -> None:
    home = User(userId=2, name="bob", home=pydantic.AnyUrl("https://example.com"))
    assert JSON.encode(home) == home.model_dump_json(by_alias=True).encode()
    assert JSON.decode(b'{"userId": 2, "name": "bob"}', User) == User(userId=2, name="bob")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    ("value", "tp"),
    [
        (ADA, User),
        (User(userId=3, name="x", home=pydantic.AnyUrl("https://x.org/")), User),
        ([ADA, ADA], list[User]),
        ({"a": ADA}, dict[str, User]),
        (None, User | None),
        (Team(lead=ADA, members=[ADA]), Team),
    ],
    ids=["model", "url-field", "list", "dict", "optional", "in-a-struct"],
)
def test_models_round_trip(codec: Codec, value: object, tp: Any) -> None:
    assert codec.decode(codec.encode(value), tp) == value


def test_msgpack_keeps_bytes_that_are_not_text() -> None:
    class Blob(pydantic.BaseModel):
        data: bytes

    blob = Blob(data=b"\x00\xff")
    assert MSGPACK.decode(MSGPACK.encode(blob), Blob) == blob


@pytest.mark.parametrize("codec", CODECS)
def test_a_value_that_does_not_validate_is_a_codec_error(codec: Codec) -> None:
    with pytest.raises(CodecError, match=r"invalid User payload: userId: Input should be"):
        codec.decode(codec.encode({"userId": "one", "name": "ada"}), User)
    with pytest.raises(CodecError, match=r"userId: Input should be .* at `\$\.lead`"):
        codec.decode(codec.encode({"lead": {"userId": "one", "name": "ada"}}), Team)


def test_invalid_json_for_a_model_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="invalid User payload"):
        JSON.decode(b"{nope", User)


@pytest.mark.parametrize(
    "tp", [User, list[User], Team, object, Any, int, dict[str, list[float]], msgspec.Raw]
)
def test_default_codec_for_accepts_what_a_codec_supports(tp: object) -> None:
    assert default_codec_for(tp) is JSON


@pytest.mark.parametrize(
    ("tp", "named"),
    [(Plain, "Plain"), (list[Plain], "Plain (in list"), (lambda: 0, "<lambda>")],
    ids=["class", "nested", "lambda"],
)
def test_default_codec_for_refuses_an_unsupported_type(tp: object, named: str) -> None:
    with pytest.raises(TypeError, match="no codec supports the type") as info:
        default_codec_for(tp, "shop.place request")
    assert str(info.value).startswith("shop.place request: ")
    assert named in str(info.value)


def test_a_method_with_an_unsupported_type_is_refused() -> None:
    with pytest.raises(TypeError, match="no codec supports the type Plain"):
        Method("shop", "place", Plain, int)


def test_the_refusal_names_the_method() -> None:
    with pytest.raises(TypeError, match=r"shop\.place response"):
        Method("shop", "place", int, Plain)


def test_a_service_with_an_unsupported_type_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match=r"no codec supports the type Plain"):

        @busrpc.service("shop")
        class Shop:
            @busrpc.rpc
            async def place(self, req: Plain) -> int:
                return 1
