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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import jsonschema

from bastion._types import JSONValue
from bastion.guard._regex import PatternError, compile_pattern

__all__ = ["FastCheck", "compile_fast"]

FastCheck = Callable[[Any], bool]
"""True: the instance is certainly valid. False: invalid or not sure (ask jsonschema)."""

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

_NONE: Final = type(None)
_SCALARS: Final = (_NONE, bool, int, float, str)
_ALL_TYPES: Final = (*_SCALARS, list, dict)
_TYPE_NAMES: Final[Mapping[str, tuple[type, ...]]] = {
    "null": (_NONE,),
    "boolean": (bool,),
    "integer": (int,),  # plus integral floats: see _node
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}


class _Unsupported(Exception):
    """The schema leaves the subset; no fast check for it."""


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
    except (_Unsupported, PatternError, RecursionError):
        return None


def _accept(instance: object) -> bool:
    return True


def _reject(instance: object) -> bool:
    return False


def _node(schema: JSONValue, keywords: frozenset[str], depth: int) -> FastCheck:
    if depth > MAX_DEPTH:
        raise _Unsupported
    if schema is True:
        return _accept
    if schema is False:
        return _reject
    if not isinstance(schema, dict):
        raise _Unsupported
    for key in schema:
        if key in _HANDLED or key in _ANNOTATIONS:
            continue
        if not isinstance(key, str) or key.startswith("$") or key in keywords:
            raise _Unsupported
        # Otherwise no keyword of this draft: jsonschema ignores it, and so do we.

    allowed, integral_floats = _types(schema["type"]) if "type" in schema else (_ALL_TYPES, False)
    checks: dict[type, list[FastCheck]] = {t: [] for t in allowed}
    if "enum" in schema or "const" in schema:
        _enum(schema, checks)
    if str in checks:
        checks[str].extend(_string(schema))
    numeric = _numeric(schema)
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
    if len(table) == len(_ALL_TYPES) and all(f is _accept for f in table.values()):
        base = _accept
    else:
        base = _dispatch(table)
    return _applicators(schema, base, keywords, depth)


def _types(declared: JSONValue) -> tuple[tuple[type, ...], bool]:
    """Python types ``declared`` allows, and whether floats are allowed only when integral."""
    names = [declared] if isinstance(declared, str) else declared
    if not isinstance(names, list) or not names:
        raise _Unsupported
    allowed: list[type] = []
    for name in names:
        if not isinstance(name, str) or name not in _TYPE_NAMES:
            raise _Unsupported
        allowed.extend(t for t in _TYPE_NAMES[name] if t not in allowed)
    integral_floats = "integer" in names and "number" not in names
    if integral_floats:
        allowed.append(float)  # draft 6+ counts 1.0 as an integer
    return tuple(allowed), integral_floats


def _dispatch(table: dict[type, FastCheck]) -> FastCheck:
    if len(table) == 1:
        [(only, check)] = table.items()
        if check is _accept:
            return lambda instance: type(instance) is only
        return lambda instance: type(instance) is only and check(instance)
    get = table.get

    def dispatch(instance: object) -> bool:
        check = get(type(instance))  # exact JSON types; anything else: not sure
        return check is not None and check(instance)

    return dispatch


def _all(preds: list[FastCheck]) -> FastCheck:
    if not preds:
        return _accept
    if len(preds) == 1:
        return preds[0]
    if _reject in preds:
        return _reject
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


def _enum(schema: dict[str, JSONValue], checks: dict[type, list[FastCheck]]) -> None:
    """Restrict each type's checks to the allowed values of that exact type."""
    for key in ("enum", "const"):
        if key not in schema:
            continue
        values = schema[key] if key == "enum" else [schema[key]]
        if not isinstance(values, list):
            raise _Unsupported
        by_type: dict[type, list[Any]] = {}
        for value in values:
            if type(value) not in _ALL_TYPES:
                raise _Unsupported
            by_type.setdefault(type(value), []).append(value)
        for t in list(checks):
            found = by_type.get(t)
            if not found:
                checks[t] = [_reject]
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
    raise _Unsupported


# Bounds: ``low <= n`` equals jsonschema's ``not n < low`` for every value but NaN (no JSON
# value), which is then "not sure": safe.


def _size(schema: dict[str, JSONValue], low_key: str, high_key: str) -> FastCheck | None:
    low, high = _bound(schema, low_key), _bound(schema, high_key)
    if low is not None and high is not None:
        return lambda sized: low <= len(sized) <= high
    if low is not None:
        return lambda sized: len(sized) >= low
    if high is not None:
        return lambda sized: len(sized) <= high
    return None


def _string(schema: dict[str, JSONValue]) -> list[FastCheck]:
    preds: list[FastCheck] = []
    size = _size(schema, "minLength", "maxLength")  # code points, as Python's len
    if size is not None:
        preds.append(size)
    if "pattern" in schema:
        pattern = schema["pattern"]
        if not isinstance(pattern, str):
            raise _Unsupported
        preds.append(compile_pattern(pattern).search)  # RE2, as the schema's validator
    return preds


def _numeric(schema: dict[str, JSONValue]) -> list[FastCheck]:
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
            raise _Unsupported
        # jsonschema fails ``instance % step`` when non-zero; floats are left to it.
        preds.append(lambda n: type(n) is int and n % step == 0)
    return preds


def _array(schema: dict[str, JSONValue], keywords: frozenset[str], depth: int) -> list[FastCheck]:
    preds: list[FastCheck] = []
    size = _size(schema, "minItems", "maxItems")
    if size is not None:
        preds.append(size)
    unique = schema.get("uniqueItems", False)
    if type(unique) is not bool:
        raise _Unsupported
    if unique:
        preds.append(_reject)  # jsonschema's notion of "equal items" is left to it
    if "items" in schema:
        items = schema["items"]
        if not isinstance(items, dict | bool):  # the array (tuple) form is not in the subset
            raise _Unsupported
        each = _node(items, keywords, depth + 1)
        if each is not _accept:
            preds.append(lambda a: all(map(each, a)))
    return preds


def _object(schema: dict[str, JSONValue], keywords: frozenset[str], depth: int) -> list[FastCheck]:
    preds: list[FastCheck] = []
    size = _size(schema, "minProperties", "maxProperties")
    if size is not None:
        preds.append(size)
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _Unsupported
    names = tuple(dict.fromkeys(required))
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise _Unsupported
    # None stands for "anything goes", so the loop below makes no call for it.
    props: dict[str, FastCheck | None] = {}
    for name, sub in properties.items():
        check = _node(sub, keywords, depth + 1)
        props[name] = None if check is _accept else check
    extra: FastCheck | None = None
    if "additionalProperties" in schema:
        check = _node(schema["additionalProperties"], keywords, depth + 1)
        extra = None if check is _accept else check
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
    every: list[FastCheck] = [] if base is _accept else [base]
    if "allOf" in schema:
        every.extend(_branches(schema["allOf"], keywords, depth))
    if "anyOf" in schema:
        options = tuple(_branches(schema["anyOf"], keywords, depth))
        if _accept not in options:
            every.append(lambda instance: any(option(instance) for option in options))
    return _all([c for c in every if c is not _accept])


def _branches(value: JSONValue, keywords: frozenset[str], depth: int) -> list[FastCheck]:
    if not isinstance(value, list) or not value:
        raise _Unsupported
    return [_node(branch, keywords, depth + 1) for branch in value]
