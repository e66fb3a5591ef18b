"""What an MCP server built on Bastion offers: tools, resources, templates, prompts.

``ServerApp`` is a plain registry plus change notification; it knows nothing about
connections or protocol revisions. Handlers are async callables that receive a
``ToolContext`` (see ``context``), so one implementation serves both eras. Two hooks let
the owner fill it lazily: ``settle_hook`` (wait for what is starting) and ``resolve_hook``
(offered a name nobody knows, e.g. the hub connecting the instance a tool name belongs to).
``withheld`` names resource URIs the owner holds back (a gateway's held definitions, TC-1):
they are not found, even where a template matches them, and cannot be subscribed to; they
are compared in the normal form of ``uri_key``, so another spelling of one is held back too.
Templates are matched in time linear in the URI (``uri_template``, DS-4); one the registry
cannot match is logged and matches nothing (``add_template`` leaves it out). ``namespaces``
says whose resource URIs each entry may answer (a gateway's upstreams, TC-3).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal, Protocol

from bastion._types import JSONObject, JSONValue
from bastion.protocol import types as t
from bastion.server.uri_template import MAX_URI, TemplateError, compile_template

if TYPE_CHECKING:
    from bastion.server.context import ToolContext

__all__ = [
    "CompletionFn",
    "NameKind",
    "Namespaces",
    "PromptEntry",
    "PromptFn",
    "ResolveHook",
    "ResourceEntry",
    "ResourceFn",
    "ServerApp",
    "TemplateEntry",
    "TemplatePattern",
    "ToolEntry",
    "ToolFn",
    "uri_key",
]

ToolFn = Callable[["ToolContext", JSONObject], Awaitable[t.CallToolResult | JSONObject]]
ResourceFn = Callable[["ToolContext", str, dict[str, str]], Awaitable[list[JSONObject]]]
PromptFn = Callable[["ToolContext", dict[str, str]], Awaitable[t.GetPromptResult]]
CompletionFn = Callable[["ToolContext", JSONObject, JSONObject, JSONObject], Awaitable[JSONObject]]
ChangeListener = Callable[[str], Awaitable[None]]
SubscriptionHook = Callable[[str, bool], Awaitable[None]]
NameKind = Literal["tool", "prompt", "resource"]
ResolveHook = Callable[[NameKind, str], Awaitable[None]]
UpdateListener = Callable[[str], Awaitable[None]]
# A server-wide log message: level, data, logger name.
LogListener = Callable[[str, JSONValue, str | None], Awaitable[None]]

logger = logging.getLogger(__name__)

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def uri_key(uri: str) -> str:
    """``uri`` in the normal form RFC 3986 (6.2.2) says names the same resource: the scheme
    in lower case, escapes of unreserved characters decoded, the others in upper case."""
    scheme = _SCHEME.match(uri)
    if scheme is not None:
        uri = scheme.group().lower() + uri[scheme.end() :]

    def escape(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else match.group().upper()

    return _ESCAPE.sub(escape, uri)


@dataclass(frozen=True, slots=True)
class ToolEntry:
    tool: t.Tool
    fn: ToolFn


@dataclass(frozen=True, slots=True)
class ResourceEntry:
    resource: t.Resource
    fn: ResourceFn
    subscribable: bool = False


class _Found(Protocol):
    def groupdict(self) -> dict[str, str]: ...


class TemplatePattern(Protocol):
    """What matches a URI against a template: ``uri_template.UriTemplate``, or a regex of
    the owner's (linear-time: it is matched on the event loop)."""

    def fullmatch(self, string: str, /) -> _Found | None: ...


class _Refused:
    """The pattern of a template the registry cannot match: it matches nothing."""

    def fullmatch(self, string: str, /) -> _Found | None:
        return None


@dataclass(frozen=True, slots=True)
class TemplateEntry:
    template: t.ResourceTemplate
    fn: ResourceFn
    pattern: TemplatePattern

    @classmethod
    def build(cls, template: t.ResourceTemplate, fn: ResourceFn) -> TemplateEntry:
        """Never raises: a template ``compile_template`` refuses is logged and matches
        nothing (``refused``)."""
        try:
            pattern: TemplatePattern = compile_template(template.uriTemplate)
        except TemplateError as exc:
            logger.warning("resource template %.200r refused: %s", template.uriTemplate, exc)
            pattern = _Refused()
        return cls(template, fn, pattern)

    @property
    def refused(self) -> bool:
        return isinstance(self.pattern, _Refused)


class Namespaces(Protocol):
    """Whose resource URIs an entry may answer (TC-3): a URI is in one namespace, and an
    entry answers only URIs of its own (any, when its namespace is None)."""

    def of_uri(self, uri: str) -> str:
        """The namespace ``uri`` is in."""
        ...

    def of_resource(self, uri: str) -> str | None:
        """The namespace of the resource offered as ``uri``."""
        ...

    def of_template(self, uri_template: str) -> str | None:
        """The namespace of the template offered as ``uri_template``."""
        ...


def _answers(namespace: str, own: str | None) -> bool:
    """Whether an entry whose namespace is ``own`` may answer a URI in ``namespace``."""
    return own is None or own == namespace


@dataclass(frozen=True, slots=True)
class PromptEntry:
    prompt: t.Prompt
    fn: PromptFn


