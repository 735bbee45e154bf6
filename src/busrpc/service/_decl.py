"""Declaring services: ``@busrpc.service`` on a class, ``@busrpc.rpc`` on its methods."""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, Literal, TypeVar, overload

from .._core import Deadline
from ..rpc import Method, Response, RpcClient, SelectionOpts, Topic, validate_name

__all__ = [
    "BoundMulti",
    "BoundRpc",
    "MultiRpcMethod",
    "RpcMethod",
    "ServiceDef",
    "rpc",
    "service",
    "service_def",
]

S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")
C = TypeVar("C", bound=type)

_CLIENT_ATTR = "_busrpc_client"


class _Declared(Generic[S, Req, Resp]):
    """What `rpc` records about one method; becomes a `Method` once the service is named."""

    def __init__(
        self,
        fn: Callable[[S, Req], Awaitable[Resp]],
        *,
        name: str | None,
        multi: bool,
        affinity: bool,
        topics: bool,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@busrpc.rpc needs an async def, got {fn!r}")
        if multi and affinity:
            raise ValueError(f"{fn.__qualname__}: a method is either multi or affinity, not both")
        self.fn = fn
        self.attr: str = fn.__name__
        self.name: str = name or fn.__name__
        try:
            validate_name("method", self.name)
        except ValueError as exc:
            hint = "" if name else " (give it a wire name: @busrpc.rpc(name=...))"
            raise ValueError(f"{fn.__qualname__}: {exc}{hint}") from None
        self.multi = multi
        self.affinity_enabled: bool = affinity
        self.topics = topics
        self.affinity_fn: Callable[[S, Req], float | Awaitable[float]] | None = None
        self._methods: dict[str, Method[Req, Resp]] = {}  # by service name
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name

    def affinity(
        self, fn: Callable[[S, Req], float | Awaitable[float]]
    ) -> Callable[[S, Req], float | Awaitable[float]]:
        """Decorate the scoring function of an affinity method (higher is better).

        Example:
            >>> @transcode.affinity
            ... def transcode_affinity(self, job: Job) -> float:
            ...     return idle_cpu()
        """
        self.affinity_fn = fn
        self.affinity_enabled = True
        return fn

    def method(self, service: str) -> Method[Req, Resp]:
        """The wire-level `Method` of this method in *service*.

        `service` builds it when it decorates the class; only annotations naming types
        defined after the class (forward references) wait until this first call.

        Raises:
            TypeError: an annotation is missing or does not resolve, the signature is not
                ``(self, request)``, or no codec supports a type.
        """
        found = self._methods.get(service)
        if found is None:
            req, resp = _types_of(self.fn)
            found = self._methods[service] = Method(
                service,
                self.name,
                req,
                resp,
                multi=self.multi,
                affinity=self.affinity_enabled,
                topics=self.topics,
            )
        return found

    def _client(self, instance: object) -> tuple[RpcClient, str] | None:
        found: tuple[RpcClient, str] | None = instance.__dict__.get(_CLIENT_ATTR)
        return found


class RpcMethod(_Declared[S, Req, Resp]):
    """A unary method of a service: ``await svc.method(req)`` on a client."""

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> RpcMethod[S, Req, Resp]: ...
    @overload
    def __get__(self, instance: S, owner: type[Any]) -> BoundRpc[Req, Resp]: ...
    def __get__(
        self, instance: S | None, owner: type[Any]
    ) -> RpcMethod[S, Req, Resp] | BoundRpc[Req, Resp]:
        if instance is None:
            return self
        bound = BoundRpc(self, instance, self._client(instance))
        instance.__dict__[self.attr] = bound  # later lookups skip the descriptor
        return bound


class MultiRpcMethod(_Declared[S, Req, Resp]):
    """A multi method: ``async for r in svc.method(req)`` yields one `Response` per server."""

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> MultiRpcMethod[S, Req, Resp]: ...
    @overload
    def __get__(self, instance: S, owner: type[Any]) -> BoundMulti[Req, Resp]: ...
    def __get__(
        self, instance: S | None, owner: type[Any]
    ) -> MultiRpcMethod[S, Req, Resp] | BoundMulti[Req, Resp]:
        if instance is None:
            return self
        bound = BoundMulti(self, instance, self._client(instance))
        instance.__dict__[self.attr] = bound
        return bound


class _Bound(Generic[Req, Resp]):
    """A declared method bound to a client (calls over the bus) or to a service instance
    (plain local calls of the handler)."""

    __slots__ = ("_client", "_decl", "_instance", "_method")

    def __init__(
        self,
        decl: _Declared[Any, Req, Resp],
        instance: object,
        client: tuple[RpcClient, str] | None,
    ) -> None:
        self._decl = decl
        self._instance = instance
        self._client = client[0] if client else None
        self._method = decl.method(client[1]) if client else None


class BoundRpc(_Bound[Req, Resp]):
    """A unary method bound to a client (a call over the bus) or to a service instance
    (a plain local call of the handler)."""

    __slots__ = ()

    async def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        deadline: Deadline | None = None,
        topic: Topic | None = None,
        server_id: str | None = None,
        selection: SelectionOpts | None = None,
        headers: dict[str, str] | None = None,
    ) -> Resp:
        """Call the method.

        Args:
            request: the request value.
            timeout: seconds before `DeadlineExceeded` (default: the client's, 10 s).
            deadline: an absolute `Deadline` instead of *timeout*.
            topic: the topic, for methods declared with ``topics=True``.
            server_id: send to this server only (direct call).
            selection: how to pick a server, for affinity methods.
            headers: extra headers for this call (``Busrpc-Meta-*`` metadata, ...).

        Raises:
            RpcError: the server answered with an error; `DeadlineExceeded` and
                `Unavailable` are its subclasses for timeouts and missing servers.
        """
        client = self._client
        if client is None:  # a local call on the service object itself
            return await self._decl.fn(self._instance, request)
        assert self._method is not None
        return await client.unary(
            self._method,
            request,
            deadline=client.deadline(timeout, deadline),
            topic=topic,
            server_id=server_id,
            selection=selection,
            headers=headers,
        )


