"""What the rpc layer knows about a method: names, types, codecs, routing."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, TypeVar

import msgspec

from .._core import Codec, RpcError, default_codec_for

__all__ = [
    "Claim",
    "Method",
    "Response",
    "SelectionOpts",
    "Topic",
    "base_subject",
    "claim_subject",
    "direct_subject",
    "topic_tokens",
]

Req = TypeVar("Req")
Resp = TypeVar("Resp")
T = TypeVar("T")

Topic = str | Sequence[str]
"""A topic: one subject token (``"eu"``) or several (``("eu", "west")``)."""

_NAME: Final = re.compile(r"^[A-Za-z0-9_-]+$")
_TOKEN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_:+=~-]*$")


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
        for what, value in (("service", service), ("method", name)):
            if not _NAME.match(value):
                raise ValueError(f"invalid {what} name {value!r}: use letters, digits, _ and -")
        if multi and affinity:
            raise ValueError(f"{service}.{name}: a method is either multi or affinity, not both")
        self.service: str = service
        self.name: str = name
        self.request_type: type[Req] = request_type
        self.response_type: type[Resp] = response_type
        self.multi: bool = multi
        self.affinity: bool = affinity
        self.topics: bool = topics
        self.request_codec: Codec = default_codec_for(request_type)
        self.response_codec: Codec = default_codec_for(response_type)

    def __repr__(self) -> str:
        return f"<Method {self.service}.{self.name}>"


def topic_tokens(topic: Topic | None) -> tuple[str, ...]:
    """Validate *topic* and return its subject tokens.

    Raises:
        ValueError: a token is empty, has ``.``, wildcards or whitespace, or starts with
            ``@`` or ``_`` (reserved for server ids and control subjects).
    """
    if topic is None:
        return ()
    tokens = (topic,) if isinstance(topic, str) else tuple(topic)
    if not tokens:
        raise ValueError("empty topic")
    for token in tokens:
        if not _TOKEN.match(token):
            raise ValueError(
                f"invalid topic token {token!r}: letters, digits and _:+=~- only, "
                "not starting with @ or _"
            )
    return tokens


def base_subject(namespace: str | None, method: Method[Any, Any], topic: tuple[str, ...]) -> str:
    """``[namespace.]service.method[.topic...]``: where unary and multi calls go."""
    parts = [namespace] if namespace else []
    parts += [method.service, method.name, *topic]
    return ".".join(parts)


def direct_subject(base: str, server_id: str) -> str:
    """``{base}.@{server_id}``: one named server instance."""
    return f"{base}.@{server_id}"


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
    """A server's bid for an affinity call: higher affinity is better."""

    server_id: str
    affinity: float


class SelectionOpts(msgspec.Struct, frozen=True, kw_only=True):
    """How the client picks a server for an affinity call (psrpc's SelectionOpts).

    Attributes:
        minimum_affinity: claims below this are ignored (when > 0).
        maximum_affinity: when > 0, a claim at or above it is taken at once.
        accept_first_available: take the first valid claim at once.
        affinity_timeout: seconds to collect claims (``None``: until the call deadline).
        short_circuit_timeout: seconds to keep collecting after the first valid claim.
        select: custom choice among the valid claims, returning a server id (may raise
            `RpcError`); called when collection ends.

    Example:
        >>> await svc.transcode(job, selection=SelectionOpts(minimum_affinity=0.5))
    """

    minimum_affinity: float = 0.0
    maximum_affinity: float = 0.0
    accept_first_available: bool = False
    affinity_timeout: float | None = None
    short_circuit_timeout: float | None = 0.2
    select: Callable[[Sequence[Claim]], str] | None = None

    def accepts(self, claim: Claim) -> bool:
        """Whether *claim* is valid under `minimum_affinity`."""
        return self.minimum_affinity <= 0 or claim.affinity >= self.minimum_affinity
