"""A nats-server of a test's own, on a fixed free port: kill it, start it again."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from busrpc.cli._nats_server import find_nats_server

GUARD = 20.0  # upper bound on any single wait: a hang fails the test instead of the run
HOST = "127.0.0.1"


class Broker:
    """A nats-server of the test's own on a fixed port: kill it, start it again."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port: int = sock.getsockname()[1]
        self.url = f"nats://{HOST}:{self.port}"
        self._proc: asyncio.subprocess.Process | None = None
        self._output: asyncio.Task[None] | None = None

    async def start(self) -> None:
        proc = self._proc = await asyncio.create_subprocess_exec(
            find_nats_server(),
            *("-a", HOST, "-p", str(self.port)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        async with asyncio.timeout(GUARD):
            while b"Server is ready" not in (line := await proc.stderr.readline()):
                if not line:
                    raise AssertionError(f"nats-server exited with {await proc.wait()}")
        # Keep reading: a full pipe would stall the server.
        self._output = asyncio.create_task(_read_to_end(proc.stderr))

    async def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        if self._output is not None:
            await self._output


async def _read_to_end(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
