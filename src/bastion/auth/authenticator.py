"""One entry point for authentication: the ``Authorization`` header value (AU-4: nothing
else, never a query string) and the TLS-verified client certificate become a ``Principal``.

``Bearer bst_...`` is an API key, any other bearer token a JWT (when OIDC is configured);
with no header, a client certificate maps to a service account. With a client CRL, a client
certificate is checked before anything else, so a revoked one (or one of unknown status) is
refused whatever bearer token comes with it (AU-1), and the principal a token proves over it
names it (``Principal.client_certificate``) for the watcher. The header is size-capped
before it is parsed (AU-8). Failed attempts are counted per client address, and a failed
attempt from an address over its budget is refused with ``Throttled`` (429) instead of
``Unauthenticated``; a valid credential is served whatever its address did, so bad guesses
from one client never lock out the others sharing its address (DS-3). Checking the
credential first costs a throttled guesser no more than a 401 would (a key lookup, or a JWT
signature check with JWKS refetches already rate-limited), and guessing gains nothing:
keys carry 256 random bits and tokens are signed.
Break-glass keys work only while ``break_glass.enabled`` and are logged at WARNING per use.
Client certificates are checked against the client CRL, which ``refresh`` re-reads, and
``lapsed`` says which certificates it accepted would now be refused. ``run`` refreshes the
JWKS in the background, so a cached key never waits for the IdP.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus

from bastion._types import Clock
from bastion.auth.jwt import JwtValidator
from bastion.auth.keys import KEY_PREFIX, ApiKey, KeyStore
from bastion.auth.mtls import MtlsMapper
from bastion.auth.principal import Principal, Unauthenticated
from bastion.auth.settings import AuthSettings
from bastion.auth.throttle import FailureThrottle

__all__ = ["Authenticator", "Throttled"]

logger = logging.getLogger(__name__)

# RFC 6750 s2.1 b64token: the only characters a bearer credential may have.
_TOKEN68: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class Throttled(Unauthenticated):
    """Too many failed attempts from this address: answer 429 with ``Retry-After``
    (``retry_after`` seconds, rounded up), not 401."""

    def __init__(self, retry_after: float, *, presented: bool) -> None:
        super().__init__("throttled", presented=presented)
        self.retry_after = retry_after


class Authenticator:
    """Built once at startup; ``authenticate`` is called for every request."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        keys: KeyStore | None = None,
        jwt: JwtValidator | None = None,
        throttle: FailureThrottle | None = None,
        mtls: MtlsMapper | None = None,
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._jwt = jwt
        self._mtls = mtls or MtlsMapper(settings.mtls)
        self._throttle = throttle

    @classmethod
    def from_settings(
        cls,
        settings: AuthSettings,
        *,
        default_keys_db: Path,
        clock: Clock = time.monotonic,
        client_ca: Path | None = None,
        client_crl: Path | None = None,
    ) -> Authenticator:
        """Open the key store (``api_keys.db``, else ``default_keys_db``) if API keys are
        enabled, set up the JWT validator if ``oidc`` is configured, and map client
        certificates against the ``client_ca`` bundle and ``client_crl`` (TLS settings).

        Raises:
            KeyStoreError: the key database or its pepper file is unusable.
            MtlsConfigError: the mTLS accounts do not fit ``client_ca``.
        """
        mtls = MtlsMapper.from_files(
            settings.mtls, client_ca=client_ca, client_crl=client_crl, now=time.time()
        )
        keys = None
        if settings.api_keys.enabled:
            keys = KeyStore(Path(settings.api_keys.db) if settings.api_keys.db else default_keys_db)
        jwt = None
        if settings.oidc is not None:
            jwt = JwtValidator.from_settings(settings.oidc, audience=settings.audience, clock=clock)
        failed = settings.failed_auth
        throttle = FailureThrottle(
            per_minute=failed.per_address_per_minute,
            max_addresses=failed.max_addresses,
            clock=clock,
        )
        return cls(settings, keys=keys, jwt=jwt, throttle=throttle, mtls=mtls)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Background work beside the requests (JWKS refreshes); until cancelled."""
        if self._jwt is None:
            task_status.started()
            return
        await self._jwt.run(task_status=task_status)

    async def refresh(self, now: float) -> None:
        """Re-read what may change on disk while running: the client CRL (once a second),
        parsed in a worker thread."""
        await self._mtls.refresh_in_thread(now)

    def lapsed(self, credential: str, now: float) -> bool:
        """Whether the client certificate of ``credential`` would now be refused (revoked,
        of unknown revocation status, or expired: ``MtlsMapper.lapsed``), for the watcher
        that ends what it holds; False for API keys and JWTs, which it checks itself."""
        return self._mtls.lapsed(credential, now)

    def revocation_status(self, now: float) -> str | None:
        """The client CRL's status for ``/readyz`` (None when none is configured)."""
        return self._mtls.revocation_status(now)

    async def aclose(self) -> None:
        if self._jwt is not None:
            await self._jwt.aclose()
        if self._keys is not None:
            self._keys.close()

    async def authenticate(
        self,
        authorization: str | None,
        *,
        client_cert: bytes | None,
        peer: str | None,
        now: float,
    ) -> Principal:
        """Who sent a request. ``authorization`` is the raw header value (None if absent),
        ``client_cert`` the DER leaf the TLS layer verified, ``peer`` the client address
        (for throttling), ``now`` wall-clock epoch seconds.

        Raises:
            Throttled: refused, and ``peer`` had already failed too often recently.
            Unauthenticated: no credential (``presented=False``) or a refused one.
        """
        try:
            return await self._authenticate(authorization, client_cert, peer, now)
        except Unauthenticated as exc:
            if peer is None or self._throttle is None:
                raise
            over_budget = self._throttle.retry_after(peer) > 0
            if exc.presented:
                self._throttle.failed(peer)
            if over_budget:
                raise Throttled(self._throttle.retry_after(peer), presented=exc.presented) from exc
            raise

    async def _authenticate(
        self, authorization: str | None, client_cert: bytes | None, peer: str | None, now: float
    ) -> Principal:
        certificate = None if client_cert is None else self._mtls.screen(client_cert, now)
        if authorization is None:
            if client_cert is not None and self._mtls.configured:
                return self._mtls.authenticate(client_cert, now=now)
            raise Unauthenticated("missing", presented=False)
        principal = await self._bearer(authorization, peer, now)
        if certificate is None:
            return principal
        return msgspec.structs.replace(principal, client_certificate=certificate)

    async def _bearer(self, authorization: str, peer: str | None, now: float) -> Principal:
        """The principal an ``Authorization`` header value proves."""
        if len(authorization) > self._settings.max_credential_bytes:
            raise Unauthenticated("credential-too-large", presented=True)
        scheme, _, token = authorization.strip(" ").partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated("unsupported-scheme", presented=True)
        token = token.strip(" ")
        if not _TOKEN68.fullmatch(token):
            raise Unauthenticated("malformed", presented=True)
        if token.startswith(KEY_PREFIX):
            if self._keys is None:
                raise Unauthenticated("api-keys-disabled", presented=True)
            glass = self._settings.break_glass.enabled
            return self._api_key(self._keys.verify(token, now, break_glass=glass), peer, now)
        if self._jwt is None:
            raise Unauthenticated("jwt-not-configured", presented=True)
        return await self._jwt.validate(token, now)

    def _api_key(self, key: ApiKey, peer: str | None, now: float) -> Principal:
        credential = f"apikey:{key.id}"
        if key.break_glass:
            glass = self._settings.break_glass
            if not glass.enabled:
                raise Unauthenticated(
                    "break-glass-disabled", presented=True, credential_id=credential
                )
            lifetime = (key.expires or float("inf")) - key.created
            if lifetime > glass.max_ttl_seconds:
                raise Unauthenticated("break-glass-ttl", presented=True, credential_id=credential)
            logger.warning("break-glass key %s (%s) used from %s", key.id, key.name, peer or "-")
        return Principal(
            id=f"apikey:{key.name}",
            credential_id=credential,
            method="break-glass" if key.break_glass else "api-key",
            roles=key.roles,
            expires_at=key.ends_at,
        )
