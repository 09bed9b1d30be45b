"""JSON encoding of the dialogue records (frozen dataclasses of str/int/float/bool/tuples).

``to_json_dict`` drops fields equal to their default, so stored records stay small and new
optional fields can be added later; ``from_json_dict`` checks every value against the field's
type and names the path of the first mismatch, so a malformed stored record gives a clear error
instead of a half-built object.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class RecordDecodeError(ValueError):
    """A stored value does not have the shape of the record it should hold."""


def to_json_dict(record: Any, *, keep_defaults: bool = False) -> dict[str, Any]:
    """Dataclass -> dict of JSON values (tuples become lists); defaults omitted unless asked."""
    out: dict[str, Any] = {}
    cls: Any = type(record)
    for name, default in _defaults(cls):
        value = getattr(record, name)
        if not keep_defaults and default is not _NO_DEFAULT and value == default:
            continue
        out[name] = _encode(value)
    return out


def dumps(record: Any) -> str:
    """Compact JSON of a record (defaults omitted)."""
    return json.dumps(to_json_dict(record), separators=(",", ":"), ensure_ascii=False)


def loads(cls: type[T], text: str | bytes, *, what: str) -> T:
    """Parse ``text`` as a ``cls`` record; ``what`` names it in the error."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise RecordDecodeError(f"{what}: expected a JSON object, got unparseable text") from e
    return from_json_dict(cls, data, what=what)


def from_json_dict(cls: type[T], data: Any, *, what: str) -> T:
    """Build ``cls`` from a dict made by ``to_json_dict``, checking every field's type."""
    hint: Any = cls
    try:
        return typing.cast(T, _decoder(hint)(data))
    except _Mismatch as e:
        raise RecordDecodeError(f"{what}{e.path}: {e.message}") from None


class _Mismatch(Exception):
    """Raised inside the decoders; the path is built on the way out, only when something is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = ""

    def at(self, segment: str) -> _Mismatch:
        self.path = segment + self.path
        return self


_NO_DEFAULT = object()


@cache
def _defaults(cls: Any) -> tuple[tuple[str, Any], ...]:
    """(field name, default value or _NO_DEFAULT) for each field of a dataclass."""
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out.append((f.name, f.default))
        elif f.default_factory is not dataclasses.MISSING:
            out.append((f.name, f.default_factory()))
        else:
            out.append((f.name, _NO_DEFAULT))
    return tuple(out)


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_dict(value)
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a dialogue record")


Decoder = Callable[[Any], Any]


def _kind(value: Any) -> str:
    return type(value).__name__


@cache
def _decoder(hint: Any) -> Decoder:
    """A checking decoder for ``hint``, built once per type."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _record_decoder(hint)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return _union_decoder(hint)
    if origin is Literal:
        return _literal_decoder(typing.get_args(hint))
    if origin is tuple:
        return _tuple_decoder(typing.get_args(hint))
    if hint is float:
        return _float
    if hint in (str, int, bool):
        return _scalar_decoder(hint)
    if hint is type(None):
        return _none
    raise TypeError(f"unsupported field type {hint!r}")


def _float(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is not int:  # bool is not a number here
        raise _Mismatch(f"expected a number, got {_kind(value)}")
    return float(value)


def _none(value: Any) -> None:
    if value is not None:
        raise _Mismatch(f"expected null, got {_kind(value)}")


def _scalar_decoder(kind: type) -> Decoder:
    def decode(value: Any) -> Any:
        if type(value) is not kind:  # bool is not an int here
            raise _Mismatch(f"expected {kind.__name__}, got {_kind(value)}")
        return value

    return decode


def _literal_decoder(allowed: tuple[Any, ...]) -> Decoder:
    def decode(value: Any) -> Any:
        if value not in allowed:
            raise _Mismatch(f"expected one of {list(allowed)}, got {value!r}")
        return value

    return decode


def _record_decoder(cls: type) -> Decoder:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    decoders = {f.name: _decoder(hints[f.name]) for f in fields}
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise _Mismatch(f"expected a JSON object, got {_kind(value)}")
        kwargs = {}
        for key, item in value.items():
            field_decoder = decoders.get(key)
            if field_decoder is None:
                raise _Mismatch(f"unexpected fields {sorted(k for k in value if k not in decoders)[:5]}")
            try:
                kwargs[key] = field_decoder(item)
            except _Mismatch as e:
                raise e.at(f".{key}") from None
        missing = [k for k in required if k not in kwargs]
        if missing:
            raise _Mismatch(f"missing required fields {missing}")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise _Mismatch(str(e)) from None

    return decode


def _union_decoder(hint: Any) -> Decoder:
    args = typing.get_args(hint)
    optional = type(None) in args
    choices = [_decoder(a) for a in args if a is not type(None)]

    def decode(value: Any) -> Any:
        if value is None and optional:
            return None
        errors = []
        for choice in choices:
            try:
                return choice(value)
            except _Mismatch as e:
                errors.append(e)
        raise errors[0] if len(errors) == 1 else _Mismatch(f"no type of {hint} fits")

    return decode


def _tuple_decoder(args: tuple[Any, ...]) -> Decoder:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _decoder(args[0])

        def decode_many(value: Any) -> tuple[Any, ...]:
            if type(value) is not list:
                raise _Mismatch(f"expected a list, got {_kind(value)}")
            out = []
            for i, v in enumerate(value):
                try:
                    out.append(item(v))
                except _Mismatch as e:
                    raise e.at(f"[{i}]") from None
            return tuple(out)

        return decode_many
    items = [_decoder(a) for a in args]

    def decode_fixed(value: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            raise _Mismatch(f"expected a list, got {_kind(value)}")
        if len(value) != len(items):
            raise _Mismatch(f"expected {len(items)} items, got {len(value)}")
        out = []
        for i, (d, v) in enumerate(zip(items, value, strict=True)):
            try:
                out.append(d(v))
            except _Mismatch as e:
                raise e.at(f"[{i}]") from None
        return tuple(out)

    return decode_fixed
