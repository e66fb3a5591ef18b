"""The ``auth:`` section of ``bastion.yaml``: frozen msgspec Structs that refuse unknown fields.

Types and ranges live in the annotations; ``__post_init__`` checks what spans fields (exactly
one JWKS source, HTTPS URLs, a JWKS URL refreshed no more often than a fetch may take, an
algorithm allow-list that can never hold ``none`` or an HMAC algorithm). Problems raise
``ValueError`` naming the field, which msgspec reports as a ``ValidationError`` with the
struct's path. Nothing here reads files or the environment.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal, TypeAlias, get_args
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from bastion._net import is_loopback_host
from bastion.auth.duration import DURATION_PATTERN, parse_duration
from bastion.auth.jwks import FETCH_TIMEOUT

__all__ = [
    "ALGORITHMS",
    "MAX_BREAK_GLASS_TTL",
    "Algorithm",
    "ApiKeySettings",
    "AuthSettings",
    "BreakGlassSettings",
    "FailedAuthSettings",
    "MtlsAccount",
    "MtlsSettings",
    "OidcSettings",
]

# RFC 7518/8037 asymmetric signature algorithms only: "none" and HS* are not even spellable,
# so a key-confusion token (HS256 keyed with the RSA public key) has nothing to match.
Algorithm: TypeAlias = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
ALGORITHMS: Final[tuple[str, ...]] = get_args(Algorithm)
MAX_BREAK_GLASS_TTL: Final = 24 * 3600  # an emergency key that outlives a day is not one

_Name: TypeAlias = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")]
_Duration: TypeAlias = Annotated[str, Meta(pattern=DURATION_PATTERN)]
# RFC 6749 scope-token characters: what may appear inside a quoted WWW-Authenticate value.
_Scope: TypeAlias = Annotated[str, Meta(pattern=r"^[!#-\[\]-~]{1,128}$")]
_Url: TypeAlias = Annotated[str, Meta(min_length=1, max_length=2048)]
_IdpRole: TypeAlias = Annotated[str, Meta(min_length=1, max_length=128)]
_HEX_FINGERPRINT: Final = re.compile(r"[0-9a-f]{64}")


class ApiKeySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """API keys (AU-5); ``db=None`` means ``$XDG_STATE_HOME/bastion/keys.db``, resolved at
    the CLI edge."""

    enabled: bool = True
    db: Annotated[str, Meta(min_length=1)] | None = None


class OidcGrants(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The token roles (values at ``roles_claim``) that grant the admin API's roles; none by
    default: a token role itself named ``admin`` or ``auditor`` is dropped
    (``bastion.auth.roles``)."""

    admin: Annotated[list[_IdpRole], Meta(max_length=64)] = []
    auditor: Annotated[list[_IdpRole], Meta(max_length=64)] = []


class OidcSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """JWT access tokens from one issuer (AU-6, AU-7). ``audience=None`` means the gateway's
    ``resource``. ``roles_claim`` may be a dotted path (``realm_access.roles``); ``grants``
    maps token roles to the admin API's roles."""

    issuer: _Url
    audience: _Url | None = None
    jwks_url: _Url | None = None
    jwks_file: Annotated[str, Meta(min_length=1)] | None = None
    algorithms: Annotated[list[Algorithm], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["RS256", "ES256"]
    )
    leeway: Annotated[int, Meta(ge=0, le=60)] = 30
    roles_claim: Annotated[str, Meta(min_length=1, max_length=128)] = "roles"
    grants: OidcGrants = msgspec.field(default_factory=OidcGrants)
    subject_claim: Annotated[str, Meta(min_length=1, max_length=128)] = "sub"
    require_typ: bool = False
    """When true, the header ``typ`` must be present (``at+jwt`` or ``JWT``); when false it is
    checked only if present."""
    jwks_ttl: Annotated[int, Meta(ge=10, le=86400)] = 300
    jwks_refresh_interval: Annotated[int, Meta(ge=1, le=3600)] = 30
    """At most one refresh for an unknown ``kid`` per this many seconds, counted from the end
    of the last fetch; with ``jwks_url``, no shorter than the fetch timeout (5 s)."""
    ca_file: Annotated[str, Meta(min_length=1)] | None = None

    def __post_init__(self) -> None:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("oidc: give exactly one of jwks_url and jwks_file")
        if self.jwks_url is not None and not _is_https_or_loopback(self.jwks_url):
            raise ValueError("oidc.jwks_url: must be https:// (http:// only for a loopback host)")
        if self.jwks_url is not None and self.jwks_refresh_interval < FETCH_TIMEOUT:
            raise ValueError(
                f"oidc.jwks_refresh_interval: must be at least {FETCH_TIMEOUT:g} s with"
                " jwks_url (the JWKS fetch timeout)"
            )
        if self.ca_file is not None and self.jwks_url is None:
            raise ValueError("oidc.ca_file: only used with jwks_url")
        if len(set(self.algorithms)) != len(self.algorithms):
            raise ValueError("oidc.algorithms: listed twice")


