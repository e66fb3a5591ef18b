"""JWT access tokens (AU-6): compact JWS, checked by our rules, not a library's defaults.

The algorithm must be in the configured allow-list (which cannot hold ``none`` or HMAC);
the key comes only from the configured JWKS, by ``kid`` (``jku``, ``x5u``, ``jwk`` and
``x5c`` are never read); a header or claims set that is not base64url JSON, including JSON
nested past the parser's limit (IN-2), is ``malformed``; any ``crit`` is refused, as we
implement no extension; ``exp`` is required; ``iss`` must equal the issuer exactly; ``aud``
must contain the audience; ``nbf`` and ``iat`` are honoured with the configured leeway.
The times (``exp``, ``nbf``, ``iat``, ``auth_time``) must be finite numbers within 2**53 of
zero, else the token is ``malformed`` (AU-2; so is an ``auth_time`` that is no number); an
``auth_time`` later than now (with the leeway) is refused, as it would count as a recent
authentication forever (AZ-5). A valid token becomes a ``Principal`` ``jwt:<iss>#<sub>``,
stable across token refreshes (sessions stay bound to it, SE-2).

Its roles are read at ``roles_claim`` as the policy's claim bindings read a claim
(``bastion._claims``): each string of a list is a role; a string is one role, whole (for
``scope``/``scp``, each item between ASCII spaces); its other words are *unsure* roles
(``Principal.unsure_roles``), which deny rules count and allow rules do not, since
``former platform-admins`` is not ``platform-admins`` (AZ-1). The reserved ``local``,
``admin`` and ``auditor`` are dropped; ``admin`` and ``auditor`` come only from ``grants``,
for a role the token holds for sure (``bastion.auth.roles``, AZ-6).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Final, TypeGuard

import anyio
import msgspec
from anyio.abc import TaskStatus

from bastion._claims import claim_at, claim_words, string_values
from bastion._types import Clock, JSONValue
from bastion.auth.jwk import b64url_decode
from bastion.auth.jwks import FileJwks, JwksCache, JwksSource, JwksUnavailable, UrlJwks
from bastion.auth.principal import Principal, Unauthenticated
from bastion.auth.roles import (
    ADMIN_API_ROLES,
    ADMIN_ROLE,
    AUDITOR_ROLE,
    RESERVED_ROLES,
    without_reserved,
)
from bastion.auth.settings import OidcSettings

__all__ = ["MAX_ROLES", "JwtValidator"]

MAX_ROLES: Final = 64
MAX_SUBJECT: Final = 256
MAX_TIME: Final = 2**53  # a time claim's magnitude: beyond it a float cannot hold every second
MAX_ROLE_LENGTH: Final = 128
_TYPES: Final = frozenset({"at+jwt", "application/at+jwt", "jwt"})
_NOT_FROM_TOKENS: Final = RESERVED_ROLES | ADMIN_API_ROLES  # admin ones only by ``grants``
_JSON: Final = msgspec.json.Decoder()
# Not base64url, not JSON, or nested past msgspec's own ~1000-level stop (IN-2): all malformed.
_UNDECODABLE: Final = (ValueError, msgspec.DecodeError, RecursionError)


class JwtValidator:
    """Validates bearer JWTs for one issuer and audience against one JWKS."""

    def __init__(self, settings: OidcSettings, *, audience: str, jwks: JwksCache) -> None:
        self._settings = settings
        self._audience = audience
        self._algorithms = frozenset(settings.algorithms)
        self._jwks = jwks
        grants = settings.grants
        self._grants = (
            (ADMIN_ROLE, frozenset(grants.admin)),
            (AUDITOR_ROLE, frozenset(grants.auditor)),
        )
        # Dropped from a token's roles; logged unless ``grants`` names it (a mapped role).
        self._unmapped = _NOT_FROM_TOKENS.difference(grants.admin, grants.auditor)
        self._warned: set[str] = set()  # roles already logged (at most three)

    @classmethod
    def from_settings(
        cls, settings: OidcSettings, *, audience: str, clock: Clock = time.monotonic
    ) -> JwtValidator:
        """A validator with the JWKS source the settings name (file or URL)."""
        source: JwksSource
        if settings.jwks_url is not None:
            source = UrlJwks(settings.jwks_url, ca_file=settings.ca_file)
        else:
            source = FileJwks(Path(settings.jwks_file or ""))
        cache = JwksCache(
            source,
            ttl=settings.jwks_ttl,
            refresh_interval=settings.jwks_refresh_interval,
            clock=clock,
        )
        return cls(settings, audience=audience, jwks=cache)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Refresh the JWKS in the background (``JwksCache.run``); until cancelled."""
        await self._jwks.run(task_status=task_status)

    async def aclose(self) -> None:
        await self._jwks.aclose()

    async def validate(self, token: str, now: float) -> Principal:
        """The principal ``token`` proves, at wall-clock time ``now``.

        Raises:
            Unauthenticated: ``presented=True``; ``reason`` says which rule failed
                (``malformed``, ``algorithm-not-allowed``, ``unknown-crit``, ``bad-typ``,
                ``unknown-kid``, ``bad-signature``, ``missing-exp``, ``expired``,
                ``not-yet-valid``, ``issued-in-future``, ``authenticated-in-future``,
                ``wrong-issuer``, ``wrong-audience``, ``missing-subject``, ``bad-subject``,
                ``jwks-unavailable``).
        """
        parts = token.split(".")
        if len(parts) != 3:  # five parts would be a JWE: not accepted
            raise _refuse("malformed")
        try:
            header = _JSON.decode(b64url_decode(parts[0]))
            signature = b64url_decode(parts[2])
        except _UNDECODABLE as exc:
            raise _refuse("malformed") from exc
        if not isinstance(header, dict):
            raise _refuse("malformed")
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise _refuse("algorithm-not-allowed")
        if "crit" in header:  # RFC 7515 s4.1.11: we understand no extension
            raise _refuse("unknown-crit")
        self._check_typ(header.get("typ"))
        if not isinstance(kid, str):
            raise _refuse("unknown-kid")
        try:
            key = await self._jwks.get(kid)
        except JwksUnavailable as exc:
            raise _refuse("jwks-unavailable") from exc
        if key is None:
            raise _refuse("unknown-kid")
        if not key.verify(alg, f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
            raise _refuse("bad-signature")
        try:
            claims = _JSON.decode(b64url_decode(parts[1]))
        except _UNDECODABLE as exc:
            raise _refuse("malformed") from exc
        if not isinstance(claims, dict):
            raise _refuse("malformed")
        return self._principal(claims, now)

    def _check_typ(self, typ: JSONValue) -> None:
        if typ is None:
            if self._settings.require_typ:
                raise _refuse("bad-typ")
            return
        if not isinstance(typ, str) or typ.lower() not in _TYPES:
            raise _refuse("bad-typ")

    def _principal(self, claims: dict[str, JSONValue], now: float) -> Principal:
        leeway = self._settings.leeway
        exp = claims.get("exp")
        if not _is_number(exp):
            raise _refuse("missing-exp")
        nbf, iat, auth_time = claims.get("nbf"), claims.get("iat"), claims.get("auth_time")
        if auth_time is not None and not _is_number(auth_time):
            raise _refuse("malformed")  # it would fall back to iat: a time the IdP did not say
        if not all(_is_time(t) for t in (exp, nbf, iat, auth_time) if _is_number(t)):
            raise _refuse("malformed")  # 10**400 or 1e308: no time a float holds (AU-2)
        if now >= exp + leeway:
            raise _refuse("expired")
        if nbf is not None and (not _is_number(nbf) or now + leeway < nbf):
            raise _refuse("not-yet-valid")
        if iat is not None and (not _is_number(iat) or iat > now + leeway):
            raise _refuse("issued-in-future")
        if _is_number(auth_time) and auth_time > now + leeway:
            raise _refuse("authenticated-in-future")  # else "recent" forever (AZ-5)
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss != self._settings.issuer:
            raise _refuse("wrong-issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self._audience not in [a for a in audiences if isinstance(a, str)]:
            raise _refuse("wrong-audience")
        sub = claims.get(self._settings.subject_claim)
        if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUBJECT:
            raise _refuse("missing-subject")
        if not sub.isprintable():  # line breaks, escapes: it is shown in logs and terminals
            raise _refuse("bad-subject")
        principal_id = f"jwt:{iss}#{sub}"
        strong = auth_time if _is_number(auth_time) else iat if _is_number(iat) else None
        held, unsure = _roles(claims, self._settings.roles_claim)
        return Principal(
            id=principal_id,
            credential_id=principal_id,
            method="jwt",
            roles=self._gateway_roles(held),
            unsure_roles=tuple(r for r in unsure if r not in _NOT_FROM_TOKENS),
            claims=claims,
            authenticated_at=None if strong is None else float(strong),
            # When the token stops being accepted: its exp plus the leeway, so sessions and
            # streams opened with it are not ended before a request with it would be refused.
            expires_at=float(exp) + leeway,
        )

    def _gateway_roles(self, roles: tuple[str, ...]) -> tuple[str, ...]:
        """The token's roles (those it holds for sure) less the reserved ones, plus the
        admin API roles ``grants`` gives for them (``bastion.auth.roles``)."""
        source = f"a JWT of {self._settings.issuer}"
        kept = without_reserved(roles, self._unmapped, source=source, warned=self._warned)
        kept = tuple(r for r in kept if r not in _NOT_FROM_TOKENS)
        return kept + tuple(role for role, by in self._grants if not by.isdisjoint(roles))


def _refuse(reason: str) -> Unauthenticated:
    return Unauthenticated(reason, presented=True)


def _is_number(value: JSONValue) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_time(value: float) -> bool:
    """Whether a numeric time claim is one a float holds to the second (``MAX_TIME``)."""
    finite = isinstance(value, int) or math.isfinite(value)  # an int: exact, however large
    return finite and -MAX_TIME < value < MAX_TIME


def _roles(claims: dict[str, JSONValue], path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The roles at a dotted claim path, held for sure and unsure, read as the policy's
    claim bindings read it (``bastion._claims``): each string of a list is held; a string
    is held whole, and its words are unsure (module docstring); anything else: none."""
    value = claim_at(claims, path)
    if isinstance(value, str):
        held = _bounded(string_values(path, value))
        unsure = [w for w in claim_words(value) if w not in held]
        return held, _bounded(unsure)
    if not isinstance(value, list):
        return (), ()
    return _bounded(value), ()


def _bounded(values: list[JSONValue] | list[str]) -> tuple[str, ...]:
    """The strings of ``values`` that can be roles (``MAX_ROLE_LENGTH``), once each, at
    most ``MAX_ROLES``."""
    roles = (v for v in values if isinstance(v, str) and 0 < len(v) <= MAX_ROLE_LENGTH)
    return tuple(dict.fromkeys(roles))[:MAX_ROLES]
