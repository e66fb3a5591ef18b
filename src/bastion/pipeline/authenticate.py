"""The authenticate stage of the HTTP face (AU-1, AU-2, AU-4, AU-8, AD-1).

It runs in the transport, before the body is read, because only the transport can answer 401
with ``WWW-Authenticate`` (or 429 for a throttled address). Credentials come from the
``Authorization`` header and the TLS-verified client certificate only, never from the query
string (AU-4). Every refusal is audited (kind ``authentication``), with the credential id
when one was recognised, never the credential, and the request's path with any secret in it
masked (AD-3). Two kinds of refusal come in floods and are counted per address by the audit
log's ``refused`` (the first of each second written, the others summed in one summary record;
DS-3, DS-4): those of an address already over its failed attempts budget (429), and those of
requests without any credential (401), which that budget does not count: they guess nothing.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Final

import anyio

from bastion._types import Clock
from bastion.audit.record import AuditRecord
from bastion.audit.redact import redact_text
from bastion.auth.authenticator import Authenticator
from bastion.auth.metadata import metadata_url, www_authenticate
from bastion.auth.principal import Principal, Unauthenticated
from bastion.pipeline.audit_stage import AuditSink
from bastion.transport._http_asgi import Headers, Scope

__all__ = ["HttpAuthentication", "client_cert_of", "peer_of"]

MAX_CERT_PEM: Final = 64 * 1024
THROTTLED: Final = "throttled"  # the reason of a ``Throttled`` refusal
NO_CREDENTIAL: Final = "missing"  # the tally of the refusals of requests without a credential


class HttpAuthentication:
    """An ``HttpAuthenticator`` over the configured ``Authenticator``."""

    def __init__(
        self,
        authenticator: Authenticator,
        resource: str,
        audit: Callable[[], AuditSink | None],
        *,
        wall_clock: Clock = time.time,
    ) -> None:
        self._auth = authenticator
        self._metadata = metadata_url(resource)
        self._audit = audit
        self._wall = wall_clock

    async def authenticate(self, headers: Headers, scope: Scope) -> Principal:
        peer = peer_of(scope)
        try:
            return await self._auth.authenticate(
                headers.get("authorization"),
                client_cert=client_cert_of(scope),
                peer=peer,
                now=self._wall(),
            )
        except Unauthenticated as refused:
            await self._record(refused, peer, scope)
            raise

    def challenge(self, *, error: str | None) -> str:
        if error == "invalid_token":
            return www_authenticate(self._metadata, error="invalid_token")
        return www_authenticate(self._metadata)

    async def _record(self, refused: Unauthenticated, peer: str | None, scope: Scope) -> None:
        sink = self._audit()
        if sink is None:
            return
        record = AuditRecord(
            time=self._wall(),
            kind="authentication",
            credential_id=refused.credential_id,
            # Redacted before the cut (AD-3): a key in the path cut short would no longer
            # match its pattern, and its head would be stored as sent.
            method=redact_text(f"{scope.get('method', '')} {scope.get('path', '')}")[:128],
            decision="deny",
            outcome=refused.reason,
            detail={"peer": peer} if peer else {},
        )
        with anyio.CancelScope(shield=True):
            if refused.reason == THROTTLED and peer is not None:
                await sink.refused((peer, THROTTLED), record)
            elif not refused.presented:
                await sink.refused((peer or "-", NO_CREDENTIAL), record)
            else:
                await sink.record(record)


def peer_of(scope: Scope) -> str | None:
    """The client's address, which failed attempts are counted against (AU-8)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def client_cert_of(scope: Scope) -> bytes | None:
    """The DER leaf of the client's chain, from the ASGI TLS extension (PEM)."""
    tls = scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain or not isinstance(chain[0], str) or len(chain[0]) > MAX_CERT_PEM:
        return None
    try:
        return ssl.PEM_cert_to_DER_cert(chain[0])
    except ValueError:
        return None
