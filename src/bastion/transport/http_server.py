"""Streamable HTTP, server face: an ASGI app for ``/mcp``, both protocol eras.

Every request first passes the guards (Host 421, Origin 403, exact path 404, authentication
401/429, method 405, Content-Type 415, Accept 406, body cap 413, body read deadline 408). Public
probes (health, RFC 9728 metadata) answer before authentication; mounted apps (the admin API)
answer for their prefix and authenticate themselves. Every response says
``X-Content-Type-Options: nosniff``. Then:

* 2026-07-28 (the body's ``_meta`` names the version): stateless. ``MCP-Protocol-Version``,
  ``Mcp-Method`` and ``Mcp-Name`` must agree with the body (400 / -32020). One POST, one
  answer, as JSON, or as SSE when the server sends notifications (progress, logs) first.
* 2025-11-25: ``initialize`` opens a session (``Mcp-Session-Id``); later POSTs must carry
  it (400 missing, 404 unknown). A session belongs to the principal and credential that
  opened it (SE-2): anyone else is told it is unknown (404; an ``initialize`` naming it
  opens a new session, as with an unknown id). Answers stream as SSE with event ids, GET
  opens the standalone stream, ``Last-Event-ID`` resumes a stream, DELETE ends the session;
  GET and DELETE naming 2026-07-28 are 405.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.abc

from bastion.auth.local import local_principal
from bastion.auth.principal import Principal, Unauthenticated
from bastion.errors import (
    BastionError,
)
from bastion.protocol.codec import MessageDecoder, encode
from bastion.protocol.jsonrpc import (
    Message,
    Notification,
    Request,
    RequestId,
    Response,
)
from bastion.protocol.meta import is_modern_request
from bastion.protocol.versions import LEGACY_VERSIONS, MODERN_VERSIONS, SUPPORTED_VERSIONS
from bastion.session.peer import Peer
from bastion.session.wire import to_error_response
from bastion.transport import _http_asgi as r
from bastion.transport._http_asgi import Receive, Scope, Send
from bastion.transport.base import McpConnection
from bastion.transport.http_auth import HttpAuthenticator, LocalAuth
from bastion.transport.http_guard import (
    accepts,
    default_allowed_hosts,
    default_allowed_origins,
    host_allowed,
    origin_allowed,
)
from bastion.transport.http_mirror import validate_modern
from bastion.transport.http_replay import ReplayBudget
from bastion.transport.http_session_table import SessionTable
from bastion.transport.http_sessions import HttpSession, new_session_id
from bastion.transport.http_streams import parse_event_id
from bastion.transport.settings import HttpLimits, SessionSettings

__all__ = ["ASGIApp", "HttpSettings", "McpConnection", "Probe", "StreamableHttpApp"]

logger = logging.getLogger(__name__)

Probe = Callable[[], tuple[int, bytes]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# (caller, the 2025-11-25 session id or None) -> the MCP connection serving them
ConnectionFactory = Callable[[Principal, str | None], McpConnection]


MAX_SESSION_ID: Final = 256
PROMETHEUS_TEXT: Final = "text/plain; version=0.0.4; charset=utf-8"
# Refusals that prove the credential itself has lapsed (its secret was right).
LAPSED: Final = frozenset({"revoked", "expired", "rotated"})


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    path: str = "/mcp"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    limits: HttpLimits = field(default_factory=HttpLimits)  # DS-1, DS-2 body, time, conns
    sessions: SessionSettings = field(default_factory=SessionSettings)  # SE-3 timeouts, count
    extra_headers: tuple[tuple[str, str], ...] = field(default=())
    # HTTPS: the server's certificate chain and key (PEM files); with a client CA, clients
    # may (or, with client_cert "required", must) present a certificate it signed (mTLS).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    tls_client_cert: str = "optional"  # "optional" | "required", with a client CA


class StreamableHttpApp:
    def __init__(
        self,
        connection_factory: ConnectionFactory,
        settings: HttpSettings | None = None,
        *,
        authenticator: HttpAuthenticator | None = None,
        clock: Callable[[], float] = time.monotonic,
        probes: Mapping[str, Probe] | None = None,
        text_probes: Mapping[str, Probe] | None = None,
        mounts: Mapping[str, ASGIApp] | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        # Plain public GET endpoints beside /mcp (health checks, RFC 9728 metadata):
        # path -> (status, JSON body).
        self._probes = dict(probes or {})
        # The same, answered as Prometheus text (``/metrics``).
        self._text_probes = dict(text_probes or {})
        # Apps answering every path under a prefix ("/api/v1"); they authenticate themselves.
        self._mounts = tuple((prefix.encode(), app) for prefix, app in (mounts or {}).items())
        self._auth: HttpAuthenticator = authenticator or LocalAuth(local_principal())
        self._factory = connection_factory
        self._clock = clock
        self._decoder = MessageDecoder(max_bytes=self.settings.limits.max_body)
        self._sessions = SessionTable(
            max_sessions=self.settings.sessions.max_sessions,
            max_per_principal=self.settings.sessions.max_sessions_per_principal,
        )
        self._replay = ReplayBudget(  # DS-4: what sessions keep for Last-Event-ID
            per_session=self.settings.sessions.replay_bytes,
            total=self.settings.sessions.replay_bytes_total,
            ttl=self.settings.sessions.replay_ttl,
            clock=clock,
        )
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
        send = r.with_nosniff(send)  # every answer, mounted apps' too
        headers = r.Headers(scope)
        if not host_allowed(headers.get("host"), self._hosts):
            await r.plain(send, 421, b"Misdirected Request")
            return
        if not origin_allowed(headers.get("origin"), self._origins):
            await r.json_error(send, 403, None, -32600, "Forbidden: origin not allowed")
            return
        raw_path = scope.get("raw_path", scope["path"].encode())
        path = raw_path.decode("latin-1")
        probe = self._probes.get(path)
        if probe is not None and scope["method"] == "GET":
            status, body = probe()
            await r.send_json(send, status, body)
            return
        text_probe = self._text_probes.get(path)
        if text_probe is not None and scope["method"] == "GET":
            status, body = text_probe()
            await r.send_text(send, status, body, PROMETHEUS_TEXT)
            return
        for prefix, app in self._mounts:
            if raw_path == prefix or raw_path.startswith(prefix + b"/"):
                await app(scope, receive, send)
                return
        if raw_path != self.settings.path.encode():
            await r.plain(send, 404, b"Not Found")
            return
        principal = await self._authenticate(headers, scope, send)
        if principal is None:
            return
        method = scope["method"]
        if method == "POST":
            await self._post(principal, headers, receive, send)
        elif method == "GET":
            await self._get(principal, headers, receive, send)
        elif method == "DELETE":
            await self._delete(principal, headers, send)
        else:
            await r.plain(send, 405, b"Method Not Allowed", (("allow", "GET, POST, DELETE"),))

    async def _authenticate(self, headers: r.Headers, scope: Scope, send: Send) -> Principal | None:
        """The caller, or None once a 401/429 went out (AU-1, AU-2, AU-8). The body is never
        read for a refused request, so the connection closes after the answer (TR-9)."""
        try:
            return await self._auth.authenticate(headers, scope)
        except Unauthenticated as refused:
            if refused.credential_id is not None and refused.reason in LAPSED:
                # SE-3: the right secret of a revoked or expired key. Never on a wrong
                # secret: a key id is not secret, and guessing must not end someone's session.
                self._end_sessions_of(refused.credential_id)
            retry = getattr(refused, "retry_after", None)
            # Seconds as the throttle computes them (a float); Retry-After wants whole ones.
            if isinstance(retry, int | float) and not isinstance(retry, bool):
                extra = (("retry-after", str(max(1, math.ceil(retry)))), ("connection", "close"))
                await r.plain(send, 429, b"", extra)
                return None
            challenge = self._auth.challenge(error="invalid_token" if refused.presented else None)
            extra = (("www-authenticate", challenge), ("connection", "close"))
            await r.plain(send, 401, b"", extra)
            return None

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

    async def _post(
        self, principal: Principal, headers: r.Headers, receive: Receive, send: Send
    ) -> None:
        content_type = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            await r.json_error(
                send, 415, None, -32600, "Unsupported Media Type: use application/json"
            )
            return
        if not accepts(headers.get("accept"), "application/json", "text/event-stream"):
            await r.json_error(
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
            await r.json_error(send, 400, None, exc.code, exc.wire_message)
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
            await self._post_modern(
                message, headers, header_version, receive, send, principal=principal
            )
        else:
            await self._post_legacy(
                message, headers, header_version, receive, send, principal=principal
            )

    async def _read_body(self, headers: r.Headers, receive: Receive, send: Send) -> bytes | None:
        limit = self.settings.limits.max_body
        declared = headers.get("content-length")
        if declared is not None and (
            not (declared.isascii() and declared.isdigit()) or int(declared) > limit
        ):
            await r.json_error(send, 413, None, -32600, "Request body too large", close=True)
            return None
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.settings.limits.body_timeout) as deadline:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await r.json_error(
                        send, 413, None, -32600, "Request body too large", close=True
                    )
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if deadline.cancelled_caught:
            await r.json_error(send, 408, None, -32600, "Request body timeout", close=True)
            return None
        return b"".join(chunks)

    async def _post_modern(
        self,
        message: Message,
        headers: r.Headers,
        header_version: str | None,
        receive: Receive,
        send: Send,
        *,
        principal: Principal,
    ) -> None:
        if not isinstance(message, Request):
            await r.plain(send, 202, b"")  # notifications and stray responses: nothing to say
            return
        try:
            validate_modern(message, headers, header_version)
        except BastionError as exc:
            answer = to_error_response(exc, message.id)
            await r.send_json(send, r.status_for(answer), encode(answer))
            return
        connection = self._factory(principal, None)
        responder = r.StatelessResponder(send, message.id)

        async def sink(msg: Message, related: RequestId | None) -> None:
            await responder.write(msg)

        peer = Peer(sink, connection, on_notification=connection.on_notification)
        # The client leaving cancels the work: on 2026-07-28 nobody can resume the answer.
        with r.cancelled_on_disconnect(receive):
            await responder.finish(await peer.serve(message))

    async def _post_legacy(
        self,
        message: Message,
        headers: r.Headers,
        header_version: str | None,
        receive: Receive,
        send: Send,
        *,
        principal: Principal,
    ) -> None:
        if header_version is not None and header_version not in SUPPORTED_VERSIONS:
            await r.json_error(
                send, 400, _id_of(message), -32600, "Bad Request: unsupported MCP-Protocol-Version"
            )
            return
        session_id = headers.get("mcp-session-id")
        if isinstance(message, Request) and message.method == "initialize":
            if self._owns(session_id, principal):
                await r.json_error(send, 400, message.id, -32600, "Session already initialized")
                return
            await self._initialize(principal, message, send)
            return
        session = self._lookup(session_id, principal)
        if session is None:
            if session_id is None:
                await r.json_error(
                    send, 400, _id_of(message), -32600, "Bad Request: missing Mcp-Session-Id"
                )
            else:
                await r.json_error(send, 404, _id_of(message), -32001, "Session not found")
            return
        if not isinstance(message, Request):
            await session.peer.dispatch(message)
            await r.plain(send, 202, b"")
            return
        await self._serve_in_session(session, message, receive, send)

    async def _initialize(self, principal: Principal, message: Request, send: Send) -> None:
        self._expire()
        session_id = new_session_id()
        connection = self._factory(principal, session_id)
        session = HttpSession(session_id, connection, self._clock(), principal, self._replay)
        answer = await session.peer.serve(message)
        if not isinstance(answer, Response):
            session.close()
            await r.send_json(send, 200 if answer else 202, encode(answer) if answer else b"")
            return
        result = answer.result if isinstance(answer.result, dict) else {}
        session.version = str(result.get("protocolVersion", LEGACY_VERSIONS[0]))
        self._sessions.add(session)  # may end others, fairly (DS-3): see SessionTable
        await r.send_json(send, 200, encode(answer), (("mcp-session-id", session.id),))

    async def _serve_in_session(
        self, session: HttpSession, message: Request, receive: Receive, send: Send
    ) -> None:
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

    # -- GET and DELETE (2025-11-25 only) ------------------------------------------------

    async def _get(
        self, principal: Principal, headers: r.Headers, receive: Receive, send: Send
    ) -> None:
        if headers.get("mcp-protocol-version") in MODERN_VERSIONS:
            await r.plain(send, 405, b"Method Not Allowed", (("allow", "POST"),))
            return
        if not accepts(headers.get("accept"), "text/event-stream"):
            await r.json_error(send, 406, None, -32600, "Not Acceptable: accept text/event-stream")
            return
        session_id = headers.get("mcp-session-id")
        session = self._lookup(session_id, principal)
        if session is None:
            status = 400 if session_id is None else 404
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

    async def _delete(self, principal: Principal, headers: r.Headers, send: Send) -> None:
        if headers.get("mcp-protocol-version") in MODERN_VERSIONS:
            await r.plain(send, 405, b"Method Not Allowed", (("allow", "POST"),))
            return
        session_id = headers.get("mcp-session-id")
        session = self._lookup(session_id, principal)
        if session is None:
            status = 400 if session_id is None else 404
            await r.plain(send, status, b"")
            return
        del self._sessions[session.id]
        session.close()
        await r.plain(send, 200, b"")

    # -- sessions --------------------------------------------------------------------------

    def _lookup(self, session_id: str | None, principal: Principal) -> HttpSession | None:
        """The caller's session, or None: unknown, expired, or someone else's (SE-2, SE-3).
        A session whose owner's roles changed since it began is ended."""
        if session_id is None or len(session_id) > MAX_SESSION_ID:
            return None
        self._expire()
        session = self._sessions.get(session_id)
        if session is None or session.principal.binding != principal.binding:
            return None
        now = self._clock()
        if (
            session.principal.roles != principal.roles
            or now - session.created > self.settings.sessions.max_lifetime
        ):
            self._end(session)
            return None
        session.last_seen = now
        # The credential presented now is the owner's freshest (a refreshed JWT, same subject
        # and roles): its expiry and claims are the ones the session lives by (SE-3).
        session.principal = principal
        self._sessions.move_to_end(session_id)
        return session

    def _owns(self, session_id: str | None, principal: Principal) -> bool:
        """Whether ``session_id`` names a live session of this caller; someone else's is
        not told apart from an unknown one (SE-2). Touches nothing."""
        session = self._sessions.get(session_id) if session_id is not None else None
        return session is not None and session.principal.binding == principal.binding

    def _expire(self) -> None:
        self._replay.expire()
        now = self._clock()
        while self._sessions:
            sid, oldest = next(iter(self._sessions.items()))
            if now - oldest.last_seen < self.settings.sessions.idle_timeout:
                return
            del self._sessions[sid]
            oldest.close()

    def _end(self, session: HttpSession) -> None:
        self._sessions.pop(session.id, None)
        session.close()

    def expire_replay(self) -> None:
        """Drop the replay of streams finished more than ``replay_ttl`` ago (DS-4); requests
        do it too, and the gateway calls it every second so an idle one releases it."""
        self._replay.expire()

    def end_sessions_where(self, ended: Callable[[Principal], bool]) -> int:
        """End every session whose owner ``ended`` says is no longer valid (a revoked or
        expired credential, SE-3), open streams included; returns how many ended."""
        doomed = [s for s in self._sessions.values() if ended(s.principal)]
        for session in doomed:
            self._end(session)
        return len(doomed)

    def _end_sessions_of(self, credential_id: str) -> None:
        for session in [
            s for s in self._sessions.values() if s.principal.credential_id == credential_id
        ]:
            self._end(session)


# -- helpers ----------------------------------------------------------------------------


def _id_of(message: Message) -> RequestId | None:
    return message.id if isinstance(message, Request) else None