class BoundMulti(_Bound[Req, Resp]):
    """A multi method bound to a client: each call yields one `Response` per server."""

    __slots__ = ()

    def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        deadline: Deadline | None = None,
        topic: Topic | None = None,
        expect: int | None = None,
        first_success: bool = False,
        quiet: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[Response[Resp]]:
        """Call every server; iterate the responses as they arrive.

        Args:
            expect: stop after this many responses (all the servers you know of).
            first_success: stop after the first result.
            quiet: stop after this many seconds without a response.
            timeout, deadline: the gathering window; when it passes, iteration ends
                normally.

        Example:
            >>> async for r in greeter.stats(req, expect=2, timeout=1):
            ...     print(r.server_id, r.result)
        """
        client = self._client
        if client is None:
            return self._local(request)
        assert self._method is not None
        return client.multi(
            self._method,
            request,
            deadline=client.deadline(timeout, deadline),
            topic=topic,
            expect=expect,
            first_success=first_success,
            quiet=quiet,
            headers=headers,
        )

    async def _local(self, request: Req) -> AsyncIterator[Response[Resp]]:
        yield Response(server_id="local", result=await self._decl.fn(self._instance, request))


class ServiceDef:
    """A service: its name and its declared methods (by attribute name)."""

    def __init__(self, name: str, cls: type, methods: dict[str, _Declared[Any, Any, Any]]) -> None:
        self.name = name
        self.cls = cls
        self.methods = methods

    def __iter__(self) -> Iterator[_Declared[Any, Any, Any]]:
        return iter(self.methods.values())

    def __repr__(self) -> str:
        return f"<ServiceDef {self.name!r} {sorted(self.methods)}>"


def service(name: str | None = None) -> Callable[[C], C]:
    """Declare a class as a service named *name* (default: the class name, lowercased).

    Everything is checked here, when the class is decorated: the service name
    (`busrpc.rpc.validate_name`), that no two methods share a wire name, and each method's
    signature, annotations and codecs. Only an annotation naming a type defined after the
    class in its module (a forward reference) is resolved later, when a server or a
    client first needs the method.

    Raises:
        ValueError: *name* (or the default from the class name) is not a valid service
            name.
        TypeError: no ``@busrpc.rpc`` method; two methods with one wire name; an affinity
            method without a scoring function; a method's annotations are missing, do
            not resolve, or name a type no codec supports.

    Example:
        >>> @busrpc.service("greeter")
        ... class Greeter:
        ...     @busrpc.rpc
        ...     async def say_hello(self, req: Hello) -> Greeting: ...
    """
    if name is not None:
        validate_name("service", name)

    def decorate(cls: C) -> C:
        service_name = name
        if service_name is None:
            try:
                service_name = validate_name("service", cls.__name__.lower())
            except ValueError as exc:
                raise ValueError(f"{exc} (name the service: @busrpc.service(name))") from None
        methods = _declared_methods(cls)
        if not methods:
            raise TypeError(f"service {cls.__name__} declares no @busrpc.rpc methods")
        for decl in methods.values():
            if decl.affinity_enabled and decl.affinity_fn is None:
                scorer = getattr(cls, f"{decl.attr}_affinity", None)
                if scorer is None:
                    raise TypeError(
                        f"{cls.__name__}.{decl.attr} uses affinity: decorate a scoring method "
                        f"with @{decl.attr}.affinity or name it {decl.attr}_affinity"
                    )
                decl.affinity_fn = scorer
            _resolve(decl, service_name)
        setattr(cls, "__busrpc_service__", ServiceDef(service_name, cls, methods))  # noqa: B010
        return cls

    return decorate


