"""The reply inbox: one subscription per bus connection, one reader, futures by token."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import ClassVar, Final

from .._core import (
    ClosedResourceError,
    Deadline,
    DeadlineExceeded,
    Message,
    TransportError,
    Unavailable,
)
from ..bus import MessageBus, Overflow, Subscription, SupportsListen
from ._timers import TimerWheel
from ._wire import INBOX_PREFIX

__all__ = ["Inbox", "ReplyStream"]

logger = logging.getLogger("busrpc.rpc")

_YIELD_EVERY: Final = 2  # calls answered without a suspension before one is forced
_INBOX_MAX_PENDING: Final = 1 << 20  # replies are small and awaited: don't drop them in bursts


class Inbox:
    """Routes replies to the calls waiting for them.

    Every call gets a fresh token; its reply subject is ``_INBOX.{client}.{token}``. Replies
    resolve futures in a dict (no task per call), so a reply can only ever reach the call
    that asked: a late reply finds no token and is dropped.
    """

    _by_bus: ClassVar[dict[int, Inbox]] = {}

    def __init__(self, bus: MessageBus, client_id: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._bus_ref = weakref.ref(bus)
        self.bus = bus
        self.client_id = client_id
        self.prefix = f"{INBOX_PREFIX}{client_id}."
        self._ids = itertools.count(1)
        self._futures: dict[str, asyncio.Future[Message]] = {}
        self._streams: dict[str, Callable[[Message], None]] = {}
        # Calls whose publish has not returned yet, by token: their deadline must be able
        # to interrupt a publish that blocks (a full memory-bus buffer, a stalled socket).
        self._publishing: dict[str, asyncio.Task[object]] = {}
        self._sub: Subscription | None = None
        self._start: asyncio.Task[None] | None = None
        self._started = False
        self._timers: TimerWheel[str] = TimerWheel(self._expire)
        self._closed_flag = False
        self._background: set[asyncio.Task[None]] = set()
        self._unyielded = 0  # calls answered inside publish since the last yield

    @classmethod
    def for_bus(cls, bus: MessageBus) -> Inbox:
        """The inbox of *bus* (one per connection, shared by every client on it)."""
        inbox = cls._by_bus.get(id(bus))
        if inbox is None or inbox._bus_ref() is not bus or inbox.closed:
            inbox = cls._by_bus[id(bus)] = cls(bus, secrets.token_hex(8))
        return inbox

    async def wait_started(self, deadline: Deadline | None = None) -> None:
        """Subscribe the inbox once; concurrent first calls wait for the same start.

        The subscription starts in a task of its own: a caller cancelled (or out of
        time) while it starts leaves it to finish for the next caller, never half made.

        Raises:
            DeadlineExceeded: *deadline* passed first.
            TransportError, ClosedResourceError: the subscription failed (the next call
                tries again).
        """
        start = self._start
        if start is None:
            start = self._start = asyncio.get_running_loop().create_task(
                self._subscribe(), name=f"busrpc-inbox-{self.client_id}"
            )
            start.add_done_callback(_retrieve)  # a failure is raised to the callers
        try:
            if deadline is None:
                await asyncio.shield(start)
            else:
                async with deadline.scope():
                    await asyncio.shield(start)
        except (TransportError, ClosedResourceError):
            if self._start is start:
                self._start = None  # failed: the next call tries again
            raise

    @property
    def started(self) -> bool:
        """Whether the inbox subscription is live."""
        return self._started

    @property
    def closed(self) -> bool:
        """Whether the inbox's bus closed it (a new one is needed)."""
        return self._closed_flag

    def next_token(self, deadline: Deadline) -> str:
        """A new ``{sequence:x}t{sent_ms:x}.d{deadline_ms}`` token."""
        sent_ms = int(time.time() * 1000)
        remaining = deadline.when - self._loop.time()
        deadline_ms = sent_ms + int(remaining * 1000) if remaining > 0 else sent_ms
        return f"{next(self._ids):x}t{sent_ms:x}.d{deadline_ms}"

    async def request(
        self,
        subject: str,
        data: bytes,
        headers: dict[str, str],
        deadline: Deadline,
        cancel_to: str | None,
    ) -> Message:
        """Publish a request with a fresh reply token and wait for the reply.

        The caller has awaited `wait_started`. The hot path of every unary call: one
        future in a dict, one timer, one publish. If the calling task is cancelled after
        the request went out, a cancel naming its reply address goes to *cancel_to*.

        Raises:
            DeadlineExceeded: no reply before *deadline* (even if the publish blocked).
            Unavailable: the bus closed while waiting.
        """
        token = self.next_token(deadline)
        reply_to = self.prefix + token
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()
        futures = self._futures
        futures[token] = future
        slot = self._timers.add(deadline.when, token)
        publishing = self._publishing
        sent = False
        try:
            publishing[token] = asyncio.current_task()  # type: ignore[assignment]
            try:
                await self.bus.publish(Message(subject, data, headers, reply_to))
            finally:
                del publishing[token]
            sent = True
            if future.done():
                # Answered inside publish (an in-process server ran the handler eagerly):
                # no suspension at all. Every few such calls, yield to the loop anyway, as
                # a broker's round trip would, so that a loop of calls can never starve
                # it. Every call: +17k instructions a call (3.13); every 8: p99 x6 at C=64.
                self._unyielded += 1
                if self._unyielded >= _YIELD_EVERY:
                    self._unyielded = 0
                    await asyncio.sleep(0)
            return await future
        except _Expired:
            raise DeadlineExceeded(f"deadline exceeded waiting for {subject}") from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and type(future.exception()) is _Expired:
                # Our deadline interrupted a publish that blocked: not the caller's cancel.
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                raise DeadlineExceeded(f"deadline exceeded sending to {subject}") from None
            if sent and cancel_to is not None:
                self.send_cancel(cancel_to, reply_to)
            raise
        finally:
            self._timers.remove(slot, token)
            futures.pop(token, None)

    def send_cancel(self, cancel_to: str, reply_to: str) -> None:
        """Tell the servers on *cancel_to* that the call answering to *reply_to* is gone."""
        task = asyncio.get_running_loop().create_task(
            self._publish_cancel(Message(cancel_to, reply_to.encode()))
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def open_stream(self, token: str, deliver: Callable[[Message], None]) -> None:
        """Send every reply to ``{prefix}{token}`` to *deliver* until `close_stream`."""
        self._streams[token] = deliver

    def close_stream(self, token: str) -> None:
        """Stop delivering replies for *token*."""
        self._streams.pop(token, None)

    async def _subscribe(self) -> None:
        sub = self.bus.subscribe(
            self.prefix + ">", max_pending=_INBOX_MAX_PENDING, overflow=Overflow.DROP_OLDEST
        )
        await sub.__aenter__()
        self._sub = sub
        if isinstance(sub, SupportsListen):
            # Replies resolve futures straight from the transport's delivery path: one
            # task hop less per call than a reader task.
            sub.listen(self._on_message)
        else:
            task = asyncio.get_running_loop().create_task(self._read(sub))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._started = True

    async def _publish_cancel(self, message: Message) -> None:
        try:
            await self.bus.publish(message)
        except (TransportError, ClosedResourceError):
            logger.debug("cancel not sent", extra={"subject": message.subject}, exc_info=True)

    def _on_message(self, message: Message | None) -> None:
        if message is None:
            self._close()
        else:
            self._dispatch(message)  # an inlined copy saved 34 of 132k instructions a call

    def _expire(self, token: str) -> None:
        future = self._futures.get(token)
        if future is not None and not future.done():
            future.set_exception(_Expired())
            task = self._publishing.get(token)
            if task is not None:
                task.cancel()  # stuck in publish: `request` turns it into DeadlineExceeded

    async def _read(self, sub: Subscription) -> None:
        try:
            async for message in sub:
                self._dispatch(message)
        finally:
            self._close()

    def _dispatch(self, message: Message) -> None:
        token = message.subject[len(self.prefix) :]
        future = self._futures.pop(token, None)
        if future is not None:
            if not future.done():
                future.set_result(message)
            return
        deliver = self._streams.get(token)
        if deliver is not None:
            deliver(message)
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("late reply dropped", extra={"subject": message.subject})

    def _close(self) -> None:
        """The bus closed under us: nobody will answer the calls still waiting."""
        self._closed_flag = True
        futures = self._futures
        for future in futures.values():
            if not future.done():
                future.set_exception(Unavailable("the connection to the broker was closed"))
        futures.clear()
        for deliver in list(self._streams.values()):
            deliver(_CLOSED)
        self._timers.close()
        if Inbox._by_bus.get(id(self.bus)) is self:
            del Inbox._by_bus[id(self.bus)]


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # seen: asyncio must not log it as never retrieved


_CLOSED: Final = Message("")  # what a reply stream gets when the inbox closes


class ReplyStream:
    """The replies to one call that gets several (multi, affinity bids), as they arrive.

    Example:
        >>> with ReplyStream(inbox, deadline) as stream:
        ...     await bus.publish(Message(subject, data, reply=stream.reply_to))
        ...     while await stream.wait_until(deadline.when):
        ...         while (reply := stream.pop()) is not None: ...
    """

    __slots__ = ("_closed", "_inbox", "_replies", "_token", "_waiter", "reply_to")

    def __init__(self, inbox: Inbox, deadline: Deadline) -> None:
        self._inbox = inbox
        self._token = inbox.next_token(deadline)
        self.reply_to = inbox.prefix + self._token
        self._replies: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def __enter__(self) -> ReplyStream:
        self._inbox.open_stream(self._token, self._deliver)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._inbox.close_stream(self._token)

    def pop(self) -> Message | None:
        """The next reply received, or ``None``.

        Raises:
            Unavailable: the inbox closed (the bus went away) and every reply was taken.
        """
        if self._replies:
            return self._replies.popleft()
        if self._closed:
            raise Unavailable("the connection to the broker was closed")
        return None

    async def wait_until(self, when: float) -> bool:
        """Wait for a reply until loop time *when*; False once *when* has come."""
        if self._replies or self._closed:
            return True
        loop = asyncio.get_running_loop()
        if loop.time() >= when:
            return False
        self._waiter = loop.create_future()
        try:
            async with asyncio.timeout_at(when):
                await self._waiter
        except TimeoutError:
            return bool(self._replies)
        finally:
            self._waiter = None
        return True

    def _deliver(self, message: Message) -> None:
        if message is _CLOSED:
            self._closed = True
        else:
            self._replies.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Expired(Exception):
    """A call's deadline passed (renamed to DeadlineExceeded with the subject)."""
