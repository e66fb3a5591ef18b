"""IN-3, DS-4, UP-4: an upstream's schema cannot make validation exponential and freeze the
gateway. A schema whose references multiply (``$defs`` levels of ``allOf: [{$ref: next},
{$ref: next}]``: 2^N subschema visits in ~70 bytes a level) is refused when compiled, fast,
so the tool is held; a recursive schema whose cost grows with the instance is cut off by
the work budget of one validation. Ordinary schemas, recursive ones included, still work.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bastion.guard import SchemaUnusable, SchemaValidator

TOO_COSTLY = "schema too costly to validate"


def chain(levels: int, applicator: str = "allOf") -> dict[str, Any]:
    """The red team's bomb: each level applies the next one twice."""
    defs: dict[str, Any] = {
        f"d{i}": {applicator: [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "string"}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs}


def doubled(levels: int, twice: Any) -> dict[str, Any]:
    """``levels`` definitions, each using the next one twice as ``twice(ref)`` says."""
    defs = {f"d{i}": twice({"$ref": f"#/$defs/d{i + 1}"}) for i in range(levels)}
    defs[f"d{levels}"] = {"type": "string"}
    return {"$ref": "#/$defs/d0", "$defs": defs}


BOMBS = {
    "allOf": chain(18),
    "anyOf": chain(18, "anyOf"),
    "oneOf": chain(18, "oneOf"),
    "deep": chain(60),
    "if-then": doubled(18, lambda ref: {"if": ref, "then": ref}),
    "not-and-items": doubled(18, lambda ref: {"not": {"not": ref}, "items": ref}),
    "properties": doubled(18, lambda ref: {"properties": {"a": ref, "b": ref}}),
    "dynamicRef": doubled(18, lambda ref: {"allOf": [{"$dynamicRef": ref["$ref"]}, ref]}),
    # Repeated references multiply even when the chain ends in a cycle.
    "cycle-at-the-end": doubled(
        18, lambda ref: {"anyOf": [ref, ref]} if ref["$ref"] != "#/$defs/d18" else {"$ref": "#"}
    ),
}


@pytest.mark.parametrize("name", BOMBS)
def test_in3_ds4_a_schema_that_expands_exponentially_is_refused_at_compile(name: str) -> None:
    """Red-team S: 1.4 KB of schema made one call validate for 12.6 s on the event loop.
    Now compile refuses it (the tool is held as schema-unusable) in a fraction of that."""
    validator = SchemaValidator()
    started = time.perf_counter()
    with pytest.raises(SchemaUnusable) as refused:
        validator.compile(BOMBS[name])
    assert refused.value.reason == TOO_COSTLY
    assert time.perf_counter() - started < 2.0
    tool = {"name": "t", "inputSchema": {"type": "object"}, "outputSchema": BOMBS[name]}
    assert validator.unusable_reason(tool) == f"outputSchema: {TOO_COSTLY}"


def test_in3_ds4_unevaluated_properties_count_the_second_pass() -> None:
    """jsonschema validates the in-place subschemas of an ``unevaluatedProperties`` schema a
    second time; nested, that doubles per level with no ``$ref`` at all."""
    nested: dict[str, Any] = {"type": "object"}
    for _ in range(15):
        nested = {"anyOf": [nested], "unevaluatedProperties": False}
    with pytest.raises(SchemaUnusable, match=TOO_COSTLY):
        SchemaValidator().compile(nested)


TREE = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 20},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
            "required": ["name"],
        }
    },
    "type": "object",
    "properties": {"root": {"$ref": "#/$defs/node"}},
    "required": ["root"],
}
EXPRESSION = {
    "$id": "https://example.com/expr",
    "oneOf": [
        {"type": "number"},
        {
            "type": "object",
            "properties": {
                "op": {"enum": ["+", "-", "*"]},
                "left": {"$ref": "#"},
                "right": {"$ref": "#"},
            },
            "required": ["op", "left", "right"],
            "additionalProperties": False,
        },
    ],
}


