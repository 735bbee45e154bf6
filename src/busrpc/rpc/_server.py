"""The server runtime's lifecycle: subscriptions, the worker pool, shutdown and kill.

What happens to each request is `_dispatch.py`'s job. Here: which subjects a server
listens on, how requests reach the pool (or are refused at once when it is full), how a
graceful shutdown stops receiving before it finishes the work it holds, and how `kill`
answers what is left.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import secrets
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec

from .._core import (
    DEFAULT_TIMEOUT,
    ClosedResourceError,
    ErrorCode,
    Message,
    RpcError,
    TransportError,
)
from ..bus import MessageBus, Overflow, Subscription, SupportsDrain, SupportsListen
from ._call import ServerInterceptor
from ._dispatch import AffinityFn, Dispatcher, Handler, Route, chain
from ._method import (
    Method,
    Topic,
    base_subject,
    cancel_subject,
    claim_subject,
    describe_subject,
    direct_subject,
    topic_tokens,
    validate_name,
)
from ._pool import EagerPool, WorkerPool, server_pool

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "RpcServer", "ServerStatistics", "ServiceDescription"]

logger = logging.getLogger("busrpc.rpc")

DEFAULT_MAX_MESSAGE_SIZE: Final = 1024 * 1024
"""Largest request body a server accepts (larger ones get ``resource_exhausted``)."""

_CONTROL_PENDING: Final = 4096

_Callback = Callable[[Message | None], bool]


class ServerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a server's counters."""

    received: int
    """Requests taken from the bus (claims included, refusals not)."""
    succeeded: int
    """Calls answered with a result."""
    failed: int
    """Calls answered with an error (malformed request, handler error, ...)."""
    expired: int
    """Calls dropped because the caller's deadline passed (before or during the handler)."""
    in_flight: int
    """Handlers running now (a call leaves this count before its reply is sent)."""
    rejected: int = 0
    """Requests refused at once (``resource_exhausted``) because the server was full."""
    cancelled: int = 0
    """Calls stopped because their caller cancelled them (no reply is sent)."""


class ServiceDescription(msgspec.Struct, frozen=True, kw_only=True):
    """What a server answers on ``{service}._describe``: the methods it serves.

    Example:
        >>> description = await client.describe("greeter")
        >>> "stats" in description.multi
        True
    """

    service: str
    server_id: str
    methods: list[str]
    """Every method's wire name."""
    multi: list[str] = []
    """The multi methods among them (every server answers)."""
    affinity: list[str] = []
    """The affinity methods among them (servers bid)."""
    topics: list[str] = []
    """The methods called with a topic."""


_describe_encoder = msgspec.json.Encoder()


