"""The client face: one MCP session with an upstream server, in whichever era it speaks.

``connect`` detects the era: it probes ``server/discover`` (2026-07-28) and falls back to
``initialize`` (2025-11-25) when the server does not know it. Afterwards every call looks
the same to the caller. On 2026-07-28 the session adds ``_meta`` to each request and
resolves input-required results itself: it answers the input requests with the same
handlers that serve 2025-11-25 server-to-client requests, and retries with the answers
and the server's ``requestState``, for at most ``MAX_INPUT_ROUNDS`` rounds. Lists are
read page by page, keeping only the well-formed items that fit a ``ListingBudget``
(``listing``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.abc

from bastion._types import JSONObject, JSONValue
from bastion.client.listing import ListingBudget
from bastion.errors import (
    InvalidRequest,
    MethodNotFound,
    PeerError,
    RequestTimeout,
    UnsupportedVersion,
)
from bastion.protocol.headers import tool_param_headers
from bastion.protocol.jsonrpc import Message, Notification, RequestId
from bastion.protocol.versions import (
    LEGACY,
    LEGACY_VERSIONS,
    META_CLIENT_CAPABILITIES,
    META_CLIENT_INFO,
    META_LOG_LEVEL,
    META_PROTOCOL_VERSION,
    MODERN,
    Era,
)
from bastion.session.peer import Call, Peer, ProgressCallback
from bastion.transport.base import RELATED_REQUEST, MessageStream

__all__ = ["MAX_INPUT_ROUNDS", "ClientHandlers", "ClientSession", "ServerInfo"]

logger = logging.getLogger(__name__)

MAX_INPUT_ROUNDS: Final = 8  # a server asking for input more often than this is looping
PROBE_TIMEOUT: Final = 10.0  # seconds to wait for server/discover before trying initialize
MAX_PAGES: Final = 100  # pages of one list asked for; the rest is left out

ServerRequestHandler = Callable[[JSONObject], Awaitable[JSONObject]]
InputAnswerer = Callable[[JSONObject], Awaitable[JSONObject]]
NotificationCallback = Callable[[Notification], Awaitable[None]]


@dataclass
class ClientHandlers:
    """How this client answers a server's requests (sampling, elicitation, roots)."""

    sampling: ServerRequestHandler | None = None
    elicitation: ServerRequestHandler | None = None
    roots: ServerRequestHandler | None = None
    on_notification: NotificationCallback | None = None

    def capabilities(self) -> JSONObject:
        caps: JSONObject = {}
        if self.sampling is not None:
            caps["sampling"] = {}
        if self.elicitation is not None:
            caps["elicitation"] = {"form": {}, "url": {}}
        if self.roots is not None:
            caps["roots"] = {"listChanged": True}
        return caps

    def for_method(self, method: str) -> ServerRequestHandler | None:
        return {
            "sampling/createMessage": self.sampling,
            "elicitation/create": self.elicitation,
            "roots/list": self.roots,
        }.get(method)


@dataclass
class ServerInfo:
    era: Era
    protocol_version: str
    capabilities: JSONObject = field(default_factory=dict)
    server_info: JSONObject = field(default_factory=dict)
    instructions: str | None = None


