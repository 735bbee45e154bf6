"""Failure behaviour against real server processes on the real NATS broker.

Each test runs `_server_proc.py` in its own process (or, for `kill()`, a server in this
process) under a fresh namespace, so tests cannot see each other's servers. Readiness and
progress come from the lines the server process prints (``READY <id>``, ``CALL <name>``):
nothing here sleeps to synchronise, and every process and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import nats.errors
import pytest
from _server_proc import Delay, Echo, FaultService

import busrpc
from busrpc.bus import Overflow
from busrpc.bus.nats import NatsBus

pytestmark = pytest.mark.slow  # spawns server processes; needs the NATS broker

NATS_URL = "nats://127.0.0.1:4222"
SCRIPT = Path(__file__).with_name("_server_proc.py")
GUARD = 10.0  # upper bound on any single wait: a hang fails the test instead of the run


class ServerProcess:
    """A running `_server_proc.py`: read its stdout lines, signal it, collect its stderr."""

    def __init__(self, proc: asyncio.subprocess.Process, server_id: str) -> None:
        self.proc = proc
        self.server_id = server_id
        self.stderr = ""

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def expect(self, line: str) -> None:
        """Read stdout until *line* appears; fail if the process exits first."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(GUARD):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    await self.finish()
                    raise AssertionError(
                        f"server {self.server_id} exited ({self.returncode}) before printing "
                        f"{line!r}; stderr:\n{self.stderr}"
                    )
                if raw.decode().rstrip("\n") == line:
                    return

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    async def finish(self) -> int:
        """Wait for the process to exit, read the rest of its output, return its code."""
        async with asyncio.timeout(GUARD):
            _, err = await self.proc.communicate()
        self.stderr += err.decode(errors="replace")
        assert self.proc.returncode is not None
        return self.proc.returncode