def _declared_methods(cls: type) -> dict[str, _Declared[Any, Any, Any]]:
    """The ``@rpc`` methods of *cls* by attribute, as attribute lookup finds them (a
    subclass attribute hides the base's, even when it is not an ``@rpc`` method).

    Raises:
        TypeError: two attributes have the same wire name.
    """
    methods: dict[str, _Declared[Any, Any, Any]] = {}
    by_wire_name: dict[str, str] = {}
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, value in vars(klass).items():
            if attr in seen:
                continue  # hidden by a class earlier in the MRO
            seen.add(attr)
            if not isinstance(value, _Declared):
                continue
            other = by_wire_name.setdefault(value.name, attr)
            if other != attr:
                raise TypeError(
                    f"{cls.__name__}.{other} and {cls.__name__}.{attr} have the same wire "
                    f"name {value.name!r}: give one another name (@busrpc.rpc(name=...))"
                )
            methods[attr] = value
    # Base class methods first, in the order they were declared.
    order = [attr for klass in reversed(cls.__mro__) for attr in vars(klass)]
    return {attr: methods[attr] for attr in dict.fromkeys(order) if attr in methods}


def _resolve(decl: _Declared[Any, Any, Any], service_name: str) -> None:
    """Build the method's `Method` now, unless its annotations name a type that is not
    defined yet (a forward reference): that one resolves on first use."""
    try:
        decl.method(service_name)
    except TypeError as exc:
        if not isinstance(exc.__cause__, NameError):
            raise


def service_def(obj: object) -> ServiceDef:
    """The `ServiceDef` of a service class or instance.

    Raises:
        TypeError: *obj* is not decorated with `service`.
    """
    found = getattr(obj, "__busrpc_service__", None)
    if not isinstance(found, ServiceDef):
        what = obj.__name__ if isinstance(obj, type) else type(obj).__name__
        raise TypeError(f"{what} is not a busrpc service: decorate it with @busrpc.service")
    return found


Fn = Callable[[S, Req], Awaitable[Resp]]


@overload
def rpc(fn: Fn[S, Req, Resp], /) -> RpcMethod[S, Req, Resp]: ...
@overload
def rpc(
    *,
    multi: Literal[True],
    topics: bool = ...,
    name: str | None = ...,
) -> Callable[[Fn[S, Req, Resp]], MultiRpcMethod[S, Req, Resp]]: ...
@overload
def rpc(
    *,
    multi: Literal[False] = ...,
    affinity: bool = ...,
    topics: bool = ...,
    name: str | None = ...,
) -> Callable[[Fn[S, Req, Resp]], RpcMethod[S, Req, Resp]]: ...
def rpc(
    fn: Fn[S, Req, Resp] | None = None,
    /,
    *,
    multi: bool = False,
    affinity: bool = False,
    topics: bool = False,
    name: str | None = None,
) -> Any:
    """Declare an RPC method: ``async def method(self, request: Req) -> Resp``.

    Args:
        multi: every server answers; the client iterates one `Response` per server.
        affinity: servers bid with a scoring function and the client picks one.
        topics: calls name a topic (``topic="eu"``) and servers register topics.
        name: the wire name, if not the Python name.

    Example:
        >>> @busrpc.rpc(multi=True)
        ... async def stats(self, req: StatsRequest) -> Stats: ...
    """

    def decorate(f: Fn[S, Req, Resp]) -> _Declared[S, Req, Resp]:
        cls = MultiRpcMethod if multi else RpcMethod
        return cls(f, name=name, multi=multi, affinity=affinity, topics=topics)

    return decorate(fn) if fn is not None else decorate


def _types_of(fn: Callable[..., object]) -> tuple[Any, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except NameError as exc:
        raise TypeError(
            f"cannot resolve the annotations of {fn.__qualname__}: define request and "
            f"response types at module level ({exc})"
        ) from exc
    except Exception as exc:  # an annotation that is not a type: SyntaxError, TypeError, ...
        raise TypeError(f"bad annotation on {fn.__qualname__}: {exc!r}") from exc
    params = [p for p in inspect.signature(fn).parameters if p != "self"]
    if len(params) != 1:
        raise TypeError(f"{fn.__qualname__} must take exactly one request argument")
    if params[0] not in hints or "return" not in hints:
        raise TypeError(f"{fn.__qualname__}: annotate the request and the return type")
    return hints[params[0]], hints["return"]
