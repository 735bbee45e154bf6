"""The in-process bus: ``memory://`` and ``memory://name``.

Buses connected to the same name in one process share a broker, as separate connections
to one NATS server would: queue groups, wildcards, and no-responders answers behave as on
NATS, so code tested here behaves the same there. Payloads must already be bytes: nothing
is passed by reference that a real broker would have copied.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Final

from .._core import ClosedResourceError, Message, TransportError, no_responders
from ._buffer import BufferedSubscription, SubscriptionSet
from ._protocol import DEFAULT_MAX_PENDING, BusStatistics, Overflow
from ._subjects import is_wildcard, subject_matches, validate_subject

__all__ = ["DEFAULT_MAX_PAYLOAD", "MemoryBus", "MemorySubscription"]

DEFAULT_MAX_PAYLOAD: Final = 1024 * 1024
"""Largest ``data`` a memory bus accepts, as NATS's default ``max_payload``."""

_ROUTE_CACHE_SIZE: Final = 4096
_NO_GROUPS: Final[list[_Group]] = []


class _Broker:
    """Routing shared by every `MemoryBus` connected to one name."""

    def __init__(self) -> None:
        self.exact: dict[str, list[MemorySubscription]] = {}
        self.wild: list[MemorySubscription] = []
        # subject -> (broadcast subscribers, queue groups); cleared on any (un)subscribe
        self.routes: dict[str, tuple[list[MemorySubscription], list[_Group]]] = {}
        self.connections = 0

    def add(self, sub: MemorySubscription) -> None:
        if is_wildcard(sub.subject):
            self.wild.append(sub)
        else:
            self.exact.setdefault(sub.subject, []).append(sub)
        self.routes.clear()

    def remove(self, sub: MemorySubscription) -> None:
        if is_wildcard(sub.subject):
            if sub in self.wild:
                self.wild.remove(sub)
        else:
            subs = self.exact.get(sub.subject)
            if subs is not None and sub in subs:
                subs.remove(sub)
                if not subs:
                    del self.exact[sub.subject]
        self.routes.clear()

    def route(self, subject: str) -> tuple[list[MemorySubscription], list[_Group]]:
        route = self.routes.get(subject)
        if route is not None:
            return route
        exact = self.exact.get(subject)
        matched = [s for s in self.wild if s.matches(subject)]
        if exact:
            matched = exact + matched
        if all(s.queue is None for s in matched):
            route = (matched, _NO_GROUPS)  # the common case: replies, events, multi
        else:
            groups: dict[tuple[str, str], list[MemorySubscription]] = {}
            for s in matched:
                if s.queue is not None:
                    groups.setdefault((s.subject, s.queue), []).append(s)
            broadcast = [s for s in matched if s.queue is None]
            route = (broadcast, [_Group(members) for members in groups.values()])
        # Cache only subjects someone subscribed to by name: reply subjects are unique per
        # call and would churn the cache for nothing.
        if exact:
            if len(self.routes) >= _ROUTE_CACHE_SIZE:
                self.routes.clear()
            self.routes[subject] = route
        return route


class _Group:
    """Members of one queue group on one subject: each message goes to the next one."""

    __slots__ = ("_next", "members")

    def __init__(self, members: list[MemorySubscription]) -> None:
        self.members = members
        self._next = itertools.count()

    def pick(self) -> MemorySubscription:
        return self.members[next(self._next) % len(self.members)]


_brokers: dict[str, _Broker] = {}


class MemorySubscription(BufferedSubscription):
    """A subscription on a `MemoryBus`."""

    def __init__(
        self,
        bus: MemoryBus,
        subject: str,
        *,
        queue: str | None,
        max_pending: int,
        overflow: Overflow,
    ) -> None:
        super().__init__(subject, queue=queue, max_pending=max_pending, overflow=overflow)
        self._bus = bus
        # "a.b.>" patterns (every reply inbox) match by prefix: no token split per message
        head = subject[:-1]
        self._prefix = head if subject.endswith(".>") and not is_wildcard(head) else None

    def matches(self, subject: str) -> bool:
        """Whether a message on *subject* reaches this (wildcard) subscription."""
        prefix = self._prefix
        if prefix is not None:
            return subject.startswith(prefix) and len(subject) > len(prefix)
        return subject_matches(self.subject, subject)

    async def _start(self) -> None:
        self._bus._attach(self)

    async def _stop(self) -> None:
        self._bus._detach(self)

    async def _drain(self) -> None:
        # Delivery is synchronous: once detached, nothing routed here is in flight but
        # the publishers blocked on room, and `drain` waits for those.
        self._bus._detach(self)


