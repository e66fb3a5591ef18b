"""IN-3: the plain-Python fast check for simple tool schemas is sound (valid only when
jsonschema agrees), actually taken for typical tool schemas, and never changes what a
refusal reports."""

from __future__ import annotations

import dataclasses
from typing import Any

import jsonschema
import jsonschema.validators
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bastion.guard import CompiledSchema, SchemaUnusable, SchemaValidator
from bastion.guard.fast_schema import _DIALECTS, compile_fast

DRAFT_2020 = jsonschema.Draft202012Validator


def fast(schema: dict[str, Any], draft: type[Any] = DRAFT_2020) -> Any:
    check = compile_fast(schema, draft)
    assert check is not None, "expected a fast path"
    return check


def slow(compiled: CompiledSchema) -> CompiledSchema:
    """The same compiled schema with the fast path switched off (jsonschema only)."""
    return dataclasses.replace(compiled, _fast=None)


class _NoJsonschema:
    def iter_errors(self, instance: object) -> Any:
        raise AssertionError("jsonschema ran although the fast path said valid")


# -- typical MCP tool schemas take the fast path --------------------------------------------

TOOL_SCHEMAS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        {"text": "x"},
    ),
    (  # filesystem-style, draft-07 as zod-to-json-schema writes it
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File to read"},
                "head": {"type": "number", "description": "First N lines"},
                "paths": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            },
            "required": ["path"],
            "additionalProperties": False,
        },
        {"path": "/tmp/a", "head": 10, "paths": ["a", "b"]},
    ),
    (  # pydantic-style: titles, defaults, Optional as anyOf with null, format
        {
            "type": "object",
            "title": "fetchArguments",
            "properties": {
                "url": {"type": "string", "format": "uri", "minLength": 1, "title": "Url"},
                "max_length": {
                    "type": "integer",
                    "default": 5000,
                    "exclusiveMinimum": 0,
                    "exclusiveMaximum": 1000000,
                },
                "raw": {"type": "boolean", "default": False},
                "start": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
                "mode": {"enum": ["html", "markdown"], "default": "markdown"},
            },
            "required": ["url"],
        },
        {"url": "https://example.org", "max_length": 100, "raw": True, "start": None},
    ),
    (
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "pattern": "\\S"},
                "filters": {
                    "type": "object",
                    "properties": {"lang": {"type": "string"}, "tags": {"type": "array"}},
                    "additionalProperties": {"type": ["string", "number"]},
                },
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "multipleOf": 5},
            },
            "required": ["query"],
        },
        {"query": "cats", "filters": {"lang": "en", "x": 1.5, "tags": [1]}, "limit": 20},
    ),
    ({"type": "object"}, {"anything": [1, {"a": None}]}),
    ({"type": "object", "properties": {}}, {}),
]


@pytest.mark.parametrize(("schema", "arguments"), TOOL_SCHEMAS)
def test_in3_typical_tool_schemas_take_the_fast_path(
    schema: dict[str, Any], arguments: dict[str, Any]
) -> None:
    compiled = SchemaValidator().compile(schema)
    assert compiled._fast is not None and compiled._fast(arguments)
    skipping = dataclasses.replace(compiled, _validator=_NoJsonschema())
    assert skipping.violations(arguments) == []
    skipping.check_arguments(arguments)
    assert slow(compiled).violations(arguments) == []


INVALID: list[tuple[int, dict[str, Any]]] = [
    (0, {}),
    (0, {"text": 1}),
    (0, {"text": "x", "extra": 1}),
    (1, {"path": "/a", "head": "10"}),
    (1, {"path": "/a", "paths": []}),
    (1, {"path": "/a", "other": True}),
    (2, {"url": "", "max_length": 0}),
    (2, {"url": "u", "start": -1, "mode": "pdf"}),
    (2, {"url": "u", "raw": 1}),
    (3, {"query": " ", "limit": 7}),
    (3, {"query": "q", "filters": {"x": True, "lang": 3}}),
]


@pytest.mark.parametrize(("index", "arguments"), INVALID)
def test_in3_invalid_arguments_fall_back_and_report_as_before(
    index: int, arguments: dict[str, Any]
) -> None:
    compiled = SchemaValidator().compile(TOOL_SCHEMAS[index][0])
    assert compiled._fast is not None
    found = compiled.violations(arguments)
    assert found
    assert found == slow(compiled).violations(arguments)


def test_in3_unknown_fields_are_still_refused_when_the_fast_check_passes() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {}}}
    compiled = SchemaValidator().compile(schema)
    assert compiled._fast is not None and compiled._fast({"a": "x", "zz": 1})
    assert [str(v) for v in compiled.violations({"a": "x", "zz": 1})] == ["$.zz: unknown field"]
    lenient = SchemaValidator(reject_unknown_fields=False).compile(schema)
    assert lenient.violations({"a": "x", "zz": 1}) == []


