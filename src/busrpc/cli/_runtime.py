"""How the commands run: the event loop (uvloop when installed), errors, URLs."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
from collections.abc import Coroutine
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import busrpc

__all__ = [
    "CONNECT_TIMEOUT",
    "CliError",
    "ExtraFormatter",
    "describe_error",
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


def describe_error(error: busrpc.RpcError) -> str:
    """*error* as the commands print it: ``CODE (HTTP STATUS): MESSAGE [DETAILS]``.

    Example:
        >>> describe_error(busrpc.RpcError("not_found", "no such user"))
        'not_found (404): no such user'
    """
    text = f"{error.code.value} ({error.http_status}): {error.message}"
    if error.details:
        text += f" {json.dumps(dict(error.details), sort_keys=True)}"
    return text


def redact_url(url: str) -> str:
    """*url* for output and logs: no password or token, no query (connection options,
    which may carry credentials).

    Example:
        >>> redact_url("nats://ada:secret@10.0.0.1:4222?name=orders")
        'nats://ada:***@10.0.0.1:4222'
        >>> redact_url("nats://s3cret-token@10.0.0.1:4222")
        'nats://***@10.0.0.1:4222'
    """
    if "," in url:  # several servers: nats://a:4222,nats://b:4222
        return ",".join(redact_url(one) for one in url.split(","))
    base = url.partition("#")[0].partition("?")[0]
    try:
        parts = urlsplit(base)
    except ValueError:  # not a URL after all: keep what follows any credentials
        return base.rpartition("@")[2]
    if "@" not in parts.netloc:
        return base
    host = parts.netloc.rpartition("@")[2]
    userinfo = "***" if parts.password is None else f"{parts.username}:***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


async def open_bus(
    stack: contextlib.AsyncExitStack,
    url: str,
    *,
    timeout: float = CONNECT_TIMEOUT,
    retry: bool = False,
    **options: Any,
) -> busrpc.MessageBus:
    """Connect to *url* within *timeout* seconds; the bus closes with *stack*.

    Raises:
        CliError: a malformed URL or a missing transport (exit code 2), or no connection
            within *timeout* (exit code 1).
        ConnectError: with *retry*, instead of a `CliError`, when there is no connection
            (for a caller that tries again).

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
        message = f"cannot connect to {redact_url(url)} within {timeout:g} s"
        if retry:
            raise busrpc.ConnectError(message) from exc
        raise CliError(message) from exc
    except busrpc.ConnectError as exc:
        if retry:
            raise
        raise CliError(f"cannot connect to {redact_url(url)}: {exc}") from exc


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
