"""`Server`: serve service objects on a bus."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._core import DEFAULT_TIMEOUT
from ..bus import MessageBus
from ..rpc import RpcServer, ServerInterceptor, ServerStatistics, Topic
from ..rpc._server import DEFAULT_MAX_MESSAGE_SIZE
from ._decl import _Declared, service_def

__all__ = ["Server"]


class Server:
    """Serves one or more service objects on a bus until the ``async with`` block exits.

    Entering returns once every subscription is live; leaving shuts down gracefully
    (running calls finish within *shutdown_grace* seconds). `kill` stops at once and answers
    running calls ``unavailable``.

    Args:
        bus: an entered bus.
        *services: instances of ``@busrpc.service`` classes.
        server_id: this server's id (default: random); direct calls address it.
        namespace: subject prefix; clients must use the same.
        max_concurrency: handlers running at once (default: 64 per core).
        interceptors: wrap every handler; the first is outermost.
        topics: topics to serve from the start, by method (``{Svc.method: ["eu"]}``).

    Example:
        >>> async with busrpc.Server(bus, Greeter()):
        ...     await asyncio.Event().wait()
    """

    def __init__(
        self,
        bus: MessageBus,
        *services: object,
        server_id: str | None = None,
        namespace: str | None = None,
        max_concurrency: int | None = None,
        max_pending: int = 4096,
        interceptors: Sequence[ServerInterceptor] = (),
        default_timeout: float = DEFAULT_TIMEOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        shutdown_grace: float = 10.0,
        topics: Mapping[Any, Iterable[Topic]] | None = None,
    ) -> None:
        if not services:
            raise TypeError("Server needs at least one service object")
        self._rpc = RpcServer(
            bus,
            server_id=server_id,
            namespace=namespace,
            max_concurrency=max_concurrency,
            max_pending=max_pending,
            interceptors=interceptors,
            default_timeout=default_timeout,
            max_message_size=max_message_size,
            shutdown_grace=shutdown_grace,
        )
        self._services: dict[_Declared[Any, Any, Any], str] = {}
        for obj in services:
            sdef = service_def(obj)
            for decl in sdef:
                affinity = None
                if decl.affinity_fn is not None:
                    affinity = functools.partial(decl.affinity_fn, obj)
                self._rpc.add(
                    decl.method(sdef.name), functools.partial(decl.fn, obj), affinity=affinity
                )
                self._services[decl] = sdef.name
        self._initial_topics = dict(topics or {})

    @property
    def server_id(self) -> str:
        """This server's id."""
        return self._rpc.server_id

    @property
    def services(self) -> list[str]:
        """Names of the services served."""
        return sorted(set(self._services.values()))

    async def __aenter__(self) -> Server:
        for decl, topics in self._initial_topics.items():
            for topic in topics:
                await self.register_topic(decl, topic)
        await self._rpc.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    async def register_topic(self, method: Any, topic: Topic) -> None:
        """Serve *method* (``Service.method``) on *topic*; clients call with ``topic=``."""
        await self._rpc.register_topic(self._method(method), topic)

    async def deregister_topic(self, method: Any, topic: Topic) -> None:
        """Stop serving *method* on *topic*."""
        await self._rpc.deregister_topic(self._method(method), topic)

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop taking calls; let running ones finish for *grace* seconds; then `kill`."""
        await self._rpc.shutdown(grace)

    async def kill(self) -> None:
        """Stop now: running calls are answered ``unavailable``."""
        await self._rpc.kill()

    async def wait_closed(self) -> None:
        """Wait until the server has stopped (`shutdown`, `kill`, or its bus closed).

        Raises:
            TransportError: the bus closed under the server (the broker is gone for
                good): exit, so that a supervisor restarts the process.

        Example:
            >>> async with busrpc.Server(bus, Greeter()) as server:
            ...     await server.wait_closed()
        """
        await self._rpc.wait_closed()

    def statistics(self) -> ServerStatistics:
        """Counters: received, succeeded, failed, expired, in flight."""
        return self._rpc.statistics()

    def _method(self, method: Any) -> Any:
        if not isinstance(method, _Declared) or method not in self._services:
            raise KeyError(f"{method!r} is not a method of a service served here")
        return method.method(self._services[method])

    def __repr__(self) -> str:
        return f"<Server {self.server_id!r} {self.services}>"
