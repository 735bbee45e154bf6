"""The MessageBus protocol: what a transport provides; rpc builds everything else on it."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

import msgspec

from .._core import Message

__all__ = [
    "DEFAULT_MAX_PENDING",
    "BusStatistics",
    "MessageBus",
    "Overflow",
    "Subscription",
    "SubscriptionStatistics",
    "SupportsDrain",
    "SupportsListen",
]

DEFAULT_MAX_PENDING = 65_536
"""Messages a subscription buffers before its overflow policy applies."""


class Overflow(enum.Enum):
    """What a subscription does when its buffer is full.

    ``DROP_OLDEST`` discards the oldest buffered message and counts it in
    ``statistics().dropped`` (pub/sub: the publisher never waits). ``BLOCK`` makes delivery
    wait for room, pushing back on the transport (servers: the broker holds the work).
    """

    DROP_OLDEST = "drop_oldest"
    BLOCK = "block"


class SubscriptionStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one subscription's counters."""

    delivered: int
    """Messages handed to the application."""
    dropped: int
    """Messages discarded because the buffer was full (``Overflow.DROP_OLDEST``)."""
    pending: int
    """Messages buffered, not yet received."""
    max_pending: int
    """Buffer size."""


class BusStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one bus connection's counters."""

    published: int
    """Messages handed to the transport by `publish`."""
    delivered: int
    """Messages delivered to this connection's subscriptions."""
    dropped: int
    """Messages a subscription of this connection discarded (slow consumer)."""
    subscriptions: int
    """Subscriptions open now."""


@runtime_checkable
class Subscription(AbstractAsyncContextManager["Subscription", None], Protocol):
    """Messages on one subject. Live once entered; iterate it; close it.

    Contract: once ``async with bus.subscribe(s) as sub`` has entered, any message
    published afterwards, from any connection, reaches ``sub``. Iteration ends when the
    subscription or its bus is closed, including when the bus loses its broker for good
    (a temporary disconnect that the transport recovers from closes nothing).
    """

    subject: str

    async def receive(self) -> Message:
        """The next message; raises `ClosedResourceError` once closed and drained."""
        ...

    def __aiter__(self) -> AsyncIterator[Message]: ...

    def statistics(self) -> SubscriptionStatistics:
        """Counters of this subscription."""
        ...

    async def aclose(self) -> None:
        """Stop receiving (idempotent). Buffered messages are discarded."""
        ...


@runtime_checkable
class MessageBus(AbstractAsyncContextManager["MessageBus", None], Protocol):
    """What a transport provides; rpc builds everything else on it.

    Entering connects; leaving (or `aclose`) closes every subscription and the connection.
    """

    async def publish(self, message: Message) -> None:
        """Publish *message* without waiting for any reply (at-most-once).

        Raises:
            TransportError: the broker refused the message or the connection dropped.
            ClosedResourceError: the bus was already closed.

        Example:
            >>> await bus.publish(Message("orders.created", payload))
        """
        ...

    def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> Subscription:
        """A subscription to *subject* (NATS wildcards ``*`` and ``>`` allowed).

        With *queue*, members of the same queue group share the messages (each goes to
        one of them); without, every subscriber gets every message. Enter it to start.
        """
        ...

    def statistics(self) -> BusStatistics:
        """Counters of this connection."""
        ...

    async def aclose(self) -> None:
        """Close every subscription and the connection (idempotent)."""
        ...


@runtime_checkable
class SupportsListen(Protocol):
    """Optional capability of a `Subscription`: push delivery to a callback.

    Saves a task hop per message for consumers that only dispatch (the rpc reply inbox,
    the server handing requests to its workers).
    """

    def listen(self, callback: Callable[[Message | None], bool | None]) -> None:
        """Call *callback* with each message as it arrives, and with ``None`` on close
        (at once, if the subscription is closed already).

        A callback that returns ``False`` refuses the message: it is buffered for
        `Subscription.receive`, and so are the next ones, until `listen` is called again.
        """
        ...


@runtime_checkable
class SupportsDrain(Protocol):
    """Optional capability of a `Subscription`: stop the broker routing new messages
    here, and deliver what it already routed.

    `aclose` discards what is in flight; `drain` is the lossless way out, for a server
    that shuts down gracefully: every request that reached it gets handled.

    Example:
        >>> if isinstance(sub, SupportsDrain):
        ...     await sub.drain()
        >>> async for message in sub:  # what was routed before the drain, then the end
        ...     handle(message)
    """

    async def drain(self) -> None:
        """Stop receiving new messages, keeping the ones already routed here.

        Once it returns, the broker routes nothing more here, and every message it routed
        here before has been delivered to the listener (if one is set) or is in the
        buffer for `Subscription.receive`. Then the subscription is closed: `receive`
        returns what is buffered, then raises `ClosedResourceError`; a listener gets
        ``None`` after the last message. The overflow policy still applies while
        draining, except that ``Overflow.BLOCK`` stops waiting for room (the buffer may
        exceed ``max_pending`` by what was in flight). Idempotent; a subscription that
        was closed already stays closed.
        """
        ...
