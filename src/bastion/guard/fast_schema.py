"""Fast path for schema validation (IN-3): plain-Python checks for simple JSON Schemas.

``compile_fast`` translates a schema that uses only a common, simple subset of JSON Schema
into a tree of small closures answering one question: is this instance certainly valid?
``True`` means jsonschema (same schema, same draft, no format checker) accepts it too;
``False`` means "invalid, or not sure" and the caller runs jsonschema, which alone produces
violations. A schema with anything outside the subset anywhere gets no fast check (None).

The subset, for drafts 6, 7, 2019-09 and 2020-12 (``$schema`` absent or one of their URIs):

* ``type``; ``enum`` and ``const`` (matched only with equal JSON types: ``True`` never
  matches ``1``, ``1`` never matches ``1.0``);
* strings: ``minLength``, ``maxLength``, ``pattern`` (searched with RE2, as the
  schema's validator does: ``_regex``);
* numbers: ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, integer
  ``multipleOf`` (integers only; other numbers are "not sure");
* arrays: ``items`` (one schema), ``minItems``, ``maxItems``; under ``uniqueItems: true``
  every array is "not sure";
* objects: ``properties``, ``required``, ``additionalProperties``, ``minProperties``,
  ``maxProperties``;
* ``allOf`` and ``anyOf`` of subset schemas; ``true`` and ``false`` subschemas;
* annotations (``title``, ``description``, ``default``, ``format``, ...) and names that are
  no keyword of the draft (``x-...``, ``nullable``) are ignored, as jsonschema ignores them.

Each keyword applies only to its own instance type, as in JSON Schema. Anything else, above
all ``$``-keywords (``$ref``, ``$id``, ``$defs``...), ``oneOf``/``not``/``if``,
``patternProperties``, ``prefixItems``, ``unevaluated*`` and draft-04 or older, means None.
This module compiles a schema and composes the keywords that hold subschemas; the checks of
those that do not are in ``_fast_validation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import jsonschema

from bastion._types import JSONValue
from bastion.guard._fast_validation import (
    ALL_TYPES,
    FastCheck,
    Unsupported,
    accept,
    allowed_types,
    numeric_checks,
    reject,
    restrict_to_enum,
    size_check,
    string_checks,
)
from bastion.guard._regex import PatternError

__all__ = ["FastCheck", "compile_fast"]

MAX_DEPTH: Final = 64  # nested subschemas; the caller already refuses schemas deeper than 32

_DIALECTS: Final[Mapping[str, type[Any]]] = {
    # Exactly the ``$schema`` strings jsonschema's ``validator_for`` maps to these drafts
    # (it drops an empty fragment); any other string falls back to the default draft there
    # and gets no fast path here.
    "https://json-schema.org/draft/2020-12/schema": jsonschema.Draft202012Validator,
    "https://json-schema.org/draft/2020-12/schema#": jsonschema.Draft202012Validator,
    "https://json-schema.org/draft/2019-09/schema": jsonschema.Draft201909Validator,
    "https://json-schema.org/draft/2019-09/schema#": jsonschema.Draft201909Validator,
    "http://json-schema.org/draft-07/schema": jsonschema.Draft7Validator,
    "http://json-schema.org/draft-07/schema#": jsonschema.Draft7Validator,
    "http://json-schema.org/draft-06/schema": jsonschema.Draft6Validator,
    "http://json-schema.org/draft-06/schema#": jsonschema.Draft6Validator,
}
_SUPPORTED_DRAFTS: Final = frozenset(_DIALECTS.values())

# Annotation-only here: ``format`` too, since the validator runs without a format checker.
_ANNOTATIONS: Final = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",
        "contentMediaType",
        "contentEncoding",
    }
)
_HANDLED: Final = frozenset(
    {
        "type",
        "enum",
        "const",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "properties",
        "required",
        "additionalProperties",
        "minProperties",
        "maxProperties",
        "allOf",
        "anyOf",
    }
)


def compile_fast(schema: JSONValue, draft: type[Any]) -> FastCheck | None:
    """A fast check for ``schema`` as jsonschema's ``draft`` validator class reads it (run
    without a format checker), or None when the schema is outside the subset."""
    if draft not in _SUPPORTED_DRAFTS:
        return None
    if isinstance(schema, dict) and "$schema" in schema:
        uri = schema["$schema"]
        if not isinstance(uri, str) or _DIALECTS.get(uri) is not draft:
            return None
        schema = {k: v for k, v in schema.items() if k != "$schema"}
    keywords: frozenset[str] = frozenset(draft.VALIDATORS)
    try:
        return _node(schema, keywords, 0)
    except (Unsupported, PatternError, RecursionError):
        return None


def _node(schema: JSONValue, keywords: frozenset[str], depth: int) -> FastCheck:
    if depth > MAX_DEPTH:
        raise Unsupported
    if schema is True:
        return accept
    if schema is False:
        return reject
    if not isinstance(schema, dict):
        raise Unsupported
    for key in schema:
        if key in _HANDLED or key in _ANNOTATIONS:
            continue
        if not isinstance(key, str) or key.startswith("$") or key in keywords:
            raise Unsupported
        # Otherwise no keyword of this draft: jsonschema ignores it, and so do we.

    allowed, integral_floats = (
        allowed_types(schema["type"]) if "type" in schema else (ALL_TYPES, False)
    )
    checks: dict[type, list[FastCheck]] = {t: [] for t in allowed}
    if "enum" in schema or "const" in schema:
        restrict_to_enum(schema, checks)
    if str in checks:
        checks[str].extend(string_checks(schema))
    numeric = numeric_checks(schema)
    for t in (int, float):
        if t in checks:
            checks[t].extend(numeric)
    if float in checks and integral_floats:
        checks[float].insert(0, float.is_integer)
    if list in checks:
        checks[list].extend(_array(schema, keywords, depth))
    if dict in checks:
        checks[dict].extend(_object(schema, keywords, depth))

    table: dict[type, FastCheck] = {t: _all(preds) for t, preds in checks.items()}
    base: FastCheck
    if len(table) == len(ALL_TYPES) and all(f is accept for f in table.values()):
        base = accept
    else:
        base = _dispatch(table)
    return _applicators(schema, base, keywords, depth)


def _dispatch(table: dict[type, FastCheck]) -> FastCheck:
    if len(table) == 1:
        [(only, check)] = table.items()
        if check is accept:
            return lambda instance: type(instance) is only
        return lambda instance: type(instance) is only and check(instance)
    get = table.get

    def dispatch(instance: object) -> bool:
        check = get(type(instance))  # exact JSON types; anything else: not sure
        return check is not None and check(instance)

    return dispatch


def _all(preds: list[FastCheck]) -> FastCheck:
    if not preds:
        return accept
    if len(preds) == 1:
        return preds[0]
    if reject in preds:
        return reject
    if len(preds) == 2:
        first, second = preds
        return lambda instance: first(instance) and second(instance)
    chain = tuple(preds)

    def every(instance: object) -> bool:
        for pred in chain:  # noqa: SIM110 - all() over a generator costs twice as much here
            if not pred(instance):
                return False
        return True

    return every


# -- arrays and objects: their subschemas ---------------------------------------------


def _array(schema: dict[str, JSONValue], keywords: frozenset[str], depth: int) -> list[FastCheck]:
    preds: list[FastCheck] = []
    size = size_check(schema, "minItems", "maxItems")
    if size is not None:
        preds.append(size)
    unique = schema.get("uniqueItems", False)
    if type(unique) is not bool:
        raise Unsupported
    if unique:
        preds.append(reject)  # jsonschema's notion of "equal items" is left to it
    if "items" in schema:
        items = schema["items"]
        if not isinstance(items, dict | bool):  # the array (tuple) form is not in the subset
            raise Unsupported
        each = _node(items, keywords, depth + 1)
        if each is not accept:
            preds.append(lambda a: all(map(each, a)))
    return preds


def _object(schema: dict[str, JSONValue], keywords: frozenset[str], depth: int) -> list[FastCheck]:
    preds: list[FastCheck] = []
    size = size_check(schema, "minProperties", "maxProperties")
    if size is not None:
        preds.append(size)
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise Unsupported
    names = tuple(dict.fromkeys(required))
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise Unsupported
    # None stands for "anything goes", so the loop below makes no call for it.
    props: dict[str, FastCheck | None] = {}
    for name, sub in properties.items():
        check = _node(sub, keywords, depth + 1)
        props[name] = None if check is accept else check
    extra: FastCheck | None = None
    if "additionalProperties" in schema:
        check = _node(schema["additionalProperties"], keywords, depth + 1)
        extra = None if check is accept else check
    if extra is None and all(c is None for c in props.values()):
        if names:
            preds.append(lambda o: all(map(o.__contains__, names)))
        return preds
    lookup = props.get

    def members(o: dict[str, Any]) -> bool:
        for name in names:
            if name not in o:
                return False
        for name, value in o.items():
            check = lookup(name, extra)
            if check is not None and not check(value):
                return False
        return True

    preds.append(members)
    return preds


def _applicators(
    schema: dict[str, JSONValue], base: FastCheck, keywords: frozenset[str], depth: int
) -> FastCheck:
    every: list[FastCheck] = [] if base is accept else [base]
    if "allOf" in schema:
        every.extend(_branches(schema["allOf"], keywords, depth))
    if "anyOf" in schema:
        options = tuple(_branches(schema["anyOf"], keywords, depth))
        if accept not in options:
            every.append(lambda instance: any(option(instance) for option in options))
    return _all([c for c in every if c is not accept])


def _branches(value: JSONValue, keywords: frozenset[str], depth: int) -> list[FastCheck]:
    if not isinstance(value, list) or not value:
        raise Unsupported
    return [_node(branch, keywords, depth + 1) for branch in value]
