"""Codecs and types: what a handler declares is what it gets and gives back."""

from __future__ import annotations

import pytest
from google.protobuf.wrappers_pb2 import StringValue

import busrpc
from busrpc import Headers, Message, MessageBus
from busrpc._core import MSGPACK

from .services import Greeter, Greeting, Hello, Labels, Point, Types


async def test_msgpack_client_gets_a_correct_reply(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Greeter(), Types(), namespace=ns, server_id="s"):
        greeter = busrpc.client(Greeter, bus, namespace=ns, codec=MSGPACK)
        types = busrpc.client(Types, bus, namespace=ns, codec=MSGPACK)
        assert await greeter.say_hello(Hello(name="ada")) == Greeting("hello ada", "s")
        assert await types.swap(Point(1, 2)) == Point(2, 1)
        responses = [r async for r in greeter.stats(Hello(name="m"), expect=1)]
    assert [r.result for r in responses] == [Greeting("stats m", "s")]


async def test_msgpack_reply_says_its_content_type(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    reply_to = f"{ns}.replies.1"
    async with (
        busrpc.Server(peer_bus, Greeter(), namespace=ns, server_id="s"),
        bus.subscribe(reply_to) as replies,
    ):
        headers = {Headers.CONTENT_TYPE: MSGPACK.content_type}
        request = MSGPACK.encode(Hello(name="raw"))
        await bus.publish(Message(f"{ns}.greeter.say_hello", request, headers, reply_to))
        reply = await replies.receive()
    assert reply.headers.get(Headers.CONTENT_TYPE) == MSGPACK.content_type
    assert MSGPACK.decode(reply.data, Greeting) == Greeting("hello raw", "s")


async def test_every_kind_of_type_round_trips(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Types(), namespace=ns):
        types = busrpc.client(Types, bus, namespace=ns)
        assert await types.swap(Point(x=1, y=2)) == Point(x=2, y=1)  # dataclass
        assert await types.tag(Labels(name="a", tags=["x"])) == {  # TypedDict
            "name": "A",
            "tags": ["x", "seen"],
        }
        assert await types.count({"a": 1, "b": 2}) == {"a": 2, "b": 3}  # dict
        assert await types.upper("abc") == "ABC"  # str
        assert await types.double(21) == 42  # int
        assert await types.reverse(b"\x00\x01\xff") == b"\xff\x01\x00"  # bytes: raw codec
        shouted = await types.shout(StringValue(value="hi"))  # protobuf
        assert isinstance(shouted, StringValue) and shouted.value == "HI!"


async def test_request_that_does_not_fit_the_type_is_malformed(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    reply_to = f"{ns}.replies.1"
    async with (
        busrpc.Server(peer_bus, Types(), namespace=ns),
        bus.subscribe(reply_to) as replies,
    ):
        await bus.publish(Message(f"{ns}.types.swap", b'{"x": 1}', reply=reply_to))  # no y
        reply = await replies.receive()
        types = busrpc.client(Types, bus, namespace=ns)
        assert await types.double(2) == 4
    assert reply.headers[Headers.ERROR] == "malformed_request"


async def test_request_that_cannot_be_encoded_raises_before_sending(
    bus: MessageBus, ns: str
) -> None:
    types = busrpc.client(Types, bus, namespace=ns)
    with pytest.raises(busrpc.CodecError):
        await types.double(object())  # type: ignore[arg-type]