class RpcServer:
    """Serves methods on any `MessageBus` until closed.

    Entering subscribes every method (returning once the subscriptions are live);
    leaving shuts down gracefully. At most *max_concurrency* handlers run at once and at
    most *max_pending* requests wait for one; a request beyond that is answered
    ``resource_exhausted`` at once, so its caller can go elsewhere instead of waiting out
    its deadline.

    Example:
        >>> server = RpcServer(bus)
        >>> server.add(SAY_HELLO, say_hello)
        >>> async with server:
        ...     await server.wait_closed()
    """

    def __init__(
        self,
        bus: MessageBus,
        *,
        server_id: str | None = None,
        namespace: str | None = None,
        max_concurrency: int | None = None,
        max_pending: int = 4096,
        interceptors: Sequence[ServerInterceptor] = (),
        default_timeout: float = DEFAULT_TIMEOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        shutdown_grace: float = 10.0,
    ) -> None:
        validate_name("namespace", namespace)
        validate_name("server_id", server_id)
        self.bus = bus
        self.server_id: str = server_id or secrets.token_hex(6)
        self.namespace: str | None = namespace or None
        self.max_concurrency: int = max_concurrency or 64 * (os.cpu_count() or 1)
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self.default_timeout = default_timeout
        self.max_message_size = max_message_size
        self.shutdown_grace = shutdown_grace
        self._interceptors = list(interceptors)
        self._methods: dict[Method[Any, Any], tuple[Handler, AffinityFn | None]] = {}
        self._topics: dict[tuple[Method[Any, Any], tuple[str, ...]], list[Subscription]] = {}
        # Subscriptions and what each delivers to. Requests are drained first on shutdown;
        # control subscriptions (cancels, describe) stay live until the very end.
        self._subs: dict[Subscription, _Callback] = {}
        self._control: dict[Subscription, _Callback] = {}
        self._readers: list[asyncio.Task[None]] = []
        self._dispatch: Dispatcher | None = None
        self._pool: WorkerPool[tuple[Message, Route]] | EagerPool[tuple[Message, Route]] | None = (
            None
        )
        self._state = "new"  # new -> serving -> closing -> closed
        self._lost: TransportError | None = None
        self._stopped = asyncio.Event()
        self._overloaded = False  # log once per burst of refusals, not per request
        self._graceful: asyncio.Task[None] | None = None
        self._killer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # -- configuration -------------------------------------------------------------------

    def add(
        self, method: Method[Any, Any], handler: Handler, *, affinity: AffinityFn | None = None
    ) -> None:
        """Serve *method* with *handler* (an async function of the decoded request).

        Affinity methods need *affinity*: a function of the request returning a score
        (higher is better; below 0 the server does not bid).
        """
        if self._state != "new":
            raise RuntimeError("add methods before the server starts")
        if method.affinity and affinity is None:
            raise TypeError(f"{method.service}.{method.name} is an affinity method: pass affinity=")
        self._methods[method] = (handler, affinity)

    async def register_topic(self, method: Method[Any, Any], topic: Topic) -> None:
        """Start serving *method* on *topic* (methods declared with ``topics=True``)."""
        tokens = topic_tokens(topic)
        if not method.topics:
            raise ValueError(f"{method.service}.{method.name} does not use topics")
        if method not in self._methods:
            raise KeyError(f"{method.service}.{method.name} is not served here")
        if (method, tokens) in self._topics:
            return
        self._topics[(method, tokens)] = []
        if self._state == "serving":
            await self._subscribe_method(method, tokens)

    async def deregister_topic(self, method: Method[Any, Any], topic: Topic) -> None:
        """Stop serving *method* on *topic*."""
        subs = self._topics.pop((method, topic_tokens(topic)), [])
        for sub in subs:
            await self._close(sub, self._subs.pop(sub, None))

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> RpcServer:
        if self._state != "new":
            raise RuntimeError("a server can be started only once")
        self._state = "serving"
        # The context every call starts from: the one the server was started in, never
        # the caller's (the memory bus delivers inside the caller's publish).
        context = contextvars.copy_context()
        self._dispatch = Dispatcher(
            self.bus,
            self.server_id,
            default_timeout=self.default_timeout,
            max_message_size=self.max_message_size,
            context=context,
        )
        self._pool = server_pool(
            self._dispatch.handle, self.max_concurrency, self.max_pending, context=context
        )
        try:
            for method in self._methods:
                if method.topics:
                    for m, tokens in list(self._topics):
                        if m is method:
                            await self._subscribe_method(method, tokens)
                else:
                    await self._subscribe_method(method, ())
            for service in sorted({m.service for m in self._methods}):
                await self._subscribe_control(service)
        except BaseException:
            await self.kill()
            raise
        logger.info(
            "serving",
            extra={"server_id": self.server_id, "methods": [m.name for m in self._methods]},
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop receiving, finish the calls this server holds for *grace* seconds, then
        `kill` what is left.

        Receiving stops first: where the transport can drain (NATS), every request
        already routed to this server is still taken and answered, so none is lost.
        Calls running or waiting for a worker finish normally; those left when the
        grace ends are answered ``unavailable``. `kill` during a shutdown ends it at once.
        Idempotent; safe on a server that never started.
        """
        if self._state == "new":
            self._state = "closed"
            self._stopped.set()
            return
        closer = self._closer
        if closer is None:
            if self._state != "serving":  # a kill is under way, or done
                if self._killer is not None:
                    await asyncio.shield(self._killer)
                return
            self._state = "closing"
            closer = self._closer = asyncio.get_running_loop().create_task(
                self._shutdown(self.shutdown_grace if grace is None else grace)
            )
        # In a task of its own: a second call waits for the same shutdown, and a caller
        # cancelled while it waits leaves the shutdown to finish.
        await asyncio.shield(closer)

    async def _shutdown(self, grace: float) -> None:
        dispatch = self._dispatch
        assert dispatch is not None
        logger.info(
            "draining", extra={"server_id": self.server_id, "in_flight": dispatch.in_flight}
        )
        self._graceful = graceful = asyncio.get_running_loop().create_task(self._finish())
        try:
            await asyncio.wait([graceful], timeout=grace)
            if not graceful.done():
                logger.warning("grace period over", extra={"server_id": self.server_id})
        finally:
            await self.kill()  # also ends the graceful part, however far it got

    async def kill(self) -> None:
        """Stop now: stop receiving, answer every running or waiting call ``unavailable``.

        Ends a `shutdown` in progress at once. Idempotent; the kill runs in a task of its
        own, so a caller cancelled while it waits leaves it to finish.
        """
        if self._state == "closed":
            return
        killer = self._killer
        if killer is None:
            self._state = "dying"
            killer = self._killer = asyncio.get_running_loop().create_task(self._kill())
        await asyncio.shield(killer)

    async def _kill(self) -> None:
        graceful = self._graceful
        if graceful is not None:
            graceful.cancel()  # awaited last: it must not hold up the kill
        subs, self._subs = self._subs, {}
        for sub, callback in subs.items():
            await self._close(sub, callback)
        dispatch, pool = self._dispatch, self._pool
        if dispatch is not None and pool is not None:
            dispatch.killing = True
            refusal = RpcError(ErrorCode.UNAVAILABLE, "server is shutting down")
            for message, route in pool.take_queued():
                dispatch.reject(message, route, refusal)
            for message, route in await pool.cancel_running():
                dispatch.reject(message, route, refusal)
            await dispatch.wait_sent()
            dispatch.close()
        control, self._control = self._control, {}
        for sub in control:
            await self._close(sub, None)
        readers, self._readers = self._readers, []
        for reader in readers:
            reader.cancel()
        if graceful is not None:
            readers.append(graceful)  # ends now: its pool has stopped, its state is gone
        if readers:
            await asyncio.wait(readers)
        self._state = "closed"
        self._stopped.set()
        logger.info("stopped", extra={"server_id": self.server_id})

    async def wait_closed(self) -> None:
        """Wait until the server has stopped (`shutdown`, `kill`, or its bus closed).

        Raises:
            TransportError: the server stopped because its bus closed under it (the
                broker went away for good): a supervisor should restart the process.
        """
        await self._stopped.wait()
        if self._lost is not None:
            raise self._lost

    def statistics(self) -> ServerStatistics:
        """Counters of this server."""
        d = self._dispatch
        if d is None:
            return ServerStatistics(received=0, succeeded=0, failed=0, expired=0, in_flight=0)
        return ServerStatistics(
            received=d.received,
            succeeded=d.succeeded,
            failed=d.failed,
            expired=d.expired,
            in_flight=d.in_flight,
            rejected=d.rejected,
            cancelled=d.cancelled,
        )

    def __del__(self) -> None:
        if getattr(self, "_state", "closed") == "serving":
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=1)

    def __repr__(self) -> str:
        return f"<RpcServer {self.server_id!r} {self._state}>"

    async def _finish(self) -> None:
        """The graceful part of `shutdown`: stop receiving, then let the pool empty."""
        # One at a time, and the state checked after every await: a kill cancels this
        # task, but on 3.11 a cancel can be lost inside a library's `wait_for` (nats-py's
        # flush), and then this must stop by itself rather than wait out the grace.
        while self._subs and self._state == "closing":
            sub, callback = next(iter(self._subs.items()))
            await self._drain(sub, callback)
            self._subs.pop(sub, None)  # drained; what a kill interrupts, it closes
        assert self._pool is not None and self._dispatch is not None
        if self._state == "closing":
            await self._pool.wait_drained()  # returns at once when a kill stops the pool
            await self._dispatch.wait_sent()

    def _bus_lost(self) -> None:
        """A subscription ended while serving: the bus closed under us."""
        if self._state != "serving":
            return
        self._lost = TransportError("the bus closed while serving")
        logger.error("bus lost", extra={"server_id": self.server_id})
        task = asyncio.get_running_loop().create_task(self.kill())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- subscriptions -------------------------------------------------------------------

    async def _subscribe_method(self, method: Method[Any, Any], topic: tuple[str, ...]) -> None:
        handler, affinity = self._methods[method]
        # Two ways to call a handler: straight (no interceptors: saves the chain's
        # coroutine per call) or through the chain; `Route.direct` picks.
        direct = None if self._interceptors else handler
        call = chain(self._interceptors, handler)
        base = base_subject(self.namespace, method, topic)
        route = Route(
            method, call, direct, topic, claim=False, affinity=None, server_id=self.server_id
        )
        queue = None if method.multi else method.service
        subs = [
            await self._subscribe(base, queue, route),
            await self._subscribe(direct_subject(base, self.server_id), None, route),
        ]
        if method.affinity:
            claim = Route(
                method, call, direct, topic, claim=True, affinity=affinity, server_id=self.server_id
            )
            subs.append(await self._subscribe(claim_subject(base), None, claim))
        if method.topics:
            self._topics.setdefault((method, topic), []).extend(subs)

    async def _subscribe(self, subject: str, queue: str | None, route: Route) -> Subscription:
        dispatch, pool = self._dispatch, self._pool
        assert dispatch is not None and pool is not None
        sub = self.bus.subscribe(
            subject, queue=queue, max_pending=self.max_pending, overflow=Overflow.BLOCK
        )
        await sub.__aenter__()
        busy = RpcError(ErrorCode.RESOURCE_EXHAUSTED, "server is at capacity")
        stopping = RpcError(ErrorCode.UNAVAILABLE, "server is shutting down")
        half = self.max_pending // 2

        def on_request(message: Message | None) -> bool:
            if message is None:
                self._bus_lost()  # no-op unless still serving
                return True
            if pool.submit_nowait((message, route)):
                dispatch.received += 1
                if self._overloaded and pool.queued <= half:
                    self._overloaded = False
                return True
            # Full: refuse at once, never leave it for the transport to drop silently.
            if self._state != "serving":
                dispatch.reject(message, route, stopping)
                return True
            dispatch.reject(message, route, busy)
            if not self._overloaded:
                self._overloaded = True
                logger.warning(
                    "server full: refusing calls",
                    extra={"server_id": self.server_id, "max_pending": self.max_pending},
                )
            return True

        self._subs[sub] = on_request
        self._deliver(sub, on_request)
        return sub

    async def _subscribe_control(self, service: str) -> None:
        """Per service: cancels (every server hears them) and describe (one answers)."""
        dispatch = self._dispatch
        assert dispatch is not None
        served = sorted((m for m in self._methods if m.service == service), key=lambda m: m.name)
        description = _describe_encoder.encode(
            ServiceDescription(
                service=service,
                server_id=self.server_id,
                methods=[m.name for m in served],
                multi=[m.name for m in served if m.multi],
                affinity=[m.name for m in served if m.affinity],
                topics=[m.name for m in served if m.topics],
            )
        )

        def on_cancel(message: Message | None) -> bool:
            if message is not None:
                dispatch.cancel(message.data.decode("utf-8", "replace"))
            return True

        def on_describe(message: Message | None) -> bool:
            if message is not None and message.reply:
                dispatch.send_nowait(Message(message.reply, description), message)
            return True

        for subject, queue, callback in (
            (cancel_subject(self.namespace, service), None, on_cancel),
            (describe_subject(self.namespace, service), service, on_describe),
        ):
            sub = self.bus.subscribe(
                subject, queue=queue, max_pending=_CONTROL_PENDING, overflow=Overflow.DROP_OLDEST
            )
            await sub.__aenter__()
            self._control[sub] = callback
            self._deliver(sub, callback)

    def _deliver(self, sub: Subscription, callback: _Callback) -> None:
        """Hand every message of *sub* to *callback*, pushed by the transport if it can."""
        if isinstance(sub, SupportsListen):
            sub.listen(callback)
            # What arrived while the subscription was starting, before listen().
            if sub.statistics().pending:
                self._readers.append(
                    asyncio.get_running_loop().create_task(self._read_buffered(sub, callback))
                )
        else:
            self._readers.append(asyncio.get_running_loop().create_task(self._read(sub, callback)))

    async def _read_buffered(self, sub: Subscription, callback: _Callback) -> None:
        """Hand what *sub* buffered to *callback* (receive does not wait while it has)."""
        try:
            while sub.statistics().pending:
                callback(await sub.receive())
        except ClosedResourceError:
            pass

    async def _read(self, sub: Subscription, callback: _Callback) -> None:
        async for message in sub:
            callback(message)
        callback(None)

    async def _drain(self, sub: Subscription, callback: _Callback) -> None:
        """Stop *sub* receiving; take what was already routed to this server."""
        if isinstance(sub, SupportsDrain):
            try:
                await sub.drain()
            except (TransportError, ClosedResourceError):
                logger.warning("drain failed", extra={"subject": sub.subject}, exc_info=True)
            else:
                return
        await self._close(sub, callback)

    async def _close(self, sub: Subscription, callback: _Callback | None) -> None:
        """Close *sub*; what it buffered goes to *callback* first (a server that is
        stopping refuses it at once: its callers can go elsewhere)."""
        try:
            if callback is not None:
                await self._read_buffered(sub, callback)
            await sub.aclose()
        except (TransportError, ClosedResourceError):
            logger.warning("unsubscribe failed", extra={"subject": sub.subject}, exc_info=True)
