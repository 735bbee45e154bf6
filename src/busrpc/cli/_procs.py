"""`ServeProcess`: a ``busrpc serve`` child process, for ``busrpc demo`` and ``busrpc bench``."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Final, Self

__all__ = ["READY_PREFIX", "ServeProcess"]

logger = logging.getLogger("busrpc.cli")

READY_PREFIX: Final = "serving "
"""How the line ``busrpc serve`` prints once its subscriptions are live begins."""

_READY_TIMEOUT: Final = 30.0  # interpreter start, imports, bus connection
_STOP_TIMEOUT: Final = 15.0  # SIGTERM to exit: the server's shutdown grace is 10 s
_TAIL: Final = 30  # lines of the child's stderr kept for error messages


class ServeProcess:
    """``python -m busrpc serve TARGET --url URL ...`` alive inside ``async with``.

    Entering starts the child and returns once it has printed its ready line (its
    subscriptions are live then). Leaving, or `stop`, sends SIGTERM, which makes the child
    shut down gracefully, and waits for it (killing it after 15 s).

    Raises:
        RuntimeError: on entry, when the child exits or stays silent for 30 s; the
            message carries its last stderr lines.

    Example:
        >>> async with ServeProcess("pkg.mod:Greeter", url, server_id="g-1") as proc:
        ...     print(proc.ready_line)
    """

    def __init__(
        self,
        target: str,
        url: str,
        *,
        server_id: str | None = None,
        namespace: str | None = None,
        topics: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        ready_timeout: float = _READY_TIMEOUT,
    ) -> None:
        self._closed = True  # nothing to leak until a child runs
        self.args = [sys.executable, "-m", "busrpc", "serve", target, "--url", url]
        if server_id is not None:
            self.args += ["--server-id", server_id]
        if namespace is not None:
            self.args += ["--namespace", namespace]
        for topic in topics:
            self.args += ["--topic", topic]
        self._env = {**os.environ, **(env or {})}
        self._ready_timeout = ready_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._drains: list[asyncio.Task[None]] = []
        self._stderr: collections.deque[str] = collections.deque(maxlen=_TAIL)
        self.ready_line = ""
        self.server_id = server_id

    @property
    def pid(self) -> int:
        """The child's process id.

        Raises:
            RuntimeError: the process was never started.
        """
        if self._process is None:
            raise RuntimeError("the process was not started")
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The child's exit status: ``None`` while it runs."""
        return None if self._process is None else self._process.returncode

    @property
    def stderr_tail(self) -> str:
        """The last lines the child wrote to stderr."""
        return "\n".join(self._stderr)

    async def __aenter__(self) -> Self:
        if self._process is not None:
            raise RuntimeError("a ServeProcess can be entered only once")
        self._process = process = await asyncio.create_subprocess_exec(
            *self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
        )
        self._closed = False
        assert process.stdout is not None and process.stderr is not None
        self._drains.append(asyncio.create_task(_drain(process.stderr, self._stderr)))
        try:
            self.ready_line = await self._wait_ready(process.stdout)
        except BaseException:
            await self.stop()
            raise
        # Keep reading: a child blocked on a full pipe would never finish its shutdown.
        self._drains.append(asyncio.create_task(_drain(process.stdout, None)))
        logger.info("server process ready", extra={"pid": process.pid, "line": self.ready_line})
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> int:
        """SIGTERM the child, wait up to 15 s for it (then SIGKILL); its exit status.

        Idempotent: later calls return the same status.
        """
        process = self._process
        if process is None:
            raise RuntimeError("the process was not started")
        if self._closed:
            return await process.wait()
        self._closed = True
        try:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                logger.warning("server process ignored SIGTERM", extra={"pid": process.pid})
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        finally:
            if process.returncode is None:  # cancelled while waiting: still stop it
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                for drain in self._drains:
                    drain.cancel()
            if self._drains:
                await asyncio.wait(self._drains)
        return await process.wait()

    async def _wait_ready(self, stdout: asyncio.StreamReader) -> str:
        timeout = asyncio.timeout(self._ready_timeout)
        try:
            async with timeout:
                while line := await stdout.readline():
                    text = line.decode(errors="replace").strip()
                    if text.startswith(READY_PREFIX):
                        return text
        except TimeoutError as exc:
            if not timeout.expired():
                raise
            raise RuntimeError(
                f"{self._what()} did not get ready within {self._ready_timeout:g} s{self._suffix()}"
            ) from exc
        assert self._process is not None
        code = await self._process.wait()
        await asyncio.wait(self._drains)  # its last words say why
        raise RuntimeError(f"{self._what()} exited with code {code} before serving{self._suffix()}")

    def _what(self) -> str:
        return f"server process {self.server_id or ''}".rstrip()

    def _suffix(self) -> str:
        return ":\n" + self.stderr_tail if self._stderr else ""

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=1)

    def __repr__(self) -> str:
        pid = None if self._process is None else self._process.pid
        return f"<ServeProcess {self.server_id!r} pid={pid}>"


async def _drain(stream: asyncio.StreamReader, tail: collections.deque[str] | None) -> None:
    # Chunks, not readline(): an overlong line would make readline() raise and stop us.
    partial = b""
    while chunk := await stream.read(65536):
        if tail is None:
            continue
        *lines, partial = (partial + chunk).split(b"\n")
        partial = partial[-65536:]
        tail.extend(line.decode(errors="replace").rstrip() for line in lines)
    if partial and tail is not None:
        tail.append(partial.decode(errors="replace").rstrip())
