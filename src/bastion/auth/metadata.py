"""What a client is told about authenticating (AU-2, AU-3): the RFC 9728 protected-resource
metadata document and the ``WWW-Authenticate`` challenge of RFC 6750.

Header values are built only from configuration (checked here for characters that cannot
appear in a quoted string), never from request data.
"""

from __future__ import annotations

import re
from typing import Final, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec

from bastion.auth.settings import AuthSettings

__all__ = [
    "WELL_KNOWN",
    "BearerError",
    "metadata_paths",
    "metadata_url",
    "protected_resource_metadata",
    "www_authenticate",
]

WELL_KNOWN: Final = "/.well-known/oauth-protected-resource"
BearerError = Literal["invalid_request", "invalid_token", "insufficient_scope"]
_QUOTABLE: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")  # no '"', '\', CTLs


def protected_resource_metadata(settings: AuthSettings) -> bytes:
    """The JSON document served at ``metadata_paths``: ``resource``, the authorization
    servers, ``bearer_methods_supported: ["header"]`` (never query or body, AU-4) and the
    configured scopes (omitted when none are configured)."""
    document: dict[str, object] = {
        "resource": settings.resource,
        "authorization_servers": list(settings.effective_authorization_servers),
        "bearer_methods_supported": ["header"],
    }
    if settings.scopes_supported:
        document["scopes_supported"] = list(settings.scopes_supported)
    return msgspec.json.encode(document)


def metadata_url(resource: str) -> str:
    """RFC 9728 s3.1: the well-known path goes between the host and the resource's path
    (``https://gw/mcp`` -> ``https://gw/.well-known/oauth-protected-resource/mcp``)."""
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", ""))


def metadata_paths(resource: str) -> tuple[str, ...]:
    """The paths to serve the document on: the bare well-known path and the path-suffixed
    form for ``resource`` (one path when the resource has no path)."""
    suffixed = urlsplit(metadata_url(resource)).path
    return (WELL_KNOWN,) if suffixed == WELL_KNOWN else (WELL_KNOWN, suffixed)


def www_authenticate(
    resource_metadata_url: str, *, error: BearerError | None = None, scope: str | None = None
) -> str:
    """The ``WWW-Authenticate`` value for a refusal: 401 without a credential (no
    ``error``), 401 ``invalid_token`` when one was presented, 403 ``insufficient_scope``.

    Raises:
        ValueError: a value holds a quote, backslash or control character.
    """
    params = [("resource_metadata", resource_metadata_url)]
    if error is not None:
        params.append(("error", error))
    if scope is not None:
        params.append(("scope", scope))
    for name, value in params:
        if not _QUOTABLE.fullmatch(value):
            raise ValueError(f"{name} cannot be sent in a quoted header value")
    return "Bearer " + ", ".join(f'{name}="{value}"' for name, value in params)
