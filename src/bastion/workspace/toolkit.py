"""How a workspace tool is declared and called: typed arguments, schemas, error results.

Each tool's arguments are a ``msgspec.Struct``; its JSON Schema (so clients validate) is
generated from that struct, and the same struct validates what arrives (the server
validates too, SECURITY.md S5). A ``WorkspaceError`` or invalid arguments become a tool
result with ``isError`` and a readable message, so the agent can correct itself; success
is a text block plus ``structuredContent`` matching the declared ``outputSchema``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Final, TypeVar

import msgspec
from msgspec import Meta

from bastion._types import JSONObject
from bastion.protocol import types as t
from bastion.workspace.errors import WorkspaceError

if TYPE_CHECKING:
    from bastion.server.context import ToolContext
    from bastion.server.registry import ToolFn
    from bastion.workspace.invocation import Invocation

__all__ = [
    "BOOLEAN",
    "INTEGER",
    "OBJECT",
    "OBJECTS",
    "STRING",
    "VERSIONED",
    "Args",
    "DirArg",
    "PathArg",
    "Reply",
    "Token",
    "ToolSpec",
    "Version",
    "WorkspaceName",
    "error_result",
    "object_schema",
    "output_schema",
    "tool_spec",
]

A = TypeVar("A", bound="Args")
WorkspaceName = Annotated[str, Meta(min_length=1, max_length=63, description="workspace name")]
PathArg = Annotated[
    str, Meta(max_length=4096, description="path relative to the workspace, '/'-separated")
]
DirArg = Annotated[str, Meta(max_length=4096, description="directory ('.' for the root)")]
Version = Annotated[str, Meta(max_length=100, description="version token from read_file")]
Token = Annotated[
    str,
    Meta(max_length=100, description="member_token from join_workspace (needed on 2026-07-28)"),
]
VERSIONED: Final[JSONObject] = {
    "path": {"type": "string"},
    "uri": {"type": "string"},
    "version": {"type": "string"},
    "size": {"type": "integer"},
}


class Args(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every tool's arguments."""


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    structured: JSONObject


def object_schema(properties: JSONObject, required: list[str]) -> JSONObject:
    """A JSON Schema for a structured result (``outputSchema``)."""
    return {"type": "object", "properties": properties, "required": required}


def output_schema(properties: JSONObject, *required: str) -> JSONObject:
    return object_schema(properties, list(required))


# Property schemas the tools' output schemas are built from.
STRING: Final[JSONObject] = {"type": "string"}
BOOLEAN: Final[JSONObject] = {"type": "boolean"}
INTEGER: Final[JSONObject] = {"type": "integer"}
OBJECT: Final[JSONObject] = {"type": "object"}
OBJECTS: Final[JSONObject] = {"type": "array", "items": {"type": "object"}}


def _input_schema(args_type: type[Args]) -> JSONObject:
    generated: JSONObject = msgspec.json.schema(args_type)
    name = generated["$ref"].rsplit("/", 1)[-1]
    schema: JSONObject = dict(generated["$defs"][name])
    schema.pop("title", None)
    schema.pop("description", None)  # the struct's docstring; the tool has its own
    return schema


def error_result(message: str) -> t.CallToolResult:
    return t.CallToolResult(content=[t.TextContent(text=message)], isError=True)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its MCP declaration, and how to bind its handler to a connection."""

    tool: t.Tool
    bind: Callable[[Callable[[ToolContext], Invocation]], ToolFn]


def tool_spec(
    name: str,
    description: str,
    args_type: type[A],
    handler: Callable[[Invocation, A], Awaitable[Reply]],
    *,
    output: JSONObject | None = None,
    read_only: bool = False,
    destructive: bool = False,
) -> ToolSpec:
    """Declare a tool whose arguments are ``args_type`` (validated before ``handler`` runs)."""
    annotations: JSONObject = {"readOnlyHint": read_only}
    if not read_only:
        annotations["destructiveHint"] = destructive
    tool = t.Tool(
        name=name,
        description=description,
        inputSchema=_input_schema(args_type),
        outputSchema=msgspec.UNSET if output is None else output,
        annotations=annotations,
    )

    def bind(invocation: Callable[[ToolContext], Invocation]) -> ToolFn:
        async def call(ctx: ToolContext, args: JSONObject) -> t.CallToolResult:
            try:
                parsed = msgspec.convert(args, args_type)
            except msgspec.ValidationError as exc:
                # msgspec names the field and the expectation, never a value.
                return error_result(f"invalid arguments: {exc}")
            try:
                reply = await handler(invocation(ctx), parsed)
            except WorkspaceError as exc:
                return error_result(f"{exc.kind}: {exc.message}")
            return t.CallToolResult(
                content=[t.TextContent(text=reply.text)], structuredContent=reply.structured
            )

        return call

    return ToolSpec(tool, bind)
