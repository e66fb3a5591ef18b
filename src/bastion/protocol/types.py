"""Typed MCP payloads shared by both revisions (params, results, content blocks).

Structs are frozen, keyword-only and omit unset fields when encoded. Unknown fields are
accepted and dropped, as MCP is extensible; anything we forward is re-encoded from these
structs, so the peer receives exactly what we validated. Open-ended objects (capabilities,
JSON Schemas, tool arguments) stay ``JSONObject``. ``_meta`` is ``meta`` in Python.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType, field

from bastion._types import JSONObject, JSONValue

__all__ = [
    "AudioContent",
    "CallToolParams",
    "CallToolResult",
    "CancelledParams",
    "CompleteParams",
    "CompletionArgument",
    "CompletionContext",
    "ContentBlock",
    "CreateMessageParams",
    "DiscoverParams",
    "ElicitParams",
    "EmbeddedResource",
    "EmptyParams",
    "GetPromptParams",
    "GetPromptResult",
    "ImageContent",
    "Implementation",
    "InitializeParams",
    "InitializeResult",
    "InputRequest",
    "InputRequiredResult",
    "ListParams",
    "LoggingLevel",
    "LoggingMessageParams",
    "MetaOnlyParams",
    "Model",
    "ProgressParams",
    "ProgressToken",
    "Prompt",
    "PromptArgument",
    "PromptMessage",
    "ReadResourceParams",
    "Resource",
    "ResourceLink",
    "ResourceTemplate",
    "ResourceUpdatedParams",
    "SetLevelParams",
    "SubscribeParams",
    "SubscriptionsListenParams",
    "TextContent",
    "Tool",
]

ProgressToken: TypeAlias = int | str
LoggingLevel: TypeAlias = Literal[
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"
]
NAME_MAX = 128
URI_MAX = 8192


class Model(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every MCP payload struct."""


class MetaOnlyParams(Model, frozen=True):
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


EmptyParams = MetaOnlyParams


class Implementation(Model, frozen=True):
    name: str
    version: str
    title: str | UnsetType = UNSET


# -- content blocks (tagged on "type") ------------------------------------------------


class TextContent(Model, frozen=True, tag="text", tag_field="type"):
    text: str
    annotations: JSONObject | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class ImageContent(Model, frozen=True, tag="image", tag_field="type"):
    data: str
    mimeType: str
    annotations: JSONObject | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class AudioContent(Model, frozen=True, tag="audio", tag_field="type"):
    data: str
    mimeType: str
    annotations: JSONObject | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class ResourceLink(Model, frozen=True, tag="resource_link", tag_field="type"):
    uri: str
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    mimeType: str | UnsetType = UNSET
    annotations: JSONObject | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class EmbeddedResource(Model, frozen=True, tag="resource", tag_field="type"):
    resource: JSONObject  # TextResourceContents | BlobResourceContents
    annotations: JSONObject | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


ContentBlock: TypeAlias = (
    TextContent | ImageContent | AudioContent | ResourceLink | EmbeddedResource
)

# -- lifecycle ---------------------------------------------------------------------------


class InitializeParams(Model, frozen=True):
    protocolVersion: str
    capabilities: JSONObject
    clientInfo: Implementation
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class InitializeResult(Model, frozen=True):
    protocolVersion: str
    capabilities: JSONObject
    serverInfo: Implementation
    instructions: str | UnsetType = UNSET


class DiscoverParams(MetaOnlyParams, frozen=True):
    pass


class SetLevelParams(Model, frozen=True):
    level: LoggingLevel
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


# -- lists, tools, resources, prompts, completion ------------------------------------------


class ListParams(Model, frozen=True):
    cursor: str | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class Tool(Model, frozen=True):
    name: str
    inputSchema: JSONObject
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    outputSchema: JSONObject | UnsetType = UNSET
    annotations: JSONObject | UnsetType = UNSET
    icons: list[JSONObject] | UnsetType = UNSET
    execution: JSONObject | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class CallToolParams(Model, frozen=True):
    name: str
    arguments: JSONObject | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")
    # 2026-07-28 input-required retry fields
    inputResponses: JSONObject | UnsetType = UNSET
    requestState: str | UnsetType = UNSET


