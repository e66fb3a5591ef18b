"""The authenticated caller (``Principal``) and the one refusal authentication raises.

Every authenticator (API keys, JWT, mTLS, the local user of stdio and of an unauthenticated
loopback gateway, break-glass) produces the same struct, so policy, rate limits, sessions and
audit never care how a caller proved who it is. ``credential_id`` names the credential (an API
key id, a JWT issuer and subject, a certificate fingerprint) and is never the secret itself:
it is what sessions are bound to (SE-2) and what audit records carry (AD-1).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from bastion._types import JSONValue

__all__ = ["AuthMethod", "Principal", "Unauthenticated"]

AuthMethod = Literal["local", "api-key", "jwt", "mtls", "break-glass"]


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling. ``roles`` come from the credential (key record, mapped claims,
    service account); the policy may bind more. Times are wall-clock epoch seconds."""

    id: str
    credential_id: str
    method: AuthMethod
    roles: tuple[str, ...] = ()
    unsure_roles: tuple[str, ...] = ()
    """Roles the credential names in a shape that cannot tell whether it grants them (the
    words of a JWT's string ``roles_claim``): deny rules count them, allow rules and the
    admin API never do (AZ-1, AZ-6)."""
    claims: dict[str, JSONValue] = msgspec.field(default_factory=dict)
    authenticated_at: float | None = None
    """When the person behind the credential last authenticated (a JWT's ``auth_time``, else
    its ``iat``); ``None`` for credentials that carry no such time (API keys, break-glass,
    mTLS service accounts), which therefore never satisfy a ``step_up`` (AZ-5)."""
    expires_at: float | None = None
    """When the credential stops being accepted (a JWT's ``exp`` plus the leeway; a key's
    expiry or the end of its rotation overlap); None: it does not expire."""
    client_certificate: str | None = None
    """The credential id (``mtls:sha256:...``) of the client certificate a bearer token came
    over, when a client CRL watches certificates: what this principal holds ends once that
    certificate would be refused, as a certificate's own principal's does (AU-1)."""

    @property
    def binding(self) -> tuple[str, str]:
        """What a session is bound to (SE-2): the principal and the credential that made it."""
        return (self.id, self.credential_id)


class Unauthenticated(Exception):
    """No usable credential. ``presented`` is False when none was sent at all (401 without
    ``error=``), True when one was sent but refused (401 ``error="invalid_token"``).
    ``reason`` is for logs and audit only, never for the wire."""

    def __init__(self, reason: str, *, presented: bool, credential_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.presented = presented
        self.credential_id = credential_id
