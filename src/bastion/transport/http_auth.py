"""How the Streamable HTTP face learns who is calling (AU-1, AU-2).

The face asks an ``HttpAuthenticator`` once per request, before any MCP work and before the
body is read. ``LocalAuth`` is the authenticator of a gateway with no credentials configured:
every request is the configured local user. It is allowed only on a loopback address (TR-3),
which the command line enforces.
"""

from __future__ import annotations

from typing import Protocol

from bastion.auth.principal import Principal
from bastion.transport._http_asgi import Headers, Scope

__all__ = ["HttpAuthenticator", "LocalAuth"]


class HttpAuthenticator(Protocol):
    async def authenticate(self, headers: Headers, scope: Scope) -> Principal:
        """The caller of this request.

        Raises:
            Unauthenticated: no usable credential (401); with a ``retry_after`` attribute
                when the client is throttled (429).
        """
        ...

    def challenge(self, *, error: str | None) -> str:
        """The ``WWW-Authenticate`` value of a 401 (``error="invalid_token"``) or 403."""
        ...


class LocalAuth:
    """Every request is ``principal`` (the local user of an unauthenticated loopback face)."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def authenticate(self, headers: Headers, scope: Scope) -> Principal:
        return self.principal

    def challenge(self, *, error: str | None) -> str:
        return "Bearer"
