"""How far a schema expands when one instance is validated against it (IN-3, DS-4).

A schema is small on the wire but its references form a graph: ``$defs`` whose every entry
is ``allOf: [{$ref: next}, {$ref: next}]`` doubles the work per level, so 1.4 KB of schema
costs jsonschema 2^18 subschema visits for one string. ``expanded_size`` counts the visits
one validation could make: every subschema an applicator keyword applies (``allOf``,
``anyOf``, ``oneOf``, ``not``, ``if``/``then``/``else``, ``items``, ``prefixItems``,
``contains``, ``properties``, ``patternProperties``, ``additionalProperties``,
``propertyNames``, ``dependentSchemas``, ``unevaluated*``, and their older-draft forms),
with ``$ref``, ``$dynamicRef`` and ``$recursiveRef`` followed through the schema's own
resolver, as jsonschema follows them. A subschema reached twice counts twice (that is the
multiplication); its size is computed once (memoised), so counting is linear in the schema.
A reference back to a subschema being expanded (recursion, e.g. a tree of nodes) counts 1:
each lap of such a cycle consumes a level of the instance; a cycle that applies itself more
than once per level is cut off per validation by the work budget (``_work_budget``).
``unevaluatedProperties``/``unevaluatedItems`` make jsonschema validate the in-place
subschemas (``allOf``... and references) once more to learn what they evaluated, so a
schema holding them counts those again. The count stops as soon as it passes ``cap``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import referencing

from bastion._types import JSONValue

if TYPE_CHECKING:
    from referencing._core import Resolver  # referencing exports no name for it

__all__ = ["APPLICATORS", "TooCostly", "expanded_size"]

# Keywords whose value is one subschema, a list of them, or a map of names to them.
_ONE: Final = frozenset(
    {
        "additionalItems",
        "additionalProperties",
        "contains",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_MANY: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
_NAMED: Final = frozenset({"dependencies", "dependentSchemas", "patternProperties", "properties"})
_REFERENCES: Final = frozenset({"$ref", "$dynamicRef"})
# What jsonschema validates again for unevaluated* (besides references): the subschemas
# applied to the same instance.
_IN_PLACE: Final = frozenset({"allOf", "anyOf", "oneOf", "if", "then", "else", "dependentSchemas"})
_UNEVALUATED: Final = ("unevaluatedItems", "unevaluatedProperties")
# Every keyword that applies subschemas: the only ones through which work can multiply.
APPLICATORS: Final = _ONE | _MANY | _NAMED | _REFERENCES | {"$recursiveRef"}

Edge = tuple[JSONValue, "Resolver[Any]"]


class TooCostly(Exception):
    """The schema expands past the cap (or too deep to count)."""


def expanded_size(
    schema: JSONValue,
    resolver: Resolver[Any],
    specification: referencing.Specification[Any],
    cap: int,
) -> int:
    """Subschema visits one validation against ``schema`` could make (at most ``cap``).

    Raises:
        TooCostly: more than ``cap``, or references nested too deep to follow.
        referencing.exceptions.Unresolvable: a reference resolves nowhere.
    """
    walk = _Walk(specification, cap)
    try:
        return walk.size(schema, resolver)
    except RecursionError as exc:
        raise TooCostly from exc


class _Walk:
    def __init__(self, specification: referencing.Specification[Any], cap: int) -> None:
        self._specification = specification
        self._cap = cap
        self._sizes: dict[int, int] = {}
        self._rewalks: dict[int, int] = {}
        self._open: set[int] = set()
        self._open_rewalks: set[int] = set()

    def size(self, node: JSONValue, resolver: Resolver[Any]) -> int:
        """1 for ``node`` plus the size of every subschema it applies (``resolver`` is the
        one in effect inside ``node``, as jsonschema's ``descend`` has it)."""
        if not isinstance(node, dict):
            return 1  # true, false (check_schema allows nothing else here)
        key = id(node)
        known = self._sizes.get(key)
        if known is not None:
            return known
        if key in self._open:
            return 1  # a cycle: bounded by the instance's depth, not by the schema
        self._open.add(key)
        total = 1
        for child, child_resolver in self._applied(node, resolver):
            total = self._add(total, self.size(child, child_resolver))
        repeats = sum(1 for name in _UNEVALUATED if name in node)
        if repeats:
            total = self._add(total, repeats * self._rewalk(node, resolver))
        self._open.discard(key)
        self._sizes[key] = total
        return total

    def _rewalk(self, node: JSONValue, resolver: Resolver[Any]) -> int:
        """What jsonschema's unevaluated* search validates again below ``node``: each
        in-place subschema, and the same search inside it."""
        if not isinstance(node, dict):
            return 0
        key = id(node)
        known = self._rewalks.get(key)
        if known is not None:
            return known
        if key in self._open_rewalks:
            return 0
        self._open_rewalks.add(key)
        total = 0
        for child, child_resolver in self._applied(node, resolver, in_place_only=True):
            total = self._add(total, self.size(child, child_resolver))
            total = self._add(total, self._rewalk(child, child_resolver))
        self._open_rewalks.discard(key)
        self._rewalks[key] = total
        return total

    def _add(self, total: int, more: int) -> int:
        total += more
        if total > self._cap:
            raise TooCostly
        return total

    def _applied(
        self, node: dict[str, Any], resolver: Resolver[Any], *, in_place_only: bool = False
    ) -> Iterator[Edge]:
        """The subschemas ``node`` applies, each with the resolver in effect inside it."""
        for keyword, value in node.items():
            if keyword in _REFERENCES and isinstance(value, str):
                resolved = resolver.lookup(value)  # already inside the target
                yield resolved.contents, resolved.resolver
            elif keyword == "$recursiveRef" and isinstance(value, str):
                resolved = resolver.lookup("#")  # draft 2019-09: always the root
                yield resolved.contents, resolved.resolver
            elif in_place_only and keyword not in _IN_PLACE:
                continue
            elif keyword in _ONE and _is_schema(value):
                yield value, self._inside(value, resolver)
            elif keyword in _MANY and isinstance(value, list):
                yield from ((each, self._inside(each, resolver)) for each in value)
            elif keyword in _NAMED and isinstance(value, dict):
                for each in value.values():
                    if _is_schema(each):
                        yield each, self._inside(each, resolver)

    def _inside(self, node: JSONValue, resolver: Resolver[Any]) -> Resolver[Any]:
        if not isinstance(node, dict):
            return resolver
        return resolver.in_subresource(self._specification.create_resource(node))


def _is_schema(value: object) -> bool:
    return isinstance(value, dict | bool)
