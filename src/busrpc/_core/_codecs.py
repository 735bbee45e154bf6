"""Codecs: how a typed value becomes the ``data`` of a message, and back. Never pickle."""

from __future__ import annotations

import sys
from typing import Any, Final, Protocol, TypeVar, cast, runtime_checkable

import msgspec

from ._errors import CodecError
from ._pydantic import (
    ModelJsonDecoder,
    check_type,
    is_pydantic_model,
    json_enc_hook,
    msgpack_enc_hook,
    pydantic_dec_hook,
    uses_custom_types,
)

__all__ = [
    "JSON",
    "MSGPACK",
    "PROTOBUF",
    "RAW",
    "Codec",
    "JsonCodec",
    "MsgpackCodec",
    "ProtobufCodec",
    "RawCodec",
    "codec_for_content_type",
    "default_codec_for",
    "is_protobuf_type",
    "register_codec",
]

T = TypeVar("T")


@runtime_checkable
class Codec(Protocol):
    """Encodes values to bytes and decodes bytes to a declared type.

    Example:
        >>> JSON.decode(JSON.encode({"name": "ada"}), dict[str, str])
        {'name': 'ada'}
    """

    @property
    def content_type(self) -> str:
        """The MIME type carried in ``Content-Type``."""
        ...

    def encode(self, obj: object) -> bytes:
        """Encode *obj*; raise `CodecError` if it cannot be encoded."""
        ...

    def decode(self, data: bytes, type: type[T]) -> T:
        """Decode *data* as *type*; raise `CodecError` if it does not fit."""
        ...


class _MsgspecCodec:
    """Shared machinery of the two msgspec formats: one decoder per type, built once."""

    content_type: str

    def __init__(self) -> None:
        self._decoders: dict[object, Any] = {}

    def _new_decoder(self, tp: object) -> Any:
        raise NotImplementedError

    def _encode(self, obj: object) -> bytes:
        raise NotImplementedError

    def encode(self, obj: object) -> bytes:
        try:
            return self._encode(obj)
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"cannot encode {type(obj).__name__} as {self.content_type}") from exc

    def decode(self, data: bytes, type: type[T]) -> T:
        decoder = self._decoders.get(type)
        if decoder is None:
            decoder = self._decoders[type] = self._new_decoder(type)
        try:
            result: T = decoder.decode(data)  # no cast(): it is a call on the hot path
            return result
        except (msgspec.DecodeError, RecursionError) as exc:
            # RecursionError: a body nested deeper than msgspec recurses (hostile input).
            name = getattr(type, "__name__", repr(type))
            raise CodecError(f"invalid {name} payload: {exc}") from exc


class JsonCodec(_MsgspecCodec):
    """JSON via msgspec: Structs, dataclasses, TypedDicts, attrs and builtins; pydantic
    models through pydantic's own ``model_validate_json`` and ``model_dump_json``."""

    content_type = "application/json"

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder(enc_hook=json_enc_hook)

    def _new_decoder(self, tp: object) -> Any:
        if is_pydantic_model(tp):
            return ModelJsonDecoder(tp)  # type: ignore[arg-type]
        if uses_custom_types(tp):  # pydantic models inside other types
            return msgspec.json.Decoder(tp, dec_hook=pydantic_dec_hook)
        return msgspec.json.Decoder(tp)

    def _encode(self, obj: object) -> bytes:
        return self._encoder.encode(obj)


class MsgpackCodec(_MsgspecCodec):
    """MessagePack via msgspec: the same types as `JsonCodec`, smaller and faster (a
    pydantic model travels as its ``model_dump()``)."""

    content_type = "application/msgpack"

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.msgpack.Encoder(enc_hook=msgpack_enc_hook)

    def _new_decoder(self, tp: object) -> Any:
        if uses_custom_types(tp):  # pydantic models: msgspec decodes, pydantic validates
            return msgspec.msgpack.Decoder(tp, dec_hook=pydantic_dec_hook)
        return msgspec.msgpack.Decoder(tp)

    def _encode(self, obj: object) -> bytes:
        return self._encoder.encode(obj)


