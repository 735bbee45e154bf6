"""Call patterns on any `MessageBus`: unary, direct, affinity, multi, topics; interceptors."""

from ._call import (
    Call,
    ClientInterceptor,
    MultiInterceptor,
    MultiNext,
    Next,
    RequestHook,
    ResponseHook,
    ServerCall,
    ServerInterceptor,
    ServerNext,
    current_call,
)
from ._client import RpcClient
from ._method import (
    Claim,
    Method,
    NameKind,
    Response,
    SelectionOpts,
    Topic,
    base_subject,
    claim_subject,
    direct_subject,
    topic_tokens,
    validate_name,
)
from ._server import DEFAULT_MAX_MESSAGE_SIZE, RpcServer, ServerStatistics, ServiceDescription
from ._wire import INBOX_PREFIX

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "INBOX_PREFIX",
    "Call",
    "Claim",
    "ClientInterceptor",
    "Method",
    "MultiInterceptor",
    "MultiNext",
    "NameKind",
    "Next",
    "RequestHook",
    "Response",
    "ResponseHook",
    "RpcClient",
    "RpcServer",
    "SelectionOpts",
    "ServerCall",
    "ServerInterceptor",
    "ServerNext",
    "ServerStatistics",
    "ServiceDescription",
    "Topic",
    "base_subject",
    "claim_subject",
    "current_call",
    "direct_subject",
    "topic_tokens",
    "validate_name",
]
