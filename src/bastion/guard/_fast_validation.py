"""Fast checks for the validation keywords of a JSON Schema (those that hold no subschema).

The building blocks of ``fast_schema``: a ``FastCheck`` answers "certainly valid?", and
``Unsupported`` says the schema leaves the subset. Here: ``type`` (``allowed_types``),
``enum`` and ``const`` (matched only with equal JSON types), and the bounds of strings
(length, RE2 ``pattern``), numbers (limits, integer ``multipleOf``) and sizes
(``size_check``). Keywords that hold subschemas (``items``, ``properties``, ``allOf``...)
are composed in ``fast_schema``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from bastion._types import JSONValue
from bastion.guard._regex import compile_pattern

__all__ = [
    "ALL_TYPES",
    "FastCheck",
    "Unsupported",
    "accept",
    "allowed_types",
    "numeric_checks",
    "reject",
    "restrict_to_enum",
    "size_check",
    "string_checks",
]

FastCheck = Callable[[Any], bool]
"""True: the instance is certainly valid. False: invalid or not sure (ask jsonschema)."""

_NONE: Final = type(None)
_SCALARS: Final = (_NONE, bool, int, float, str)
ALL_TYPES: Final = (*_SCALARS, list, dict)
_TYPE_NAMES: Final[Mapping[str, tuple[type, ...]]] = {
    "null": (_NONE,),
    "boolean": (bool,),
    "integer": (int,),  # plus integral floats: see allowed_types
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}


class Unsupported(Exception):
    """The schema leaves the subset; no fast check for it."""


def accept(instance: object) -> bool:
    return True


def reject(instance: object) -> bool:
    return False


def allowed_types(declared: JSONValue) -> tuple[tuple[type, ...], bool]:
    """Python types ``declared`` allows, and whether floats are allowed only when integral."""
    names = [declared] if isinstance(declared, str) else declared
    if not isinstance(names, list) or not names:
        raise Unsupported
    allowed: list[type] = []
    for name in names:
        if not isinstance(name, str) or name not in _TYPE_NAMES:
            raise Unsupported
        allowed.extend(t for t in _TYPE_NAMES[name] if t not in allowed)
    integral_floats = "integer" in names and "number" not in names
    if integral_floats:
        allowed.append(float)  # draft 6+ counts 1.0 as an integer
    return tuple(allowed), integral_floats


# -- enum / const -------------------------------------------------------------------------


def _same(a: object, b: object) -> bool:
    """JSON equality with equal types all the way down (stricter than jsonschema's)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(k in b and _same(v, b[k]) for k, v in a.items())
    return bool(a == b)


def restrict_to_enum(schema: dict[str, JSONValue], checks: dict[type, list[FastCheck]]) -> None:
    """Restrict each type's checks to the allowed values of that exact type."""
    for key in ("enum", "const"):
        if key not in schema:
            continue
        values = schema[key] if key == "enum" else [schema[key]]
        if not isinstance(values, list):
            raise Unsupported
        by_type: dict[type, list[Any]] = {}
        for value in values:
            if type(value) not in ALL_TYPES:
                raise Unsupported
            by_type.setdefault(type(value), []).append(value)
        for t in list(checks):
            found = by_type.get(t)
            if not found:
                checks[t] = [reject]
            elif t in _SCALARS:
                members = frozenset(found)
                checks[t].append(members.__contains__)
            else:
                checks[t].append(_one_of(tuple(found)))


def _one_of(values: tuple[Any, ...]) -> FastCheck:
    return lambda instance: any(_same(instance, value) for value in values)


# -- per instance type --------------------------------------------------------------------


def _bound(schema: dict[str, JSONValue], key: str) -> int | float | None:
    if key not in schema:
        return None
    value = schema[key]
    if type(value) is int or type(value) is float:
        return value
    raise Unsupported


# Bounds: ``low <= n`` equals jsonschema's ``not n < low`` for every value but NaN (no JSON
# value), which is then "not sure": safe.


def size_check(schema: dict[str, JSONValue], low_key: str, high_key: str) -> FastCheck | None:
    low, high = _bound(schema, low_key), _bound(schema, high_key)
    if low is not None and high is not None:
        return lambda sized: low <= len(sized) <= high
    if low is not None:
        return lambda sized: len(sized) >= low
    if high is not None:
        return lambda sized: len(sized) <= high
    return None


def string_checks(schema: dict[str, JSONValue]) -> list[FastCheck]:
    preds: list[FastCheck] = []
    size = size_check(schema, "minLength", "maxLength")  # code points, as Python's len
    if size is not None:
        preds.append(size)
    if "pattern" in schema:
        pattern = schema["pattern"]
        if not isinstance(pattern, str):
            raise Unsupported
        preds.append(compile_pattern(pattern).search)  # RE2, as the schema's validator
    return preds


def numeric_checks(schema: dict[str, JSONValue]) -> list[FastCheck]:
    preds: list[FastCheck] = []
    low, high = _bound(schema, "minimum"), _bound(schema, "maximum")
    if low is not None and high is not None:
        preds.append(lambda n: low <= n <= high)
    elif low is not None:
        preds.append(lambda n: n >= low)
    elif high is not None:
        preds.append(lambda n: n <= high)
    above, below = _bound(schema, "exclusiveMinimum"), _bound(schema, "exclusiveMaximum")
    if above is not None:
        preds.append(lambda n: n > above)
    if below is not None:
        preds.append(lambda n: n < below)
    if "multipleOf" in schema:
        step = schema["multipleOf"]
        if type(step) is not int or step <= 0:
            raise Unsupported
        # jsonschema fails ``instance % step`` when non-zero; floats are left to it.
        preds.append(lambda n: type(n) is int and n % step == 0)
    return preds