class MtlsAccount(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A service account proven by a client certificate the TLS layer already verified,
    matched by subject CN or by the SHA-256 fingerprint of the DER certificate. ``issuer``
    binds it to one CA of ``gateway.tls.client_ca``: that CA's subject in RFC 4514 form
    (``openssl x509 -noout -subject -nameopt RFC2253``), and the certificate must be signed
    directly by that CA's key. With more than one CA in ``client_ca``, every account names
    its issuer or pins a fingerprint."""

    name: _Name
    subject_cn: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    fingerprint_sha256: Annotated[str, Meta(min_length=64, max_length=95)] | None = None
    issuer: Annotated[str, Meta(min_length=1, max_length=1024)] | None = None
    roles: Annotated[list[_Name], Meta(max_length=32)] = []

    def __post_init__(self) -> None:
        if (self.subject_cn is None) == (self.fingerprint_sha256 is None):
            raise ValueError(f"mtls account {self.name}: give one of subject_cn, fingerprint")
        if self.fingerprint_sha256 is not None and not _HEX_FINGERPRINT.fullmatch(self.fingerprint):
            raise ValueError(f"mtls account {self.name}: fingerprint_sha256 is not 64 hex digits")

    @property
    def fingerprint(self) -> str:
        """The configured fingerprint as lowercase hex without colons (``""`` if none)."""
        return (self.fingerprint_sha256 or "").replace(":", "").lower()


class MtlsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    accounts: Annotated[list[MtlsAccount], Meta(max_length=1024)] = []

    def __post_init__(self) -> None:
        names = [a.name for a in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("mtls.accounts: two accounts have the same name")
        by_cn = [(a.subject_cn, a.issuer) for a in self.accounts if a.subject_cn is not None]
        if len(set(by_cn)) != len(by_cn):
            raise ValueError("mtls.accounts: two accounts have the same subject_cn and issuer")


class BreakGlassSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Emergency API keys: refused unless ``enabled``; their lifetime may not exceed
    ``max_ttl`` (checked again at every use)."""

    enabled: bool = False
    max_ttl: _Duration = "1h"

    def __post_init__(self) -> None:
        if not 0 < self.max_ttl_seconds <= MAX_BREAK_GLASS_TTL:
            raise ValueError("break_glass.max_ttl: must be between 1s and 24h")

    @property
    def max_ttl_seconds(self) -> int:
        return parse_duration(self.max_ttl)


class FailedAuthSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Throttle of failed authentications per client address (AU-8)."""

    per_address_per_minute: Annotated[int, Meta(ge=1, le=100_000)] = 30
    max_addresses: Annotated[int, Meta(ge=1, le=10_000_000)] = 100_000


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Authentication of ``/mcp``. ``resource`` is the canonical URI clients use for ``/mcp``:
    the JWT audience by default and the RFC 9728 ``resource``. ``authorization_servers``
    defaults to the OIDC issuer."""

    resource: _Url
    authorization_servers: Annotated[list[_Url], Meta(max_length=16)] = []
    scopes_supported: Annotated[list[_Scope], Meta(max_length=64)] = []
    api_keys: ApiKeySettings = ApiKeySettings()
    oidc: OidcSettings | None = None
    mtls: MtlsSettings = MtlsSettings()
    break_glass: BreakGlassSettings = BreakGlassSettings()
    max_credential_bytes: Annotated[int, Meta(ge=256, le=65536)] = 8192
    failed_auth: FailedAuthSettings = FailedAuthSettings()

    def __post_init__(self) -> None:
        if not _is_https_or_loopback(self.resource) or urlsplit(self.resource).fragment:
            raise ValueError("auth.resource: must be an https:// URL without a fragment")
        for url in self.authorization_servers:
            if not _is_https_or_loopback(url):
                raise ValueError(f"auth.authorization_servers: not an https:// URL: {url[:64]}")

    @property
    def audience(self) -> str:
        """The ``aud`` a JWT must contain."""
        if self.oidc is not None and self.oidc.audience is not None:
            return self.oidc.audience
        return self.resource

    @property
    def effective_authorization_servers(self) -> tuple[str, ...]:
        """What RFC 9728 metadata advertises: the configured list, else the OIDC issuer."""
        if self.authorization_servers:
            return tuple(self.authorization_servers)
        return (self.oidc.issuer,) if self.oidc is not None else ()


def _is_https_or_loopback(url: str) -> bool:
    """An ``https://`` URL with a host, or ``http://`` to a loopback host (tests, sidecars)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host or parts.username is not None or parts.password is not None:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and is_loopback_host(host)
