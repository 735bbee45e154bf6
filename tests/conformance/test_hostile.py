"""Hostile input: raw requests no busrpc client would send, and garbage replies.

A request with a reply subject gets exactly one answer (an error, or a result if it is
valid after all); a request whose deadline has clearly passed gets none. Nothing breaks
the server or a client: a normal call afterwards, or alongside, still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import busrpc
from busrpc import Headers, Message, MessageBus, ServerCall, Subscription
from busrpc.rpc import RpcClient, ServerInterceptor, ServerNext

from .conftest import OpenBus
from .services import Greeter, Greeting, Hello, Sleeper

VALID = msgspec.json.encode(Hello(name="fence"))
_rng = random.Random(20260202)
RANDOM_BODIES = [bytes(_rng.getrandbits(8) for _ in range(n)) for n in (1, 7, 64, 1000, 65_536)]


def arabic(text: str) -> str:
    """*text* with ASCII digits as Arabic-Indic ones (``str.isdigit`` says yes to them)."""
    return text.translate({ord("0") + d: 0x0660 + d for d in range(10)})


RESULT = "result"
NO_REPLY = "no reply"

# name: (headers, body, reply token (after the watched prefix), what comes back)
REQUESTS: dict[str, tuple[dict[str, str], bytes, str, str]] = {
    "deadline of 5000 digits": ({Headers.DEADLINE: "9" * 5000}, VALID, "r{n}", "malformed_request"),
    "deadline of 20 digits": ({Headers.DEADLINE: "9" * 20}, VALID, "r{n}", "malformed_request"),
    "deadline of 16 digits": ({Headers.DEADLINE: "9" * 16}, VALID, "r{n}", RESULT),
    "deadline in arabic digits": (
        {Headers.DEADLINE: arabic("123")},
        VALID,
        "r{n}",
        "malformed_request",
    ),
    "negative deadline": ({Headers.DEADLINE: "-5"}, VALID, "r{n}", "malformed_request"),
    "empty deadline": ({Headers.DEADLINE: ""}, VALID, "r{n}", "malformed_request"),
    "deadline with spaces": (
        {Headers.DEADLINE: "9999999 9999999"},
        VALID,
        "r{n}",
        "malformed_request",
    ),
    "deadline 1e20": ({Headers.DEADLINE: "1e20"}, VALID, "r{n}", "malformed_request"),
    "deadline zero": ({Headers.DEADLINE: "0"}, VALID, "r{n}", NO_REPLY),
    "reply token of 30 digits": ({}, VALID, "{n}.d" + "9" * 30, RESULT),
    "reply token of 16 digits": ({}, VALID, "{n}.d" + "9" * 16, RESULT),
    "reply token in arabic digits": ({}, VALID, "{n}.d" + arabic("12345678901234"), RESULT),
    "reply token of 13 zeros": ({}, VALID, "{n}.d" + "0" * 13, NO_REPLY),
    "reply token d alone": ({}, VALID, "{n}.d", RESULT),
    "reply token with many dots": ({}, VALID, "{n}.z.w.d99999999999999", RESULT),
    "huge reply subject": ({}, VALID, "{n}." + "h" * 3000, RESULT),
    "huge reply subject, busrpc shaped": (
        {},
        VALID,
        "{n}" + "1" * 3000 + ".d99999999999999",
        RESULT,
    ),
    "content type garbage": ({Headers.CONTENT_TYPE: "garbage/x"}, VALID, "r{n}", "not_acceptable"),
    "content type empty": ({Headers.CONTENT_TYPE: ""}, VALID, "r{n}", "not_acceptable"),
    "content type of 10k": ({Headers.CONTENT_TYPE: "a" * 10_000}, VALID, "r{n}", "not_acceptable"),
    "10k header value": ({"X-Junk": "x" * 10_000}, VALID, "r{n}", RESULT),
    "10k metadata": ({"Busrpc-Meta-user": "u" * 10_000}, VALID, "r{n}", RESULT),
    "10k caller id": ({Headers.CALLER: "c" * 10_000}, VALID, "r{n}", RESULT),
    "error header on a request": ({Headers.ERROR: "x" * 10_000}, VALID, "r{n}", RESULT),
    "empty body": ({}, b"", "r{n}", "malformed_request"),
    "json of the wrong type": ({}, b'{"name": 5}', "r{n}", "malformed_request"),
    "json null": ({}, b"null", "r{n}", "malformed_request"),
    "deeply nested json": ({}, b"[" * 100_000, "r{n}", "malformed_request"),
    "json with trailing garbage": ({}, VALID + b"\x00\xff", "r{n}", "malformed_request"),
    "lone surrogate escape": ({}, b'{"name": "\\ud800"}', "r{n}", "malformed_request"),
    "unicode escapes": ({}, b'{"name": "\\u00e9\\ud83d\\ude00"}', "r{n}", RESULT),
    **{
        f"random body of {len(body)} bytes": ({}, body, "r{n}", "malformed_request")
        for body in RANDOM_BODIES
    },
}


class Watch:
    """The test's own reply subjects, ``_INBOX.{ns}.*``, and what arrives on them."""

    def __init__(self, bus: MessageBus, sub: Subscription, ns: str) -> None:
        self.bus = bus
        self.sub = sub
        self.prefix = f"_INBOX.{ns}."
        self.count = 0

    async def ask(
        self, subject: str, headers: dict[str, str], data: bytes, token: str
    ) -> list[Message]:
        """Publish one raw request, replying to *token* after the watched prefix (``{n}``
        is a number of its own), then a valid one behind it (a fence); return every reply
        the raw one got before the fence was answered.

        The server runs one call at a time, in order, and sends its replies in order."""
        self.count += 1
        reply = self.prefix + token.replace("{n}", str(self.count))
        fence = f"{self.prefix}fence{self.count}"
        await self.bus.publish(Message(subject, data, headers, reply))
        await self.bus.publish(Message(subject, VALID, {}, fence))
        got: list[Message] = []
        while True:
            message = await self.sub.receive()
            if message.subject == fence:
                assert msgspec.json.decode(message.data, type=Greeting).text == "hello fence"
                return got
            assert message.subject == reply, message.subject  # nothing else comes here
            got.append(message)


