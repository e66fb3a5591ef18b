"""What the gateway offers its clients of the ready upstreams' lists (TC-1..TC-3).

``screen_listings`` passes each server's offered tools through the gateway's ``ToolScreen``
(tool pinning) and its prompts, resources and templates through its ``DefinitionScreen``
(the poison hold), when set, and says which resource URIs were held back. ``install``
replaces a ``ServerApp``'s entries with proxies into the merged catalog: each definition is
validated (an invalid one is logged and left out), the gateway's own tools and resources win
over namesakes, and the held resource URIs are withheld, even where a template matches.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import msgspec

from bastion._types import JSONObject
from bastion.catalog import Catalog, ServerListing
from bastion.gateway.proxies import (
    Picker,
    prompt_proxy,
    resource_proxy,
    template_proxy,
    tool_proxy,
)
from bastion.protocol import types as t
from bastion.server.registry import ResourceEntry, ServerApp, TemplateEntry, ToolEntry, uri_key

__all__ = ["SCREENED_LISTS", "DefinitionScreen", "ToolScreen", "install", "screen_listings"]

# (server, its offered tool definitions, every other server's bare tool names) -> those shown
ToolScreen = Callable[[str, list[JSONObject], dict[str, list[str]]], Awaitable[list[JSONObject]]]
# (server, list kind, its offered definitions, every other server's bare tool names) -> shown
DefinitionScreen = Callable[
    [str, str, list[JSONObject], dict[str, list[str]]], Awaitable[list[JSONObject]]
]
SCREENED_LISTS = ("prompts", "resources", "resourceTemplates")  # besides tools

logger = logging.getLogger(__name__)

_M = TypeVar("_M", bound=t.Model)


async def screen_listings(
    offered: Mapping[str, dict[str, list[JSONObject]]],
    prefix: Callable[[str], str],
    tool_screen: ToolScreen | None,
    definition_screen: DefinitionScreen | None,
) -> tuple[list[ServerListing], dict[str, set[str]]]:
    """Each server's listing (by ``prefix``) as the screens let it through, and the URIs of
    each server's resources held back (as the upstream names them)."""
    listings = []
    held: dict[str, set[str]] = {}  # server -> the URIs of its held resources
    for server, offer in offered.items():
        lists = offer
        others = {
            other: [str(tool.get("name", "")) for tool in theirs.get("tools", [])]
            for other, theirs in offered.items()
            if other != server
        }
        if tool_screen is not None:
            screened = await tool_screen(server, lists.get("tools", []), others)
            lists = {**lists, "tools": screened}
        if definition_screen is not None:
            for kind in SCREENED_LISTS:
                if kind in lists:
                    kept = await definition_screen(server, kind, lists[kind], others)
                    if kind == "resources":
                        held[server] = _uris(lists[kind]) - _uris(kept)
                    lists = {**lists, kind: kept}
        listings.append(ServerListing(server, prefix(server), lists))
    return listings, held


def install(
    app: ServerApp,
    catalog: Catalog,
    held: set[str],
    pick: Picker,
    *,
    own_tools: Mapping[str, ToolEntry],
    own_resources: Mapping[str, ResourceEntry],
) -> None:
    """Replace ``app``'s entries with proxies for ``catalog`` (definitions validated), each
    forwarding to a replica ``pick`` chooses, beside ``own_tools`` and ``own_resources``;
    the ``held`` resource URIs (exposed) are withheld, even where a template matches."""
    app.withheld = frozenset(uri_key(uri) for uri in held)
    app.tools.clear()
    app.tools.update(own_tools)
    for name, entry in catalog.tools.items():
        if name in own_tools:
            logger.warning("%s offers a tool named like one of ours: %s", entry.server, name)
            continue
        tool = _valid(entry.item, t.Tool, entry.server)
        if tool is not None:
            app.add_tool(tool, tool_proxy(entry, pick))
    app.prompts.clear()
    for entry in catalog.prompts.values():
        prompt = _valid(entry.item, t.Prompt, entry.server)
        if prompt is not None:
            app.add_prompt(prompt, prompt_proxy(entry, pick))
    app.resources.clear()
    app.resources.update(own_resources)
    for entry in catalog.resources.values():
        if entry.exposed in own_resources:
            continue
        resource = _valid(entry.item, t.Resource, entry.server)
        if resource is not None:
            prefix = catalog.uri_prefixes[entry.server]
            app.add_resource(resource, resource_proxy(entry, prefix, pick))
    templates = []
    for entry in catalog.templates.values():
        template = _valid(entry.item, t.ResourceTemplate, entry.server)
        if template is not None:
            prefix = catalog.uri_prefixes[entry.server]
            templates.append(TemplateEntry.build(template, template_proxy(entry, prefix, pick)))
    app.templates[:] = templates


def _uris(resources: list[JSONObject]) -> set[str]:
    return {uri for item in resources if isinstance(uri := item.get("uri"), str)}


def _valid(item: JSONObject, kind: type[_M], server: str) -> _M | None:
    """``item`` as a ``kind``, or None (logged) when the upstream's definition is invalid."""
    try:
        return msgspec.convert(item, kind)
    except msgspec.ValidationError as exc:
        logger.warning("upstream %s offers an invalid %s: %s", server, kind.__name__, exc)
        return None
