"""IN-3: tool arguments are validated against inputSchema (unknown fields refused) and
structuredContent against outputSchema; hostile schemas are unusable, never a crash."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.errors import InvalidParams
from bastion.guard import SchemaUnusable, SchemaValidator

SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "maxLength": 8},
        "count": {"type": "integer", "minimum": 1, "maximum": 10},
        "mode": {"enum": ["fast", "slow"]},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
    },
    "required": ["path"],
    "$defs": {"tag": {"type": "string", "pattern": "^[a-z]+$"}},
}


def test_in3_valid_arguments_pass() -> None:
    compiled = SchemaValidator().compile(SCHEMA)
    assert compiled.violations({"path": "a", "count": 3, "mode": "fast", "tags": ["x"]}) == []


def test_in3_each_rule_is_reported_with_path_and_rule() -> None:
    compiled = SchemaValidator().compile(SCHEMA)
    found = compiled.violations({"path": 5, "count": 99, "mode": "other", "tags": ["X1"]})
    rules = {(v.path, v.rule) for v in found}
    assert ("$.path", "must be string") in rules
    assert ("$.count", "must be <= 10") in rules
    assert ("$.mode", "must be one of the allowed values") in rules
    assert ("$.tags[0]", "must match the required pattern") in rules
    missing = compiled.violations({})
    assert [str(v) for v in missing] == ["$.path: required"]


def test_in3_unknown_top_level_fields_are_refused_by_default() -> None:
    compiled = SchemaValidator().compile(SCHEMA)
    assert [str(v) for v in compiled.violations({"path": "a", "extra": 1})] == [
        "$.extra: unknown field"
    ]
    lenient = SchemaValidator(reject_unknown_fields=False).compile(SCHEMA)
    assert lenient.violations({"path": "a", "extra": 1}) == []


@pytest.mark.parametrize(
    "allowing",
    [
        {"additionalProperties": True},
        {"additionalProperties": {"type": "string"}},
        {"unevaluatedProperties": True},
    ],
)
def test_in3_schemas_that_explicitly_allow_more_accept_unknown_fields(
    allowing: dict[str, object],
) -> None:
    compiled = SchemaValidator().compile({**SCHEMA, **allowing})
    assert compiled.violations({"path": "a", "extra": "x"}) == []


def test_in3_composed_and_pattern_properties_count_as_known() -> None:
    schema = {
        "type": "object",
        "allOf": [{"$ref": "#/$defs/base"}, {"properties": {"b": {"type": "string"}}}],
        "patternProperties": {"^x-": {"type": "string"}},
        "$defs": {"base": {"properties": {"a": {"type": "string"}}}},
    }
    compiled = SchemaValidator().compile(schema)
    assert compiled.violations({"a": "1", "b": "2", "x-c": "3"}) == []
    assert [v.field for v in compiled.violations({"a": "1", "zz": "2"})] == ["zz"]


def test_in3_messages_never_echo_argument_values() -> None:
    validator = SchemaValidator()
    secret = "hunter2-very-secret"
    with pytest.raises(InvalidParams) as caught:
        validator.check_arguments(SCHEMA, {"path": secret, "count": secret, "tags": [secret]})
    message = caught.value.wire_message
    assert secret not in message and "hunter2" not in message
    assert message.startswith("Invalid arguments: ") and "$.count: must be integer" in message
    # Hostile key names are not echoed either.
    with pytest.raises(InvalidParams) as caught:
        validator.check_arguments(SCHEMA, {"path": "a", "<script>alert(1)</script>": 1})
    assert "<script>" not in caught.value.wire_message
    assert len(caught.value.wire_message) < 500


def test_in3_message_length_is_bounded() -> None:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(50)}}
    with pytest.raises(InvalidParams) as caught:
        SchemaValidator().check_arguments(schema, {f"p{i}": "x" for i in range(50)})
    assert len(caught.value.wire_message) <= 420


def test_in3_structured_content_is_checked_against_output_schema() -> None:
    out = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    validator = SchemaValidator()
    assert validator.check_structured(out, {"n": 1}) == []
    assert [str(v) for v in validator.check_structured(out, {"n": "1"})] == ["$.n: must be integer"]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"$ref": "https://evil.example/schema.json"}}},
        {"type": "object", "properties": {"a": {"$ref": "file:///etc/passwd"}}},
        {"type": "object", "properties": {"a": {"$ref": "other.json#/x"}}},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(?=a)b"}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "(a)\\1"}}},
        {"type": "object", "patternProperties": {"(?<!x)a": {}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "a" * 1001}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "([unclosed"}}},
        {"type": "not-a-type"},
        {"type": "object", "properties": {"a": {"$dynamicRef": "https://evil/x"}}},
        "not an object",
        None,
    ],
)
def test_in3_hostile_or_broken_schemas_are_unusable_not_crashes(schema: object) -> None:
    with pytest.raises(SchemaUnusable):
        SchemaValidator().compile(schema)


REDOS = ["^(a|aa)+$", "(a+)+$", "^(a|a)*$", "^([a-z]+\\.)*[a-z]+$", "^(\\w+\\s?)*$"]


@pytest.mark.parametrize("pattern", REDOS)
def test_in3_ds4_catastrophic_patterns_match_in_linear_time(pattern: str) -> None:
    """Red-team p4: a pattern that makes a backtracking engine run for minutes on 45
    characters (^(a|aa)+$) is matched in linear time, for every kind of schema regex."""
    attack = "a" * 45 + "!"
    schemas = {
        "pattern": {
            "type": "object",
            "properties": {"code": {"type": "string", "pattern": pattern}},
        },
        "patternProperties": {
            "type": "object",
            "patternProperties": {pattern: {"type": "integer"}},
            "additionalProperties": False,
        },
        "propertyNames": {"type": "object", "propertyNames": {"pattern": pattern}},
        "nested": {
            "type": "object",
            "properties": {
                "deep": {"type": "array", "items": {"type": "string", "pattern": pattern}}
            },
        },
    }
    arguments = {
        "pattern": {"code": attack},
        "patternProperties": {attack: "x"},
        "propertyNames": {attack: 1},
        "nested": {"deep": ["a", attack * 1000]},
    }
    validator = SchemaValidator()
    started = time.perf_counter()
    for kind, schema in schemas.items():
        compiled = validator.compile(schema)
        with pytest.raises(InvalidParams):
            compiled.check_arguments(arguments[kind])
    assert time.perf_counter() - started < 2.0  # a backtracking engine: minutes or hours


def test_in3_common_patterns_are_usable_and_match_as_ecma_262() -> None:
    """Real patterns the old nested-quantifier rule refused (zod's e-mail) are usable; ECMA
    escapes (\\uXXXX) work; a JSON Schema pattern is a search, not a full match."""
    email = (
        "^(?:[A-Za-z0-9_'+\\-]+\\.)*[A-Za-z0-9_'+\\-]*[A-Za-z0-9_+-]@"
        "(?:[A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$"
    )
    schema = {
        "type": "object",
        "properties": {
            "mail": {"type": "string", "pattern": email},
            "accent": {"type": "string", "pattern": "^\\u00e9+$"},
            "word": {"type": "string", "pattern": "b"},
        },
    }
    compiled = SchemaValidator().compile(schema)
    assert (
        compiled.violations({"mail": "bob.smith@example.com", "accent": "éé", "word": "abc"}) == []
    )
    bad = compiled.violations({"mail": "bob@", "accent": "e", "word": "xyz"})
    assert {v.path for v in bad} == {"$.mail", "$.accent", "$.word"}


def test_in3_unevaluated_properties_with_pattern_properties_is_unusable() -> None:
    """jsonschema runs unevaluatedProperties' patternProperties with backtracking ``re``."""
    schema = {"type": "object", "patternProperties": {"^x": {}}, "unevaluatedProperties": False}
    with pytest.raises(SchemaUnusable):
        SchemaValidator().compile(schema)


def test_in3_a_remote_base_id_cannot_fetch_while_validating() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$id": "https://evil.example/", "$ref": "#/x"}},
    }
    with pytest.raises(SchemaUnusable):
        SchemaValidator().compile(schema).violations({"a": 1})


