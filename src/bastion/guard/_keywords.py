"""The jsonschema keywords that run regular expressions, redone on ``_regex`` (IN-3, DS-4).

jsonschema's own ``pattern``, ``patternProperties`` and ``additionalProperties`` call
Python's backtracking ``re.search``; ``linear`` returns a validator class (one per draft,
made once) whose three keywords search with RE2 instead, with jsonschema's behaviour and
messages otherwise. ``propertyNames`` descends into ``pattern``, so it is covered too.
``unevaluatedProperties`` still reads ``patternProperties`` with ``re``: the schema compiler
refuses a schema that uses both (``uses_backtracking``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import jsonschema.validators
from jsonschema.exceptions import ValidationError

from bastion._types import JSONValue
from bastion.guard._regex import compile_pattern

__all__ = ["linear", "uses_backtracking"]


@functools.cache  # one class per draft: there are six
def linear(cls: type[Any]) -> type[Any]:
    """``cls`` with its regex keywords matched in linear time."""
    keywords = {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    }
    # types-jsonschema leaves extend() unannotated.
    extended: type[Any] = jsonschema.validators.extend(cls, keywords)  # type: ignore[no-untyped-call]
    return extended


def uses_backtracking(schema: JSONValue) -> bool:
    """Whether ``schema`` has both ``unevaluatedProperties`` and ``patternProperties``."""
    found: set[str] = set()
    _keys(schema, found)
    return {"unevaluatedProperties", "patternProperties"} <= found


def _keys(node: JSONValue, found: set[str]) -> None:
    # The caller has already refused schemas deeper than MAX_SCHEMA_DEPTH.
    if isinstance(node, dict):
        found.update(node)
        for value in node.values():
            _keys(value, found)
    elif isinstance(node, list):
        for value in node:
            _keys(value, found)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not compile_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, properties: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in properties.items():
        compiled = compile_pattern(pattern)
        for key, value in instance.items():
            if compiled.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = [compile_pattern(p) for p in schema.get("patternProperties", {})]
    extras = {
        key
        for key in instance
        if key not in properties and not any(p.search(key) for p in patterns)
    }
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        names = ", ".join(repr(each) for each in sorted(extras))
        if patterns:
            regexes = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            verb = "does" if len(extras) == 1 else "do"
            yield ValidationError(f"{names} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({names} {verb} unexpected)"
            )
