"""What the rpc layer knows about a method: names, types, codecs, routing."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar, overload

import msgspec

from .._core import Codec, RpcError, default_codec_for

__all__ = [
    "Claim",
    "Method",
    "NameKind",
    "Response",
    "SelectionOpts",
    "Topic",
    "base_subject",
    "cancel_subject",
    "claim_subject",
    "describe_subject",
    "direct_subject",
    "topic_tokens",
    "validate_name",
]

Req = TypeVar("Req")
Resp = TypeVar("Resp")
T = TypeVar("T")

Topic = str | Sequence[str]
"""A topic: one subject token (``"eu"``) or several (``("eu", "west")``)."""

NameKind: TypeAlias = Literal["service", "method", "namespace", "topic", "server_id"]
"""What a name is for: each kind is one part of an address (`validate_name`)."""

# One family: a token starts with a letter or a digit, so it can never be mistaken for a
# control subject (`_claim`, `_INBOX`, ...: leading `_`) or a server id (leading `@`), and
# holds no `.`, wildcard, whitespace or control character on any bus. Topics also allow a
# few punctuation marks (`eu:west`, `k=v`), as they did from the start.
_NAME_TOKEN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_TOPIC_TOKEN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:+=~-]*")
_RULES: Final[dict[str, tuple[str, re.Pattern[str], str]]] = {
    # kind: (what the error calls it, token pattern, what the error says is allowed)
    "service": ("service name", _NAME_TOKEN, "letters, digits, _ and -"),
    "method": ("method name", _NAME_TOKEN, "letters, digits, _ and -"),
    "server_id": ("server id", _NAME_TOKEN, "letters, digits, _ and -"),
    "namespace": (
        "namespace",
        _NAME_TOKEN,
        "dot-separated tokens of letters, digits, _ and -",
    ),
    "topic": ("topic token", _TOPIC_TOKEN, "letters, digits and _:+=~- only"),
}


@overload
def validate_name(kind: NameKind, value: str) -> str: ...
@overload
def validate_name(kind: NameKind, value: None) -> None: ...
def validate_name(kind: NameKind, value: str | None) -> str | None:
    """Check that *value* can be used as the *kind* part of an address; return it.

    The one naming rule of busrpc, the same on every bus, applied where a name is declared
    or configured (``@busrpc.service``, ``@busrpc.rpc``, ``RpcClient``, ``RpcServer``,
    ``topic=``), never at first use. A name is a token that starts with a letter or a
    digit, followed by letters, digits, ``_`` and ``-``. A namespace is one or more such
    tokens separated by ``.`` (``eu.prod``). A topic token may also hold ``:+=~``.
    Names starting with ``_`` are reserved for busrpc's control subjects (``_claim``,
    ``_INBOX``) and ``@`` for server ids, so both are refused. ``None`` (no name given)
    passes through unchecked.

    Raises:
        ValueError: *value* is not a valid name of that kind (the message says why).
        TypeError: *value* is not a string.

    Example:
        >>> validate_name("service", "greeter")
        'greeter'
        >>> validate_name("namespace", "eu.prod")
        'eu.prod'
        >>> validate_name("method", "_claim")
        Traceback (most recent call last):
        ValueError: invalid method name '_claim': ...
    """
    if value is None:
        return None
    what, pattern, allowed = _RULES[kind]
    if not isinstance(value, str):
        raise TypeError(f"a {what} must be a str, got {type(value).__name__}")
    tokens = value.split(".") if kind == "namespace" else (value,)
    for token in tokens:
        if pattern.fullmatch(token) is None:
            raise ValueError(
                f"invalid {what} {value!r}: {allowed}, starting with a letter or a digit "
                "(_ and @ are reserved for busrpc)"
            )
    return value


class Method(Generic[Req, Resp]):
    """One method of a service, as the wire sees it.

    Attributes:
        service: service name (``greeter``); also the queue group of unary methods.
        name: method name (``say_hello``).
        request_type, response_type: what the codecs decode into.
        multi: every server answers (broadcast subscription) instead of one (queue group).
        affinity: servers bid for each call and the client picks one (`SelectionOpts`).
        topics: calls are scoped to a topic (``greeter.stats.eu``).
    """

    __slots__ = (
        "affinity",
        "multi",
        "name",
        "request_codec",
        "request_type",
        "response_codec",
        "response_type",
        "service",
        "topics",
    )

    def __init__(
        self,
        service: str,
        name: str,
        request_type: type[Req],
        response_type: type[Resp],
        *,
        multi: bool = False,
        affinity: bool = False,
        topics: bool = False,
    ) -> None:
        validate_name("service", service)
        validate_name("method", name)
        if multi and affinity:
            raise ValueError(f"{service}.{name}: a method is either multi or affinity, not both")
        self.service: str = service
        self.name: str = name
        self.request_type: type[Req] = request_type
        self.response_type: type[Resp] = response_type
        self.multi: bool = multi
        self.affinity: bool = affinity
        self.topics: bool = topics
        self.request_codec: Codec = default_codec_for(request_type, f"{service}.{name} request")
        self.response_codec: Codec = default_codec_for(response_type, f"{service}.{name} response")

    def __repr__(self) -> str:
        return f"<Method {self.service}.{self.name}>"


def topic_tokens(topic: Topic | None) -> tuple[str, ...]:
    """Validate *topic* and return its subject tokens.

    Raises:
        ValueError: no token, or a token is not a valid topic token (`validate_name`):
            empty, with ``.``, wildcards or whitespace, or starting with ``@`` or ``_``
            (reserved for server ids and control subjects).

    Example:
        >>> topic_tokens(("eu", "west"))
        ('eu', 'west')
    """
    if topic is None:
        return ()
    tokens = (topic,) if isinstance(topic, str) else tuple(topic)
    if not tokens:
        raise ValueError("empty topic")
    for token in tokens:
        validate_name("topic", token)
    return tokens


def base_subject(namespace: str | None, method: Method[Any, Any], topic: tuple[str, ...]) -> str:
    """``[namespace.]service.method[.topic...]``: where unary and multi calls go."""
    parts = [namespace] if namespace else []
    parts += [method.service, method.name, *topic]
    return ".".join(parts)


def direct_subject(base: str, server_id: str) -> str:
    """``{base}.@{server_id}``: one named server instance.

    Raises:
        ValueError: *server_id* is not a valid server id (`validate_name`).
    """
    validate_name("server_id", server_id)
    return f"{base}.@{server_id}"


def cancel_subject(namespace: str | None, service: str) -> str:
    """``[namespace.]service._cancel``: where callers send cancels (every server hears)."""
    return f"{namespace}.{service}._cancel" if namespace else f"{service}._cancel"


def describe_subject(namespace: str | None, service: str) -> str:
    """``[namespace.]service._describe``: one server of the service lists its methods."""
    return f"{namespace}.{service}._describe" if namespace else f"{service}._describe"


def claim_subject(base: str) -> str:
    """``{base}._claim``: where affinity bids are asked for."""
    return f"{base}._claim"


class Response(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One server's answer to a multi call: a result or an error, never both.

    Example:
        >>> async for r in greeter.stats(req):
        ...     print(r.server_id, r.result if r.ok else r.error)
    """

    server_id: str
    result: T | None = None
    error: RpcError | None = None

    @property
    def ok(self) -> bool:
        """Whether the server answered with a result."""
        return self.error is None

    def unwrap(self) -> T:
        """The result, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """A server's bid for an affinity call: higher affinity is better.

    Raises:
        ValueError: *server_id* is not a valid server id (`validate_name`); decoding a
            claim with one raises `msgspec.ValidationError`.

    Example:
        >>> Claim(server_id="node-7", affinity=0.8)
        Claim(server_id='node-7', affinity=0.8)
    """

    server_id: str
    affinity: float

    def __post_init__(self) -> None:
        validate_name("server_id", self.server_id)


class SelectionOpts(msgspec.Struct, frozen=True, kw_only=True):
    """How the client picks a server for an affinity call (psrpc's SelectionOpts).

    The defaults are psrpc's for affinity methods: collect bids for one second, and for at
    most 0.2 s after the first valid one (psrpc ``client.go``: ``DefaultAffinityTimeout``,
    ``DefaultAffinityShortCircuit``, applied in ``pkg/client/options.go``).

    Attributes:
        minimum_affinity: claims below this are ignored (when > 0).
        maximum_affinity: when > 0, a claim at or above it is taken at once.
        accept_first_available: take the first valid claim at once.
        affinity_timeout: seconds to collect claims (``None``: until the call deadline).
            When it ends with no valid claim, the call fails `Unavailable` at once.
        short_circuit_timeout: seconds to keep collecting after the first valid claim
            (``None``: no short circuit).
        select: custom choice among the valid claims, returning a server id (may raise
            `RpcError`); called when collection ends, and only when there is at least
            one valid claim (with none, the call fails `Unavailable` without calling it).

    Example:
        >>> await svc.transcode(job, selection=SelectionOpts(minimum_affinity=0.5))
    """

    minimum_affinity: float = 0.0
    maximum_affinity: float = 0.0
    accept_first_available: bool = False
    affinity_timeout: float | None = 1.0
    short_circuit_timeout: float | None = 0.2
    select: Callable[[Sequence[Claim]], str] | None = None

    def accepts(self, claim: Claim) -> bool:
        """Whether *claim* is valid under `minimum_affinity`."""
        return self.minimum_affinity <= 0 or claim.affinity >= self.minimum_affinity
