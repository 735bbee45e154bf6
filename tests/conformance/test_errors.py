"""Errors: the handler's code, message and details reach the caller; bugs don't leak;
malformed requests are answered, and the server keeps serving."""

from __future__ import annotations

import json
import uuid

import pytest

import busrpc
from busrpc import ErrorCode, Headers, Message, MessageBus

from .services import Failer, Failure, Greeter, Hello

CODES = [
    ErrorCode.NOT_FOUND,
    ErrorCode.INVALID_ARGUMENT,
    ErrorCode.PERMISSION_DENIED,
    ErrorCode.ALREADY_EXISTS,
    ErrorCode.UNPROCESSABLE_ENTITY,
    ErrorCode.UPSTREAM_CLIENT_ERROR,
    ErrorCode.INTERNAL,
    ErrorCode.DEADLINE_EXCEEDED,
    ErrorCode.UNAVAILABLE,
]


@pytest.mark.parametrize("code", CODES, ids=[c.value for c in CODES])
async def test_rpc_error_arrives_with_its_code_message_and_details(
    bus: MessageBus, peer_bus: MessageBus, ns: str, code: ErrorCode
) -> None:
    failure = Failure(code=code.value, message=f"{code.value} happened", details={"k": "v"})
    async with busrpc.Server(peer_bus, Failer(), namespace=ns) as server:
        failer = busrpc.client(Failer, bus, namespace=ns)
        with pytest.raises(busrpc.RpcError) as info:
            await failer.fail(failure)
        assert server.statistics().failed == 1
    error = info.value
    assert error.code is code
    assert error.message == f"{code.value} happened"
    assert dict(error.details) == {"k": "v"}
    assert error.http_status == code.http_status


async def test_deadline_and_unavailable_codes_arrive_as_their_subclasses(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Failer(), namespace=ns):
        failer = busrpc.client(Failer, bus, namespace=ns)
        with pytest.raises(busrpc.DeadlineExceeded, match="slow upstream"):
            await failer.fail(Failure(code="deadline_exceeded", message="slow upstream"))
        with pytest.raises(busrpc.Unavailable, match="draining"):
            await failer.fail(Failure(code="unavailable", message="draining"))


async def test_unknown_code_from_a_newer_peer_arrives_as_unknown(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Failer(), namespace=ns):
        failer = busrpc.client(Failer, bus, namespace=ns)
        with pytest.raises(busrpc.RpcError) as info:
            await failer.fail(Failure(code="something_newer", message="new"))
    assert info.value.code is ErrorCode.UNKNOWN
    assert info.value.message == "new"


async def test_plain_exception_arrives_as_internal_without_its_text(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Failer(), namespace=ns) as server:
        failer = busrpc.client(Failer, bus, namespace=ns)
        with pytest.raises(busrpc.RpcError) as info:
            await failer.crash(Hello(name="x"))
        assert server.statistics().failed == 1
    error = info.value
    assert type(error) is busrpc.RpcError
    assert error.code is ErrorCode.INTERNAL
    assert error.message == "internal error"
    assert dict(error.details) == {}
    for leak in ("secret", "Traceback", "ValueError", ".py"):
        assert leak not in str(error)


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"name": 5}', b"", b"[1, 2]"],
    ids=["garbage", "wrong-type", "empty", "list"],
)
async def test_malformed_request_is_answered_and_the_server_keeps_serving(
    bus: MessageBus, peer_bus: MessageBus, ns: str, body: bytes
) -> None:
    reply_to = f"{ns}.replies.{uuid.uuid4().hex[:8]}"
    async with (
        busrpc.Server(peer_bus, Greeter(), namespace=ns) as server,
        bus.subscribe(reply_to) as replies,
    ):
        await bus.publish(Message(f"{ns}.greeter.say_hello", body, reply=reply_to))
        reply = await replies.receive()
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        assert (await greeter.say_hello(Hello(name="next"))).text == "hello next"
        stats = server.statistics()
    assert reply.headers[Headers.ERROR] == "malformed_request"
    assert reply.headers[Headers.NATS_ERROR_CODE] == "400"
    assert reply.headers[Headers.NATS_ERROR]
    assert json.loads(reply.data)["code"] == "malformed_request"
    assert (stats.failed, stats.succeeded) == (1, 1)


async def test_unknown_content_type_is_not_acceptable(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    reply_to = f"{ns}.replies.1"
    async with (
        busrpc.Server(peer_bus, Greeter(), namespace=ns),
        bus.subscribe(reply_to) as replies,
    ):
        headers = {Headers.CONTENT_TYPE: "application/x-unheard-of"}
        await bus.publish(Message(f"{ns}.greeter.say_hello", b"{}", headers, reply_to))
        reply = await replies.receive()
    assert reply.headers[Headers.ERROR] == "not_acceptable"
    assert reply.headers[Headers.NATS_ERROR_CODE] == "406"


async def test_request_over_the_size_limit_is_resource_exhausted(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Greeter(), namespace=ns, max_message_size=100):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        with pytest.raises(busrpc.RpcError) as info:
            await greeter.say_hello(Hello(name="x" * 200))
        assert (await greeter.say_hello(Hello(name="small"))).text == "hello small"
    assert info.value.code is ErrorCode.RESOURCE_EXHAUSTED
