"""`client(Service, bus)`: a typed client whose methods call over the bus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from .._core import DEFAULT_TIMEOUT, Codec
from ..bus import MessageBus
from ..rpc import ClientInterceptor, MultiInterceptor, RequestHook, ResponseHook, RpcClient
from ._decl import _CLIENT_ATTR, service_def

__all__ = ["client"]

S = TypeVar("S")


def client(
    service: type[S],
    bus: MessageBus,
    *,
    namespace: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    codec: Codec | None = None,
    headers: dict[str, str] | None = None,
    interceptors: Sequence[ClientInterceptor] = (),
    multi_interceptors: Sequence[MultiInterceptor] = (),
    request_hooks: Sequence[RequestHook] = (),
    response_hooks: Sequence[ResponseHook] = (),
) -> S:
    """A client for *service* on *bus*: the service's ``@rpc`` methods, called remotely.

    The result is typed as the service class, so mypy checks every call; its methods
    also take ``timeout=``, ``deadline=``, ``topic=``, ``headers=`` (and ``server_id=``,
    ``selection=`` for unary calls, ``expect=``, ``first_success=``, ``quiet=`` for multi
    calls). Only the ``@rpc`` methods work on a client: the class is not instantiated.

    Example:
        >>> greeter = busrpc.client(Greeter, bus)
        >>> reply = await greeter.say_hello(Hello(name="ada"), timeout=2)
    """
    sdef = service_def(service)
    rpc = RpcClient(
        bus,
        namespace=namespace,
        timeout=timeout,
        codec=codec,
        headers=headers,
        interceptors=interceptors,
        multi_interceptors=multi_interceptors,
        request_hooks=request_hooks,
        response_hooks=response_hooks,
    )
    proxy: S = object.__new__(service)
    proxy.__dict__[_CLIENT_ATTR] = (rpc, sdef.name)
    return proxy
