"""Calls as interceptors and handlers see them, and the context a handler runs in."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import msgspec

from .._core import Deadline
from ._method import Method, Response

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
    """

    method: Method[Any, Any]
    request: object
    subject: str
    headers: dict[str, str]
    deadline: Deadline
    server_id: str
    topic: tuple[str, ...] = ()

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