@contextlib.asynccontextmanager
async def watching(bus: MessageBus, ns: str) -> AsyncIterator[Watch]:
    async with bus.subscribe(f"_INBOX.{ns}.>") as sub:
        yield Watch(bus, sub, ns)


@pytest.mark.parametrize("case", list(REQUESTS))
async def test_hostile_request_gets_one_answer_and_the_server_serves_on(
    bus: MessageBus, peer_bus: MessageBus, ns: str, case: str
) -> None:
    headers, data, token, expected = REQUESTS[case]
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    async with (
        busrpc.Server(peer_bus, Greeter(), namespace=ns, max_concurrency=1) as server,
        watching(bus, ns) as watch,
        asyncio.timeout(10),  # a hang guard, not a timing
    ):
        got = await watch.ask(f"{ns}.greeter.say_hello", headers, data, token)
        after = await greeter.say_hello(Hello(name="after"), timeout=30)
        stats = server.statistics()
    assert after.text == "hello after"
    if expected == NO_REPLY:
        assert got == []
        assert stats.expired == 1
        return
    assert len(got) == 1, got
    (reply,) = got
    if expected == RESULT:
        assert Headers.ERROR not in reply.headers, reply.headers
        msgspec.json.decode(reply.data, type=Greeting)
    else:
        assert reply.headers.get(Headers.ERROR) == expected, reply.headers
        assert stats.failed == 1


