"""Authentication (AU-*): who is calling, from an API key, a JWT, a client certificate, or
the configured local user, as one ``Principal`` the rest of the pipeline decides on."""

from __future__ import annotations

from bastion.auth.authenticator import Authenticator, Throttled
from bastion.auth.duration import parse_duration
from bastion.auth.jwks import JwksCache, JwksUnavailable
from bastion.auth.jwt import JwtValidator
from bastion.auth.keys import ApiKey, KeyStore, KeyStoreError, NoSuchKey
from bastion.auth.metadata import (
    metadata_paths,
    metadata_url,
    protected_resource_metadata,
    www_authenticate,
)
from bastion.auth.mtls import MtlsConfigError, MtlsMapper
from bastion.auth.principal import AuthMethod, Principal, Unauthenticated
from bastion.auth.settings import (
    ApiKeySettings,
    AuthSettings,
    BreakGlassSettings,
    FailedAuthSettings,
    MtlsAccount,
    MtlsSettings,
    OidcSettings,
)
from bastion.auth.throttle import FailureThrottle

__all__ = [
    "ApiKey",
    "ApiKeySettings",
    "AuthMethod",
    "AuthSettings",
    "Authenticator",
    "BreakGlassSettings",
    "FailedAuthSettings",
    "FailureThrottle",
    "JwksCache",
    "JwksUnavailable",
    "JwtValidator",
    "KeyStore",
    "KeyStoreError",
    "MtlsAccount",
    "MtlsConfigError",
    "MtlsMapper",
    "MtlsSettings",
    "NoSuchKey",
    "OidcSettings",
    "Principal",
    "Throttled",
    "Unauthenticated",
    "metadata_paths",
    "metadata_url",
    "parse_duration",
    "protected_resource_metadata",
    "www_authenticate",
]
