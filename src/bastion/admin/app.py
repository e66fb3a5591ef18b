"""``AdminApi``: the admin REST API under ``/api/v1/`` as a plain ASGI app (AZ-6, AD-4).

Order of work for every request, and why:

1. ``Content-Length`` over the body cap → 413 (DS-1: the cap holds before authentication).
2. ``GET /api/v1/openapi.json`` is public (AU-1's documented public path); nothing else is.
3. Authenticate (401 + ``WWW-Authenticate``, no body), charge the principal's rate limit
   (``admit``: 429 + ``Retry-After``, DS-3; before authorisation, so a non-admin's flood of
   403s is limited too) and authorise by exact (method, path) (403, no body) *before*
   routing or reading the body, so unknown paths, wrong methods and garbage bodies from
   anyone but an admin get 401/403, never 404/405/400 (AZ-6).
4. Route (404, 405 + ``Allow``), read the bounded body (413, 408), run the handler.

Every request but the public document (reads, writes, refusals) is reported to
``audit(principal, action, target, outcome, detail)``; ``detail`` is what the handler said
of a write besides its target (a key's roles, expiry and break-glass flag), empty for a
read or a refusal, but for the client's address (``peer``) when no principal is known.
Errors on the wire are fixed, client-safe texts; anything unexpected is a generic 500 with a
log entry carrying an id.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from bastion._types import JSONObject
from bastion.admin import _http as h
from bastion.admin.errors import AdminError
from bastion.admin.handlers import HANDLERS
from bastion.admin.openapi import openapi_bytes
from bastion.admin.routes import OPENAPI_PATH, PREFIX, Route, Router
from bastion.audit.redact import redact_text
from bastion.auth.principal import Principal, Unauthenticated
from bastion.auth.roles import ADMIN_ROLE, AUDITOR_ROLE  # a JWT's only by oidc.grants
from bastion.transport._http_asgi import Headers, Receive, Scope, Send

if TYPE_CHECKING:
    from bastion.admin.backends import AdminBackends

__all__ = [
    "ADMIN_ROLE",
    "AUDITOR_ROLE",
    "OPENAPI_PATH",
    "RATE_LIMITED",
    "AdminApi",
    "AdminEvent",
    "Admit",
    "Authenticate",
    "Challenge",
    "admit_all",
    "bearer_challenge",
]

logger = logging.getLogger(__name__)

MAX_TARGET: Final = 256  # audit names are capped at 512; a path is attacker-controlled
RATE_LIMITED: Final = "rate_limited"  # the outcome of a request over the principal's limit

Authenticate = Callable[[str | None, Scope], Awaitable[Principal]]
"""``(Authorization header or None, the request's ASGI scope) -> Principal``; raises
``Unauthenticated``. The scope carries the client's address (failed attempts are throttled
per address, AU-8) and its TLS client certificate (mTLS service accounts)."""
AdminEvent = Callable[[Principal | None, str, str | None, str, JSONObject], Awaitable[None]]
"""``(principal, action, target, outcome, detail)``: one admin action or refusal, for the
audit log."""
Admit = Callable[[Principal], int]
"""``principal -> seconds``: 0 admits one request of ``principal`` (taking a token from its
bucket); more refuses it, over its rate limit, for that many seconds (DS-3)."""
Challenge = Callable[[str | None], str]
"""``WWW-Authenticate`` value for an OAuth ``error`` (None, invalid_token, insufficient_scope)."""


def admit_all(principal: Principal) -> int:
    return 0


def bearer_challenge(error: str | None) -> str:
    return "Bearer" if error is None else f'Bearer error="{error}"'


async def _ignore(
    principal: Principal | None, action: str, target: str | None, outcome: str, detail: JSONObject
) -> None:
    return None


class AdminApi:
    """The admin API. ``authenticate`` is the gateway's authenticator; ``audit`` receives
    every read, write and refusal; ``admit`` charges a principal's rate limit; ``challenge``
    builds ``WWW-Authenticate`` (AU-2 wants the ``resource_metadata`` URL there, which only
    the gateway knows)."""

    def __init__(
        self,
        authenticate: Authenticate,
        backends: AdminBackends,
        *,
        audit: AdminEvent = _ignore,
        admit: Admit = admit_all,
        challenge: Challenge = bearer_challenge,
        max_body: int = h.MAX_BODY,
        body_timeout: float = h.BODY_TIMEOUT_S,
    ) -> None:
        if max_body < 1 or body_timeout <= 0:
            raise ValueError("max_body and body_timeout must be positive")
        self._authenticate = authenticate
        self._backends = backends
        self._audit = audit
        self._admit = admit
        self._challenge = challenge
        self._max_body = max_body
        self._body_timeout = body_timeout
        self._router = Router()
        self._openapi = openapi_bytes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        await h.send_reply(send, await self._handle(scope, receive))

    async def _handle(self, scope: Scope, receive: Receive) -> h.Reply:
        method: str = scope["method"]
        # The raw path: what the client sent, so %2F or dot-segments match nothing.
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        headers = Headers(scope)
        if h.declared_too_large(headers, self._max_body):
            return h.TOO_LARGE
        access = self._router.access(method, path)
        if access == "public":
            return h.Reply(200, self._openapi, (), "application/json")
        try:
            principal = await self._authenticate(headers.get("authorization"), scope)
        except Unauthenticated as exc:
            peer: JSONObject = {"peer": str(scope["client"][0])} if scope.get("client") else {}
            retry = getattr(exc, "retry_after", None)
            if isinstance(retry, float | int):  # this address failed too often (AU-8)
                await self._refused(None, method, path, "throttled", peer)
                return h.Reply(429, headers=(("retry-after", str(max(1, math.ceil(retry)))),))
            await self._refused(None, method, path, "unauthenticated", peer)
            error = "invalid_token" if exc.presented else None
            return h.Reply(401, headers=(("www-authenticate", self._challenge(error)),))
        wait = self._admit(principal)
        if wait > 0:
            await self._refused(principal, method, path, RATE_LIMITED, {"limit": "principal"})
            return h.Reply(429, headers=(("retry-after", str(wait)),))
        allowed = {ADMIN_ROLE} if access == "admin" else {ADMIN_ROLE, AUDITOR_ROLE}
        if allowed.isdisjoint(principal.roles):
            await self._refused(principal, method, path, "forbidden")
            challenge = self._challenge("insufficient_scope")
            return h.Reply(403, headers=(("www-authenticate", challenge),))
        return await self._route(
            principal, scope, receive, method=method, path=path, headers=headers
        )

    async def _route(
        self,
        principal: Principal,
        scope: Scope,
        receive: Receive,
        *,
        method: str,
        path: str,
        headers: Headers,
    ) -> h.Reply:
        routes, params = self._router.match(path)
        route = next((r for r in routes if r.method == method), None)
        if route is None:
            if not routes:
                return h.error_reply(404, "not_found", "no such endpoint")
            allow = ", ".join(sorted({r.method for r in routes}))
            return h.error_reply(
                405, "method_not_allowed", "method not allowed", (("allow", allow),)
            )
        body = b""
        if route.body != "none":
            try:
                body = await h.read_body(receive, self._max_body, self._body_timeout)
            except h.BodyRefused as exc:
                reply = exc.reply or h.Reply(400)  # the client left: nobody reads this
                await self._report(route, principal, params, None, f"refused-{reply.status}")
                return reply
        request = h.Request(
            method=method,
            path=path,
            query=scope.get("query_string", b""),
            headers=headers,
            principal=principal,
            params=params,
            body=body,
        )
        try:
            reply, target = await HANDLERS[route.operation](self._backends, request)
        except AdminError as exc:
            await self._report(route, principal, params, None, exc.error)
            if exc.status >= 500:
                return self._internal(exc)
            return h.error_reply(exc.status, exc.error, exc.wire_message)
        except Exception as exc:
            await self._report(route, principal, params, None, "internal_error")
            return self._internal(exc)
        await self._report(route, principal, params, target, "ok", detail=request.audit_detail)
        return reply

    def _internal(self, exc: BaseException) -> h.Reply:
        incident = secrets.token_hex(6)
        logger.error("admin API error [%s]", incident, exc_info=exc)
        return h.error_reply(500, "internal_error", f"internal error (incident {incident})")

    async def _report(
        self,
        route: Route,
        principal: Principal,
        params: dict[str, str],
        target: str | None,
        outcome: str,
        *,
        detail: JSONObject | None = None,
    ) -> None:
        if route.action is not None:  # every route but the public OpenAPI document
            action_target = target or params.get("id")
            await self._audit(principal, route.action, action_target, outcome, detail or {})
        elif outcome != "ok":
            await self._audit(principal, route.operation, None, outcome, {})

    async def _refused(
        self,
        principal: Principal | None,
        method: str,
        path: str,
        outcome: str,
        detail: JSONObject | None = None,
    ) -> None:
        routes, _ = self._router.match(path)
        route = next((r for r in routes if r.method == method), None)
        action = route.action or route.operation if route else "unknown"
        target = f"{method} {path}" if path.startswith(PREFIX) else method
        # Redacted before the cut (AD-3): a key in the path cut short would no longer match
        # its pattern, and its head would be stored as sent.
        target = redact_text(target)[:MAX_TARGET]
        await self._audit(principal, action, target, outcome, detail or {})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
