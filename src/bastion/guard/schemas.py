"""Tool argument and result validation against the tool's own JSON Schemas (IN-3).

``SchemaValidator.compile`` turns a schema into a ``CompiledSchema`` once (cached by the
SHA-256 of its canonical JSON, LRU-bounded); a schema that is too large, too deep, invalid,
uses a ``$ref`` that is not local (``#...``), a pattern RE2 cannot run, or whose references
expand past ``MAX_SCHEMA_EXPANSION`` subschema visits per validation (``_expansion``: a
few hundred bytes of ``$defs`` that apply each other twice cost 2^N) is
``SchemaUnusable`` and the caller holds the tool back. Every pattern is matched by RE2 in
time linear in the text (``_regex``), never by Python's backtracking ``re``. References are
resolved by a ``referencing`` registry that refuses every retrieval: no network, no files.
Each validation runs within a work budget that grows with the instance (``_work_budget``);
one that would exceed it (a recursive schema applying itself twice per level of a deep
instance) ends with ``SchemaUnusable``, like an unresolvable reference.
``reject_unknown_fields`` refuses top-level arguments the schema does not name, unless the
schema explicitly allows more. Violations carry a JSON path and the rule, never a value.
A simple schema also gets a plain-Python fast check (``fast_schema``): when it says valid,
jsonschema is skipped; otherwise jsonschema decides and reports, as without it.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import msgspec
import referencing
import referencing.exceptions
import referencing.jsonschema

from bastion._types import JSONObject, JSONValue
from bastion.errors import InvalidParams
from bastion.guard._expansion import TooCostly, expanded_size
from bastion.guard._keywords import linear, uses_backtracking
from bastion.guard._regex import Pattern, PatternError, compile_pattern
from bastion.guard._violations import Violation, describe, render
from bastion.guard._work_budget import OverBudget, budgeted, within_budget
from bastion.guard.fast_schema import FastCheck, compile_fast

__all__ = ["CompiledSchema", "SchemaUnusable", "SchemaValidator", "Violation"]

MAX_SCHEMA_BYTES: Final = 256 * 1024  # canonical JSON; the largest real tool schemas are ~20 KiB
MAX_SCHEMA_DEPTH: Final = 32
# Subschema visits one validation may make, references followed (``_expansion``); real tool
# schemas, $refs and all, stay in the hundreds.
MAX_SCHEMA_EXPANSION: Final = 10_000
MAX_VIOLATIONS: Final = 5  # reported per call; one is enough to refuse
CACHE_SIZE: Final = 1024  # compiled schemas kept (tools across all upstreams)
_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_DRAFT_2020: Final = jsonschema.Draft202012Validator


class SchemaUnusable(Exception):
    """The schema cannot be used safely; ``reason`` is fixed text for logs and pin reviews."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refuse(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


# referencing builds its classes with attrs; mypy does not see their keyword constructors.
_REGISTRY: Final[referencing.Registry[Any]] = referencing.Registry(retrieve=_refuse)  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """A usable schema; ``validate`` is safe to call from any number of requests."""

    digest: str
    _validator: jsonschema.protocols.Validator
    _known: frozenset[str] | None  # top-level names allowed; None: anything allowed
    _patterns: tuple[Pattern, ...]
    _fast: FastCheck | None = None  # True: certainly valid (see fast_schema); None: no fast path

    def violations(self, instance: JSONValue, *, limit: int = MAX_VIOLATIONS) -> list[Violation]:
        """What is wrong with ``instance`` (empty when valid).

        Raises:
            SchemaUnusable: a reference could not be resolved while validating.
        """
        fast = self._fast
        if fast is not None and fast(instance) and self._no_unknown(instance):
            return []
        found = list(self._unknown(instance))[:limit]
        try:
            within_budget(instance, lambda: self._collect(instance, found, limit))
        except (
            referencing.exceptions.Unresolvable,
            jsonschema.exceptions.SchemaError,
            RecursionError,
        ) as exc:
            raise SchemaUnusable("reference unresolvable while validating") from exc
        except OverBudget as exc:
            raise SchemaUnusable("validation over its work budget") from exc
        return found

    def _collect(self, instance: JSONValue, found: list[Violation], limit: int) -> None:
        for error in self._validator.iter_errors(instance):
            if len(found) >= limit:
                break
            found.append(describe(error))

    def check_arguments(self, arguments: JSONObject) -> None:
        """Refuse ``arguments`` this (input) schema does not accept.

        Raises:
            InvalidParams: the arguments are invalid (client-safe message, no values).
            SchemaUnusable: a reference could not be resolved while validating.
        """
        problems = self.violations(arguments)
        if problems:
            raise InvalidParams(
                "arguments do not match inputSchema",
                message=f"Invalid arguments: {render(problems)}",
            )

    def _no_unknown(self, instance: JSONValue) -> bool:
        """``not any(self._unknown(instance))``, quickly."""
        known = self._known
        if known is None or not isinstance(instance, dict):
            return True
        if not self._patterns:
            return known.issuperset(instance)
        return not any(True for _ in self._unknown(instance))

    def _unknown(self, instance: JSONValue) -> Iterator[Violation]:
        if self._known is None or not isinstance(instance, dict):
            return
        for name in instance:
            if name not in self._known and not any(p.search(name) for p in self._patterns):
                yield Violation(path="$", rule="unknown field", field=str(name))


