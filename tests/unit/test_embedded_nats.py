from __future__ import annotations

import os
import sys

import nats
import pytest
from nats.aio.msg import Msg

from busrpc.cli._nats_server import EmbeddedNatsServer, find_nats_server

pytestmark = pytest.mark.slow  # spawns a nats-server process


def test_find_nats_server_returns_an_executable() -> None:
    assert os.access(find_nats_server(), os.X_OK)


async def test_request_reply_round_trip_then_process_is_gone() -> None:
    async with EmbeddedNatsServer() as srv:
        assert srv.url.startswith("nats://127.0.0.1:")
        assert srv.returncode is None
        nc = await nats.connect(srv.url, allow_reconnect=False)
        try:

            async def echo(msg: Msg) -> None:
                await msg.respond(b"pong:" + msg.data)

            await nc.subscribe("busrpc.test.embedded", cb=echo)
            await nc.flush()  # the SUB must reach the server before the request does
            reply = await nc.request("busrpc.test.embedded", b"ping", timeout=5)
        finally:
            await nc.close()
        assert reply.data == b"pong:ping"
    assert srv.returncode is not None


async def test_aclose_is_idempotent() -> None:
    srv = EmbeddedNatsServer()
    async with srv:
        await srv.aclose()
        assert srv.returncode is not None
    await srv.aclose()


async def test_server_that_exits_during_startup_reports_its_exit_code() -> None:
    # The Python interpreter rejects nats-server's "-a" flag and exits with code 2:
    # a portable stand-in for a binary that cannot start.
    srv = EmbeddedNatsServer(binary=sys.executable)
    with pytest.raises(RuntimeError, match="exited during startup with code 2"):
        await srv.__aenter__()
    assert srv.returncode == 2
