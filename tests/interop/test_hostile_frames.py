"""Hostile bytes from another NATS client must not stop a busrpc connection.

nats-server passes a message's header block and subjects on unchecked, and nats-py parses
them inside its read loop: one that makes it raise there stops every delivery on the
connection until a ping timeout, minutes later. Here a raw TCP client, speaking the NATS
protocol by hand, publishes such frames to a busrpc subscription, each followed by a good
message, which must still arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from nats.aio.client import Client

from busrpc.bus import Subscription
from busrpc.bus.nats import _HardenedClient
from busrpc.testing import DEFAULT_TEST_NATS_URL, open_test_bus

GUARD = 10.0  # a hang fails the test instead of the run; not a timing assertion
GOOD = b"good"

# name -> (reply subject, header block); the body is always b"bad"
FRAMES: dict[str, tuple[bytes, bytes]] = {
    "non-utf8 status": (b"", b"NATS/1.0 \xff\xfe\xfd\r\n\r\n"),
    "non-utf8 description": (b"", b"NATS/1.0 503 \xff\xfe\r\nA: 1\r\n\r\n"),
    "non-ascii digits in status": (b"", "NATS/1.0 \u0661\u0662\u0663\r\n\r\n".encode()),
    "no status line": (b"", b"Busrpc-Deadline: 1\r\n\r\n"),
    "header line without colon": (b"", b"NATS/1.0\r\nno colon here\r\n\r\n"),
    "huge header": (b"", b"NATS/1.0\r\nBusrpc-Meta-X: " + b"x" * 300_000 + b"\r\n\r\n"),
    "huge digits in a value": (b"", b"NATS/1.0\r\nBusrpc-Deadline: " + b"9" * 5000 + b"\r\n\r\n"),
    "non-ascii digits in a value": (
        b"",
        "NATS/1.0\r\nBusrpc-Deadline: \u0661\u0662\u0663\r\n\r\n".encode(),
    ),
    "non-utf8 name and value": (b"", b"NATS/1.0\r\n\xff: 1\r\nA: \xff\r\n\r\n"),
    "empty block": (b"", b"\r\n\r\n"),
    "truncated block": (b"", b"NATS/1.0"),
    "non-utf8 reply subject": (b"reply.\xff", b""),
    "non-utf8 reply with headers": (b"reply.\xfe", b"NATS/1.0\r\nA: 1\r\n\r\n"),
}


class RawNats:
    """A NATS client written by hand: CONNECT with headers, then raw frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, *frames: bytes) -> None:
        """Write *frames*, then PING, and return at the PONG: the broker has them."""
        self.writer.write(b"".join(frames) + b"PING\r\n")
        await self.writer.drain()
        while (line := await self.reader.readline()) != b"PONG\r\n":
            assert line and not line.startswith(b"-ERR"), line


@contextlib.asynccontextmanager
async def raw_nats() -> AsyncIterator[RawNats]:
    url = urlsplit(os.environ.get("BUSRPC_TEST_NATS_URL") or DEFAULT_TEST_NATS_URL)
    reader, writer = await asyncio.open_connection(url.hostname, url.port or 4222)
    try:
        info = await reader.readline()
        assert info.startswith(b"INFO "), info
        raw = RawNats(reader, writer)
        await raw.send(b'CONNECT {"headers":true,"verbose":false,"pedantic":false}\r\n')
        yield raw
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def hpub(subject: bytes, reply: bytes, headers: bytes, body: bytes) -> bytes:
    reply_part = reply + b" " if reply else b""
    size = len(headers) + len(body)
    return b"HPUB %s %s%d %d\r\n%s%s\r\n" % (subject, reply_part, len(headers), size, headers, body)


def pub(subject: bytes, reply: bytes, body: bytes) -> bytes:
    reply_part = reply + b" " if reply else b""
    return b"PUB %s %s%d\r\n%s\r\n" % (subject, reply_part, len(body), body)


async def until_good(sub: Subscription) -> list[bytes]:
    """The messages up to the good one, which must come."""
    seen = []
    async with asyncio.timeout(GUARD):
        while (data := (await sub.receive()).data) != GOOD:
            seen.append(data)
    return seen


@pytest.mark.parametrize("name", list(FRAMES))
async def test_a_hostile_frame_never_stops_delivery(
    name: str, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    reply, headers = FRAMES[name]
    subject = f"{ns}.hostile".encode()
    caplog.set_level(logging.WARNING)
    async with (
        open_test_bus("nats") as bus,
        bus.subscribe(subject.decode()) as sub,
        raw_nats() as raw,
    ):
        for _ in range(3):  # the same frame again and again: each time the connection lives
            bad = hpub(subject, reply, headers, b"bad") if headers else pub(subject, reply, b"bad")
            await raw.send(bad, pub(subject, b"", GOOD))
            assert set(await until_good(sub)) <= {b"bad"}  # delivered or dropped, not mangled
    assert len(caplog.records) <= 3, [r.getMessage() for r in caplog.records]


async def test_a_non_utf8_subject_never_stops_a_wildcard_subscription(
    ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    prefix = ns.encode()
    async with open_test_bus("nats") as bus, bus.subscribe(f"{ns}.>") as sub, raw_nats() as raw:
        await raw.send(pub(prefix + b".\xff", b"", b"bad"), pub(prefix + b".ok", b"", GOOD))
        assert await until_good(sub) == []  # that subject cannot be a str: dropped
    assert [r.getMessage() for r in caplog.records] == ["message with a non-UTF-8 subject dropped"]


async def test_what_a_malformed_header_block_keeps(ns: str) -> None:
    """The lines that parse survive a bad status line; the status itself does not."""
    subject = f"{ns}.partial".encode()
    block = b"NATS/1.0 5\xff3 bad\r\nContent-Type: application/msgpack\r\nno colon\r\n\r\n"
    async with (
        open_test_bus("nats") as bus,
        bus.subscribe(subject.decode()) as sub,
        raw_nats() as raw,
    ):
        await raw.send(hpub(subject, b"", block, b"body"))
        async with asyncio.timeout(GUARD):
            message = await sub.receive()
    assert message.data == b"body"
    assert message.headers == {"Content-Type": "application/msgpack"}


def test_hardened_client_builds_messages_as_nats_py_does() -> None:
    """The NATS bus's client copies nats-py's message building (to guard it at no cost
    per message): a well-formed message must come out the same as nats-py's own."""
    args = (7, b"greeter.say_hello", b"_INBOX.a.1.d2", b"{}", {"Content-Type": "x"})
    ours, theirs = _HardenedClient()._build_message(*args), Client()._build_message(*args)
    assert type(ours) is type(theirs)
    for field in ("subject", "reply", "data", "headers", "_sid"):
        assert getattr(ours, field) == getattr(theirs, field), field
