"""Which declared types the msgspec codecs support, and pydantic v2 models among them.

msgspec handles Structs, dataclasses, TypedDicts, attrs classes and builtins itself. Any
other class is a "custom type" to it, which it can only decode through a hook: busrpc
supplies one for pydantic models and refuses every other custom type when a method is
declared, not on the first call.

pydantic is never imported here: a type can only be a pydantic model if the program
imported pydantic to define it, so ``sys.modules`` tells (as for protobuf).
"""

from __future__ import annotations

import sys
from typing import Any, Final

import msgspec

from ._errors import CodecError

__all__ = [
    "check_type",
    "is_pydantic_model",
    "json_enc_hook",
    "msgpack_enc_hook",
    "pydantic_dec_hook",
    "uses_custom_types",
]

_SUPPORTED: Final = (
    "msgspec Structs, dataclasses, TypedDicts, attrs classes, builtins, "
    "pydantic models, protobuf messages or bytes"
)


def is_pydantic_model(tp: object) -> bool:
    """Whether *tp* is a pydantic (v2) model class, without importing pydantic.

    Example:
        >>> is_pydantic_model(User)     # class User(pydantic.BaseModel)
        True
    """
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:  # nobody imported pydantic: tp cannot be one of its models
        return False
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def check_type(tp: object, what: str | None = None) -> None:
    """Refuse *tp* if neither msgspec nor pydantic can encode and decode it.

    Raises:
        TypeError: naming *what* (e.g. ``"greeter.say_hello request"``) and the type.

    Example:
        >>> check_type(Hello)                    # a msgspec Struct: fine
        >>> check_type(object(), "x.y request")  # TypeError
    """
    for cls in _custom_types(tp, what):
        if cls is not object and not is_pydantic_model(cls):
            prefix = f"{what}: " if what else ""
            inner = "" if cls is tp else f" (in {_name(tp)})"
            raise TypeError(
                f"{prefix}no codec supports the type {_name(cls)}{inner}: use {_SUPPORTED}"
            )


def uses_custom_types(tp: object) -> bool:
    """Whether *tp* has a class msgspec decodes only through a hook (a pydantic model)."""
    return any(cls is not object for cls in _custom_types(tp, None))


def _custom_types(tp: object, what: str | None) -> list[type]:
    try:
        info = msgspec.inspect.type_info(tp)
    except (TypeError, ValueError) as exc:
        prefix = f"{what}: " if what else ""
        raise TypeError(f"{prefix}no codec supports the type {_name(tp)}: use {_SUPPORTED}") from (
            exc
        )
    found: list[type] = []
    _walk(info, found, set())
    return found


def _walk(node: object, found: list[type], seen: set[int]) -> None:
    # A recursive Struct's type info refers back to itself: visit each node once.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, msgspec.inspect.CustomType):
        found.append(node.cls)
        return
    if isinstance(node, msgspec.inspect.Field):
        _walk(node.type, found, seen)
        return
    if not isinstance(node, msgspec.inspect.Type):
        return
    for field in node.__struct_fields__:
        value = getattr(node, field)
        if isinstance(value, tuple):
            for item in value:
                _walk(item, found, seen)
        else:
            _walk(value, found, seen)


def _name(tp: object) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


# -- encoding: msgspec calls these for objects it does not know --------------------------


def json_enc_hook(obj: object) -> object:
    """JSON of a pydantic model through pydantic's own serializer (by alias: what
    ``model_validate_json`` reads back)."""
    if is_pydantic_model(type(obj)):
        return msgspec.Raw(obj.model_dump_json(by_alias=True))  # type: ignore[attr-defined]
    return _jsonable(obj)


def msgpack_enc_hook(obj: object) -> object:
    """A pydantic model as Python values msgspec packs (bytes and datetimes stay native)."""
    if is_pydantic_model(type(obj)):
        return obj.model_dump(mode="python", by_alias=True)  # type: ignore[attr-defined]
    return _jsonable(obj)


def _jsonable(obj: object) -> object:
    # A value inside a dumped model that only pydantic knows (AnyUrl, ...), as pydantic's
    # own JSON mode writes it.
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is None:
        raise TypeError(f"cannot encode {type(obj).__name__}")
    try:
        return pydantic_core.to_jsonable_python(obj)
    except pydantic_core.PydanticSerializationError as exc:
        raise TypeError(f"cannot encode {type(obj).__name__}") from exc


# -- decoding ------------------------------------------------------------------------------


def pydantic_dec_hook(tp: type, obj: Any) -> Any:
    """msgspec's hook for custom types: validate a pydantic model from decoded values.

    Raises:
        ValueError: the values do not validate (msgspec adds the path in the message).
        TypeError: *tp* is not a pydantic model (refused when the method was declared).
    """
    if is_pydantic_model(tp):
        pydantic = sys.modules["pydantic"]
        try:
            return tp.model_validate(obj)  # type: ignore[attr-defined]
        except pydantic.ValidationError as exc:
            raise ValueError(describe_validation_error(exc)) from exc
    raise TypeError(f"no decoder for {_name(tp)}")


def describe_validation_error(exc: Any) -> str:
    """A pydantic ``ValidationError`` on one line: ``field: problem; ...``."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(problems)


class ModelJsonDecoder:
    """Decodes JSON straight into a pydantic model (``model_validate_json``, pydantic's
    fast path), with the interface of a ``msgspec.json.Decoder``."""

    __slots__ = ("_error", "_model")

    def __init__(self, model: type) -> None:
        self._model: Any = model
        self._error: type[Exception] = sys.modules["pydantic"].ValidationError

    def decode(self, data: bytes) -> Any:
        try:
            return self._model.model_validate_json(data)
        except self._error as exc:
            problem = describe_validation_error(exc)
            raise CodecError(f"invalid {self._model.__name__} payload: {problem}") from exc
