"""How the commands run: the event loop (uvloop when installed), errors, URLs."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from collections.abc import Coroutine
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import busrpc

__all__ = [
    "CONNECT_TIMEOUT",
    "CliError",
    "ExtraFormatter",
    "has_uvloop",
    "open_bus",
    "redact_url",
    "run",
    "running_on_uvloop",
]

T = TypeVar("T")

EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2

CONNECT_TIMEOUT: Final = 10.0
"""Seconds a command waits for its bus connection (nats-py alone would retry for ~2 min)."""


class CliError(Exception):
    """A failure to report as one line on stderr, then exit with *exit_code*.

    Example:
        >>> raise CliError("no bus URL: pass --url or set BUSRPC_URL", exit_code=2)
    """

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def has_uvloop() -> bool:
    """Whether uvloop is installed (the commands then run on it)."""
    return importlib.util.find_spec("uvloop") is not None


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run *main* to completion on a new event loop: uvloop's when installed.

    Example:
        >>> run(serve_forever())
    """
    if has_uvloop():
        import uvloop

        result: T = uvloop.run(main)
        return result
    return asyncio.run(main)


def running_on_uvloop() -> bool:
    """Whether the running event loop is uvloop's."""
    return type(asyncio.get_running_loop()).__module__.startswith("uvloop")


def redact_url(url: str) -> str:
    """*url* without its password, for output and logs.

    Example:
        >>> redact_url("nats://ada:secret@10.0.0.1:4222")
        'nats://ada:***@10.0.0.1:4222'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


async def open_bus(
    stack: contextlib.AsyncExitStack,
    url: str,
    *,
    timeout: float | None = CONNECT_TIMEOUT,
    **options: Any,
) -> busrpc.MessageBus:
    """Connect to *url* within *timeout* seconds (``None``: as long as the transport
    retries); the bus closes with *stack*.

    Raises:
        CliError: a malformed URL or a missing transport (exit code 2), or no connection
            within *timeout* (exit code 1).

    Example:
        >>> bus = await open_bus(stack, "nats://127.0.0.1:4222")
    """
    try:
        bus = busrpc.connect(url, **options)
    except (ValueError, ImportError) as exc:
        raise CliError(str(exc), exit_code=EXIT_USAGE) from exc
    limit = asyncio.timeout(timeout)
    try:
        async with limit:
            return await stack.enter_async_context(bus)
    except TimeoutError as exc:
        if not limit.expired():
            raise
        raise CliError(f"cannot connect to {redact_url(url)} within {limit_s(timeout)}") from exc
    except busrpc.ConnectError as exc:
        raise CliError(f"cannot connect to {redact_url(url)}: {exc}") from exc


def limit_s(timeout: float | None) -> str:
    """*timeout* for a message: ``"10 s"``."""
    return f"{timeout:g} s" if timeout is not None else "the time limit"


_RECORD_FIELDS: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class ExtraFormatter(logging.Formatter):
    """The message followed by the record's ``extra=`` fields: busrpc's log messages are
    constant and the details are in the extras.

    Example:
        >>> handler.setFormatter(ExtraFormatter())   # "connection error error='...'"
    """

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{k}={v!r}" for k, v in vars(record).items() if k not in _RECORD_FIELDS]
        return f"{text} {' '.join(extras)}" if extras else text