async def test_hostile_control_messages_change_nothing(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    junk = [b"", b"\xff\xfe" * 100, b"_INBOX." + b"9" * 5000, b"x" * 100_000]
    async with busrpc.Server(peer_bus, Greeter(), namespace=ns) as server, asyncio.timeout(10):
        for data in junk:
            await bus.publish(Message(f"{ns}.greeter._cancel", data, {Headers.DEADLINE: "-1"}))
            await bus.publish(Message(f"{ns}.greeter._describe", data))  # no reply subject
        after = await greeter.say_hello(Hello(name="after"), timeout=30)
        stats = server.statistics()
    assert after.text == "hello after"
    assert (stats.succeeded, stats.failed, stats.cancelled) == (1, 0, 0)


# -- hostile replies ----------------------------------------------------------------------

GARBAGE_REPLIES: dict[str, tuple[dict[str, str], bytes]] = {
    "10k error code": ({Headers.ERROR: "x" * 10_000}, b""),
    "empty error code": ({Headers.ERROR: ""}, b""),
    "22-digit status": ({Headers.NATS_ERROR_CODE: "9" * 22}, b""),
    "5000-digit status": ({Headers.NATS_ERROR_CODE: "9" * 5000}, b""),
    "arabic-digit status": ({Headers.NATS_ERROR_CODE: arabic("503")}, b""),
    "negative status": ({Headers.NATS_ERROR_CODE: "-503"}, b""),
    "status not a number": ({Headers.NATS_ERROR_CODE: "teapot"}, b""),
    "error with a body that is not json": ({Headers.ERROR: "internal"}, b"\xff\xfe{"),
    "error with a body of the wrong shape": (
        {Headers.ERROR: "internal"},
        b'{"code": 5, "message": [], "details": [1]}',
    ),
    "error with 10k details": (
        {Headers.ERROR: "internal"},
        msgspec.json.encode({"code": "internal", "details": {"k" * 5000: "v" * 5000}}),
    ),
    "forged no responders": (
        {
            Headers.ERROR: "unavailable",
            Headers.NATS_ERROR_CODE: "503",
            Headers.NATS_ERROR: "no responders",
        },
        b"",
    ),
    "result that is not json": ({}, b"\xff\xfe not json"),
    "result of the wrong type": ({}, b'{"text": 5}'),
    "content type garbage": ({Headers.CONTENT_TYPE: "garbage/x"}, b'{"text": "x"}'),
    "content type of 10k": ({Headers.CONTENT_TYPE: "a" * 10_000}, b'{"text": "x"}'),
}


def recording(replies: list[str]) -> ServerInterceptor:
    """A server interceptor that records each call's reply subject."""

    async def intercept(call: ServerCall, next_: ServerNext) -> object:
        assert call.reply is not None
        replies.append(call.reply)
        return await next_(call)

    return intercept


async def test_garbage_on_a_clients_inbox_never_breaks_it(
    bus: MessageBus, peer_bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    sleeper = Sleeper()
    client = busrpc.client(Sleeper, bus, namespace=ns)
    attacker = await open_bus()
    async with busrpc.Server(peer_bus, sleeper, namespace=ns), asyncio.timeout(10):
        good = asyncio.create_task(client.nap(Hello(name="good"), timeout=30))
        await sleeper.wait_started(1)
        inbox = f"_INBOX.{RpcClient(bus).client_id}"
        tokens = ["1", "zz", "1t1.d1", "99999t0.d" + "9" * 30, "x" * 3000, arabic("3t3.d3")]
        for token in tokens:
            for headers, data in GARBAGE_REPLIES.values():
                await attacker.publish(Message(f"{inbox}.{token}", data, headers))
        sleeper.release.set()
        reply = await good
        after = await client.nap(Hello(name="after"), timeout=30)
    assert reply.text == "nap good"
    assert after.text == "nap after"


@pytest.mark.parametrize("case", list(GARBAGE_REPLIES))
async def test_a_forged_reply_to_a_call_is_an_rpc_error(
    bus: MessageBus, peer_bus: MessageBus, open_bus: OpenBus, ns: str, case: str
) -> None:
    headers, data = GARBAGE_REPLIES[case]
    sleeper = Sleeper()
    replies: list[str] = []
    client = busrpc.client(Sleeper, bus, namespace=ns)
    attacker = await open_bus()
    server = busrpc.Server(peer_bus, sleeper, namespace=ns, interceptors=[recording(replies)])
    async with server, asyncio.timeout(10):
        victim = asyncio.create_task(client.nap(Hello(name="victim"), timeout=30))
        await sleeper.wait_started(1)
        await attacker.publish(Message(replies[0], data, headers))  # it beats the server
        with pytest.raises(busrpc.RpcError):
            await victim
        sleeper.release.set()
        after = await client.nap(Hello(name="after"), timeout=30)
    assert after.text == "nap after"


# -- fuzz ---------------------------------------------------------------------------------

HEADER_NAMES = st.sampled_from(
    [
        Headers.DEADLINE,
        Headers.CONTENT_TYPE,
        Headers.ERROR,
        Headers.CALLER,
        Headers.REQUEST_ID,
        Headers.NATS_ERROR_CODE,
        "Busrpc-Meta-user",
        "traceparent",
    ]
) | st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,30}\Z")
# Printable values only: a CR or LF would break the sender's own NATS connection.
HEADER_VALUES = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=200
) | st.from_regex(r"\A-?[0-9]{1,40}\Z")


class Target:
    """A server and the test's watched reply subjects, shared by the fuzz examples."""

    def __init__(self, watch: Watch, server: busrpc.Server, subject: str) -> None:
        self.watch = watch
        self.server = server
        self.subject = subject


@pytest.fixture
async def target(bus: MessageBus, peer_bus: MessageBus, ns: str) -> AsyncIterator[Target]:
    async with (
        busrpc.Server(peer_bus, Greeter(), namespace=ns, max_concurrency=1) as server,
        watching(bus, ns) as watch,
    ):
        yield Target(watch, server, f"{ns}.greeter.say_hello")


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4),
    data=st.binary(max_size=512) | st.just(VALID),
)
async def test_fuzzed_requests_get_at_most_one_answer(
    target: Target, headers: dict[str, str], data: bytes
) -> None:
    async with asyncio.timeout(10):
        got = await target.watch.ask(target.subject, headers, data, "r{n}")
    wire = headers.get(Headers.DEADLINE)
    valid = wire is not None and wire.isascii() and wire.isdigit() and 0 < len(wire) <= 16
    now_ms = time.time() * 1000
    if wire is not None and valid and int(wire) < now_ms - 60_000:
        assert got == []  # the caller gave up long ago: dropped
    elif not valid or wire is None or int(wire) > now_ms + 60_000:
        assert len(got) == 1, (headers, data, got)
    else:  # about now: answered or dropped, never twice
        assert len(got) <= 1
