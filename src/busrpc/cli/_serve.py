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
from typing import Any, Final

import busrpc
from busrpc.rpc import topic_tokens
from busrpc.service import service_def

from ._runtime import CliError, open_bus, redact_url

__all__ = ["DEFAULT_GRACE", "build_service", "load_target", "parse_topics", "serve"]

DEFAULT_GRACE: Final = 10.0
"""Seconds running calls get to finish after the first SIGINT or SIGTERM."""

RETRY_INTERVAL: Final = 2.0
"""Seconds between attempts to reach a broker that is down (nats-py's reconnect wait)."""


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
        CliError: *obj* is not a service (nor a factory of one), or it needs arguments
            (exit code 2).

    Example:
        >>> await build_service(Greeter)
        <Greeter object at ...>
    """
    if isinstance(obj, type):
        if not _is_service(obj):
            raise CliError(
                f"{obj.__name__} is not a busrpc service: decorate it with @busrpc.service",
                exit_code=2,
            )
        _check_no_arguments(obj, f"class {obj.__name__}")
        instance: object = obj()
    elif _is_service(obj):
        instance = obj
    elif callable(obj):
        _check_no_arguments(obj, getattr(obj, "__qualname__", repr(obj)))
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


def _check_no_arguments(factory: object, what: str) -> None:
    try:
        signature = inspect.signature(factory)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # no signature to check (a builtin): just call it
        return
    try:
        signature.bind()
    except TypeError as exc:
        raise CliError(
            f"{what} needs arguments ({exc}): serve a factory function that takes none, "
            "or an instance (module:name_of_instance)",
            exit_code=2,
        ) from exc


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
    grace: float = DEFAULT_GRACE,
) -> None:
    """Serve the service *target* names on *url* until SIGINT or SIGTERM, then drain for
    up to *grace* seconds (a second signal stops at once). Without *url*: ``BUSRPC_URL``,
    else a private nats-server. A broker that is down is waited for.

    Prints ``serving <services> on <url> as server <id>`` once the subscriptions are live.

    Raises:
        CliError: a signal came before the server was serving, the bus is unusable, or
            the bus closed under the server (the broker is gone for good: exit code 1,
            so that a supervisor restarts the process).

    Example:
        >>> await serve(Greeter, "nats://127.0.0.1:4222", server_id=None, namespace=None,
        ...             topics=[])
    """
    service_obj = await build_service(target)
    topic_map = parse_topics(service_obj, topics)
    async with contextlib.AsyncExitStack() as stack:
        signals = _Signals(stack, grace)
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
        signals.serving(server)
        try:
            # Returns once a signal's shutdown (or kill) has finished.
            await server.wait_closed()
        except busrpc.TransportError as exc:
            raise CliError(
                f"lost the bus at {redact_url(url)} ({exc}): server {server.server_id} stopped"
            ) from exc
        await signals.wait_stopped()
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
    failures = 0
    while True:
        try:
            return url, await open_bus(stack, url, retry=True)
        except busrpc.ConnectError as exc:
            if failures == 0:
                print(
                    f"waiting for the broker at {redact_url(url)}, retrying every "
                    f"{RETRY_INTERVAL:g} s (Ctrl-C to stop): {exc}",
                    file=sys.stderr,
                    flush=True,
                )
            failures += 1
        await asyncio.sleep(RETRY_INTERVAL)


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


class _Signals:
    """SIGINT and SIGTERM: before serving, abandon the start; while serving, the first
    drains (`Server.shutdown`) and a second one stops at once (`Server.kill`)."""

    def __init__(self, stack: contextlib.AsyncExitStack, grace: float) -> None:
        self.received = 0
        self._grace = grace
        self._main = asyncio.current_task()
        self._server: busrpc.Server | None = None
        self._stopping: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal)
            except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises instead
                continue
            stack.callback(loop.remove_signal_handler, sig)

    def serving(self, server: busrpc.Server) -> None:
        """*server* is serving: signals stop it from now on."""
        self._server = server

    async def wait_stopped(self) -> None:
        """Wait for the shutdown and kill the signals started (and see their errors)."""
        for task in self._stopping:
            await task

    def _on_signal(self) -> None:
        self.received += 1
        server = self._server
        if server is None:
            if self._main is not None:
                self._main.cancel()  # still connecting: stop trying
            return
        loop = asyncio.get_running_loop()
        if len(self._stopping) == 0:
            running = server.statistics().in_flight
            calls = "call" if running == 1 else "calls"
            print(
                f"draining: finishing {running} {calls}, up to {self._grace:g} s; "
                "Ctrl-C again to stop now",
                flush=True,
            )
            self._stopping.append(loop.create_task(server.shutdown(self._grace)))
        elif len(self._stopping) == 1:
            print("stopping now: running calls are answered unavailable", flush=True)
            self._stopping.append(loop.create_task(server.kill()))
