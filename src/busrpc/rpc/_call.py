"""Calls as interceptors and handlers see them, and the context a handler runs in."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import msgspec

from .._core import Deadline, Headers
from ._method import Method, Response
from ._wire import INBOX_PREFIX

__all__ = [
    "Call",
    "ClientInterceptor",
    "MultiInterceptor",
    "Next",
    "MultiNext",
    "RequestHook",
    "ResponseHook",
    "ServerCall",
    "ServerInterceptor",
    "ServerNext",
    "current_call",
]


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """An outgoing call, as client interceptors and hooks see it.

    Interceptors may return a changed copy (``msgspec.structs.replace(call, headers=...)``).

    Attributes:
        method: the method called.
        request: the request value (not yet encoded).
        subject: where the request goes.
        headers: headers to send (``Busrpc-Meta-*`` metadata, ``traceparent``, ...).
        deadline: when the caller gives up.
        topic: the topic tokens, if any.
        server_id: the server asked for by name (direct call), if any.
    """

    method: Method[Any, Any]
    request: object
    subject: str
    headers: dict[str, str]
    deadline: Deadline
    topic: tuple[str, ...] = ()
    server_id: str | None = None


class ServerCall(msgspec.Struct, frozen=True, kw_only=True):
    """An incoming call, as server interceptors and handlers see it (`current_call()`).

    Attributes:
        method: the method called.
        request: the decoded request.
        subject: the subject it arrived on.
        headers: the request's headers (metadata, trace context).
        deadline: the caller's deadline; nested calls inherit it.
        server_id: this server's id.
        topic: the topic tokens, if any.
        reply: where the reply goes (the caller's reply address), if anywhere.
    """

    method: Method[Any, Any]
    request: object
    subject: str
    headers: dict[str, str]
    deadline: Deadline
    server_id: str
    topic: tuple[str, ...] = ()
    reply: str | None = None

    @property
    def caller_id(self) -> str | None:
        """The calling client's id (psrpc's ``ClientID``): from ``Busrpc-Caller``, else
        from a busrpc reply address (``_INBOX.{client_id}....``); ``None`` if unknown."""
        caller = self.headers.get(Headers.CALLER) if self.headers else None
        if caller is not None:
            return caller
        parts = _inbox_parts(self.reply)
        return parts[0] if parts else None

    @property
    def request_id(self) -> str | None:
        """This call's id, unique per caller: ``Busrpc-Request-Id`` or the reply token."""
        request_id = self.headers.get(Headers.REQUEST_ID) if self.headers else None
        if request_id is not None:
            return request_id
        parts = _inbox_parts(self.reply)
        return parts[1] if parts else None

    @property
    def sent_at(self) -> float | None:
        """When the caller sent the request, Unix epoch seconds (psrpc's ``SentAt``), as
        a busrpc caller's reply token says; ``None`` from other callers."""
        parts = _inbox_parts(self.reply)
        if not parts:
            return None
        _, sep, stamp = parts[1].partition("t")
        if not sep or not 0 < len(stamp) <= 12:
            return None
        try:
            return int(stamp, 16) / 1000
        except ValueError:
            return None

    @property
    def metadata(self) -> dict[str, str]:
        """User metadata: the ``Busrpc-Meta-*`` headers without their prefix."""
        return {k[12:]: v for k, v in self.headers.items() if k.startswith("Busrpc-Meta-")}


Next: TypeAlias = Callable[[Call], Awaitable[object]]
ClientInterceptor: TypeAlias = Callable[[Call, Next], Awaitable[object]]
"""``async def ic(call, next) -> result``: wraps unary (and affinity) calls."""

MultiNext: TypeAlias = Callable[[Call], AsyncIterator[Response[Any]]]
MultiInterceptor: TypeAlias = Callable[[Call, MultiNext], AsyncIterator[Response[Any]]]
"""``async def ic(call, next)`` as an async generator: wraps multi calls."""

ServerNext: TypeAlias = Callable[[ServerCall], Awaitable[object]]
ServerInterceptor: TypeAlias = Callable[[ServerCall, ServerNext], Awaitable[object]]
"""``async def ic(call, next) -> result``: wraps handlers on the server."""

RequestHook: TypeAlias = Callable[[Call], Awaitable[None]]
"""Called as soon as a call is made, before it is sent."""

ResponseHook: TypeAlias = Callable[[Call, object, Exception | None], Awaitable[None]]
"""Called with (call, result, error) before the result reaches the caller; for multi
calls, once per response."""

_current: contextvars.ContextVar[ServerCall | None] = contextvars.ContextVar(
    "busrpc_current_call", default=None
)


def current_call() -> ServerCall | None:
    """The call the current handler is serving, or ``None`` outside a handler.

    Example:
        >>> call = busrpc.current_call()
        >>> user = call.metadata.get("user") if call else None
    """
    return _current.get()


def _inbox_parts(reply: str | None) -> tuple[str, str] | None:
    """(client id, request id) of a busrpc reply address, ``_INBOX.{client}.{id}.d{ms}``."""
    if not reply or not reply.startswith(INBOX_PREFIX):
        return None
    parts = reply.split(".")
    if len(parts) != 4 or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


C = TypeVar("C")
R = TypeVar("R")


def compose(
    interceptors: Sequence[Callable[[C, Callable[[C], R]], R]], terminal: Callable[[C], R]
) -> Callable[[C], R]:
    """*terminal* wrapped by *interceptors*, the first outermost; for every kind of chain
    (client unary, client multi, server): each link returns what its interceptor returns."""
    next_ = terminal
    for interceptor in reversed(interceptors):
        next_ = _link(interceptor, next_)
    return next_


def _link(
    interceptor: Callable[[C, Callable[[C], R]], R], next_: Callable[[C], R]
) -> Callable[[C], R]:
    def link(call: C) -> R:
        return interceptor(call, next_)

    return link
