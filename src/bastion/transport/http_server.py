"""Streamable HTTP, server face: an ASGI app for ``/mcp``, both protocol eras.

Every request first passes the guards (Host 421, Origin 403, method 405, Content-Type 415,
Accept 406, body cap 413, body read deadline 408). Then:

* 2026-07-28 (the body's ``_meta`` names the version): stateless. ``MCP-Protocol-Version``,
  ``Mcp-Method`` and ``Mcp-Name`` must agree with the body (400 / -32020). One POST, one
  answer, as JSON, or as SSE when the server sends notifications (progress, logs) first.
* 2025-11-25: ``initialize`` opens a session (``Mcp-Session-Id``); later POSTs must carry
  it (400 missing, 404 unknown). Answers stream as SSE with event ids, GET opens the
  standalone stream, ``Last-Event-ID`` resumes a stream, DELETE ends the session.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.abc

from bastion.errors import (
    BastionError,
    HeaderMismatch,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    MissingCapability,
    ParseError,
    UnsupportedVersion,
)
from bastion.protocol.codec import MessageDecoder, encode, error_response
from bastion.protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
)
from bastion.protocol.meta import is_modern_request, read_request_meta, require_supported
from bastion.protocol.methods import CLIENT_METHODS
from bastion.protocol.versions import LEGACY_VERSIONS, MODERN_VERSIONS, SUPPORTED_VERSIONS
from bastion.session.peer import Peer
from bastion.session.wire import to_error_response
from bastion.transport.base import McpConnection
from bastion.transport.http_guard import (
    accepts,
    default_allowed_hosts,
    default_allowed_origins,
    host_allowed,
    origin_allowed,
)
from bastion.transport.http_streams import EventStream, parse_event_id
from bastion.transport.sse import encode_event

__all__ = ["HttpSettings", "McpConnection", "Probe", "StreamableHttpApp"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Probe = Callable[[], tuple[int, bytes]]
Send = Callable[[ASGIMessage], Awaitable[None]]

_BAD_REQUEST_CODES: Final = frozenset(
    {
        ParseError.code,
        InvalidRequest.code,
        InvalidParams.code,
        HeaderMismatch.code,
        MissingCapability.code,
        UnsupportedVersion.code,
    }
)
SSE_RETRY_MS: Final = 1000  # how soon a client should reconnect a dropped stream
MAX_SESSION_ID: Final = 256


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    path: str = "/mcp"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_body: int = 4 * 1024 * 1024
    body_timeout: float = 30.0  # seconds to receive a whole request body
    max_sessions: int = 1024
    session_idle: float = 3600.0  # seconds without a request before a session ends
    extra_headers: tuple[tuple[str, str], ...] = field(default=())


class _Session:
    def __init__(self, connection: McpConnection, now: float) -> None:
        self.id = secrets.token_urlsafe(32)
        self.connection = connection
        self.version: str = LEGACY_VERSIONS[0]
        self.streams: dict[str, EventStream] = {}
        self.by_request: dict[RequestId, EventStream] = {}
        self.standalone = EventStream()
        self.get_open = False
        self.last_seen = now
        self.peer = Peer(self.route, connection, on_notification=connection.on_notification)
        connection.attach(self.peer)

    async def route(self, message: Message, related: RequestId | None) -> None:
        stream = self.by_request.get(related) if related is not None else None
        if stream is None:
            stream = self.standalone
        stream.append(encode(message))
        if (
            related is not None
            and isinstance(message, Response | ErrorResponse)
            and (message.id == related)
        ):
            self.by_request.pop(related, None)
            stream.close()

    def open_stream(self, request_id: RequestId) -> EventStream:
        stream = EventStream()
        self.streams[stream.id] = stream
        self.by_request[request_id] = stream
        if len(self.streams) > 64:  # forget the oldest finished streams
            for sid in [s for s, st in self.streams.items() if st.closed][:16]:
                del self.streams[sid]
        return stream

    def close(self) -> None:
        self.peer.close()
        self.connection.detach()
        self.standalone.close()
        for stream in self.streams.values():
            stream.close()


class StreamableHttpApp:
    def __init__(
        self,
        connection_factory: Callable[[], McpConnection],
        settings: HttpSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        probes: Mapping[str, Probe] | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        # Plain GET endpoints beside /mcp (health checks): path -> (status, JSON body).
        self._probes = dict(probes or {})
        self._factory = connection_factory
        self._clock = clock
        self._decoder = MessageDecoder(max_bytes=self.settings.max_body)
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self.bound_port = self.settings.port
        self._hosts = default_allowed_hosts(self.settings.port, self.settings.allowed_hosts)
        self._origins = default_allowed_origins(self.settings.port, self.settings.allowed_origins)

    def set_port(self, port: int) -> None:
        """Called once the socket is bound (port 0 picks one): the guards name the real port."""
        self.bound_port = port
        self._hosts = default_allowed_hosts(port, self.settings.allowed_hosts)
        self._origins = default_allowed_origins(port, self.settings.allowed_origins)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def close_sessions(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    # -- ASGI entry ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = _Headers(scope)
        if not host_allowed(headers.get("host"), self._hosts):
            await _plain(send, 421, b"Misdirected Request")
            return
        if not origin_allowed(headers.get("origin"), self._origins):
            await _json_error(send, 403, None, -32600, "Forbidden: origin not allowed")
            return
        raw_path = scope.get("raw_path", scope["path"].encode())
        probe = self._probes.get(raw_path.decode("latin-1"))
        if probe is not None and scope["method"] == "GET":
            status, body = probe()
            await _send_json(send, status, body)
            return
        if raw_path != self.settings.path.encode():
            await _plain(send, 404, b"Not Found")
            return
        method = scope["method"]
        if method == "POST":
            await self._post(headers, receive, send)
        elif method == "GET":
            await self._get(headers, receive, send)
        elif method == "DELETE":
            await self._delete(headers, send)
        else:
            await _plain(send, 405, b"Method Not Allowed", (("allow", "GET, POST, DELETE"),))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close_sessions()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- POST ----------------------------------------------------------------------------

    async def _post(self, headers: _Headers, receive: Receive, send: Send) -> None:
        content_type = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            await _json_error(
                send, 415, None, -32600, "Unsupported Media Type: use application/json"
            )
            return
        if not accepts(headers.get("accept"), "application/json", "text/event-stream"):
            await _json_error(
                send,
                406,
                None,
                -32600,
                "Not Acceptable: accept application/json and text/event-stream",
            )
            return
        body = await self._read_body(headers, receive, send)
        if body is None:
            return
        try:
            message = self._decoder.decode(body)
        except BastionError as exc:
            await _json_error(send, 400, None, exc.code, exc.wire_message)
            return
        header_version = headers.get("mcp-protocol-version")
        params = message.params if isinstance(message, Request | Notification) else None
        # 2026-07-28 when the header names a non-legacy version (including unknown ones, which
        # get -32022), or, without the header, when the body carries a modern _meta.
        if header_version is not None:
            modern = header_version not in LEGACY_VERSIONS
        else:
            modern = is_modern_request(params or None)
        if modern:
            await self._post_modern(message, headers, header_version, receive, send)
        else:
            await self._post_legacy(message, headers, header_version, receive, send)

    async def _read_body(self, headers: _Headers, receive: Receive, send: Send) -> bytes | None:
        limit = self.settings.max_body
        declared = headers.get("content-length")
        if declared is not None and (
            not (declared.isascii() and declared.isdigit()) or int(declared) > limit
        ):
            await _json_error(send, 413, None, -32600, "Request body too large", close=True)
            return None
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.settings.body_timeout) as deadline:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await _json_error(send, 413, None, -32600, "Request body too large", close=True)
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if deadline.cancelled_caught:
            await _json_error(send, 408, None, -32600, "Request body timeout", close=True)
            return None
        return b"".join(chunks)

    async def _post_modern(
        self,
        message: Message,
        headers: _Headers,
        header_version: str | None,
        receive: Receive,
        send: Send,
    ) -> None:
        if not isinstance(message, Request):
            await _plain(send, 202, b"")  # notifications and stray responses: nothing to say
            return
        try:
            _validate_modern(message, headers, header_version)
        except BastionError as exc:
            answer = to_error_response(exc, message.id)
            await _send_json(send, _status_for(answer), encode(answer))
            return
        connection = self._factory()
        queue_send, queue_receive = anyio.create_memory_object_stream[Message](32)

        async def sink(msg: Message, related: RequestId | None) -> None:
            await queue_send.send(msg)

        peer = Peer(sink, connection, on_notification=connection.on_notification)

        async def run() -> None:
            async with queue_send:
                answer = await peer.serve(message)
                if answer is not None:
                    await queue_send.send(answer)

        await _respond(send, receive, run, queue_receive, message.id)

    async def _post_legacy(
        self,
        message: Message,
        headers: _Headers,
        header_version: str | None,
        receive: Receive,
        send: Send,
    ) -> None:
        if header_version is not None and header_version not in SUPPORTED_VERSIONS:
            await _json_error(
                send, 400, _id_of(message), -32600, "Bad Request: unsupported MCP-Protocol-Version"
            )
            return
        session_id = headers.get("mcp-session-id")
        if isinstance(message, Request) and message.method == "initialize":
            if session_id is not None and session_id in self._sessions:
                await _json_error(send, 400, message.id, -32600, "Session already initialized")
                return
            await self._initialize(message, send)
            return
        session = self._lookup(session_id)
        if session is None:
            if session_id is None:
                await _json_error(
                    send, 400, _id_of(message), -32600, "Bad Request: missing Mcp-Session-Id"
                )
            else:
                await _json_error(send, 404, _id_of(message), -32001, "Session not found")
            return
        if not isinstance(message, Request):
            await session.peer.dispatch(message)
            await _plain(send, 202, b"")
            return
        await self._serve_in_session(session, message, receive, send)

    async def _initialize(self, message: Request, send: Send) -> None:
        if len(self._sessions) >= self.settings.max_sessions:
            self._expire(force_one=True)
        session = _Session(self._factory(), self._clock())
        answer = await session.peer.serve(message)
        if not isinstance(answer, Response):
            session.close()
            await _send_json(send, 200 if answer else 202, encode(answer) if answer else b"")
            return
        result = answer.result if isinstance(answer.result, dict) else {}
        session.version = str(result.get("protocolVersion", LEGACY_VERSIONS[0]))
        self._sessions[session.id] = session
        await _send_json(send, 200, encode(answer), (("mcp-session-id", session.id),))

    async def _serve_in_session(
        self, session: _Session, message: Request, receive: Receive, send: Send
    ) -> None:
        stream = session.open_stream(message.id)
        detached = anyio.Event()

        async def run() -> None:
            # The client dropping its connection does not cancel the request (2025-11-25):
            # the answer stays in the stream for a GET with Last-Event-ID.
            answer = await session.peer.serve(message, close_stream=detached.set)
            if answer is not None:
                await session.route(answer, message.id)
            else:
                session.by_request.pop(message.id, None)
                stream.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await _start_sse(send, ())
            await _pump(send, receive, stream, 0, detached)

    # -- GET and DELETE (2025-11-25 only) ------------------------------------------------

    async def _get(self, headers: _Headers, receive: Receive, send: Send) -> None:
        if headers.get("mcp-protocol-version") in MODERN_VERSIONS:
            await _plain(send, 405, b"Method Not Allowed", (("allow", "POST"),))
            return
        if not accepts(headers.get("accept"), "text/event-stream"):
            await _json_error(send, 406, None, -32600, "Not Acceptable: accept text/event-stream")
            return
        session_id = headers.get("mcp-session-id")
        session = self._lookup(session_id)
        if session is None:
            status = 400 if session_id is None else 404
            await _json_error(
                send,
                status,
                None,
                -32600 if status == 400 else -32001,
                "Bad Request: missing Mcp-Session-Id" if status == 400 else "Session not found",
            )
            return
        stream, after = session.standalone, 0
        last_event = headers.get("last-event-id")
        if last_event is not None:
            parsed = parse_event_id(last_event)
            if parsed is not None and parsed[0] in session.streams:
                stream, after = session.streams[parsed[0]], parsed[1]
            elif parsed is not None and parsed[0] == session.standalone.id:
                after = parsed[1]
        if stream is session.standalone:
            if session.get_open:
                await _json_error(send, 409, None, -32600, "Conflict: stream already open")
                return
            session.get_open = True
        try:
            await _start_sse(send, ())
            await _pump(send, receive, stream, after)
        finally:
            if stream is session.standalone:
                session.get_open = False

    async def _delete(self, headers: _Headers, send: Send) -> None:
        session_id = headers.get("mcp-session-id")
        session = self._lookup(session_id)
        if session is None:
            status = 400 if session_id is None else 404
            await _plain(send, status, b"")
            return
        del self._sessions[session.id]
        session.close()
        await _plain(send, 200, b"")

    # -- sessions --------------------------------------------------------------------------

    def _lookup(self, session_id: str | None) -> _Session | None:
        if session_id is None or len(session_id) > MAX_SESSION_ID:
            return None
        self._expire()
        session = self._sessions.get(session_id)
        if session is not None:
            session.last_seen = self._clock()
            self._sessions.move_to_end(session_id)
        return session

    def _expire(self, *, force_one: bool = False) -> None:
        now = self._clock()
        while self._sessions:
            sid, oldest = next(iter(self._sessions.items()))
            if not force_one and now - oldest.last_seen < self.settings.session_idle:
                return
            del self._sessions[sid]
            oldest.close()
            force_one = False


# -- helpers ----------------------------------------------------------------------------


class _Headers:
    __slots__ = ("_map",)

    def __init__(self, scope: Scope) -> None:
        self._map: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            self._map[name] = f"{self._map[name]}, {value}" if name in self._map else value

    def get(self, name: str) -> str | None:
        return self._map.get(name)


def _validate_modern(message: Request, headers: _Headers, header_version: str | None) -> None:
    """2026-07-28 checks, in the order the spec's error codes require.

    Raises:
        InvalidParams: ``_meta`` lacks the version or the capabilities (-32602).
        HeaderMismatch: a mirror header disagrees with the body or is missing (-32020).
        UnsupportedVersion: the version is not one we speak (-32022).
    """
    meta = read_request_meta(message.params or None)
    if header_version != meta.protocol_version:
        raise HeaderMismatch(
            "protocol version header/body",
            message=("Header mismatch: MCP-Protocol-Version must match _meta protocolVersion"),
        )
    require_supported(meta.protocol_version)
    if headers.get("mcp-method") != message.method:
        raise HeaderMismatch(
            "method header/body",
            message=("Header mismatch: Mcp-Method must match the body's method"),
        )
    spec = CLIENT_METHODS.get(message.method)
    if spec is not None and spec.name_field is not None:
        target = (message.params or {}).get(spec.name_field)
        name = headers.get("mcp-name")
        if name is None or name.strip(" \t") != target:
            raise HeaderMismatch(
                "name header/body",
                message=("Header mismatch: Mcp-Name must match the body's target name"),
            )


def _id_of(message: Message) -> RequestId | None:
    return message.id if isinstance(message, Request) else None


def _is_answer(message: Message, request_id: RequestId) -> bool:
    return isinstance(message, Response | ErrorResponse) and message.id == request_id


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _pump(
    send: Send, receive: Receive, stream: EventStream, after: int, detach: anyio.Event | None = None
) -> None:
    """Write ``stream``'s events after ``after`` as SSE until it closes, the client leaves,
    or ``detach`` is set (the server ends the response; the client resumes with GET)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_disconnect, receive, tg.cancel_scope)
        if detach is not None:
            tg.start_soon(_cancel_when, detach, tg.cancel_scope)
        # Priming event: an id before any data, so the client can resume from here.
        primed = encode_event(b"", event_id=stream.event_id(after), retry_ms=SSE_RETRY_MS)
        if await _sse_write(send, primed):
            async for seq, data in stream.follow(after):
                if not await _sse_write(send, encode_event(data, event_id=stream.event_id(seq))):
                    break
        tg.cancel_scope.cancel()
    await _end(send)


