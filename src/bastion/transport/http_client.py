"""Streamable HTTP, client face: one upstream MCP endpoint seen as a ``MessageStream``.

Each outgoing request is POSTed in its own task; its answer (JSON, or an SSE stream of
notifications, server requests and finally the response) is fed to ``receive``. On the
2026-07-28 era the mirror headers (``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``)
are derived from the body. On 2025-11-25 the ``Mcp-Session-Id`` from ``initialize`` is
kept and sent back, a dropped SSE stream is resumed with GET and ``Last-Event-ID``, and
``close`` ends the session with DELETE. HTTP failures become JSON-RPC errors for the
request that caused them, so callers see one kind of failure. The ``ConnectChecks`` are asked
of every new connection, before it is made and once it is up, before anything is sent
(``HttpWire``); a refused one is such a failure.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

import anyio
import anyio.abc

from bastion._types import NO_CHECKS, ConnectChecks
from bastion.errors import BastionError
from bastion.protocol.codec import MessageDecoder, encode, error_response
from bastion.protocol.headers import encode_header_value, param_headers
from bastion.protocol.jsonrpc import ErrorResponse, Message, Notification, Request, RequestId
from bastion.protocol.methods import CLIENT_METHODS
from bastion.protocol.versions import META_PROTOCOL_VERSION
from bastion.transport.http_wire import HttpFailure, HttpWire, WireResponse
from bastion.transport.sse import SseParser

__all__ = ["HttpClientStream"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 10.0
MAX_RESUMES: Final = 5  # reconnect attempts for one dropped SSE stream
DEFAULT_RETRY_MS: Final = 1000
MAX_RETRY_MS: Final = 30_000  # an SSE ``retry`` beyond this is taken as this
MAX_JSON_RESPONSE: Final = 4 * 1024 * 1024
UPSTREAM_HTTP_ERROR: Final = -32000
MAX_CONNECTIONS: Final = 128  # to one upstream; kept alive, so busy gateways do not reconnect


class HttpClientStream:
    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        decoder: MessageDecoder | None = None,
        checks: ConnectChecks = NO_CHECKS,
    ) -> None:
        self.url = url
        self._shown_url = _url_for_logs(url)
        self._headers = dict(headers or {})
        self._wire = HttpWire(
            url,
            max_connections=MAX_CONNECTIONS,
            connect_timeout=CONNECT_TIMEOUT,
            checks=checks,
        )
        self._decoder = decoder or MessageDecoder()
        self.session_id: str | None = None
        self.protocol_version: str | None = None  # negotiated legacy version, once known
        self._inbox_send, self._inbox = anyio.create_memory_object_stream[
            tuple[Message | BastionError, RequestId | None]
        ](64)
        # The request whose POST stream carried the message ``receive`` returned last.
        self.last_related: RequestId | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._get_started = False
        self._inflight: dict[RequestId, anyio.CancelScope] = {}  # POSTs awaiting answers
        # Per tool, the parameters mirrored into Mcp-Param-* headers (set from tools/list).
        self.tool_headers: dict[str, dict[str, str]] = {}

    async def __aenter__(self) -> HttpClientStream:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await self.aclose()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(*exc_info)  # type: ignore[arg-type]
        finally:  # also when the task group re-raises (a cancelled caller): nothing leaks
            self._inbox_send.close()
            self._inbox.close()
            with anyio.CancelScope(shield=True):
                await self._wire.aclose()

    # -- MessageStream -------------------------------------------------------------------

    async def receive(self) -> Message | BastionError:
        item, self.last_related = await self._inbox.receive()
        return item

    async def send(self, message: Message) -> None:
        assert self._tg is not None, "use `async with HttpClientStream(...)`"
        if isinstance(message, Request):
            self._tg.start_soon(self._post_request, message)
            return
        if isinstance(message, Notification) and message.method == "notifications/cancelled":
            request_id = (message.params or {}).get("requestId")
            scope = self._inflight.get(request_id) if isinstance(request_id, int | str) else None
            if scope is not None:
                scope.cancel()  # closing the request's stream is the cancellation...
                if self.session_id is None:
                    return  # ...and, without a session (2026-07-28), the only one
        await self._post_other(message)

    async def aclose(self) -> None:
        if self.session_id is not None:
            with contextlib.suppress(HttpFailure):
                async with self._wire.request("DELETE", self._base_headers()) as response:
                    await response.read(0)
            self.session_id = None

    async def open_standalone_stream(self) -> bool:
        """Open the 2025-11-25 GET stream for server-initiated messages; True once it is open.

        Servers may refuse it (405), which is fine: they then send nothing unsolicited.
        """
        if self._get_started or self.session_id is None or self._tg is None:
            return False
        self._get_started = True
        return bool(await self._tg.start(self._standalone))

    async def _standalone(self, *, task_status: anyio.abc.TaskStatus[bool]) -> None:
        headers = self._base_headers()
        headers["Accept"] = "text/event-stream"
        try:
            async with self._wire.request("GET", headers) as response:
                if response.status != 200:
                    task_status.started(False)
                    return
                task_status.started(True)
                await self._read_sse(None, response, _SseState())
        except HttpFailure as exc:
            logger.debug("standalone stream from %s ended: %s", self._shown_url, exc)

    # -- internals -------------------------------------------------------------------------

    def _base_headers(self) -> dict[str, str]:
        headers = dict(self._headers)
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version is not None:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    def _headers_for(self, message: Message) -> dict[str, str]:
        headers = self._base_headers()
        headers["Content-Type"] = "application/json"
        headers["Accept"] = "application/json, text/event-stream"
        if isinstance(message, Request | Notification):
            meta = (message.params or {}).get("_meta")
            version = meta.get(META_PROTOCOL_VERSION) if isinstance(meta, dict) else None
            if isinstance(version, str):
                # 2026-07-28: stateless; the headers mirror the body.
                headers.pop("Mcp-Session-Id", None)
                headers["MCP-Protocol-Version"] = version
                headers["Mcp-Method"] = message.method
                params = message.params or {}
                spec = CLIENT_METHODS.get(message.method)
                if spec is not None and spec.name_field is not None:
                    name = params.get(spec.name_field)
                    if isinstance(name, str):
                        headers["Mcp-Name"] = encode_header_value(name)
                        annotated = self.tool_headers.get(name)
                        arguments = params.get("arguments")
                        if (
                            message.method == "tools/call"
                            and annotated
                            and isinstance(arguments, dict)
                        ):
                            headers.update(param_headers(annotated, arguments))
        return headers

    async def _deliver(
        self, item: Message | BastionError, related: RequestId | None = None
    ) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._inbox_send.send((item, related))

    async def _fail(self, request_id: RequestId, message: str, data: object = None) -> None:
        await self._deliver(
            error_response(
                request_id, UPSTREAM_HTTP_ERROR, message, data if data is not None else {}
            )
        )

    async def _post_other(self, message: Message) -> None:
        try:
            async with self._wire.request(
                "POST", self._headers_for(message), encode(message)
            ) as response:
                await response.read(MAX_JSON_RESPONSE)
        except HttpFailure as exc:
            kind = type(message).__name__
            logger.info("POST of a %s to %s failed: %s", kind, self._shown_url, exc)

    async def _post_request(self, message: Request) -> None:
        with anyio.CancelScope() as scope:
            self._inflight[message.id] = scope
            try:
                await self._post_request_body(message)
            finally:
                del self._inflight[message.id]

    async def _post_request_body(self, message: Request) -> None:
        connected = False
        try:
            async with self._wire.request(
                "POST", self._headers_for(message), encode(message)
            ) as response:
                connected = True
                if message.method == "initialize" and "mcp-session-id" in response.headers:
                    self.session_id = response.headers["mcp-session-id"]
                await self._read_response(message.id, response)
        except HttpFailure as exc:
            what = "Upstream connection failed" if connected else "Upstream unreachable"
            await self._fail(message.id, what, {"reason": exc.reason})

    async def _read_response(self, request_id: RequestId, response: WireResponse) -> None:
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type == "text/event-stream" and response.status == 200:
            state = _SseState()
            if not await self._read_sse(request_id, response, state):
                await self._resume(request_id, state)
            return
        body = await response.read(MAX_JSON_RESPONSE)
        if response.status == 202 and not body:
            return
        decoded: Message | BastionError | None = None
        if content_type == "application/json" and body:
            try:
                decoded = self._decoder.decode(body)
            except BastionError as exc:
                decoded = exc
        if isinstance(decoded, ErrorResponse) and decoded.id in (None, request_id):
            await self._deliver(ErrorResponse(id=request_id, error=decoded.error))
        elif decoded is not None and not isinstance(decoded, BastionError) and response.is_success:
            await self._deliver(decoded)
        else:
            await self._fail(
                request_id,
                f"Upstream HTTP {response.status}",
                {"status": response.status},
            )

    async def _read_sse(
        self, request_id: RequestId | None, response: WireResponse, state: _SseState
    ) -> bool:
        """Feed the stream's messages; True once the answer to ``request_id`` arrived."""
        parser = SseParser()
        try:
            async for chunk in response.chunks():
                for event in parser.feed(chunk):
                    if event.retry is not None:  # the upstream's wish, within our bound
                        state.retry_ms = min(event.retry, MAX_RETRY_MS)
                    if event.id is not None:
                        state.last_event_id = event.id
                    if event.event != "message" or not event.data.strip():
                        continue  # priming events carry an id and no data
                    try:
                        item: Message | BastionError = self._decoder.decode(event.data.encode())
                    except BastionError as exc:
                        item = exc
                    await self._deliver(item, request_id)
                    if not isinstance(item, BastionError) and _answers(item, request_id):
                        return True
        except (HttpFailure, ValueError) as exc:
            logger.debug("SSE stream from %s ended: %s", self._shown_url, exc)
        return False

    async def _resume(self, request_id: RequestId, state: _SseState) -> None:
        """The POST stream ended before the answer: after ``retry``, resume with GET."""
        if state.last_event_id is None or self.session_id is None:
            await self._fail(request_id, "Upstream stream ended without an answer")
            return
        for _attempt in range(MAX_RESUMES):
            await anyio.sleep(state.retry_ms / 1000)
            headers = self._base_headers()
            headers["Accept"] = "text/event-stream"
            headers["Last-Event-ID"] = state.last_event_id
            try:
                async with self._wire.request("GET", headers) as response:
                    if response.status != 200:
                        break
                    if await self._read_sse(request_id, response, state):
                        return
            except HttpFailure as exc:
                logger.debug("resuming a stream from %s failed: %s", self._shown_url, exc)
        await self._fail(request_id, "Upstream stream ended without an answer")


class _SseState:
    """What one logical SSE stream remembers across reconnections."""

    __slots__ = ("last_event_id", "retry_ms")

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_ms = DEFAULT_RETRY_MS


def _answers(message: Message, request_id: RequestId | None) -> bool:
    return (
        request_id is not None
        and not isinstance(message, Request | Notification)
        and (message.id == request_id)
    )


def _url_for_logs(url: str) -> str:
    """``url`` without what may be a secret: user info, query and fragment (IN-5)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
