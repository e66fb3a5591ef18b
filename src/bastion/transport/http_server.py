"""Streamable HTTP, server face: an ASGI app for ``/mcp``, both protocol eras.

Every request first passes the guards (Host 421, Origin 403, exact path 404, authentication
401/429, method 405, Content-Type 415, Accept 406, body cap 413, body read deadline 408). Public
probes (health, RFC 9728 metadata) answer before authentication; mounted apps (the admin API)
answer for their prefix and authenticate themselves. Every response says
``X-Content-Type-Options: nosniff``. Then:

* 2026-07-28 (the body's ``_meta`` names the version): stateless. ``MCP-Protocol-Version``,
  ``Mcp-Method`` and ``Mcp-Name`` must agree with the body (400 / -32020). One POST, one
  answer, as JSON, or as SSE when the server sends notifications (progress, logs) first.
* 2025-11-25: ``initialize`` opens a session (``Mcp-Session-Id``); later POSTs must carry it (400
  missing, 404 unknown). A session belongs to the principal and credential that opened it
  (SE-2): anyone else is told it is unknown (404; an ``initialize`` naming it opens a new
  session, as with an unknown id), and ``on_foreign_session`` hears of it. Answers stream as
  SSE with event ids, GET opens the standalone stream, ``Last-Event-ID`` resumes a stream,
  DELETE ends the session; GET and DELETE naming 2026-07-28 are 405.
  ``MCP-Protocol-Version`` is one we speak or absent (400 otherwise); a body naming
  2026-07-28 under a 2025 header is 400 / -32020.
  These handlers are ``http_legacy``'s; the sessions' lifecycle (lookup, expiry, ending)
  is ``http_session_registry``'s.
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
from bastion.protocol.jsonrpc import Message, Notification, Request, RequestId
from bastion.protocol.meta import is_modern_request
from bastion.protocol.versions import LEGACY_VERSIONS
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
from bastion.transport.http_legacy import ConnectionFactory, ForeignSession, LegacyFace
from bastion.transport.http_mirror import validate_modern
from bastion.transport.http_session_registry import SessionRegistry
from bastion.transport.settings import HttpLimits, SessionSettings

__all__ = ["ASGIApp", "HttpSettings", "McpConnection", "Probe", "StreamableHttpApp"]

logger = logging.getLogger(__name__)

Probe = Callable[[], tuple[int, bytes]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

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
        on_foreign_session: ForeignSession | None = None,
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
        self._decoder = MessageDecoder(max_bytes=self.settings.limits.max_body)
        self._sessions = SessionRegistry(self.settings.sessions, clock)  # 2025-11-25
        self._legacy = LegacyFace(
            connection_factory,
            self._sessions,
            path=self.settings.path,
            on_foreign_session=on_foreign_session,
        )
        self.bound_port = self.settings.port
        self._hosts = default_allowed_hosts(self.settings.port, self.settings.allowed_hosts)
        self._origins = default_allowed_origins(self.settings.port, self.settings.allowed_origins)

    def set_port(self, port: int) -> None:
        """Called once the socket is bound (port 0 picks one): the guards name the real port."""
        self.bound_port = port
        self._hosts = default_allowed_hosts(port, self.settings.allowed_hosts)
        self._origins = default_allowed_origins(port, self.settings.allowed_origins)

    # -- 2025-11-25 sessions (``SessionRegistry``) ---------------------------------------

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def close_sessions(self) -> None:
        self._sessions.close_all()

    def expire_replay(self) -> None:
        """Drop the replay of streams finished more than ``replay_ttl`` ago (DS-4); requests
        do it too, and the gateway calls it every second so an idle one releases it."""
        self._sessions.expire_replay()

    def end_sessions_where(self, ended: Callable[[Principal], bool]) -> int:
        """End every session whose owner ``ended`` says is no longer valid (a revoked or
        expired credential, SE-3), open streams included; returns how many ended."""
        return self._sessions.end_where(ended)

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
            await self._legacy.get(principal, headers, receive, send)
        elif method == "DELETE":
            await self._legacy.delete(principal, headers, send)
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
                self._sessions.end_of(refused.credential_id)
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
            await self._legacy.post(
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