# -- the traps -------------------------------------------------------------------------------


def test_in3_booleans_are_not_integers_or_numbers() -> None:
    for kind in ("integer", "number"):
        check = fast({"type": kind})
        assert check(3) and not check(True) and not check(False)
    assert fast({"type": "number"})(2.5)
    assert fast({"type": "boolean"})(True) and not fast({"type": "boolean"})(1)
    # minimum ignores booleans (they are not numbers); a bool is valid there.
    assert fast({"minimum": 5})(True) and DRAFT_2020({"minimum": 5}).is_valid(True)


def test_in3_integral_floats_under_integer() -> None:
    check = fast({"type": "integer", "minimum": 0})
    assert check(1.0) and DRAFT_2020({"type": "integer"}).is_valid(1.0)
    assert not check(1.5) and not check(-1.0)
    # multipleOf leaves floats to jsonschema (not sure), which accepts 4.0 here.
    compiled = SchemaValidator().compile({"type": "integer", "multipleOf": 2})
    assert compiled._fast is not None and not compiled._fast(4.0) and compiled._fast(4)
    assert compiled.violations(4.0) == []
    assert [v.rule for v in compiled.violations(3)] == [
        v.rule for v in slow(compiled).violations(3)
    ]


def test_in3_enum_and_const_match_only_equal_json_types() -> None:
    assert fast({"enum": [1]})(1)
    assert not fast({"enum": [1]})(True) and not DRAFT_2020({"enum": [1]}).is_valid(True)
    assert not fast({"enum": [True]})(1) and not DRAFT_2020({"enum": [True]}).is_valid(1)
    # 1.0 equals 1 for jsonschema; the fast path is not sure and jsonschema accepts it.
    assert not fast({"enum": [1]})(1.0)
    assert SchemaValidator().compile({"enum": [1]}).violations(1.0) == []
    assert fast({"const": {"a": [1, None]}})({"a": [1, None]})
    assert not fast({"const": {"a": [1]}})({"a": [True]})
    assert not fast({"const": [0]})([False]) and not DRAFT_2020({"const": [0]}).is_valid([False])
    assert not fast({"enum": []})("x")
    both = fast({"enum": ["a", "b"], "const": "b"})
    assert both("b") and not both("a")


def test_in3_pattern_searches_like_jsonschema() -> None:
    check = fast({"pattern": "b"})
    assert check("abc") and not check("xyz")
    assert fast({"pattern": "^a"})("abc") and not fast({"pattern": "^a"})("ba")
    assert fast({"pattern": "^é+$"})("éé")
    assert fast({"pattern": "^a"})(5)  # not a string: pattern does not apply


def test_in3_length_counts_code_points() -> None:
    check = fast({"minLength": 2, "maxLength": 2})
    assert check("é𝄞") and not check("𝄞") and not check("abc")
    assert DRAFT_2020({"minLength": 2, "maxLength": 2}).is_valid("é𝄞")


@pytest.mark.parametrize(
    ("schema", "instance"),
    [
        ({"minLength": 3}, 5),
        ({"maxLength": 0}, ["a"]),
        ({"minimum": 3}, "a"),
        ({"exclusiveMaximum": 0}, None),
        ({"multipleOf": 3}, "x"),
        ({"minItems": 2}, {"a": 1}),
        ({"items": False}, {"a": 1}),
        ({"uniqueItems": True}, "aa"),
        ({"required": ["a"]}, []),
        ({"properties": {"a": False}}, "a"),
        ({"additionalProperties": False}, [1]),
        ({"maxProperties": 0}, "long string"),
    ],
)
def test_in3_keywords_ignore_other_instance_types(schema: dict[str, Any], instance: Any) -> None:
    assert DRAFT_2020(schema).is_valid(instance)
    assert fast(schema)(instance)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {}}},
        {"$ref": "#"},
        {"type": "object", "$defs": {"a": {}}},
        {"$id": "urn:x", "type": "object"},
        {"$anchor": "a"},
        {"oneOf": [{"type": "string"}]},
        {"not": {"type": "string"}},
        {"if": {"type": "string"}, "then": {"minLength": 1}},
        {"patternProperties": {"^a": {}}},
        {"propertyNames": {"maxLength": 3}},
        {"dependentRequired": {"a": ["b"]}},
        {"prefixItems": [{}]},
        {"contains": {}},
        {"unevaluatedProperties": False},
        {"properties": {"deep": {"items": {"anyOf": [{"not": {}}]}}}},
        {"multipleOf": 0.5},
        {
            "type": "object",
            "properties": {"a": {"$schema": "http://json-schema.org/draft-07/schema#"}},
        },
    ],
)
def test_in3_schemas_outside_the_subset_have_no_fast_path(schema: dict[str, Any]) -> None:
    assert compile_fast(schema, DRAFT_2020) is None
    assert SchemaValidator().compile(schema)._fast is None


