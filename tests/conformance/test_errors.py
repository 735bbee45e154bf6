"""Errors: the handler's code, message and details reach the caller; bugs don't leak;
malformed requests are answered, and the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

import busrpc
from busrpc import ErrorCode, Headers, Message, MessageBus
from busrpc._core import JSONValue

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


# -- exact messages and JSON details (issue 02) ----------------------------------------------

DETAILS: dict[str, JSONValue] = {
    "string": "  spaced\r\nand\ttabbed  ",
    "int": -42,
    "big": 2**70,
    "float": 1.5,
    "true": True,
    "false": False,
    "none": None,
    "list": [1, "two", [3.0], {"four": 4}, None],
    "object": {"nested": {"deeper": ["ünïcødé ✓"]}, "empty": {}},
    "empty_list": [],
}

MESSAGES = {
    "newline": "line one\nline two",
    "spaces": "  leading and trailing spaces  ",
    "crlf-injection": "boom\r\nBusrpc-Injected: yes\r\n\r\nnot a body",
    "tab-unicode": "tab\tünïcødé ✓ 日本語",
    "only-newlines": "\r\n\n",
    "long": "x" * 3000 + "\nend",
}

RAISED: dict[str, Exception] = {
    **{
        key: busrpc.RpcError("failed_precondition", text, DETAILS) for key, text in MESSAGES.items()
    },
    "not-implemented": NotImplementedError("secret plans for v2"),
}


@busrpc.service("raiser")
class Raiser:
    """Raises the exception its request names."""

    @busrpc.rpc
    async def fail(self, key: str) -> str:
        raise RAISED[key]


@pytest.mark.parametrize("key", list(MESSAGES))
async def test_message_and_details_arrive_exactly_as_raised(
    bus: MessageBus, peer_bus: MessageBus, ns: str, key: str
) -> None:
    async with busrpc.Server(peer_bus, Raiser(), namespace=ns):
        raiser = busrpc.client(Raiser, bus, namespace=ns)
        with pytest.raises(busrpc.RpcError) as info:
            await raiser.fail(key, timeout=10)
    error = info.value
    assert error.code is ErrorCode.FAILED_PRECONDITION
    assert error.message == MESSAGES[key]
    assert error.details == DETAILS


@pytest.mark.parametrize("key", list(MESSAGES))
async def test_the_error_header_is_a_single_line_and_the_body_exact(
    bus: MessageBus, peer_bus: MessageBus, ns: str, key: str
) -> None:
    reply_to = f"{ns}.replies.{uuid.uuid4().hex[:8]}"
    async with (
        busrpc.Server(peer_bus, Raiser(), namespace=ns),
        bus.subscribe(reply_to) as replies,
    ):
        await bus.publish(Message(f"{ns}.raiser.fail", json.dumps(key).encode(), reply=reply_to))
        reply = await replies.receive()
    header = reply.headers[Headers.NATS_ERROR]
    assert header
    assert "\r" not in header
    assert "\n" not in header
    assert len(header) <= 1024
    assert "Busrpc-Injected" not in reply.headers
    assert reply.headers[Headers.ERROR] == "failed_precondition"
    body = json.loads(reply.data)
    assert body["message"] == MESSAGES[key]
    assert body["details"] == DETAILS


async def test_not_implemented_arrives_as_unimplemented_without_its_text(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Raiser(), namespace=ns):
        raiser = busrpc.client(Raiser, bus, namespace=ns)
        with pytest.raises(busrpc.RpcError) as info:
            await raiser.fail("not-implemented", timeout=10)
    assert info.value.code is ErrorCode.UNIMPLEMENTED
    assert info.value.http_status == 501
    assert "secret" not in str(info.value)


# An error body nested deeper than any decoder recurses: it must not crash the caller.
HOSTILE = b'{"code":"not_found","details":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"

ERROR_HEADERS = {
    Headers.ERROR: "not_found",
    Headers.NATS_ERROR_CODE: "404",
    Headers.NATS_ERROR: "header text",
}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"code":"not_found","message":"body\\ntext"}', "body\ntext"),
        (b'{"code":"not_found"}', "header text"),  # no message in the body
        (b"a foreign service's error page", "header text"),
        (b"", "header text"),
        (HOSTILE, "header text"),
    ],
    ids=["body-wins", "body-without-message", "foreign-body", "no-body", "hostile-nesting"],
)
async def test_the_json_body_wins_over_the_header(
    bus: MessageBus, peer_bus: MessageBus, ns: str, body: bytes, message: str
) -> None:
    subject = f"{ns}.greeter.say_hello"
    async with (
        peer_bus.subscribe(subject) as requests,
        asyncio.timeout(10),
        asyncio.TaskGroup() as tasks,
    ):

        async def answer() -> None:
            request = await requests.receive()
            assert request.reply is not None
            await peer_bus.publish(Message(request.reply, body, ERROR_HEADERS))

        tasks.create_task(answer())
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        with pytest.raises(busrpc.RpcError) as info:
            await greeter.say_hello(Hello(name="x"), timeout=10)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert info.value.message == message