class CallToolResult(Model, frozen=True):
    content: list[ContentBlock]
    structuredContent: JSONObject | UnsetType = UNSET
    isError: bool | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class Resource(Model, frozen=True):
    uri: str
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    mimeType: str | UnsetType = UNSET
    size: int | UnsetType = UNSET
    annotations: JSONObject | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class ResourceTemplate(Model, frozen=True):
    uriTemplate: str
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    mimeType: str | UnsetType = UNSET
    annotations: JSONObject | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class ReadResourceParams(Model, frozen=True):
    uri: str
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")
    inputResponses: JSONObject | UnsetType = UNSET
    requestState: str | UnsetType = UNSET


class SubscribeParams(Model, frozen=True):
    uri: str
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class PromptArgument(Model, frozen=True):
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    required: bool | UnsetType = UNSET


class Prompt(Model, frozen=True):
    name: str
    title: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    arguments: list[PromptArgument] | UnsetType = UNSET
    icons: list[JSONObject] | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class GetPromptParams(Model, frozen=True):
    name: str
    arguments: dict[str, str] | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")
    inputResponses: JSONObject | UnsetType = UNSET
    requestState: str | UnsetType = UNSET


class PromptMessage(Model, frozen=True):
    role: Literal["user", "assistant"]
    content: ContentBlock


class GetPromptResult(Model, frozen=True):
    messages: list[PromptMessage]
    description: str | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class CompletionArgument(Model, frozen=True):
    """The argument a completion is asked for: its name and the value typed so far."""

    name: str
    value: str


class CompletionContext(Model, frozen=True):
    """What a completion may take into account: the arguments already resolved."""

    arguments: dict[str, str] | UnsetType = UNSET


class CompleteParams(Model, frozen=True):
    ref: JSONObject  # read by ``protocol.refs.completion_ref``, as the policy reads it
    argument: CompletionArgument
    context: CompletionContext | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


# -- notifications ------------------------------------------------------------------------


class ProgressParams(Model, frozen=True):
    progressToken: ProgressToken
    progress: float
    total: float | UnsetType = UNSET
    message: str | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class CancelledParams(Model, frozen=True):
    requestId: int | str | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class LoggingMessageParams(Model, frozen=True):
    level: LoggingLevel
    data: JSONValue
    logger: str | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class ResourceUpdatedParams(Model, frozen=True):
    uri: str
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class SubscriptionsListenParams(Model, frozen=True):
    notifications: JSONObject = {}
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


# -- server-to-client requests (2025-11-25) and input requests (2026-07-28) ---------------


class CreateMessageParams(Model, frozen=True):
    messages: list[JSONObject]
    maxTokens: int
    systemPrompt: str | UnsetType = UNSET
    modelPreferences: JSONObject | UnsetType = UNSET
    includeContext: str | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    stopSequences: list[str] | UnsetType = UNSET
    metadata: JSONObject | UnsetType = UNSET
    tools: list[JSONObject] | UnsetType = UNSET
    toolChoice: JSONObject | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class ElicitParams(Model, frozen=True):
    message: str
    mode: Literal["form", "url"] | UnsetType = UNSET
    requestedSchema: JSONObject | UnsetType = UNSET
    url: str | UnsetType = UNSET
    elicitationId: str | UnsetType = UNSET
    meta: JSONObject | UnsetType = field(default=UNSET, name="_meta")


class InputRequest(Model, frozen=True):
    method: str
    params: JSONObject | UnsetType = UNSET


class InputRequiredResult(Model, frozen=True):
    inputRequests: dict[str, InputRequest] | UnsetType = UNSET
    requestState: str | UnsetType = UNSET
    resultType: Literal["input_required"] = "input_required"
