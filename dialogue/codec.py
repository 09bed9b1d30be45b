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
from functools import cache
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class RecordDecodeError(ValueError):
    """A stored value does not have the shape of the record it should hold."""


def to_json_dict(record: Any, *, keep_defaults: bool = False) -> dict[str, Any]:
    """Dataclass -> dict of JSON values (tuples become lists); defaults omitted unless asked."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if not keep_defaults and _is_default(f, value):
            continue
        out[f.name] = _encode(value)
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
    return typing.cast(T, _decode(cls, data, what))


def _is_default(f: dataclasses.Field[Any], value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return bool(value == f.default)
    if f.default_factory is not dataclasses.MISSING:
        return bool(value == f.default_factory())
    return False


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_dict(value)
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a dialogue record")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _decode_record(hint, value, path)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return _decode_union(hint, value, path)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise RecordDecodeError(f"{path}: expected one of {list(typing.get_args(hint))}, got {value!r}")
        return value
    if origin is tuple:
        return _decode_tuple(hint, value, path)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordDecodeError(f"{path}: expected a number, got {type(value).__name__}")
        return float(value)
    if hint in (str, int, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise RecordDecodeError(f"{path}: expected {hint.__name__}, got {type(value).__name__}")
        return value
    if hint is type(None):
        if value is not None:
            raise RecordDecodeError(f"{path}: expected null, got {type(value).__name__}")
        return None
    raise TypeError(f"{path}: unsupported field type {hint!r}")


def _decode_record(cls: type, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise RecordDecodeError(f"{path}: expected a JSON object, got {type(value).__name__}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise RecordDecodeError(f"{path}: unexpected fields {unknown[:5]}")
    kwargs = {k: _decode(hints[k], v, f"{path}.{k}") for k, v in value.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        raise RecordDecodeError(f"{path}: missing required fields {missing}") from e
    except ValueError as e:
        raise RecordDecodeError(f"{path}: {e}") from e


def _decode_union(hint: Any, value: Any, path: str) -> Any:
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _decode(arg, value, path)
        except RecordDecodeError as e:
            errors.append(str(e))
    raise RecordDecodeError(errors[0] if len(errors) == 1 else f"{path}: no type of {hint} fits")


def _decode_tuple(hint: Any, value: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise RecordDecodeError(f"{path}: expected a list, got {type(value).__name__}")
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_decode(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise RecordDecodeError(f"{path}: expected {len(args)} items, got {len(value)}")
    return tuple(_decode(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
