"""busrpc: typed RPC and messaging for Python services that share a message broker.

Declare a service with `service` and `rpc`, serve it with `Server` on a bus from
`connect`, and call it with `client`. The same code runs on every bus.
"""

from ._core import (
    JSON,
    MSGPACK,
    PROTOBUF,
    RAW,
    BusrpcError,
    ClosedResourceError,
    Codec,
    CodecError,
    ConnectError,
    Deadline,
    DeadlineExceeded,
    ErrorCode,
    Headers,
    Message,
    ProtocolError,
    RpcError,
    TransportError,
    Unavailable,
    WouldBlock,
)
from .bus import MessageBus, Subscription, connect
from .rpc import (
    Call,
    Claim,
    Response,
    SelectionOpts,
    ServerCall,
    current_call,
)
from .service import Server, client, rpc, service

__version__ = "0.1.0.dev0"

__all__ = [
    "BusrpcError",
    "Call",
    "Claim",
    "ClosedResourceError",
    "Codec",
    "CodecError",
    "ConnectError",
    "Deadline",
    "DeadlineExceeded",
    "ErrorCode",
    "Headers",
    "JSON",
    "MSGPACK",
    "Message",
    "MessageBus",
    "PROTOBUF",
    "ProtocolError",
    "RAW",
    "Response",
    "RpcError",
    "SelectionOpts",
    "Server",
    "ServerCall",
    "Subscription",
    "TransportError",
    "Unavailable",
    "WouldBlock",
    "client",
    "connect",
    "current_call",
    "rpc",
    "service",
]
