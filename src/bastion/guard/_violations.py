"""Client-safe descriptions of JSON Schema violations: a JSON path and the broken rule.

``jsonschema``'s own messages quote the offending value ("'hunter2' is too long"); these
never do. A path segment or field name comes from the client's own argument keys and is
shown only when it is a plain identifier; numbers shown come from the schema. Every
rendered message is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import jsonschema.exceptions

__all__ = ["Violation", "describe", "render"]

MAX_MESSAGE: Final = 400  # characters in a rendered list of violations
_PLAIN: Final = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_LIMITS: Final = {
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
}
_SIZES: Final = {
    "minLength": ("length", ">="),
    "maxLength": ("length", "<="),
    "minItems": ("items", ">="),
    "maxItems": ("items", "<="),
    "minProperties": ("properties", ">="),
    "maxProperties": ("properties", "<="),
}
_TYPES: Final = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})


@dataclass(frozen=True, slots=True)
class Violation:
    path: str  # JSON path of the offending value: $, $.name, $.items[2]
    rule: str  # what it broke, in words ("must be integer")
    field: str = ""  # the property concerned when the path is its parent (required, unknown)

    def __str__(self) -> str:
        field = _name(self.field) if self.field else ""
        where = f"{self.path}.{field}" if field and field != "<field>" else self.path
        return f"{where}: {self.rule}" + (" (unnamed field)" if field == "<field>" else "")


def _name(key: object) -> str:
    text = str(key)
    return text if _PLAIN.fullmatch(text) else "<field>"


def _path(parts: Iterable[object]) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{_name(part)}"
    return path


def _number(value: object) -> str:
    return repr(value) if isinstance(value, int | float) and not isinstance(value, bool) else "?"


def describe(error: jsonschema.exceptions.ValidationError) -> Violation:
    """The client-safe form of one ``jsonschema`` error."""
    keyword = str(error.validator)
    value: Any = error.validator_value
    path = _path(error.absolute_path)
    if keyword == "type":
        names = [value] if isinstance(value, str) else list(value or [])
        shown = [str(n) for n in names if n in _TYPES] or ["the declared type"]
        return Violation(path=path, rule=f"must be {' or '.join(shown)}")
    if keyword == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = next((n for n in value or () if n not in instance), "")
        return Violation(path=path, rule="required", field=str(missing))
    if keyword in _LIMITS:
        return Violation(path=path, rule=f"must be {_LIMITS[keyword]} {_number(value)}")
    if keyword in _SIZES:
        what, op = _SIZES[keyword]
        return Violation(path=path, rule=f"{what} must be {op} {_number(value)}")
    rule = {
        "enum": "must be one of the allowed values",
        "const": "must be the fixed value",
        "pattern": "must match the required pattern",
        "format": "must be in the required format",
        "additionalProperties": "unknown properties not allowed",
        "unevaluatedProperties": "unknown properties not allowed",
        "anyOf": "matches none of the allowed shapes",
        "oneOf": "must match exactly one allowed shape",
        "allOf": "must match every required shape",
        "not": "matches a forbidden shape",
        "uniqueItems": "items must be unique",
        "multipleOf": f"must be a multiple of {_number(value)}",
    }.get(keyword, f"violates '{_name(keyword)}'")
    return Violation(path=path, rule=rule)


def render(violations: Iterable[Violation]) -> str:
    """One bounded line for a JSON-RPC error message."""
    text = "; ".join(str(v) for v in violations)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
