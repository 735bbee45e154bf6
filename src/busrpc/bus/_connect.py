"""`connect(url)`: pick the transport from the URL scheme, importing it lazily."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any, Final

from ._protocol import MessageBus

__all__ = ["connect", "register_transport"]

# scheme -> "module:factory"; the module is imported on first use, so `import busrpc`
# imports no broker client.
_TRANSPORTS: dict[str, str | Callable[..., MessageBus]] = {
    "memory": "busrpc.bus.memory:MemoryBus.from_url",
    "nats": "busrpc.bus.nats:NatsBus.from_url",
    "tls": "busrpc.bus.nats:NatsBus.from_url",
}
_EXTRAS: Final = {"nats": "nats", "tls": "nats"}


def register_transport(scheme: str, factory: Callable[..., MessageBus]) -> None:
    """Make `connect` build buses for ``scheme://`` URLs with *factory(url, **options)*.

    Example:
        >>> register_transport("mybroker", MyBrokerBus.from_url)
    """
    _TRANSPORTS[scheme] = factory


def connect(url: str | None = None, **options: Any) -> MessageBus:
    """A bus for *url* (default: the ``BUSRPC_URL`` environment variable); enter it to connect.

    Schemes: ``memory://[name]``, ``nats://host:port``, ``tls://host:port``. Keyword
    options pass through to the transport (for NATS, to ``nats.connect``).

    Raises:
        ValueError: no URL and no ``BUSRPC_URL``, or an unknown scheme.
        ImportError: the transport's extra is not installed (the message names it).

    Example:
        >>> async with busrpc.connect("nats://127.0.0.1:4222") as bus:
        ...     ...
    """
    if url is None:
        url = os.environ.get("BUSRPC_URL")
        if not url:
            raise ValueError("no bus URL given and BUSRPC_URL is not set")
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ValueError(f"bus URL {url!r} has no scheme (memory://, nats://, ...)")
    target = _TRANSPORTS.get(scheme.lower())
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(_TRANSPORTS))
        raise ValueError(f"unknown bus scheme {scheme!r} in {url!r}; known: {known}")
    factory = _load(scheme.lower(), target) if isinstance(target, str) else target
    return factory(url, **options)


def _load(scheme: str, target: str) -> Callable[..., MessageBus]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRAS.get(scheme, scheme)
        raise ImportError(
            f"the {scheme}:// transport needs its client library: pip install 'busrpc[{extra}]'"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    factory: Callable[..., MessageBus] = obj
    return factory