class ClientSession:
    def __init__(
        self,
        stream: MessageStream,
        *,
        client_name: str = "bastion",
        client_version: str = "0.1.0",
        handlers: ClientHandlers | None = None,
        era: Era | None = None,
        request_timeout: float = 300.0,
        log_level: str | None = None,
        legacy_version: str = LEGACY,
    ) -> None:
        self._stream = stream
        self._client_info = {"name": client_name, "version": client_version}
        self.handlers = handlers or ClientHandlers()
        self._forced_era = era
        self._timeout = request_timeout
        self.log_level = log_level
        self._legacy_version = legacy_version
        self.server: ServerInfo | None = None
        self._peer = Peer(
            self._sink,
            self._serve_server_request,
            on_notification=self._on_notification,
            request_timeout=request_timeout,
        )
        self._tg: anyio.abc.TaskGroup | None = None
        self.closed = anyio.Event()  # set when the server side of the stream has ended
        self._stack = contextlib.AsyncExitStack()

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> ClientSession:
        # One exit stack, so the peer and the reader task group always unwind in order,
        # whatever is raised while leaving.
        stack = contextlib.AsyncExitStack()
        async with contextlib.AsyncExitStack() as guard:
            await guard.enter_async_context(self._peer)
            tg = await guard.enter_async_context(anyio.create_task_group())
            tg.start_soon(self._read_loop)
            stack = guard.pop_all()
        self._tg = tg
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await self._stack.__aexit__(*exc_info)  # type: ignore[arg-type]

    async def _sink(self, message: Message, related: RequestId | None) -> None:
        await self._stream.send(message)

    async def _read_loop(self) -> None:
        while True:
            try:
                item = await self._stream.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._peer.close()
                self.closed.set()
                return
            # Handlers of this message (tasks spawned now copy the context) see its relation.
            RELATED_REQUEST.set(getattr(self._stream, "last_related", None))
            await self._peer.dispatch(item)

    async def _on_notification(self, note: Notification) -> None:
        if self.handlers.on_notification is not None:
            await self.handlers.on_notification(note)

    async def _serve_server_request(self, call: Call) -> JSONValue:
        if call.method == "ping":
            return {}
        handler = self.handlers.for_method(call.method)
        if handler is None:
            raise MethodNotFound(call.method)
        return await handler(call.params)

    # -- connection ------------------------------------------------------------------------

    async def connect(self) -> ServerInfo:
        """Detect the server's era and open the session.

        Raises:
            PeerError: the server refused both ``server/discover`` and ``initialize``.
        """
        if self._forced_era is not Era.LEGACY:
            try:
                self.server = await self._discover()
                return self.server
            except (PeerError, RequestTimeout):
                if self._forced_era is Era.MODERN:
                    raise
                logger.debug("server/discover refused; falling back to initialize")
        self.server = await self._initialize()
        return self.server

    async def _discover(self) -> ServerInfo:
        result = await self._modern_request(
            "server/discover", {"_meta": self._meta()}, None, PROBE_TIMEOUT, None
        )
        if not isinstance(result, dict) or MODERN not in (result.get("supportedVersions") or []):
            raise PeerError(MethodNotFound.code, "server does not speak 2026-07-28")
        meta = result.get("_meta") or {}
        return ServerInfo(
            era=Era.MODERN,
            protocol_version=MODERN,
            capabilities=result.get("capabilities") or {},
            server_info=meta.get("io.modelcontextprotocol/serverInfo") or {},
            instructions=result.get("instructions"),
        )

    async def _initialize(self) -> ServerInfo:
        result = await self._peer.request(
            "initialize",
            {
                "protocolVersion": self._legacy_version,
                "capabilities": self.handlers.capabilities(),
                "clientInfo": self._client_info,
            },
        )
        if not isinstance(result, dict):
            raise InvalidRequest("initialize result is not an object")
        version = result.get("protocolVersion")
        if version not in LEGACY_VERSIONS:
            raise InvalidRequest("server chose an unsupported protocol version")
        if hasattr(self._stream, "protocol_version"):
            self._stream.protocol_version = version
        await self._peer.notify("notifications/initialized")
        opener = getattr(self._stream, "open_standalone_stream", None)
        if callable(opener):
            # Before any call: a server may send requests (elicitation) on this stream only.
            await opener()
        return ServerInfo(
            era=Era.LEGACY,
            protocol_version=str(version),
            capabilities=result.get("capabilities") or {},
            server_info=result.get("serverInfo") or {},
            instructions=result.get("instructions"),
        )

    def _meta(self, extra: JSONObject | None = None) -> JSONObject:
        meta: JSONObject = {
            META_PROTOCOL_VERSION: MODERN,
            META_CLIENT_CAPABILITIES: self.handlers.capabilities(),
            META_CLIENT_INFO: self._client_info,
        }
        if self.log_level is not None:
            meta[META_LOG_LEVEL] = self.log_level
        if extra:
            meta.update(extra)
        return meta

    # -- requests ----------------------------------------------------------------------------

    @property
    def era(self) -> Era:
        if self.server is None:
            raise InvalidRequest("not connected")
        return self.server.era

    async def request(
        self,
        method: str,
        params: JSONObject | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
        answer_inputs: InputAnswerer | None = None,
        on_sent: Callable[[RequestId], None] | None = None,
    ) -> JSONObject:
        """Send one request in the session's era; input-required rounds are resolved here,
        by ``answer_inputs`` when given (a gateway asks its own client), else by the handlers.
        ``on_sent`` learns the JSON-RPC id of every request sent for it (one per round).

        Raises:
            PeerError: the server answered with an error.
            BastionError: the connection failed or the request timed out.
        """
        params = dict(params or {})
        if self.era is Era.LEGACY:
            result = await self._peer.request(
                method, params, on_progress=on_progress, timeout=timeout, on_sent=on_sent
            )
            return result if isinstance(result, dict) else {}
        caller_meta = params.pop("_meta", None)
        for _round in range(MAX_INPUT_ROUNDS):
            params["_meta"] = self._meta(caller_meta if isinstance(caller_meta, dict) else None)
            result = await self._modern_request(method, params, on_progress, timeout, on_sent)
            if not isinstance(result, dict):
                return {}
            if result.get("resultType") != "input_required":
                return result
            requests = result.get("inputRequests") or {}
            answer = answer_inputs or self._answer_inputs
            params["inputResponses"] = await answer(requests if isinstance(requests, dict) else {})
            if "requestState" in result:
                params["requestState"] = result["requestState"]
            else:
                params.pop("requestState", None)
        raise InvalidRequest("server asked for input too many times")

    async def _modern_request(
        self,
        method: str,
        params: JSONObject,
        on_progress: ProgressCallback | None,
        timeout: float | None,
        on_sent: Callable[[RequestId], None] | None,
    ) -> JSONValue:
        try:
            return await self._peer.request(
                method, params, on_progress=on_progress, timeout=timeout, on_sent=on_sent
            )
        except PeerError as exc:
            # -32022 listing our version again (a server that restarted, or a proxy that
            # rejected the first request): retry once with a new id, then give up.
            data = exc.peer_data if isinstance(exc.peer_data, dict) else {}
            if exc.peer_code != UnsupportedVersion.code or MODERN not in (
                data.get("supported") or []
            ):
                raise
        return await self._peer.request(
            method, params, on_progress=on_progress, timeout=timeout, on_sent=on_sent
        )

    async def _answer_inputs(self, requests: JSONObject) -> JSONObject:
        answers: JSONObject = {}
        for key, spec in requests.items():
            if not isinstance(spec, dict):
                continue
            handler = self.handlers.for_method(str(spec.get("method")))
            if handler is None:
                raise MethodNotFound(f"no handler for input request {spec.get('method')!r}")
            answers[key] = await handler(spec.get("params") or {})
        return answers

    async def notify(self, method: str, params: JSONObject | None = None) -> None:
        await self._peer.notify(method, params)

    async def ping(self) -> None:
        if self.era is Era.LEGACY:
            await self.request("ping")
        else:
            await self.request("server/discover")

    async def list_all(
        self, method: str, key: str, budget: ListingBudget | None = None
    ) -> list[JSONObject]:
        """The well-formed items of a paginated list (``tools/list`` -> ``tools``) that fit
        ``budget`` (a fresh default one when None), from at most ``MAX_PAGES`` pages."""
        budget = ListingBudget() if budget is None else budget
        items: list[JSONObject] = []
        cursor: JSONValue = None
        for _page in range(MAX_PAGES):
            result = await self.request(method, {"cursor": cursor} if cursor else {})
            if not budget.take(key, result.get(key), items):
                return items
            cursor = result.get("nextCursor")
            if not cursor or not isinstance(cursor, str):
                return items
        budget.note_pages(key, MAX_PAGES)
        return items

    async def list_tools(self, budget: ListingBudget | None = None) -> list[JSONObject]:
        """The server's tools, minus any whose ``x-mcp-header`` annotations are invalid."""
        usable: list[JSONObject] = []
        headers: dict[str, dict[str, str]] = {}
        for tool in await self.list_all("tools/list", "tools", budget):
            annotated = tool_param_headers(tool)
            if annotated is None:
                logger.warning(
                    "tool %r has invalid x-mcp-header annotations; not offered", tool.get("name")
                )
                continue
            if annotated:
                headers[str(tool.get("name"))] = annotated
            usable.append(tool)
        if hasattr(self._stream, "tool_headers"):
            self._stream.tool_headers = headers
        return usable

    async def call_tool(
        self,
        name: str,
        arguments: JSONObject | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> JSONObject:
        return await self.request(
            "tools/call",
            {"name": name, "arguments": arguments or {}},
            on_progress=on_progress,
            timeout=timeout,
        )

    async def read_resource(self, uri: str) -> JSONObject:
        return await self.request("resources/read", {"uri": uri})

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> JSONObject:
        return await self.request("prompts/get", {"name": name, "arguments": arguments or {}})