class RawCodec:
    """Bytes in, bytes out: for payloads the application encodes itself."""

    content_type = "application/octet-stream"

    def encode(self, obj: object) -> bytes:
        if isinstance(obj, bytes | bytearray | memoryview):
            return bytes(obj)
        raise CodecError(f"raw codec needs bytes, got {type(obj).__name__}")

    def decode(self, data: bytes, type: type[T]) -> T:
        if type is not bytes and type is not object:
            raise CodecError(f"raw codec decodes to bytes, not {type!r}")
        return cast(T, data)


class ProtobufCodec:
    """Protocol Buffers, for request and response types that are protobuf messages."""

    content_type = "application/x-protobuf"

    def encode(self, obj: object) -> bytes:
        serialize = getattr(obj, "SerializeToString", None)
        if serialize is None or not is_protobuf_type(type(obj)):
            raise CodecError(f"protobuf codec needs a protobuf message, got {type(obj).__name__}")
        return cast(bytes, serialize())

    def decode(self, data: bytes, type: type[T]) -> T:
        if not is_protobuf_type(type):
            raise CodecError(f"protobuf codec decodes protobuf messages, not {type!r}")
        from google.protobuf.message import DecodeError

        try:
            return cast(T, type.FromString(data))  # type: ignore[attr-defined]
        except DecodeError as exc:
            raise CodecError(f"invalid {type.__name__} payload: {exc}") from exc


def is_protobuf_type(tp: object) -> bool:
    """Whether *tp* is a protobuf message class (without importing protobuf)."""
    module = sys.modules.get("google.protobuf.message")
    if module is None:  # nobody imported protobuf: tp cannot be one of its messages
        return False
    return isinstance(tp, type) and issubclass(tp, module.Message)


JSON: Final = JsonCodec()
MSGPACK: Final = MsgpackCodec()
RAW: Final = RawCodec()
PROTOBUF: Final = ProtobufCodec()

_BY_CONTENT_TYPE: dict[str, Codec] = {c.content_type: c for c in (JSON, MSGPACK, RAW, PROTOBUF)}
_BY_CONTENT_TYPE["application/protobuf"] = PROTOBUF
_BY_CONTENT_TYPE["application/x-msgpack"] = MSGPACK


def register_codec(codec: Codec) -> None:
    """Make *codec* available for its ``content_type`` (replacing any built-in one)."""
    _BY_CONTENT_TYPE[codec.content_type] = codec


def codec_for_content_type(content_type: str) -> Codec:
    """The codec registered for *content_type* (parameters such as ``; charset`` ignored).

    Raises:
        CodecError: no codec is registered for it.
    """
    codec = _BY_CONTENT_TYPE.get(content_type)
    if codec is not None:
        return codec
    base = content_type.split(";", 1)[0].strip().lower()
    codec = _BY_CONTENT_TYPE.get(base)
    if codec is None:
        raise CodecError(f"no codec for content type {content_type!r}")
    return codec


def default_codec_for(tp: object, what: str | None = None) -> Codec:
    """The codec a method uses when the message carries no ``Content-Type``.

    Protobuf messages use protobuf, ``bytes`` uses raw bytes, everything else JSON
    (msgspec, or pydantic for pydantic models). Call it when a method is declared: a type
    no codec supports is refused then, not on the first call.

    Raises:
        TypeError: no codec supports *tp* (a plain class, a function, ...); the message
            starts with *what*, e.g. ``"greeter.say_hello request"``.

    Example:
        >>> default_codec_for(Hello, "greeter.say_hello request")
        <busrpc._core._codecs.JsonCodec object at ...>
    """
    if tp is bytes:
        return RAW
    if is_protobuf_type(tp):
        return PROTOBUF
    check_type(tp, what)
    return JSON
