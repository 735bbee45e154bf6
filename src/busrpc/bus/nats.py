"""The NATS transport: ``nats://host:4222`` (and ``tls://``), on nats-py.

Headers travel as NATS headers, the body is the payload alone, so ``nats req`` and any
NATS client can call a busrpc service. A request that reaches no subscriber is answered by
the server's no-responders status, which this module turns into an ``unavailable`` reply.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import nats
import nats.errors

from .._core import (
    ClosedResourceError,
    ConnectError,
    ExceptionMap,
    Message,
    TransportError,
    map_exceptions,
    no_responders,
)
from ._buffer import BufferedSubscription, SubscriptionSet
from ._protocol import DEFAULT_MAX_PENDING, BusStatistics, Overflow

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSub

__all__ = ["NatsBus", "NatsSubscription"]

logger: logging.Logger = logging.getLogger("busrpc.bus.nats")

_NATS_ERRORS: Final[ExceptionMap] = {  # most specific first: the first match wins
    nats.errors.NoServersError: ConnectError,
    nats.errors.ConnectionClosedError: ClosedResourceError,
    nats.errors.Error: TransportError,  # the library's base class: nothing escapes
    OSError: TransportError,
    TimeoutError: TransportError,
}
_CONNECT_ERRORS: Final[ExceptionMap] = {
    nats.errors.Error: ConnectError,
    OSError: ConnectError,
    TimeoutError: ConnectError,
}
_NATS_PENDING: Final = 512 * 1024  # nats-py's default pending_msgs_limit


class NatsSubscription(BufferedSubscription):
    """A subscription on a `NatsBus` (a NATS subscription with a bounded buffer)."""

    def __init__(
        self,
        bus: NatsBus,
        subject: str,
        *,
        queue: str | None,
        max_pending: int,
        overflow: Overflow,
    ) -> None:
        super().__init__(subject, queue=queue, max_pending=max_pending, overflow=overflow)
        self._bus = bus
        self._sub: NatsSub | None = None

    async def _start(self) -> None:
        nc = self._bus._live()
        with map_exceptions(_NATS_ERRORS):
            self._sub = await nc.subscribe(
                self.subject,
                queue=self.queue or "",
                cb=self._on_msg,
                # nats-py queues messages before our callback runs. Under BLOCK our
                # callback waits for room, so that queue is the push-back: bound it like
                # ours. Under DROP_OLDEST our callback never waits; nats-py's own limit
                # (which drops the newest) must not be the one that bites.
                pending_msgs_limit=(
                    self._max_pending if self._overflow is Overflow.BLOCK else _NATS_PENDING
                ),
            )
            # The SUB must reach the server before we say "live": a PING/PONG round trip.
            # Twice: nats-py writes PING straight to the socket while the SUB may still
            # wait in its pending buffer, so the first PONG can come before the server
            # saw the SUB. By then the buffer has been written; the second PONG is proof.
            await nc.flush()
            await nc.flush()
        self._bus._subs.add(self)

    async def _stop(self) -> None:
        self._bus._forget(self)
        sub, self._sub = self._sub, None
        if sub is None or self._bus.closed:
            return
        try:
            with map_exceptions(_NATS_ERRORS):
                await sub.unsubscribe()
                # Confirm the UNSUB as _start confirms the SUB: until the server has it,
                # it still routes messages here, and nats-py drops them without a word
                # (a request gets no "no responders", its caller waits for the deadline).
                nc = self._bus._live()
                await nc.flush()
                await nc.flush()
        except (ClosedResourceError, TransportError):
            pass  # the connection is gone: so is the subscription

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers
        if headers is None:
            message = Message(msg.subject, msg.data, reply=msg.reply or None)
        elif headers.get("Status") == "503" and not msg.data:
            message = no_responders(msg.subject)
        else:
            message = Message(msg.subject, msg.data, headers, msg.reply or None)
        if not self._put_nowait(message):
            await self._put(message)


class NatsBus:
    """A `MessageBus` on one NATS connection.

    Connection options pass through to `nats.connect` (``name``, ``user_credentials``,
    ``tls``, ``max_reconnect_attempts``, ...); URL query parameters do too
    (``nats://host:4222?name=orders``); several servers are comma-separated. Entering
    tries each server *connect_attempts* times and raises `ConnectError` if none answers.

    Example:
        >>> async with NatsBus("nats://127.0.0.1:4222") as bus:
        ...     await bus.publish(Message("orders.created", b"{}"))
    """

    def __init__(
        self, url: str = "nats://127.0.0.1:4222", *, connect_attempts: int = 1, **options: Any
    ) -> None:
        self._closed = True  # until __aenter__ succeeds there is nothing to leak
        self._entered = False
        self._url, query = _split_url(url)
        self._options: dict[str, Any] = {**query, **options}
        if connect_attempts < 1:
            raise ValueError("connect_attempts must be at least 1")
        self._connect_attempts = connect_attempts
        self._connect_budget: int | None = None
        self._nc: Client | None = None
        self._subs: SubscriptionSet[NatsSubscription] = SubscriptionSet()
        self._published = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> NatsBus:
        """A bus for a ``nats://`` or ``tls://`` URL."""
        return cls(url, **options)

    @property
    def closed(self) -> bool:
        """Whether the bus is closed (or was never entered)."""
        return self._closed

    @property
    def client(self) -> Client:
        """The underlying nats-py client, for what busrpc does not wrap (JetStream, KV)."""
        return self._live()

    async def __aenter__(self) -> NatsBus:
        if self._entered:
            raise RuntimeError("a bus can be entered only once")
        self._entered = True
        options = {"error_cb": self._on_error, **self._options}
        servers = [u.strip() for u in self._url.split(",") if u.strip()]
        # nats-py retries the first connection as it would a reconnect (60 x 2 s by
        # default): fail fast instead, after `connect_attempts` tries of each server, as
        # nats.go does. Reconnects after a successful connect keep nats-py's settings.
        self._connect_budget = self._connect_attempts * len(servers)
        try:
            with map_exceptions(_CONNECT_ERRORS):
                self._nc = await nats.connect(servers, **options)
        finally:
            self._connect_budget = None
        self._closed = False
        logger.info("connected", extra={"url": _redact(self._url)})
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def publish(self, message: Message) -> None:
        """Publish *message* as a NATS message (headers as NATS headers).

        Raises:
            TransportError: the payload exceeds the server's max_payload, or the
                connection failed.
            ClosedResourceError: the bus was closed.
        """
        nc = self._live()
        with map_exceptions(_NATS_ERRORS):
            await nc.publish(
                message.subject, message.data, message.reply or "", message.headers or None
            )
        self._published += 1

    def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> NatsSubscription:
        """A subscription to *subject*; enter it to make it live (see `MessageBus`)."""
        return NatsSubscription(
            self, subject, queue=queue or None, max_pending=max_pending, overflow=overflow
        )

    def statistics(self) -> BusStatistics:
        """Counters of this connection."""
        return self._subs.statistics(self._published)

    async def aclose(self) -> None:
        """Close every subscription and the connection (idempotent)."""
        if self._closed:
            return
        for sub in self._subs:
            await sub.aclose()
        self._closed = True
        nc, self._nc = self._nc, None
        if nc is not None:
            try:
                with map_exceptions(_NATS_ERRORS):
                    await nc.close()
            except TransportError:
                logger.warning("close failed", exc_info=True)
        logger.info("closed", extra={"url": _redact(self._url)})

    def _live(self) -> Client:
        if self._closed or self._nc is None:
            raise ClosedResourceError(
                "NATS bus is closed" if self._entered else "enter the bus first"
            )
        return self._nc

    def _forget(self, sub: NatsSubscription) -> None:
        self._subs.discard(sub)

    async def _on_error(self, exc: Exception) -> None:
        if self._connect_budget is not None:  # still in __aenter__: the first connect
            self._connect_budget -= 1
            if self._connect_budget <= 0:
                raise ConnectError(f"cannot connect to {_redact(self._url)}: {exc!r}") from exc
            logger.warning("connection error, retrying", extra={"error": repr(exc)})
            return
        if isinstance(exc, nats.errors.SlowConsumerError):
            for sub in self._subs:  # nats-py's own buffer overflowed before our callback ran
                if sub._sub is exc.sub:
                    sub._count_drop()
                    return
        logger.warning("connection error", extra={"error": repr(exc)})

    def __repr__(self) -> str:
        return f"<NatsBus {_redact(self._url)!r}{' closed' if self._closed else ''}>"

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=1)


_INT_OPTIONS: Final = frozenset(
    {
        "max_reconnect_attempts",
        "reconnect_time_wait",
        "connect_timeout",
        "ping_interval",
        "max_outstanding_pings",
        "pending_size",
        "flush_timeout",
    }
)


def _split_url(url: str) -> tuple[str, dict[str, Any]]:
    parts = urlsplit(url)
    query: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query):
        query[key] = float(value) if key in _INT_OPTIONS else value
        if key in _INT_OPTIONS and query[key].is_integer():
            query[key] = int(query[key])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), query


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password or parts.username:
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit((parts.scheme, f"***@{host}{port}", parts.path, "", ""))
    return url
