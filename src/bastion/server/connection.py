"""Serving one client: the MCP meaning of each request, in both protocol eras.

A ``ServerConnection`` is the request handler a ``Peer`` calls. A request whose ``_meta``
names a protocol version is a 2026-07-28 request and is validated on its own (version,
capabilities), since that era keeps no state between requests. Anything else belongs to a
2025-11-25 session that must begin with ``initialize``. The methods of each era are
refused in the other with -32601, as both revisions require. A tool, prompt or resource
not found is looked up again after the app settles and after its ``resolve_hook`` has been
offered the name. Resource subscriptions (``subscriptions``) and the input rounds of a
2026-07-28 request (``input_rounds``) have their own modules.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Final, Literal, TypeVar

import anyio
import msgspec

from bastion._types import JSONObject, JSONValue
from bastion.errors import (
    BastionError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ResourceNotFound,
)
from bastion.protocol import types as t
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.meta import is_modern_request, read_request_meta, require_supported
from bastion.protocol.methods import CLIENT_METHODS, parse_params
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import META_SERVER_INFO, SUPPORTED_VERSIONS, Era, negotiate_legacy
from bastion.server.completions import shown_values
from bastion.server.context import LOG_LEVELS, InputRequired, ToolContext
from bastion.server.input_rounds import input_required, restore_responses
from bastion.server.pagination import cursor_binding, paginate
from bastion.server.registry import NameKind, ServerApp
from bastion.server.subscriptions import MAX_SUBSCRIPTIONS, forget, listen, subscribe, unsubscribe
from bastion.session.peer import Call, Peer

__all__ = ["LIST_TTL_MS", "MAX_SUBSCRIPTIONS", "ServerConnection"]

logger = logging.getLogger(__name__)
_E = TypeVar("_E")

CacheScope = Literal["public", "private"]
LIST_TTL_MS: Final = 0  # our lists can change at any time; clients should re-fetch
_MODERN_ONLY: Final = frozenset({"server/discover", "subscriptions/listen"})
# list method -> (result key, the kind of its items)
_LISTS: Final[dict[str, tuple[str, NameKind]]] = {
    "tools/list": ("tools", "tool"),
    "resources/list": ("resources", "resource"),
    "resources/templates/list": ("resourceTemplates", "resource"),
    "prompts/list": ("prompts", "prompt"),
}


class ServerConnection:
    """The MCP server side of one connection (a stdio pipe, an HTTP session or request)."""

    def __init__(self, app: ServerApp, sealer: RequestStateSealer, *, modern: bool = True) -> None:
        self.app = app
        self.sealer = sealer
        # False: behave like a server from before 2026-07-28 (tests of era bridging).
        self.modern = modern
        # Who this connection serves (``Principal.binding``: principal and credential id);
        # None for a plain server, whose states are bound to the request alone. See serve_as.
        self.caller: tuple[str, str] | None = None
        self.cache_scope: CacheScope = "public"  # of lists and reads (2026-07-28)
        self.version: str | None = None  # negotiated 2025-11-25-era version
        self.client_capabilities: JSONObject = {}
        self.log_level: str = "debug"
        self.subscriptions: set[str] = set()
        self._peer: Peer | None = None
        self._unsubscribe: list[object] = []

    # -- wiring --------------------------------------------------------------------------

    def serve_as(self, caller: tuple[str, str]) -> None:
        """Serve one authenticated caller (``Principal.binding``) whose answers are decided
        per caller, as behind the gateway's pipeline: a ``requestState`` is bound to it, and
        lists and resource reads (filtered and gated by its policy) are labelled
        ``cacheScope: private``, so no shared cache serves them to anyone else (AZ-2)."""
        self.caller = caller
        self.cache_scope = "private"

    def attach(self, peer: Peer) -> None:
        """Send this session's unsolicited notifications (list changes, updates) via ``peer``."""
        self._peer = peer
        self._unsubscribe = [
            self.app.on_list_changed(self._on_list_changed),
            self.app.on_resource_updated(self._on_resource_updated),
            self.app.on_log(self._on_log),
        ]

    def detach(self) -> None:
        for undo in self._unsubscribe:
            undo()  # type: ignore[operator]
        self._unsubscribe = []
        self._peer = None
        forget(self.app, self.subscriptions)

    async def _on_list_changed(self, kind: str) -> None:
        if self._peer is not None and self.version is not None:
            await self._peer.notify(f"notifications/{kind}/list_changed")

    async def _on_resource_updated(self, uri: str) -> None:
        if self._peer is not None and uri in self.subscriptions:
            await self._peer.notify("notifications/resources/updated", {"uri": uri})

    async def _on_log(self, level: str, data: JSONValue, logger: str | None) -> None:
        if self._peer is None or self.version is None:
            return
        if LOG_LEVELS.get(level, 0) < LOG_LEVELS.get(self.log_level, 0):
            return
        params: JSONObject = {"level": level, "data": data}
        if logger is not None:
            params["logger"] = logger
        await self._peer.notify("notifications/message", params)

    async def on_notification(self, note: Notification) -> None:
        return None

    # -- dispatch ------------------------------------------------------------------------

    def era_of(self, call: Call) -> Era:
        """The era a request belongs to: its ``_meta`` (or a 2026-07-28-only method) says."""
        if self.modern and (is_modern_request(call.params) or call.method in _MODERN_ONLY):
            return Era.MODERN
        return Era.LEGACY

    async def __call__(self, call: Call) -> JSONValue:
        if self.era_of(call) is Era.MODERN:
            return await self._modern(call)
        return await self._legacy(call)

    async def _modern(self, call: Call) -> JSONValue:
        meta = read_request_meta(call.params)
        require_supported(meta.protocol_version)
        spec = CLIENT_METHODS.get(call.method)
        if spec is None or Era.MODERN not in spec.eras:
            raise MethodNotFound(call.method)
        result = await self._serve(call, Era.MODERN, meta.client_capabilities, meta.log_level)
        if isinstance(result, dict) and "resultType" not in result:
            result["resultType"] = "complete"
        return result

    async def _legacy(self, call: Call) -> JSONValue:
        method = call.method
        spec = CLIENT_METHODS.get(method)
        if spec is None or Era.LEGACY not in spec.eras:
            raise MethodNotFound(method)
        if method == "initialize":
            return self._initialize(call)
        if method == "ping":
            return {}
        if self.version is None:
            raise InvalidRequest("request before initialize", message="Session not initialized")
        return await self._serve(call, Era.LEGACY, self.client_capabilities, self.log_level)

    def adopt_initialize(self, version: str, client_capabilities: JSONObject) -> None:
        """Continue a session whose ``initialize`` was answered before this object existed
        (the stdio fast start), exactly as if ``_initialize`` had answered it."""
        self.version = version
        self.client_capabilities = client_capabilities

    def _initialize(self, call: Call) -> JSONValue:
        params = parse_params(t.InitializeParams, call.params)
        self.version = negotiate_legacy(params.protocolVersion)
        self.client_capabilities = params.capabilities
        result = t.InitializeResult(
            protocolVersion=self.version,
            capabilities=self.app.capabilities(),
            serverInfo=self.app.server_info(),
            instructions=self.app.instructions or msgspec.UNSET,
        )
        return msgspec.to_builtins(result)

    # -- methods shared by both eras -----------------------------------------------------

    async def _serve(
        self, call: Call, era: Era, caps: JSONObject, log_level: str | None
    ) -> JSONValue:
        method = call.method
        params = call.params
        if method in _LISTS:
            list_params = parse_params(t.ListParams, params)
            await self._settle()
            return self._list(call, list_params, era)
        if method == "server/discover":
            return self._discover()
        if method == "logging/setLevel":
            self.log_level = parse_params(t.SetLevelParams, params).level
            return {}
        if method in ("resources/subscribe", "resources/unsubscribe"):
            uri = parse_params(t.SubscribeParams, params).uri
            if method == "resources/subscribe":
                if self.app.withholds(uri):
                    raise _not_found(uri, era)
                await subscribe(self.app, self.subscriptions, uri)
            else:
                await unsubscribe(self.app, self.subscriptions, uri)
            return {}
        if method == "subscriptions/listen":
            return await listen(self.app, call, parse_params(t.SubscriptionsListenParams, params))
        ctx = self._context(call, era, caps, log_level)
        try:
            if method == "tools/call":
                return await self._call_tool(ctx, parse_params(t.CallToolParams, params))
            if method == "resources/read":
                return await self._read(ctx, parse_params(t.ReadResourceParams, params), era)
            if method == "prompts/get":
                return await self._get_prompt(ctx, parse_params(t.GetPromptParams, params))
            if method == "completion/complete":
                return await self._complete(ctx, call, parse_params(t.CompleteParams, params))
        except InputRequired as need:
            return input_required(call, need, self.sealer, self.caller)
        raise MethodNotFound(method)

    def _context(
        self, call: Call, era: Era, caps: JSONObject, log_level: str | None
    ) -> ToolContext:
        params = call.params
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        responses: JSONObject
        # Most requests are not the retry of an input round, so carry neither key.
        if era is Era.MODERN and ("requestState" in params or "inputResponses" in params):
            responses, resumed = restore_responses(call, self.sealer, self.caller)
        else:
            responses, resumed = {}, False
        return ToolContext(
            era=era,
            client_capabilities=caps,
            notify=call.notify,
            request=call.request if era is Era.LEGACY else None,
            progress_token=token
            if isinstance(token, int | str) and not isinstance(token, bool)
            else None,
            log_level=log_level,
            input_responses=responses,
            close_stream=call.close_stream,
            resumed_from_state=resumed,
            caller=self.caller,
            meta=meta if isinstance(meta, dict) else None,
            screen_input=call.screen_input,
        )

    def _list(self, call: Call, params: t.ListParams, era: Era) -> JSONObject:
        """One page of a list, of the items this request's caller may be shown (AZ-2):
        filtered before it is paged, so no page comes back short of what the caller may see
        and a cursor counts nothing else (``pagination``)."""
        method = call.method
        cursor = None if params.cursor is msgspec.UNSET else params.cursor
        key, kind = _LISTS[method]
        named = functools.partial(_named, self.app, method)
        binding = cursor_binding(method, self.caller)
        page, next_cursor = paginate(
            named, call.shown(kind), cursor, self.app.page_size, sealer=self.sealer, binding=binding
        )
        result: JSONObject = {key: msgspec.to_builtins(page)}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        if era is Era.MODERN:
            result["ttlMs"] = LIST_TTL_MS
            result["cacheScope"] = self.cache_scope
        return result

    def _discover(self) -> JSONObject:
        result: JSONObject = {
            "supportedVersions": list(SUPPORTED_VERSIONS),
            "capabilities": self.app.capabilities(),
            "_meta": {META_SERVER_INFO: msgspec.to_builtins(self.app.server_info())},
            "ttlMs": LIST_TTL_MS,
            "cacheScope": "public",
        }
        if self.app.instructions:
            result["instructions"] = self.app.instructions
        return result

    async def _settle(self) -> None:
        if self.app.settle_hook is not None:
            await self.app.settle_hook()

    async def _late(self, kind: NameKind, name: str, lookup: Callable[[], _E | None]) -> _E | None:
        """An entry that was not there at first: after the app settles, or once its resolver
        has been offered the name (e.g. the hub connecting the instance it belongs to)."""
        await self._settle()
        found = lookup()
        if found is None and self.app.resolve_hook is not None:
            await self.app.resolve_hook(kind, name)
            found = lookup()
        return found

    async def _call_tool(self, ctx: ToolContext, params: t.CallToolParams) -> JSONValue:
        entry = self.app.tools.get(params.name)
        if entry is None:
            entry = await self._late("tool", params.name, lambda: self.app.tools.get(params.name))
        if entry is None:
            raise InvalidParams(f"unknown tool {params.name!r}", message="Unknown tool")
        args = {} if params.arguments is msgspec.UNSET else params.arguments
        try:
            result = await entry.fn(ctx, args)
        except (InputRequired, BastionError, anyio.get_cancelled_exc_class()):
            raise
        except Exception:
            logger.exception("tool %s failed", params.name)
            result = t.CallToolResult(
                content=[t.TextContent(text="Tool execution failed")], isError=True
            )
        return msgspec.to_builtins(result)

    async def _read(self, ctx: ToolContext, params: t.ReadResourceParams, era: Era) -> JSONValue:
        found = self.app.find_resource(params.uri)
        if found is None:
            found = await self._late(
                "resource", params.uri, lambda: self.app.find_resource(params.uri)
            )
        if found is None:
            raise _not_found(params.uri, era)
        fn, variables = found
        result: JSONObject = {"contents": await fn(ctx, params.uri, variables)}
        if era is Era.MODERN:
            result["ttlMs"] = LIST_TTL_MS
            result["cacheScope"] = self.cache_scope
        return result

    async def _get_prompt(self, ctx: ToolContext, params: t.GetPromptParams) -> JSONValue:
        entry = self.app.prompts.get(params.name)
        if entry is None:
            entry = await self._late(
                "prompt", params.name, lambda: self.app.prompts.get(params.name)
            )
        if entry is None:
            raise InvalidParams(f"unknown prompt {params.name!r}", message="Unknown prompt")
        args = {} if params.arguments is msgspec.UNSET else params.arguments
        missing = [
            a.name
            for a in entry.prompt.arguments or []
            if a.required is True and a.name not in args
        ]
        if missing:
            raise InvalidParams(
                f"missing prompt arguments {missing}", message="Missing required arguments"
            )
        return msgspec.to_builtins(await entry.fn(ctx, args))

    async def _complete(self, ctx: ToolContext, call: Call, params: t.CompleteParams) -> JSONValue:
        if self.app.completion is None:
            raise MethodNotFound("completion/complete")
        context = {} if params.context is msgspec.UNSET else msgspec.to_builtins(params.context)
        argument: JSONObject = msgspec.to_builtins(params.argument)
        completion = await self.app.completion(ctx, params.ref, argument, context)
        return {"completion": shown_values(completion, params.ref, self.app.templates, call)}


def _named(app: ServerApp, method: str) -> Iterator[tuple[str, msgspec.Struct]]:
    """Each item of ``method``'s list with the name (URI, URI template) policy decides on."""
    if method == "tools/list":
        for tool in app.tools.values():
            yield tool.tool.name, tool.tool
    elif method == "resources/list":
        for resource in app.resources.values():
            yield resource.resource.uri, resource.resource
    elif method == "resources/templates/list":
        for template in app.templates:
            yield template.template.uriTemplate, template.template
    else:
        for prompt in app.prompts.values():
            yield prompt.prompt.name, prompt.prompt


def _not_found(uri: str, era: Era) -> BastionError:
    """The answer to a resource URI nobody offers (or one held back, ``ServerApp.withheld``):
    -32002 in 2025-11-25, -32602 in 2026-07-28 (SEP-2164)."""
    kind = ResourceNotFound if era is Era.LEGACY else InvalidParams
    return kind("unknown resource", data={"uri": uri}, message="Resource not found")