def _tree(depth: int, name: object = "n") -> dict[str, Any]:
    node: dict[str, Any] = {"name": name}
    for _ in range(depth):
        node = {"name": "n", "children": [node, {"name": "leaf"}]}
    return {"root": node}


def test_in3_ordinary_recursive_schemas_still_validate() -> None:
    """A tree of nodes and an expression grammar (a reference back to an ancestor, twice)
    compile and validate: valid instances pass, a deep violation is reported by path."""
    validator = SchemaValidator()
    tree = validator.compile(TREE)
    assert tree.violations(_tree(25)) == []
    [wrong] = tree.violations(_tree(3, name=7))
    assert wrong.path == "$.root.children[0].children[0].children[0].name"
    expression = validator.compile(EXPRESSION)
    value: object = 1
    for _ in range(20):
        value = {"op": "+", "left": value, "right": 2}
    assert expression.violations(value) == []
    assert expression.violations({"op": "+", "left": 1, "right": "two"}) != []


def test_in3_a_reused_definition_is_not_a_bomb() -> None:
    """Real schemas reuse definitions (an address for home and work, a person in a list):
    counted once per use, far under the cap."""
    address = {
        "type": "object",
        "properties": {"street": {"type": "string"}, "geo": {"$ref": "#/$defs/geo"}},
    }
    schema = {
        "type": "object",
        "properties": {
            "owner": {"$ref": "#/$defs/person"},
            "members": {"type": "array", "items": {"$ref": "#/$defs/person"}},
            "billing": {"$ref": "#/$defs/address"},
        },
        "$defs": {
            "geo": {"type": "object", "properties": {"lat": {"type": "number"}}},
            "address": address,
            "person": {
                "type": "object",
                "properties": {
                    "home": {"$ref": "#/$defs/address"},
                    "work": {"$ref": "#/$defs/address"},
                    "friends": {"type": "array", "items": {"$ref": "#/$defs/person"}},
                },
            },
        },
    }
    compiled = SchemaValidator().compile(schema)
    person = {"home": {"street": "a", "geo": {"lat": 1.5}}, "friends": [{"work": {}}]}
    assert compiled.violations({"owner": person, "members": [person] * 3}) == []
    assert [v.path for v in compiled.violations({"billing": {"geo": {"lat": "x"}}})] == [
        "$.billing.geo.lat"
    ]


FAN_OUT = {"type": "object", "properties": {"a": {"allOf": [{"$ref": "#"}, {"$ref": "#"}]}}}


def _nested(depth: int) -> dict[str, Any]:
    instance: dict[str, Any] = {}
    for _ in range(depth):
        instance = {"a": instance}
    return instance


@pytest.mark.timeout(30)
def test_in3_ds4_validation_work_is_bounded_by_the_instance() -> None:
    """A recursive schema that applies itself twice per level is small, but validating
    ``{"a": {"a": ...}}`` 40 deep would take 2^40 steps on the event loop. The work budget
    ends it promptly (the call fails as with an unusable schema); shallow ones still pass."""
    compiled = SchemaValidator().compile(FAN_OUT)
    assert compiled.violations(_nested(6)) == []
    started = time.perf_counter()
    with pytest.raises(SchemaUnusable, match="work budget"):
        compiled.violations(_nested(40))
    assert time.perf_counter() - started < 5.0


def test_in3_a_large_ordinary_instance_is_within_the_budget() -> None:
    """The budget grows with the instance: 5,000 rows through a ``$ref`` (which the fast
    path does not take) validate, and a bad row is still found."""
    schema = {
        "type": "object",
        "properties": {"rows": {"type": "array", "items": {"$ref": "#/$defs/row"}}},
        "$defs": {
            "row": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
                "required": ["id"],
            }
        },
    }
    rows: list[dict[str, Any]] = [{"id": i, "name": f"r{i}"} for i in range(5000)]
    compiled = SchemaValidator().compile(schema)
    assert compiled.violations({"rows": rows}) == []
    rows[4321] = {"name": "no id"}
    assert [str(v) for v in compiled.violations({"rows": rows})] == ["$.rows[4321].id: required"]
