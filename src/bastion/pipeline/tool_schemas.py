"""The compiled input and output schemas of the tools a request names, kept per tool
definition, so the validate and sanitise stages do not convert, encode and hash a schema on
every call. An entry stays valid while the catalog holds the same definition object; the
catalog installs new objects when an upstream's tools change, which recompiles them."""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from bastion.guard.schemas import CompiledSchema, SchemaUnusable, SchemaValidator
from bastion.protocol import types as t

__all__ = ["ToolSchemas"]

MAX_ENTRIES: Final = 4096  # beyond this the cache starts over (tools are far fewer)

Field = Literal["inputSchema", "outputSchema"]


class ToolSchemas:
    def __init__(self, validator: SchemaValidator) -> None:
        self._validator = validator
        self._cache: dict[tuple[str, Field], tuple[t.Tool, CompiledSchema | SchemaUnusable]] = {}

    def compiled(self, tool: t.Tool, field: Field) -> CompiledSchema | None:
        """``tool``'s schema ``field``, compiled; None when the tool declares none.

        Raises:
            SchemaUnusable: the schema cannot be used.
        """
        schema = getattr(tool, field)
        if schema is msgspec.UNSET or schema is None:
            return None
        key = (tool.name, field)
        hit = self._cache.get(key)
        if hit is None or hit[0] is not tool:
            try:
                result: CompiledSchema | SchemaUnusable = self._validator.compile(
                    msgspec.to_builtins(schema)
                )
            except SchemaUnusable as exc:
                result = exc
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = hit = (tool, result)
        if isinstance(hit[1], SchemaUnusable):
            raise SchemaUnusable(hit[1].reason)
        return hit[1]
