"""Proxy handlers: what the gateway's ``ServerApp`` runs for each catalog entry.

Each forwards to a ready replica of the owning server (``Gateway.pick``: the one a retried
call is parked at, else one with the fewest calls in flight) under the upstream's own name or URI,
on behalf of the calling client's ``ToolContext`` (its capabilities, log level, progress
token and input rounds), and maps the answer back to the exposed names (the URIs of
resources a tool result or prompt embeds or links: ``embedded``).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from bastion._types import JSONObject
from bastion.catalog import Entry, strip_uri_prefix
from bastion.errors import InvalidParams
from bastion.gateway.embedded import namespaced_prompt, namespaced_result
from bastion.protocol import types as t
from bastion.server.context import ToolContext
from bastion.server.registry import PromptFn, ResourceFn, ToolFn
from bastion.upstream.replica import Replica

__all__ = ["Picker", "prompt_proxy", "resource_proxy", "template_proxy", "tool_proxy"]

Picker = Callable[[str, ToolContext], Replica]


def tool_proxy(entry: Entry, pick: Picker) -> ToolFn:
    async def call(ctx: ToolContext, args: JSONObject) -> JSONObject:
        params = {"name": entry.original, "arguments": args}
        result = await pick(entry.server, ctx).call("tools/call", params, ctx)
        return namespaced_result(result, entry.uri_prefix)

    return call


def _rewrite_contents(result: JSONObject, prefix: str) -> list[JSONObject]:
    contents = result.get("contents")
    if not isinstance(contents, list):
        return []
    return [
        {**c, "uri": prefix + c["uri"]}
        if isinstance(c, dict) and isinstance(c.get("uri"), str)
        else c
        for c in contents
    ]


def resource_proxy(entry: Entry, prefix: str, pick: Picker) -> ResourceFn:
    async def read(ctx: ToolContext, uri: str, variables: dict[str, str]) -> list[JSONObject]:
        result = await pick(entry.server, ctx).call("resources/read", {"uri": entry.original}, ctx)
        return _rewrite_contents(result, prefix)

    return read


def template_proxy(entry: Entry, prefix: str, pick: Picker) -> ResourceFn:
    async def read(ctx: ToolContext, uri: str, variables: dict[str, str]) -> list[JSONObject]:
        original = strip_uri_prefix(prefix, uri)
        if original is None:
            raise InvalidParams(
                "uri outside this server", data={"uri": uri}, message="Resource not found"
            )
        result = await pick(entry.server, ctx).call("resources/read", {"uri": original}, ctx)
        return _rewrite_contents(result, prefix)

    return read


def prompt_proxy(entry: Entry, pick: Picker) -> PromptFn:
    async def get(ctx: ToolContext, args: dict[str, str]) -> t.GetPromptResult:
        params = {"name": entry.original, "arguments": args}
        result = await pick(entry.server, ctx).call("prompts/get", params, ctx)
        try:
            return msgspec.convert(namespaced_prompt(result, entry.uri_prefix), t.GetPromptResult)
        except msgspec.ValidationError as exc:
            raise InvalidParams(str(exc), message="Upstream returned an invalid prompt") from exc

    return get
