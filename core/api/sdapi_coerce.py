"""A1111's lenient input on /sdapi/v1 only (the native API stays strict).

A1111 validates with pydantic 1, whose coercion clients rely on without knowing it:
a float where an int is expected is truncated (``int(2.5) == 2``), numeric strings are
numbers, and ``null`` for a field with a default means the default. Pydantic 2 (Easel's)
refuses the first and the last, so A1111 clients that send ``"steps": 20.0`` or
``"seed": null`` got 422s. ``A1111Lenient`` applies pydantic 1's rules before pydantic 2
validates; values it cannot read are left for pydantic's own error naming the field.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

from pydantic import BaseModel, model_validator


def _kinds(annotation: Any) -> tuple[set[type], bool]:
    """The scalar types a field accepts (int, float, bool, str) and whether it takes None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kinds(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        kinds: set[type] = set()
        nullable = False
        for arg in typing.get_args(annotation):
            if arg is type(None):
                nullable = True
            else:
                inner, inner_null = _kinds(arg)
                kinds |= inner
                nullable = nullable or inner_null
        return kinds, nullable
    if annotation is Any:
        return set(), True
    return ({annotation} if isinstance(annotation, type) else set()), False


def _number(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def coerce_value(value: Any, kinds: set[type]) -> Any:
    """One value as pydantic 1 would have read it for a field of ``kinds``."""
    if bool in kinds or isinstance(value, bool):
        return value  # pydantic's own bool parsing ("true", 1) is already lenient
    if int in kinds and float not in kinds:
        if isinstance(value, float) and math.isfinite(value):
            return int(value)  # truncation, as int() does: 2.5 -> 2, -1.5 -> -1
        if isinstance(value, str) and (number := _number(value)) is not None and number.is_integer():
            return int(number)
    if float in kinds and isinstance(value, str) and (number := _number(value)) is not None:
        return number
    return value


class A1111Lenient(BaseModel):
    """Base of the /sdapi/v1 request bodies: pydantic 1's coercion first (see above)."""

    @model_validator(mode="before")
    @classmethod
    def _a1111_coercion(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        coerced = dict(data)
        for name, field in cls.model_fields.items():
            if name not in coerced:
                continue
            kinds, nullable = _kinds(field.annotation)
            value = coerced[name]
            if value is None and not nullable and not field.is_required():
                del coerced[name]  # null means "the default", as A1111's Optional fields do
            elif value is not None:
                coerced[name] = coerce_value(value, kinds)
        return coerced