def test_in3_absurd_size_and_depth_are_unusable() -> None:
    huge = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(20000)}}
    assert len(json.dumps(huge)) > 256 * 1024
    with pytest.raises(SchemaUnusable, match="too large"):
        SchemaValidator().compile(huge)
    deep: dict[str, object] = {"type": "object"}
    for _ in range(100):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(SchemaUnusable, match="too deep"):
        SchemaValidator().compile(deep)


def test_in3_unusable_reason_covers_both_schemas() -> None:
    validator = SchemaValidator()
    ok = {"name": "t", "inputSchema": {"type": "object"}}
    assert validator.unusable_reason(ok) is None
    bad_out = {**ok, "outputSchema": {"$ref": "https://evil/x"}}
    assert (validator.unusable_reason(bad_out) or "").startswith("outputSchema")


def test_in3_compiled_once_and_cache_is_bounded() -> None:
    validator = SchemaValidator(cache_size=2)
    first = validator.compile(SCHEMA)
    assert validator.compile(json.loads(json.dumps(SCHEMA))) is first  # same hash, same object
    validator.compile({"type": "object", "title": "1"})
    validator.compile({"type": "object", "title": "2"})
    assert len(validator._cache) == 2
    assert validator.compile(SCHEMA) is not first  # evicted, rebuilt


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(["type", "properties", "$ref", "items", "pattern", "enum", "x"]),
                children,
                max_size=4,
            )
        ),
        max_leaves=20,
    ),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
)
def test_in3_arbitrary_schemas_never_crash(schema: object, arguments: dict[str, object]) -> None:
    validator = SchemaValidator()
    with contextlib.suppress(SchemaUnusable):
        validator.compile(schema).violations(arguments)