class MemoryBus:
    """An in-process `MessageBus`; buses with the same *name* share one broker.

    Example:
        >>> async with MemoryBus() as bus, bus.subscribe("greet") as sub:
        ...     await bus.publish(Message("greet", b"hi"))
        ...     assert (await sub.receive()).data == b"hi"
    """

    def __init__(self, name: str = "default", *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self._closed = True  # until __aenter__ succeeds there is nothing to leak
        self._entered = False
        self.name = name
        self.max_payload = max_payload
        self._broker: _Broker | None = None
        self._subs: SubscriptionSet[MemorySubscription] = SubscriptionSet()
        self._published = 0

    @classmethod
    def from_url(cls, url: str, **options: object) -> MemoryBus:
        """A bus for ``memory://`` (the default broker) or ``memory://name``."""
        name = url.removeprefix("memory://").strip("/") or "default"
        max_payload = options.pop("max_payload", DEFAULT_MAX_PAYLOAD)
        if options:
            raise TypeError(f"unknown memory bus options: {sorted(options)}")
        if not isinstance(max_payload, int):
            raise TypeError("max_payload must be an int")
        return cls(name, max_payload=max_payload)

    @property
    def closed(self) -> bool:
        """Whether the bus is closed (or was never entered).

        Example:
            >>> async with MemoryBus() as bus:
            ...     assert not bus.closed
            >>> assert bus.closed
        """
        return self._closed

    async def __aenter__(self) -> MemoryBus:
        if self._entered:
            raise RuntimeError("a bus can be entered only once")
        self._entered = True
        self._broker = _brokers.get(self.name)
        if self._broker is None:
            self._broker = _brokers[self.name] = _Broker()
        self._broker.connections += 1
        self._closed = False
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def publish(self, message: Message) -> None:
        """Deliver *message* to every matching subscriber (one per queue group).

        A message with a ``reply`` that no subscriber receives is answered at once with
        an ``unavailable`` "no responders" error, as NATS does.

        Raises:
            ClosedResourceError: the bus was closed.
            TransportError: ``data`` is larger than ``max_payload``.
            TypeError: ``data`` is not ``bytes``.
        """
        broker = self._broker
        if self._closed or broker is None:
            self._live()  # raises the right ClosedResourceError
            return
        data = message.data
        if type(data) is not bytes:
            raise TypeError(f"message data must be bytes, not {type(data).__name__}")
        if len(data) > self.max_payload:
            raise TransportError(
                f"message of {len(data)} bytes exceeds max payload of {self.max_payload}"
            )
        if message.headers:  # what a real broker would do: the receiver gets its own copy
            message = Message(message.subject, data, dict(message.headers), message.reply)
        self._published += 1
        broadcast, groups = broker.route(message.subject)
        for sub in broadcast:
            if not sub._put_nowait(message):
                await sub._put(message)
        for group in groups:
            sub = group.pick()
            if not sub._put_nowait(message):
                await sub._put(message)
        if message.reply and not broadcast and not groups:
            await self.publish(no_responders(message.reply))

    def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> MemorySubscription:
        """A subscription to *subject*; enter it to make it live (see `MessageBus`)."""
        validate_subject(subject, pattern=True)
        return MemorySubscription(
            self, subject, queue=queue or None, max_pending=max_pending, overflow=overflow
        )

    def statistics(self) -> BusStatistics:
        """Counters of this connection."""
        return self._subs.statistics(self._published)

    async def aclose(self) -> None:
        """Close every subscription and leave the broker (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for sub in self._subs:
            await sub.aclose()
        broker = self._broker
        if broker is not None:
            broker.connections -= 1
            if broker.connections == 0 and _brokers.get(self.name) is broker:
                del _brokers[self.name]

    def _live(self) -> _Broker:
        if self._closed or self._broker is None:
            raise ClosedResourceError(
                "memory bus is closed" if self._entered else "enter the bus first"
            )
        return self._broker

    def _attach(self, sub: MemorySubscription) -> None:
        self._live().add(sub)
        self._subs.add(sub)

    def _detach(self, sub: MemorySubscription) -> None:
        self._subs.discard(sub)
        if self._broker is not None:
            self._broker.remove(sub)

    def __repr__(self) -> str:
        return f"<MemoryBus {self.name!r}{' closed' if self._closed else ''}>"

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=1)
