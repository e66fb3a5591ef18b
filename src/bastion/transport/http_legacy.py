"""Streamable HTTP, server face, 2025-11-25 era: POST, GET and DELETE of ``/mcp`` within
sessions, once ``http_server`` has passed the guards, authenticated the caller and (for
POST) read and decoded the body.

``initialize`` opens a session (``Mcp-Session-Id``); later POSTs must carry it (400 missing,
404 unknown). A session belongs to the principal and credential that opened it (SE-2):
anyone else is told it is unknown (404; an ``initialize`` naming it opens a new session, as
with an unknown id). Answers stream as SSE with event ids, GET opens the standalone stream
(409 if it is open already), ``Last-Event-ID`` resumes a stream, DELETE ends the session;
GET and DELETE naming 2026-07-28 are 405. ``MCP-Protocol-Version`` on POST, GET and DELETE
is a version we speak or absent (then it is the session's negotiated version, as the
2025-11-25 transport says); any other is 400 with a JSON-RPC error (TR-7). A body whose
``_meta`` carries the 2026-07-28 protocol version key disagrees with a header naming a 2025
version: 400 / -32020, before anything is served (the body would otherwise be served by
2026-07-28 rules without their header checks, TR-12). A refused ``initialize`` has no stream
to carry it: over a rate limit it is 429 with ``Retry-After`` (DS-3). Which sessions exist,
and when they end, is the ``SessionRegistry``'s (``http_session_registry``). A POST, GET or
DELETE naming a live session of someone else is told to ``on_foreign_session`` (the
gateway audits it, AD-1) before the 404 it shares with an unknown id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import anyio

from bastion.auth.principal import Principal
from bastion.errors import HeaderMismatch, RateLimited
from bastion.protocol.codec import encode
from bastion.protocol.jsonrpc import Message, Notification, Request, RequestId, Response
from bastion.protocol.meta import is_modern_request
from bastion.protocol.versions import LEGACY_VERSIONS, MODERN_VERSIONS, SUPPORTED_VERSIONS
from bastion.transport import _http_asgi as r
from bastion.transport._http_asgi import Receive, Send
from bastion.transport.base import McpConnection
from bastion.transport.http_guard import accepts
from bastion.transport.http_session_registry import SessionRegistry
from bastion.transport.http_sessions import HttpSession, new_session_id
from bastion.transport.http_streams import parse_event_id

__all__ = ["ConnectionFactory", "ForeignSession", "LegacyFace"]

UNSUPPORTED_VERSION: Final = "Bad Request: unsupported MCP-Protocol-Version"
MODERN_BODY_IN_LEGACY: Final = (
    "Header mismatch: MCP-Protocol-Version must match _meta protocolVersion"
)

# (caller, the 2025-11-25 session id or None) -> the MCP connection serving them
ConnectionFactory = Callable[[Principal, str | None], McpConnection]
ForeignSession = Callable[[Principal, str, str, RequestId | None], Awaitable[None]]
"""``(caller, "VERB /path", the session id they named, the JSON-RPC id or None)``: a caller
named a live session that is not theirs (SE-2); it must not change the answer."""


class LegacyFace:
    """The 2025-11-25 handlers of one app, over its sessions."""

    def __init__(
        self,
        connection_factory: ConnectionFactory,
        sessions: SessionRegistry,
        *,
        path: str = "/mcp",
        on_foreign_session: ForeignSession | None = None,
    ) -> None:
        self._factory = connection_factory
        self._sessions = sessions
        self._path = path
        self._on_foreign = on_foreign_session

    async def _not_found(
        self,
        verb: str,
        principal: Principal,
        session_id: str,
        request_id: RequestId | None = None,
    ) -> None:
        """Before a 404 for ``session_id``: if it is someone else's live session, say so to
        ``on_foreign_session`` (the answer stays that of an unknown id, SE-2)."""
        if self._on_foreign is not None and self._sessions.held_by_another(session_id, principal):
            await self._on_foreign(principal, f"{verb} {self._path}", session_id, request_id)

    # -- POST ----------------------------------------------------------------------------

    async def post(
        self,
        message: Message,
        headers: r.Headers,
        header_version: str | None,
        receive: Receive,
        send: Send,
        *,
        principal: Principal,
    ) -> None:
        if not _version_ok(header_version):
            await r.json_error(send, 400, _id_of(message), -32600, UNSUPPORTED_VERSION)
            return
        params = message.params if isinstance(message, Request | Notification) else None
        if is_modern_request(params or None):
            await r.json_error(
                send, 400, _id_of(message), HeaderMismatch.code, MODERN_BODY_IN_LEGACY
            )
            return
        session_id = headers.get("mcp-session-id")
        if isinstance(message, Request) and message.method == "initialize":
            if self._sessions.owns(session_id, principal):
                await r.json_error(send, 400, message.id, -32600, "Session already initialized")
                return
            await self._initialize(principal, message, send)
            return
        session = self._sessions.lookup(session_id, principal)
        if session is None:
            if session_id is None:
                await r.json_error(
                    send, 400, _id_of(message), -32600, "Bad Request: missing Mcp-Session-Id"
                )
            else:
                await self._not_found("POST", principal, session_id, _id_of(message))
                await r.json_error(send, 404, _id_of(message), -32001, "Session not found")
            return
        if not isinstance(message, Request):
            await session.peer.dispatch(message)
            await r.plain(send, 202, b"")
            return
        await self._serve_in_session(session, message, receive, send)

    async def _initialize(self, principal: Principal, message: Request, send: Send) -> None:
        self._sessions.expire()
        session_id = new_session_id()
        connection = self._factory(principal, session_id)
        session = self._sessions.open(session_id, connection, principal)
        answer = await session.peer.serve(message)
        if answer is None:  # cancelled
            session.close()
            await r.plain(send, 202, b"")
            return
        if not isinstance(answer, Response):
            session.close()
            # No stream is open to carry a refusal: over a limit, HTTP says so (DS-3).
            limited = answer.error.code == RateLimited.code
            status, extra = (429, r.retry_after(answer)) if limited else (200, ())
            await r.send_json(send, status, encode(answer), extra)
            return
        result = answer.result if isinstance(answer.result, dict) else {}
        session.version = str(result.get("protocolVersion", LEGACY_VERSIONS[0]))
        self._sessions.add(session)
        await r.send_json(send, 200, encode(answer), (("mcp-session-id", session.id),))

    async def _serve_in_session(
        self, session: HttpSession, message: Request, receive: Receive, send: Send
    ) -> None:
        if message.id in session.by_request:
            # Its id is in use by a request still being served: refused on its own, so that
            # request keeps its stream and gets its answer (IN-1).
            await r.json_error(send, 200, message.id, -32600, "duplicate request id")
            return
        stream = session.open_stream(message.id)
        detached = anyio.Event()

        async def run() -> None:
            # The client dropping its connection does not cancel the request (2025-11-25):
            # the answer stays in the stream for a GET with Last-Event-ID. Ending the
            # session does.
            with anyio.CancelScope() as scope:
                session.in_flight.add(scope)
                try:
                    answer = await session.peer.serve(message, close_stream=detached.set)
                finally:
                    session.in_flight.discard(scope)
                if answer is not None:
                    await session.route(answer, message.id)
                    return
            session.by_request.pop(message.id, None)
            stream.close()

        with stream.writing():  # DS-4: its replay is not dropped before it is written
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await r.start_sse(send, ())
                await r.pump(send, receive, stream, 0, detached)

    # -- GET and DELETE ------------------------------------------------------------------

    async def get(
        self, principal: Principal, headers: r.Headers, receive: Receive, send: Send
    ) -> None:
        header_version = headers.get("mcp-protocol-version")
        if header_version in MODERN_VERSIONS:
            await r.plain(send, 405, b"Method Not Allowed", (("allow", "POST"),))
            return
        if not _version_ok(header_version):
            await r.json_error(send, 400, None, -32600, UNSUPPORTED_VERSION)
            return
        if not accepts(headers.get("accept"), "text/event-stream"):
            await r.json_error(send, 406, None, -32600, "Not Acceptable: accept text/event-stream")
            return
        session_id = headers.get("mcp-session-id")
        session = self._sessions.lookup(session_id, principal)
        if session is None:
            status = 400 if session_id is None else 404
            if session_id is not None:
                await self._not_found("GET", principal, session_id)
            await r.json_error(
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
                await r.json_error(send, 409, None, -32600, "Conflict: stream already open")
                return
            session.get_open = True
        try:
            await r.start_sse(send, ())
            with stream.writing():
                await r.pump(send, receive, stream, after)
        finally:
            if stream is session.standalone:
                session.get_open = False

    async def delete(self, principal: Principal, headers: r.Headers, send: Send) -> None:
        header_version = headers.get("mcp-protocol-version")
        if header_version in MODERN_VERSIONS:
            await r.plain(send, 405, b"Method Not Allowed", (("allow", "POST"),))
            return
        if not _version_ok(header_version):
            await r.json_error(send, 400, None, -32600, UNSUPPORTED_VERSION)
            return
        session_id = headers.get("mcp-session-id")
        session = self._sessions.lookup(session_id, principal)
        if session is None:
            status = 400 if session_id is None else 404
            if session_id is not None:
                await self._not_found("DELETE", principal, session_id)
            await r.plain(send, status, b"")
            return
        self._sessions.end(session)
        await r.plain(send, 200, b"")


def _version_ok(header: str | None) -> bool:
    """``MCP-Protocol-Version`` absent (the session's negotiated version) or one we speak
    (TR-7). Not required to equal the session's: the 2025-11-25 transport says the client
    SHOULD send that one, and the official conformance suite sends 2025-03-26 inside a
    2025-11-25 session; the session is served at its negotiated version either way."""
    return header is None or header in SUPPORTED_VERSIONS


def _id_of(message: Message) -> RequestId | None:
    return message.id if isinstance(message, Request) else None