@pytest.mark.parametrize(
    "uri",
    [
        "http://json-schema.org/draft-04/schema#",
        "http://json-schema.org/draft-03/schema#",
        "https://json-schema.org/draft-07/schema#",  # https: not draft-07 for jsonschema
        "http://json-schema.org/schema#",
        "urn:custom",
    ],
)
def test_in3_other_dialects_have_no_fast_path(uri: str) -> None:
    schema = {"$schema": uri, "type": "object", "properties": {"a": {"type": "integer"}}}
    compiled = SchemaValidator().compile(schema)
    assert compiled._fast is None
    assert compiled.violations({"a": 1}) == []


def test_in3_dialect_uris_are_those_jsonschema_maps() -> None:
    for uri, draft in _DIALECTS.items():
        assert jsonschema.validators.validator_for({"$schema": uri}, default=None) is draft
        assert compile_fast({"$schema": uri, "type": "string"}, draft) is not None
        # The class the caller picked must be the one the URI names.
        other = DRAFT_2020 if draft is not DRAFT_2020 else jsonschema.Draft7Validator
        assert compile_fast({"$schema": uri, "type": "string"}, other) is None
    assert compile_fast({"type": "string"}, jsonschema.Draft4Validator) is None


def test_in3_format_is_an_annotation_only() -> None:
    schema = {"type": "object", "properties": {"m": {"type": "string", "format": "email"}}}
    compiled = SchemaValidator().compile(schema)
    assert getattr(compiled._validator, "format_checker", "missing") is None
    assert compiled._fast is not None and compiled._fast({"m": "not an email"})
    assert slow(compiled).violations({"m": "not an email"}) == []
    # With a format checker the fast path would be wrong, so it is not built.
    checked = DRAFT_2020(schema, format_checker=DRAFT_2020.FORMAT_CHECKER)
    assert not checked.is_valid({"m": "not an email"})


def test_in3_names_that_are_no_keyword_are_ignored_like_jsonschema() -> None:
    schema = {"type": "string", "x-order": 1, "nullable": True, "maxLength": 1}
    assert fast(schema)("a") and not fast(schema)(None)
    # additionalItems is a keyword of draft-07 (not understood here), not of 2020-12.
    assert compile_fast({"additionalItems": False}, jsonschema.Draft7Validator) is None
    assert fast({"additionalItems": False})([1, 2])


def test_in3_non_json_instances_are_not_sure() -> None:
    check = fast({"type": "object", "properties": {"a": {"type": "integer"}}})
    assert not check(dataclasses.make_dataclass("X", [])())
    assert not fast({"type": "array"})((1, 2))
    assert not fast({"type": "number"})(complex(1, 0))


def test_in3_fast_path_is_quick_for_a_trivial_schema() -> None:
    import timeit

    compiled = SchemaValidator().compile(TOOL_SCHEMAS[0][0])
    fast_us = min(timeit.repeat(lambda: compiled.violations({"text": "x"}), number=2000, repeat=3))
    slow_compiled = slow(compiled)
    slow_us = min(
        timeit.repeat(lambda: slow_compiled.violations({"text": "x"}), number=2000, repeat=3)
    )
    assert fast_us * 3 < slow_us  # in practice ~30x; 3x leaves room for noisy machines


# -- properties: generated schemas and instances ------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "é"])
TYPE_NAMES = st.sampled_from(["null", "boolean", "integer", "number", "string", "array", "object"])
NUMBERS = st.integers(-3, 3) | st.sampled_from([0.5, 1.0, -1.5, 2.0, 1e300])
SMALL = st.integers(0, 3)
PATTERNS = st.sampled_from(["^a", "b", "^$", "[0-9]", "é", "^.{2}$", "(?i)A"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-4, 4)
    | st.sampled_from([0.0, -0.0, 1.0, 2.0, 0.5, -1.5, 2**70, 1e300])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.sampled_from("ab0é𝄞 "), max_size=4)
)
INSTANCES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(NAMES | st.text(max_size=2), children, max_size=4)
    ),
    max_leaves=12,
)

