"""Strict JSON <-> dataclass conversion for the protocol: unknown fields and wrong types are errors naming the field.

Only the types the protocol uses are supported: str, int, float, bool, tuples, dicts, unions and nested frozen
dataclasses. Non-finite floats travel as strings ("nan", "inf") so that validation can name them. Integers must fit
in 64 bits and numbers in a float, so every later comparison and conversion works; the range each field accepts is
``validation.LIMITS``'.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Union

from .errors import InvalidRequestError


def encode(obj: Any) -> Any:
    """A dataclass (or value) as plain JSON-ready data."""
    return _encode(obj)


def decode(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; errors name the field as ``prefix + name``."""
    return _decode_dataclass(cls, data, prefix)


def _encode(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [_encode(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # JSON has no NaN/inf; validation rejects them anyway
    return obj


_HINTS_CACHE: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS_CACHE:
        _HINTS_CACHE[cls] = typing.get_type_hints(cls)
    return _HINTS_CACHE[cls]


def _decode_dataclass(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise InvalidRequestError(
                f"unknown field {prefix + key!r} for {getattr(cls, 'TYPE', '') or cls.__name__}",
                field=prefix + key,
                hint=f"known fields: {', '.join(sorted(names))}",
            )
    kwargs = {key: _decode_value(hints[key], value, prefix + key) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise InvalidRequestError(f"{cls.__name__}: {exc}", field=prefix.rstrip(".")) from None


def _decode_value(tp: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Union:
        for option in typing.get_args(tp):
            try:
                return _decode_value(option, value, name)
            except InvalidRequestError:
                continue
        raise _type_error(name, tp, value)
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise _type_error(name, "a list", value)
        return tuple(_decode_value(item_type, v, f"{name}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(name, "an object", value)
        return {str(k): _decode_value(typing.get_args(tp)[1], v, f"{name}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _type_error(name, "an object", value)
        return _decode_dataclass(tp, value, name + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise _type_error(name, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(name, "an integer", value)
        if not -INT64 <= value < INT64:
            raise _range_error(name, value)
        return value
    if tp is float:
        if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
            return float(value)  # decoded so that validation can name it; never accepted as a valid value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(name, "a number", value)
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float
            raise _range_error(name, value) from None
    if tp is str:
        if not isinstance(value, str):
            raise _type_error(name, "a string", value)
        return value
    raise TypeError(f"protocol cannot decode type {tp!r}")  # a bug in this module, not in the request


INT64 = 2**63


def describe_value(value: Any) -> str:
    """A short, safe description of any JSON value for a message (never the repr of a huge or deep container)."""
    if isinstance(value, dict):
        return f"an object with {len(value)} entries"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**12:
        return f"a {len(str(abs(value)))}-digit integer"
    text = repr(value[:61] if isinstance(value, str) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_error(name: str, expected: Any, value: Any) -> InvalidRequestError:
    expected_text = expected if isinstance(expected, str) else getattr(expected, "__name__", str(expected))
    return InvalidRequestError(f"field {name!r} must be {expected_text}, got {describe_value(value)}", field=name,
                               hint=f"give {name} {expected_text}")


def _range_error(name: str, value: Any) -> InvalidRequestError:
    return InvalidRequestError(f"field {name!r} is {describe_value(value)}, far outside any accepted range",
                               field=name, hint=f"give {name} a number of normal size (integers here fit in 64 bits)")