async def _respond(
    send: Send,
    receive: Receive,
    run: Callable[[], Coroutine[Any, Any, None]],
    queue: anyio.abc.ObjectReceiveStream[Message],
    request_id: RequestId,
) -> None:
    """Answer one stateless request: JSON if the answer comes first, else SSE until it does.

    The client leaving cancels the work: on 2026-07-28 nobody can resume the answer.
    """
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        tg.start_soon(_watch_disconnect, receive, tg.cancel_scope)
        async with queue:
            first = await _first(queue)
            if first is None:
                await _plain(send, 202, b"")  # cancelled: nothing to say
            elif _is_answer(first, request_id):
                status = _status_for(first) if isinstance(first, ErrorResponse) else 200
                await _send_json(send, status, encode(first))
            else:
                await _start_sse(send, ())
                pending: Message | None = first
                while pending is not None:
                    if not await _sse_write(send, encode_event(encode(pending))):
                        break
                    if _is_answer(pending, request_id):
                        break
                    pending = await _first(queue)
                await _end(send)
        tg.cancel_scope.cancel()


def _status_for(answer: ErrorResponse) -> int:
    """2026-07-28 maps some JSON-RPC errors onto HTTP statuses; the rest travel in a 200."""
    code = answer.error.code
    if code == MethodNotFound.code:
        return 404
    if code in _BAD_REQUEST_CODES:
        return 400
    return 200


async def _first(queue: anyio.abc.ObjectReceiveStream[Message]) -> Message | None:
    try:
        return await queue.receive()
    except anyio.EndOfStream:
        return None


async def _plain(
    send: Send, status: int, body: bytes, extra: tuple[tuple[str, str], ...] = ()
) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")] if body else []
    headers += [(k.encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(
    send: Send, status: int, body: bytes, extra: tuple[tuple[str, str], ...] = ()
) -> None:
    headers = [(b"content-type", b"application/json")]
    headers += [(k.encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json_error(
    send: Send,
    status: int,
    request_id: RequestId | None,
    code: int,
    message: str,
    *,
    close: bool = False,
) -> None:
    extra = (("connection", "close"),) if close else ()
    await _send_json(send, status, encode(error_response(request_id, code, message)), extra)


async def _start_sse(send: Send, extra: tuple[tuple[str, str], ...]) -> None:
    headers = [
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache, no-transform"),
        (b"x-accel-buffering", b"no"),
    ]
    headers += [(k.encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _sse_write(send: Send, data: bytes) -> bool:
    try:
        await send({"type": "http.response.body", "body": data, "more_body": True})
    except OSError:
        return False
    return True


async def _end(send: Send) -> None:
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": b""})