PLAIN_KEYWORDS = {
    "type": TYPE_NAMES | st.lists(TYPE_NAMES, min_size=1, max_size=3, unique=True),
    "minLength": SMALL,
    "maxLength": SMALL,
    "pattern": PATTERNS,
    "minimum": NUMBERS,
    "maximum": NUMBERS,
    "exclusiveMinimum": NUMBERS,
    "exclusiveMaximum": NUMBERS,
    "minItems": SMALL,
    "maxItems": SMALL,
    "minProperties": SMALL,
    "maxProperties": SMALL,
    "required": st.lists(NAMES, max_size=3, unique=True),
    "title": st.text(max_size=3),
    "description": st.text(max_size=3),
    "default": SCALARS,
    "format": st.sampled_from(["email", "date-time", "uri", "ipv4"]),
    "x-extension": SCALARS,
    "uniqueItems": st.just(False),
}
# Keywords where the fast path may be "not sure" although jsonschema says valid.
LOOSE_KEYWORDS = {
    "enum": st.lists(INSTANCES, max_size=4),
    "const": INSTANCES,
    "multipleOf": st.integers(1, 4),
    "uniqueItems": st.booleans(),
}
OUTSIDE = st.sampled_from(
    [
        {"$ref": "#"},
        {"not": {}},
        {"oneOf": [{}]},
        {"patternProperties": {"^a": {"type": "integer"}}},
        {"prefixItems": [{"type": "string"}]},
        {"$defs": {"x": {}}},
        {"propertyNames": {"maxLength": 1}},
        {"multipleOf": 0.5},
    ]
)


def schemas(*, loose: bool, outside: bool) -> st.SearchStrategy[Any]:
    keywords = {**PLAIN_KEYWORDS, **(LOOSE_KEYWORDS if loose else {})}
    leaf = st.fixed_dictionaries({}, optional=keywords)
    if outside:
        leaf = st.tuples(leaf, st.none() | OUTSIDE).map(lambda t: {**t[0], **(t[1] or {})})

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        applied = st.fixed_dictionaries(
            {},
            optional={
                "properties": st.dictionaries(NAMES, children, max_size=3),
                "additionalProperties": children,
                "items": children,
                "allOf": st.lists(children, min_size=1, max_size=2),
                "anyOf": st.lists(children, min_size=1, max_size=3),
            },
        )
        return st.tuples(leaf, applied).map(lambda t: {**t[0], **t[1]})

    return st.recursive(st.booleans() | leaf, extend, max_leaves=8).filter(
        lambda s: isinstance(s, dict)
    )


DIALECT = st.sampled_from([None, *_DIALECTS])


def _draft(schema: dict[str, Any], uri: str | None) -> tuple[dict[str, Any], type[Any]]:
    if uri is not None:
        schema = {**schema, "$schema": uri}
    draft = jsonschema.validators.validator_for(schema, default=DRAFT_2020)
    try:
        draft.check_schema(schema)
    except jsonschema.exceptions.SchemaError:
        assume(False)
    return schema, draft


@settings(max_examples=400, deadline=None)
@given(schemas(loose=True, outside=True), DIALECT, st.lists(INSTANCES, min_size=1, max_size=6))
def test_in3_fast_path_is_sound(
    schema: dict[str, Any], uri: str | None, instances: list[Any]
) -> None:
    schema, draft = _draft(schema, uri)
    check = compile_fast(schema, draft)
    if check is None:
        return
    validator = draft(schema)
    for instance in instances:
        if check(instance):
            assert validator.is_valid(instance), (schema, instance)


@settings(max_examples=200, deadline=None)
@given(schemas(loose=False, outside=False), DIALECT, st.lists(INSTANCES, min_size=1, max_size=6))
def test_in3_fast_path_agrees_with_jsonschema_on_the_plain_subset(
    schema: dict[str, Any], uri: str | None, instances: list[Any]
) -> None:
    schema, draft = _draft(schema, uri)
    check = compile_fast(schema, draft)
    assert check is not None, schema  # the plain subset always gets a fast path
    validator = draft(schema)
    for instance in instances:
        assert check(instance) == validator.is_valid(instance), (schema, instance)


@settings(max_examples=100, deadline=None)
@given(schemas(loose=True, outside=True), DIALECT, st.lists(INSTANCES, min_size=1, max_size=4))
def test_in3_violations_are_the_same_with_and_without_the_fast_path(
    schema: dict[str, Any], uri: str | None, instances: list[Any]
) -> None:
    schema, _ = _draft({"type": "object", **schema}, uri)
    compiled = SchemaValidator().compile(schema)
    for instance in instances:
        assert _outcome(compiled, instance) == _outcome(slow(compiled), instance)


def _outcome(compiled: CompiledSchema, instance: Any) -> object:
    try:
        return compiled.violations(instance)
    except SchemaUnusable as exc:  # {"$ref": "#"}: endless, whichever path
        return exc.reason
