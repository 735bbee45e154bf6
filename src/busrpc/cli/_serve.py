"""``busrpc serve module:Class``: import a service, serve it until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import busrpc
from busrpc.rpc import topic_tokens
from busrpc.service import service_def

from ._runtime import CliError, open_bus, redact_url

__all__ = ["build_service", "load_target", "parse_topics", "serve"]


def load_target(spec: str) -> object:
    """The object *spec* (``package.module:attribute``) names, as uvicorn finds its app.

    The current directory is put first on ``sys.path``, so local modules import.

    Raises:
        CliError: *spec* is malformed, the module does not import, or it has no such
            attribute (exit code 2).

    Example:
        >>> load_target("busrpc.cli._demo:DemoService")
        <class 'busrpc.cli._demo.DemoService'>
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"invalid target {spec!r}: use module:Class", exit_code=2)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import {module_name!r}: {exc}", exit_code=2) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise CliError(f"module {module_name!r} has no {attr!r}", exit_code=2) from exc
    return obj


async def build_service(obj: object) -> object:
    """The service object to serve: *obj* instantiated if it is a class, called (and
    awaited, if async) if it is a factory function, or *obj* itself if it is an instance.

    Raises:
        CliError: the result is not an instance of a ``@busrpc.service`` class.
    """
    if isinstance(obj, type):
        instance: object = obj()
    elif _is_service(obj):
        instance = obj
    elif callable(obj):
        instance = obj()
        if inspect.isawaitable(instance):
            instance = await instance
    else:
        raise CliError(f"{obj!r} is neither a service class nor a factory", exit_code=2)
    if not _is_service(instance) or isinstance(instance, type):
        raise CliError(
            f"{type(instance).__name__} is not a busrpc service: decorate it with @busrpc.service",
            exit_code=2,
        )
    return instance


def _is_service(obj: object) -> bool:
    try:
        service_def(obj)
    except TypeError:
        return False
    return True


def parse_topics(service_obj: object, topics: Sequence[str]) -> dict[Any, list[tuple[str, ...]]]:
    """``method=topic`` options as `Server`'s ``topics=`` (``{Svc.method: [("eu",)]}``).

    *method* is the Python name or the wire name; a dotted topic (``eu.west``) has several
    tokens.

    Raises:
        CliError: malformed, an unknown method, or one not declared ``topics=True``.
    """
    sdef = service_def(service_obj)
    by_name = {**{d.name: d for d in sdef}, **sdef.methods}
    result: dict[Any, list[tuple[str, ...]]] = {}
    for option in topics:
        name, sep, topic = option.partition("=")
        if not sep or not name or not topic:
            raise CliError(f"invalid --topic {option!r}: use METHOD=TOPIC", exit_code=2)
        decl = by_name.get(name.strip())
        if decl is None:
            known = ", ".join(sorted(sdef.methods))
            raise CliError(
                f"--topic {option!r}: {sdef.name} has no method {name!r} ({known})", exit_code=2
            )
        if not decl.topics:
            raise CliError(
                f"--topic {option!r}: {sdef.name}.{decl.name} is not declared topics=True",
                exit_code=2,
            )
        try:
            tokens = topic_tokens(tuple(topic.strip().split(".")))
        except ValueError as exc:
            raise CliError(f"--topic {option!r}: {exc}", exit_code=2) from exc
        result.setdefault(decl, []).append(tokens)
    return result


async def serve(
    target: object,
    url: str | None,
    *,
    server_id: str | None,
    namespace: str | None,
    topics: Sequence[str],
) -> None:
    """Serve the service *target* names on *url* until SIGINT or SIGTERM, then shut down
    gracefully (a second signal stops at once). Without *url*: ``BUSRPC_URL``, else a
    private nats-server.

    Prints ``serving <services> on <url> as server <id>`` once the subscriptions are live.

    Raises:
        CliError: a signal came before the server was serving, or the bus is unusable.
    """
    service_obj = await build_service(target)
    topic_map = parse_topics(service_obj, topics)
    async with contextlib.AsyncExitStack() as stack:
        signals = _Signals(stack)
        try:
            url, bus = await _open(stack, url)
            server = busrpc.Server(
                bus, service_obj, server_id=server_id, namespace=namespace, topics=topic_map
            )
            await stack.enter_async_context(server)
        except asyncio.CancelledError:
            if not signals.received:
                raise
            _uncancel()
            raise CliError("interrupted before serving") from None
        except ValueError as exc:  # a server id or namespace the bus cannot use
            raise CliError(str(exc), exit_code=2) from exc
        where = f" in namespace {namespace}" if namespace else ""
        print(
            f"serving {', '.join(server.services)} on {redact_url(url)}{where} "
            f"as server {server.server_id}",
            flush=True,
        )
        await signals.serving(server)
        await server.shutdown()
        await signals.wait_killed()
        print(f"stopped server {server.server_id}", flush=True)


async def _open(stack: contextlib.AsyncExitStack, url: str | None) -> tuple[str, busrpc.MessageBus]:
    url = url or os.environ.get("BUSRPC_URL") or None
    if url is None:
        from ._nats_server import EmbeddedNatsServer

        nats_server = await stack.enter_async_context(EmbeddedNatsServer())
        url = nats_server.url
        print(f"started nats-server on {url} (BUSRPC_URL={url})", flush=True)
    # A server may start before its broker (compose files, restarts): keep trying until
    # the broker answers or a signal arrives, instead of failing like a one-off command.
    scheme = url.partition("://")[0].lower()
    options = {"connect_attempts": 1_000_000_000} if scheme in ("nats", "tls") else {}
    return url, await open_bus(stack, url, timeout=None, **options)


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


class _Signals:
    """SIGINT and SIGTERM: before serving, abandon the start; while serving, the first
    stops gracefully and a second one stops at once (`Server.kill`)."""

    def __init__(self, stack: contextlib.AsyncExitStack) -> None:
        self.received = 0
        self._main = asyncio.current_task()
        self._stop = asyncio.Event()
        self._server: busrpc.Server | None = None
        self._kill: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal)
            except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises instead
                continue
            stack.callback(loop.remove_signal_handler, sig)

    async def serving(self, server: busrpc.Server) -> None:
        """Wait, while *server* serves, for the first signal."""
        self._server = server
        await self._stop.wait()

    async def wait_killed(self) -> None:
        """Wait for a kill a second signal started, if any."""
        if self._kill is not None:
            await self._kill

    def _on_signal(self) -> None:
        self.received += 1
        if self._server is None:
            if self._main is not None:
                self._main.cancel()  # still connecting: stop trying
        elif self.received == 1:
            self._stop.set()
        elif self._kill is None:
            self._kill = asyncio.get_running_loop().create_task(self._server.kill())
