"""The message model and the header names of wire protocol v1."""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = ["Headers", "Message"]


class Message(msgspec.Struct, frozen=True):
    """One message on a bus.

    Attributes:
        subject: NATS-form subject (``greeter.say_hello``); transports translate separators.
        data: the encoded payload, never re-encoded on the way through.
        headers: string header values (see `Headers`); empty on the fast path.
        reply: where the answer goes (a transport-specific address), or ``None``.

    Example:
        >>> await bus.publish(Message("orders.created", b'{"id": 1}'))
    """

    subject: str
    data: bytes = b""
    headers: dict[str, str] = {}
    reply: str | None = None


class Headers:
    """Header names of wire protocol v1 (values are strings)."""

    CONTENT_TYPE: Final = "Content-Type"
    DEADLINE: Final = "Busrpc-Deadline"
    REQUEST_ID: Final = "Busrpc-Request-Id"
    CALLER: Final = "Busrpc-Caller"
    SERVER: Final = "Busrpc-Server"
    ERROR: Final = "Busrpc-Error"
    META_PREFIX: Final = "Busrpc-Meta-"
    TRACEPARENT: Final = "traceparent"
    TRACESTATE: Final = "tracestate"
    NATS_ERROR_CODE: Final = "Nats-Service-Error-Code"
    NATS_ERROR: Final = "Nats-Service-Error"
