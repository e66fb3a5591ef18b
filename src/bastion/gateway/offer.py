"""What the gateway offers its clients of the ready upstreams' lists (TC-1..TC-3).

``screen_listings`` passes each server's offered tools through the gateway's ``ToolScreen``
(tool pinning) and its prompts, resources and templates through its ``DefinitionScreen``
(the poison hold), when set, and says which resource URIs were held back. ``build_offer``
merges them into a catalog, and ``prepare`` builds its proxies into an ``Offer``, which
``Offer.install`` puts in a ``ServerApp`` at once (clients never see half a catalog): each
definition is validated, the gateway's own tools and resources win over namesakes, and the
held resource URIs are withheld, even where a template matches. One server's bad
definitions cost only themselves (TC-3, UP-4): a server whose lists cannot be screened is
left out, and so is a definition that cannot be served; each such problem is logged once
while it lasts (``Complaints``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

import anyio
import msgspec

from bastion._types import JSONObject
from bastion.catalog import Catalog, Entry, ServerListing, build_catalog
from bastion.gateway.proxies import (
    Picker,
    prompt_proxy,
    resource_proxy,
    template_proxy,
    tool_proxy,
)
from bastion.protocol import types as t
from bastion.server.registry import (
    PromptEntry,
    ResourceEntry,
    ServerApp,
    TemplateEntry,
    ToolEntry,
    uri_key,
)

__all__ = [
    "SCREENED_LISTS",
    "Complaints",
    "DefinitionScreen",
    "Offer",
    "Problems",
    "ToolScreen",
    "build_offer",
    "prepare",
    "screen_listings",
]

# (server, its offered tool definitions, every other server's bare tool names) -> those shown
ToolScreen = Callable[[str, list[JSONObject], dict[str, list[str]]], Awaitable[list[JSONObject]]]
# (server, list kind, its offered definitions, every other server's bare tool names) -> shown
DefinitionScreen = Callable[
    [str, str, list[JSONObject], dict[str, list[str]]], Awaitable[list[JSONObject]]
]
SCREENED_LISTS = ("prompts", "resources", "resourceTemplates")  # besides tools

logger = logging.getLogger(__name__)

_LOGGED_URI = 200  # characters of an upstream's URI template in a log line
INLINE_DEFINITIONS: Final = 2000  # a catalog of more is built in a worker thread

_M = TypeVar("_M", bound=t.Model)
Problems = Callable[[str], None]  # takes one line about a definition left out


async def screen_listings(
    offered: Mapping[str, dict[str, list[JSONObject]]],
    prefix: Callable[[str], str],
    tool_screen: ToolScreen | None,
    definition_screen: DefinitionScreen | None,
    complaints: Complaints,
) -> tuple[list[ServerListing], dict[str, set[str]]]:
    """Each server's listing (by ``prefix``) as the screens let it through, and the URIs of
    each server's resources held back (as the upstream names them). A server the screens
    fail on is left out (told to ``complaints``)."""
    listings = []
    held: dict[str, set[str]] = {}  # server -> the URIs of its held resources
    objects = {server: _objects(offer) for server, offer in offered.items()}
    names = {server: _tool_names(lists) for server, lists in objects.items()}
    for server, offer in objects.items():
        others = {other: theirs for other, theirs in names.items() if other != server}
        try:
            lists, held_uris = await _screen(server, offer, others, tool_screen, definition_screen)
        except Exception as exc:  # one server's lists must not keep the others out (TC-3)
            logger.debug("screening %s's lists failed", server, exc_info=True)
            complaints.add(
                f"upstream {server}: its lists could not be screened "
                f"({type(exc).__name__}: {exc}); not offered"
            )
            continue
        if held_uris is not None:
            held[server] = held_uris
        listings.append(ServerListing(server, prefix(server), lists))
    return listings, held


async def _screen(
    server: str,
    lists: dict[str, list[JSONObject]],
    others: dict[str, list[str]],
    tool_screen: ToolScreen | None,
    definition_screen: DefinitionScreen | None,
) -> tuple[dict[str, list[JSONObject]], set[str] | None]:
    """``server``'s lists as the screens let them through, and the URIs of its resources
    held back (None when its resources were not screened)."""
    held = None
    if tool_screen is not None:
        lists = {**lists, "tools": await tool_screen(server, lists.get("tools", []), others)}
    if definition_screen is not None:
        for kind in SCREENED_LISTS:
            if kind in lists:
                kept = await definition_screen(server, kind, lists[kind], others)
                if kind == "resources":
                    held = _uris(lists[kind]) - _uris(kept)
                lists = {**lists, kind: kept}
    return lists, held


class Complaints:
    """What was wrong with the upstreams' definitions at the last install, each logged once
    while it lasts: rebuilds come as often as upstreams announce changes, and must not
    repeat the same lines (DS-4)."""

    def __init__(self) -> None:
        self._last: set[str] = set()
        self._now: list[str] = []

    def add(self, problem: str) -> None:
        self._now.append(problem)  # from any thread (a list's append is atomic)

    def report(self) -> None:
        """Log the problems added since the last report that it did not have."""
        for problem in self._now:
            if problem not in self._last:
                logger.warning("%s", problem)
        self._last, self._now = set(self._now), []


@dataclass(frozen=True, slots=True)
class Offer:
    """The app entries a catalog makes: built anywhere (a worker thread: nothing here
    touches the app), then installed at once."""

    withheld: frozenset[str]
    tools: dict[str, ToolEntry]
    prompts: dict[str, PromptEntry]
    resources: dict[str, ResourceEntry]
    templates: list[TemplateEntry]

    def install(self, app: ServerApp) -> None:
        """Replace ``app``'s entries; nothing here can fail, so clients see the old
        entries or the new ones, never a mix."""
        app.withheld = self.withheld
        app.tools.clear()
        app.tools.update(self.tools)
        app.prompts.clear()
        app.prompts.update(self.prompts)
        app.resources.clear()
        app.resources.update(self.resources)
        app.templates[:] = self.templates


async def build_offer(
    listings: list[ServerListing],
    held: dict[str, set[str]],
    pick: Picker,
    *,
    own_tools: Mapping[str, ToolEntry],
    own_resources: Mapping[str, ResourceEntry],
    problems: Problems,
) -> tuple[Catalog, Offer]:
    """The merged catalog of the screened ``listings`` and its ``Offer`` (see ``prepare``);
    ``held`` names each server's held resource URIs, as the upstream names them. Past
    ``INLINE_DEFINITIONS`` definitions it is built in a worker thread (DS-4: the event loop
    stays free while thousands are), so ``own_tools`` and ``own_resources`` must be
    copies nobody changes meanwhile."""
    build = functools.partial(
        _build_offer,
        listings,
        held,
        pick,
        own_tools=own_tools,
        own_resources=own_resources,
        problems=problems,
    )
    if sum(len(items) for s in listings for items in s.listings.values()) <= INLINE_DEFINITIONS:
        return build()
    return await anyio.to_thread.run_sync(build)


def _build_offer(
    listings: list[ServerListing],
    held: dict[str, set[str]],
    pick: Picker,
    *,
    own_tools: Mapping[str, ToolEntry],
    own_resources: Mapping[str, ResourceEntry],
    problems: Problems,
) -> tuple[Catalog, Offer]:
    catalog = build_catalog(listings)
    prefixes = catalog.uri_prefixes
    withheld = {prefixes[server] + uri for server, uris in held.items() for uri in uris}
    offer = prepare(
        catalog,
        withheld,
        pick,
        own_tools=own_tools,
        own_resources=own_resources,
        problems=problems,
    )
    return catalog, offer


def prepare(
    catalog: Catalog,
    held: set[str],
    pick: Picker,
    *,
    own_tools: Mapping[str, ToolEntry],
    own_resources: Mapping[str, ResourceEntry],
    problems: Problems,
) -> Offer:
    """Proxies for ``catalog`` (definitions validated), each forwarding to a replica
    ``pick`` chooses, beside ``own_tools`` and ``own_resources``; the ``held`` resource
    URIs (exposed) are withheld, even where a template matches. What is left out is told
    to ``problems``."""
    tools = dict(own_tools)
    for name, entry in catalog.tools.items():
        if name in own_tools:
            problems(f"{entry.server} offers a tool named like one of ours: {name}")
            continue
        tool = _valid(entry, t.Tool, problems)
        if tool is not None:
            tools[tool.name] = ToolEntry(tool, tool_proxy(entry, pick))
    prompts = {}
    for entry in catalog.prompts.values():
        prompt = _valid(entry, t.Prompt, problems)
        if prompt is not None:
            prompts[prompt.name] = PromptEntry(prompt, prompt_proxy(entry, pick))
    resources = dict(own_resources)
    for entry in catalog.resources.values():
        if entry.exposed in own_resources:
            continue
        resource = _valid(entry, t.Resource, problems)
        if resource is not None:
            proxy = resource_proxy(entry, catalog.uri_prefixes[entry.server], pick)
            resources[resource.uri] = ResourceEntry(resource, proxy)
    templates = []
    for entry in catalog.templates.values():
        template = _template(entry, catalog.uri_prefixes[entry.server], pick, problems)
        if template is not None:
            templates.append(template)
    withheld = frozenset(uri_key(uri) for uri in held)
    return Offer(withheld, tools, prompts, resources, templates)


def _template(entry: Entry, prefix: str, pick: Picker, problems: Problems) -> TemplateEntry | None:
    """``entry``'s template, ready to match URIs, or None (a problem) when it cannot be."""
    template = _valid(entry, t.ResourceTemplate, problems)
    if template is None:
        return None
    try:
        return TemplateEntry.build(template, template_proxy(entry, prefix, pick))
    except Exception as exc:  # an upstream's template must not break the catalog (TC-3)
        kind = type(exc).__name__
        problems(
            f"upstream {entry.server} offers a resource template that cannot be served "
            f"({kind}): {template.uriTemplate[:_LOGGED_URI]!r}"
        )
        return None


def _objects(offer: Mapping[str, object]) -> dict[str, list[JSONObject]]:
    """``offer``'s lists holding only objects: whatever else got this far is left out."""
    return {
        kind: [item for item in items if isinstance(item, dict)]
        for kind, items in offer.items()
        if isinstance(items, list)
    }


def _tool_names(lists: dict[str, list[JSONObject]]) -> list[str]:
    return [name for tool in lists.get("tools", []) if isinstance(name := tool.get("name"), str)]


def _uris(resources: list[JSONObject]) -> set[str]:
    return {uri for item in resources if isinstance(uri := item.get("uri"), str)}


def _valid(entry: Entry, kind: type[_M], problems: Problems) -> _M | None:
    """``entry``'s item as a ``kind``, or None (a problem) when the definition is invalid."""
    try:
        return msgspec.convert(entry.item, kind)
    except msgspec.ValidationError as exc:
        problems(f"upstream {entry.server} offers an invalid {kind.__name__}: {exc}")
        return None