@dataclass
class ServerApp:
    name: str
    version: str
    instructions: str | None = None
    tools: dict[str, ToolEntry] = field(default_factory=dict)
    resources: dict[str, ResourceEntry] = field(default_factory=dict)
    templates: list[TemplateEntry] = field(default_factory=list)
    prompts: dict[str, PromptEntry] = field(default_factory=dict)
    completion: CompletionFn | None = None
    page_size: int = 100
    # Fixed capabilities (a gateway declares what it will offer before upstreams are up).
    declared_capabilities: JSONObject | None = None
    # Told when a client subscribes to (True) or unsubscribes from (False) a resource URI,
    # so a gateway can subscribe upstream; None for servers that own their resources.
    subscription_hook: SubscriptionHook | None = None
    # URIs whose subscribers disconnected; the hook's owner drains this (bounded by the
    # per-connection subscription limit times the number of connections).
    pending_unsubscribes: list[str] = field(default_factory=list)
    # Awaited before answering a list, or "not found", so a client that lists once sees
    # what a starting gateway will offer (bounded by the hook's owner).
    settle_hook: Callable[[], Awaitable[None]] | None = None
    # Offered a tool or prompt name, or a resource URI, still unknown after settling; it may
    # add the entry (bounded by the hook's owner), then the lookup is tried once more.
    resolve_hook: ResolveHook | None = None
    # Resource URIs held back (in ``uri_key`` form): never found, never subscribed to.
    withheld: frozenset[str] = frozenset()
    # Whose URIs each resource and template may answer (a gateway's upstreams); None: all.
    namespaces: Namespaces | None = None
    _change_listeners: set[ChangeListener] = field(default_factory=set)
    _update_listeners: set[UpdateListener] = field(default_factory=set)
    _log_listeners: set[LogListener] = field(default_factory=set)

    # -- registration ------------------------------------------------------------------

    def add_tool(self, tool: t.Tool, fn: ToolFn) -> None:
        self.tools[tool.name] = ToolEntry(tool, fn)

    def add_resource(
        self, resource: t.Resource, fn: ResourceFn, *, subscribable: bool = False
    ) -> None:
        self.resources[resource.uri] = ResourceEntry(resource, fn, subscribable)

    def add_template(self, template: t.ResourceTemplate, fn: ResourceFn) -> None:
        """Offer ``template``; one the registry cannot match is logged and left out."""
        entry = TemplateEntry.build(template, fn)
        if not entry.refused:
            self.templates.append(entry)

    def add_prompt(self, prompt: t.Prompt, fn: PromptFn) -> None:
        self.prompts[prompt.name] = PromptEntry(prompt, fn)

    def capabilities(self) -> JSONObject:
        if self.declared_capabilities is not None:
            return dict(self.declared_capabilities)
        caps: JSONObject = {"logging": {}}
        if self.tools:
            caps["tools"] = {"listChanged": True}
        if self.resources or self.templates:
            caps["resources"] = {"subscribe": True, "listChanged": True}
        if self.prompts:
            caps["prompts"] = {"listChanged": True}
        if self.completion is not None:
            caps["completions"] = {}
        return caps

    def server_info(self) -> t.Implementation:
        return t.Implementation(name=self.name, version=self.version)

    def withholds(self, uri: str) -> bool:
        """Whether ``uri`` is held back (``withheld``)."""
        return bool(self.withheld) and uri_key(uri) in self.withheld

    def find_resource(self, uri: str) -> tuple[ResourceFn, dict[str, str]] | None:
        """The resource ``uri`` names, else the first template that matches it, either only
        if it answers ``uri``'s namespace. A URI over ``MAX_URI`` bytes matches no template."""
        if self.withholds(uri):
            return None
        spaces = self.namespaces
        namespace = "" if spaces is None else spaces.of_uri(uri)
        entry = self.resources.get(uri)
        if entry is not None and (spaces is None or _answers(namespace, spaces.of_resource(uri))):
            return entry.fn, {}
        if len(uri) > MAX_URI:
            return None
        templates = self.templates
        if spaces is not None:
            own = spaces.of_template
            templates = [e for e in templates if _answers(namespace, own(e.template.uriTemplate))]
        for template in templates:
            match = template.pattern.fullmatch(uri)
            if match is not None:
                return template.fn, match.groupdict()
        return None

    # -- change notification -----------------------------------------------------------

    def on_list_changed(self, listener: ChangeListener) -> Callable[[], None]:
        self._change_listeners.add(listener)
        return lambda: self._change_listeners.discard(listener)

    def on_resource_updated(self, listener: UpdateListener) -> Callable[[], None]:
        self._update_listeners.add(listener)
        return lambda: self._update_listeners.discard(listener)

    def on_log(self, listener: LogListener) -> Callable[[], None]:
        self._log_listeners.add(listener)
        return lambda: self._log_listeners.discard(listener)

    async def log(self, level: t.LoggingLevel, data: JSONValue, logger: str | None = None) -> None:
        """Tell every client with a session (2025-11-25) whose log level lets it through;
        a 2026-07-28 client has no channel for messages outside its own requests."""
        for listener in list(self._log_listeners):
            await listener(level, data, logger)

    async def list_changed(self, kind: str) -> None:
        """Tell every connected client that the ``kind`` list ("tools", ...) changed."""
        for listener in list(self._change_listeners):
            await listener(kind)

    async def resource_updated(self, uri: str) -> None:
        for listener in list(self._update_listeners):
            await listener(uri)