class SchemaValidator:
    """Compiles and caches tool schemas; one instance for the gateway."""

    def __init__(
        self,
        *,
        reject_unknown_fields: bool = True,
        max_schema_bytes: int = MAX_SCHEMA_BYTES,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.reject_unknown_fields = reject_unknown_fields
        self._max_bytes = max_schema_bytes
        self._cache_size = cache_size
        self._cache: OrderedDict[str, CompiledSchema | SchemaUnusable] = OrderedDict()

    def compile(self, schema: JSONValue) -> CompiledSchema:
        """The compiled form of ``schema`` (from the cache when seen before).

        Raises:
            SchemaUnusable: see the module docstring.
        """
        try:
            encoded = _ENCODER.encode(schema)
        except (TypeError, ValueError, RecursionError) as exc:
            raise SchemaUnusable("schema is not JSON") from exc
        if len(encoded) > self._max_bytes:
            raise SchemaUnusable("schema too large")
        digest = hashlib.sha256(encoded).hexdigest()
        cached = self._cache.get(digest)
        if cached is None:
            cached = self._build(schema, digest)
            self._cache[digest] = cached
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(digest)
        if isinstance(cached, SchemaUnusable):
            raise SchemaUnusable(cached.reason)
        return cached

    def unusable_reason(self, tool: JSONObject | msgspec.Struct) -> str | None:
        """None when both of ``tool``'s schemas compile, else why not (for pin reviews)."""
        item = msgspec.to_builtins(tool) if isinstance(tool, msgspec.Struct) else tool
        for key in ("inputSchema", "outputSchema"):
            if key not in item and key == "outputSchema":
                continue
            try:
                self.compile(item.get(key))
            except SchemaUnusable as exc:
                return f"{key}: {exc.reason}"
        return None

    def check_arguments(self, schema: JSONValue, arguments: JSONObject) -> None:
        """Refuse ``arguments`` that ``schema`` does not accept.

        Raises:
            InvalidParams: the arguments are invalid (client-safe message, no values).
            SchemaUnusable: the schema cannot be used (hold the tool back).
        """
        self.compile(schema).check_arguments(arguments)

    def check_structured(self, schema: JSONValue, structured: JSONValue) -> list[Violation]:
        """Violations of ``structuredContent`` against ``outputSchema`` (the caller decides
        whether to fail the call; the upstream, not the client, is at fault).

        Raises:
            SchemaUnusable: the schema cannot be used.
        """
        return self.compile(schema).violations(structured)

    # -- compile --------------------------------------------------------------------------

    def _build(self, schema: JSONValue, digest: str) -> CompiledSchema | SchemaUnusable:
        if not isinstance(schema, dict):
            return SchemaUnusable("schema is not an object")
        try:
            _check_shape(schema, 0)
            if uses_backtracking(schema):
                raise SchemaUnusable("schema pattern too complex")
            draft = jsonschema.validators.validator_for(schema, default=_DRAFT_2020)
            draft.check_schema(schema)
            cls = budgeted(linear(draft))
            specification = referencing.jsonschema.specification_with(
                cls.META_SCHEMA.get("$schema", ""), default=referencing.jsonschema.DRAFT202012
            )
            resource = specification.create_resource(schema)
            registry = _REGISTRY.with_resource("urn:bastion:tool", resource)
            validator = cls(schema, registry=registry)
            resolver = registry.resolver("urn:bastion:tool")
            for ref in _refs(schema, 0):
                resolver.lookup(ref)  # every local reference must resolve now
            root = registry.resolver_with_root(resource)  # as the validator resolves
            expanded_size(schema, root, specification, MAX_SCHEMA_EXPANSION)
        except SchemaUnusable as exc:
            return exc
        except TooCostly:
            return SchemaUnusable("schema too costly to validate")
        except (
            jsonschema.exceptions.SchemaError,
            referencing.exceptions.Unresolvable,
            referencing.exceptions.CannotDetermineSpecification,
            RecursionError,
            re.error,
            TypeError,
            ValueError,
        ):
            return SchemaUnusable("schema invalid or unresolvable")
        known, patterns = _allowed_names(schema) if self.reject_unknown_fields else (None, ())
        # The fast check mirrors jsonschema without a format checker (format: annotation).
        fast = (
            compile_fast(schema, draft)
            if getattr(validator, "format_checker", None) is None
            else None
        )
        return CompiledSchema(digest, validator, known, patterns, fast)


def _check_shape(node: JSONValue, depth: int) -> None:
    if depth > MAX_SCHEMA_DEPTH:
        raise SchemaUnusable("schema too deep")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and (
                not isinstance(value, str) or not value.startswith("#")
            ):
                raise SchemaUnusable("schema references outside itself")
            if key == "pattern" and isinstance(value, str):
                _usable_pattern(value)
            if key == "patternProperties" and isinstance(value, dict):
                for pattern in value:
                    _usable_pattern(pattern)
            _check_shape(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _check_shape(value, depth + 1)


def _usable_pattern(pattern: str) -> None:
    try:
        compile_pattern(pattern)
    except PatternError as exc:
        raise SchemaUnusable("schema pattern too complex") from exc


def _refs(node: JSONValue, depth: int) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value, depth + 1)


def _allowed_names(schema: JSONObject) -> tuple[frozenset[str] | None, tuple[Pattern, ...]]:
    """Top-level argument names ``schema`` names, or None when it explicitly allows more
    (or names none at all).

    Properties of ``allOf``/``anyOf``/``oneOf`` branches count (one level, local refs
    followed), so composed schemas are not made stricter than they say.
    """
    names: set[str] = set()
    patterns: list[Pattern] = []
    for part in _parts(schema, schema):
        for key in ("additionalProperties", "unevaluatedProperties"):
            if key in part and part[key] is not False:
                return None, ()
        props = part.get("properties")
        if isinstance(props, dict):
            names.update(str(k) for k in props)
        pattern_props = part.get("patternProperties")
        if isinstance(pattern_props, dict):
            patterns.extend(compile_pattern(str(p)) for p in pattern_props)
    if not names and not patterns:
        # A bare {"type": "object"} describes no arguments at all; many servers send it and
        # take whatever they are given, so there is nothing to call "unknown".
        return None, ()
    return frozenset(names), tuple(patterns)


def _parts(schema: JSONObject, root: JSONObject) -> Iterator[JSONObject]:
    yield schema
    for key in ("allOf", "anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list):
            for branch in branches:
                if isinstance(branch, dict):
                    yield _local(branch, root)
    if isinstance(schema.get("$ref"), str):
        yield _local(schema, root)


def _local(node: JSONObject, root: JSONObject) -> JSONObject:
    """``node``, or the part of ``root`` its ``#/...`` reference points at."""
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: JSONValue = root
    for raw in ref[2:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and token in target:
            target = target[token]
        else:
            return node
    return target if isinstance(target, dict) else node