@contextlib.asynccontextmanager
async def server_process(
    namespace: str, server_id: str, *extra: str
) -> AsyncIterator[ServerProcess]:
    """Start a server process and return once it serves; it is killed on the way out."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "--url",
        NATS_URL,
        "--namespace",
        namespace,
        "--server-id",
        server_id,
        *extra,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    server = ServerProcess(proc, server_id)
    try:
        await server.expect(f"READY {server_id}")
        yield server
    finally:
        if proc.returncode is None:
            proc.kill()
        await server.finish()  # reaps it and closes the pipes (no ResourceWarning)


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex}"


@pytest.fixture
async def bus() -> AsyncIterator[NatsBus]:
    async with NatsBus(NATS_URL) as bus:
        yield bus


async def stop(task: asyncio.Task[object]) -> None:
    task.cancel()
    await asyncio.wait([task])


async def wait_until_broker_forgets(faults: FaultService, server_id: str) -> None:
    """Return once the broker has dropped the subscriptions of a SIGKILLed server.

    The kernel closes the dead process's socket, but the broker notices on its own
    schedule; until then a request may still be routed to the dead connection. A direct
    call to the dead server answers ``unavailable`` (no responders) once it has noticed.
    """
    async with asyncio.timeout(GUARD):
        while True:
            try:
                await faults.echo(Echo(text="probe"), server_id=server_id, timeout=0.5)
            except busrpc.Unavailable:
                return
            except busrpc.DeadlineExceeded:
                continue  # delivered to the dead connection: the broker has not noticed yet
            raise AssertionError(f"killed server {server_id} answered")


async def test_server_sigkilled_mid_call_caller_gets_deadline_then_no_responders(
    bus: NatsBus, namespace: str
) -> None:
    faults = busrpc.client(FaultService, bus, namespace=namespace)
    async with server_process(namespace, "s1") as server:
        call = asyncio.create_task(faults.hang(Echo(text="x"), timeout=2))
        try:
            await server.expect("CALL hang")  # the request reached the handler
            server.kill()
            assert await server.finish() == -signal.SIGKILL
            async with asyncio.timeout(GUARD):
                with pytest.raises(busrpc.DeadlineExceeded):
                    await call
        finally:
            await stop(call)
    with pytest.raises(busrpc.Unavailable, match=f"no responders for {namespace}.faults.echo"):
        await faults.echo(Echo(text="x"), timeout=5)


async def test_two_servers_one_sigkilled_while_idle_survivor_takes_every_call(
    bus: NatsBus, namespace: str
) -> None:
    faults = busrpc.client(FaultService, bus, namespace=namespace)
    async with server_process(namespace, "s1") as s1, server_process(namespace, "s2"):
        for server_id in ("s1", "s2"):  # both serve before the kill
            assert await faults.echo(Echo(text=server_id), server_id=server_id, timeout=5) == Echo(
                text=server_id
            )
        s1.kill()
        assert await s1.finish() == -signal.SIGKILL
        await wait_until_broker_forgets(faults, "s1")
        replies = [await faults.echo(Echo(text=f"m{i}"), timeout=5) for i in range(20)]
        assert replies == [Echo(text=f"m{i}") for i in range(20)]
        assert await faults.echo(Echo(text="s2"), server_id="s2", timeout=5) == Echo(text="s2")


async def test_hanging_handler_gives_deadline_exceeded_and_server_keeps_serving(
    bus: NatsBus, namespace: str
) -> None:
    faults = busrpc.client(FaultService, bus, namespace=namespace)
    async with server_process(namespace, "s1") as server:
        async with asyncio.timeout(GUARD):
            with pytest.raises(busrpc.DeadlineExceeded):
                await faults.hang(Echo(text="x"), timeout=1)
        assert server.returncode is None
        assert await faults.echo(Echo(text="after"), timeout=5) == Echo(text="after")
        server.terminate()
        assert await server.finish() == 0
    for fatal in ("Traceback", "ERROR", "CRITICAL"):
        assert fatal not in server.stderr


async def test_handler_exception_is_internal_error_without_detail_and_logged_on_server(
    bus: NatsBus, namespace: str
) -> None:
    faults = busrpc.client(FaultService, bus, namespace=namespace)
    async with server_process(namespace, "s1") as server:
        with pytest.raises(busrpc.RpcError) as info:
            await faults.boom(Echo(text="x"), timeout=5)
        error = info.value
        assert error.code is busrpc.ErrorCode.INTERNAL
        assert error.message == "internal error"
        for text in (
            str(error),
            repr(error),
            error.message,
            repr(error.details),
        ):
            assert "secret detail" not in text
        assert await faults.echo(Echo(text="after"), timeout=5) == Echo(text="after")
        server.terminate()
        assert await server.finish() == 0
    assert "ValueError: secret detail" in server.stderr
    assert "Traceback" in server.stderr


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe not json", b"", b"[1,2]", b'{"text": 123}'],
    ids=["not-json", "empty", "array", "wrong-field-type"],
)
async def test_malformed_request_gets_malformed_request_error_and_server_keeps_serving(
    bus: NatsBus, namespace: str, payload: bytes
) -> None:
    faults = busrpc.client(FaultService, bus, namespace=namespace)
    subject = f"{namespace}.faults.echo"
    async with server_process(namespace, "s1") as server:
        nc = await nats.connect(NATS_URL)
        try:
            reply = await nc.request(subject, payload, timeout=5)
            # Malformed and nobody to tell: the server must shrug it off.
            await nc.publish(subject, payload)
            await nc.flush()  # it reaches the server before the call below does
        finally:
            await nc.close()
        assert reply.headers is not None
        assert reply.headers[busrpc.Headers.ERROR] == "malformed_request"
        assert reply.headers[busrpc.Headers.NATS_ERROR_CODE] == "400"
        assert reply.headers[busrpc.Headers.SERVER] == "s1"
        assert json.loads(reply.data)["code"] == "malformed_request"
        assert await faults.echo(Echo(text="good"), timeout=5) == Echo(text="good")
        assert server.returncode is None


async def test_oversized_requests(bus: NatsBus, namespace: str) -> None:
    faults = busrpc.client(FaultService, bus, namespace=namespace)
    async with server_process(namespace, "s1", "--max-message-size", "1024"):
        with pytest.raises(busrpc.RpcError) as info:
            await faults.echo(Echo(text="x" * 4096), timeout=5)
        assert info.value.code is busrpc.ErrorCode.RESOURCE_EXHAUSTED
        assert await faults.echo(Echo(text="small"), timeout=5) == Echo(text="small")

        # Past the broker's max_payload, nats-py refuses to publish at all.
        too_big = Echo(text="x" * (bus.client.max_payload + 1))
        with pytest.raises(busrpc.TransportError) as refused:
            await faults.echo(too_big, timeout=5)
        assert isinstance(refused.value, busrpc.BusrpcError)
        assert not isinstance(refused.value, (busrpc.RpcError, nats.errors.Error))
        assert await faults.echo(Echo(text="still"), timeout=5) == Echo(text="still")


async def test_sigterm_lets_in_flight_call_finish_then_exits_zero(
    bus: NatsBus, namespace: str
) -> None:
    faults = busrpc.client(FaultService, bus, namespace=namespace)
    async with server_process(namespace, "s1") as server:
        call = asyncio.create_task(faults.slow_then_reply(Delay(seconds=0.5), timeout=5))
        try:
            await server.expect("CALL slow")
            server.terminate()
            async with asyncio.timeout(GUARD):
                assert await call == Echo(text="done")
        finally:
            await stop(call)
        assert await server.finish() == 0
    # The server unsubscribed before it replied, on the same connection: the broker
    # already knows nobody serves the method.
    with pytest.raises(busrpc.Unavailable, match="no responders"):
        await faults.echo(Echo(text="x"), timeout=5)


async def test_kill_answers_in_flight_call_unavailable_at_once(
    bus: NatsBus, namespace: str
) -> None:
    started = asyncio.Event()

    def announce(name: str) -> None:
        if name == "hang":
            started.set()

    faults = busrpc.client(FaultService, bus, namespace=namespace)
    async with (
        NatsBus(NATS_URL) as server_bus,
        busrpc.Server(server_bus, FaultService(announce), namespace=namespace) as server,
    ):
        call = asyncio.create_task(faults.hang(Echo(text="x"), timeout=60))
        try:
            async with asyncio.timeout(GUARD):
                await started.wait()
            await server.kill()
            async with asyncio.timeout(GUARD):  # far below the call's own 60 s
                with pytest.raises(busrpc.Unavailable):
                    await call
        finally:
            await stop(call)
        assert server.statistics().in_flight == 0


async def test_slow_consumer_memory_is_bounded(bus: NatsBus, namespace: str) -> None:
    flood_subject = f"{namespace}.flood"
    marker_subject = f"{namespace}.marker"
    async with (
        bus.subscribe(flood_subject, max_pending=10, overflow=Overflow.DROP_OLDEST) as flood,
        bus.subscribe(marker_subject) as marker,
    ):
        for i in range(1000):
            await bus.publish(busrpc.Message(flood_subject, str(i).encode()))
        await bus.publish(busrpc.Message(marker_subject, b"end"))
        # One publisher, one subscriber connection: the broker delivers in order, so the
        # marker arrives after all 1000 flood messages were handed to the subscription.
        async with asyncio.timeout(GUARD):
            assert (await marker.receive()).data == b"end"
        stats = flood.statistics()
        assert stats.delivered == 0
        assert stats.pending <= 10
        assert stats.dropped > 0
        assert stats.pending + stats.dropped == 1000
        assert bus.statistics().dropped >= stats.dropped
