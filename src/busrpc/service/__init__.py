"""Typed services: declare with `service` and `rpc`, serve with `Server`, call with `client`."""

from ._client import client
from ._decl import (
    BoundMulti,
    BoundRpc,
    MultiRpcMethod,
    RpcMethod,
    ServiceDef,
    rpc,
    service,
    service_def,
)
from ._server import Server

__all__ = [
    "BoundMulti",
    "BoundRpc",
    "MultiRpcMethod",
    "RpcMethod",
    "Server",
    "ServiceDef",
    "client",
    "rpc",
    "service",
    "service_def",
]
