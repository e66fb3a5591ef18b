"""2026-07-28 per-request ``_meta``: reading and validating what every request must carry.

Order matters and is shared by every transport (the HTTP face adds header checks between
the steps): ``read_request_meta`` (missing pieces -> -32602), then the transport's mirror
check (-32020), then ``require_supported`` (-32022). ``META_PRINCIPAL`` is Bastion's own
key: the gateway puts the caller's principal there for upstreams configured to receive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bastion._types import JSONObject, JSONValue
from bastion.errors import InvalidParams, UnsupportedVersion
from bastion.protocol.versions import (
    META_CLIENT_CAPABILITIES,
    META_CLIENT_INFO,
    META_LOG_LEVEL,
    META_PROTOCOL_VERSION,
    MODERN_VERSIONS,
    SUPPORTED_VERSIONS,
)

__all__ = [
    "META_PRINCIPAL",
    "RequestMeta",
    "is_modern_request",
    "read_request_meta",
    "require_supported",
]

# Set by the gateway only (it never forwards a client's ``_meta``); see ServerConfig.
META_PRINCIPAL: Final = "io.bastion/principal"
_LEVELS = frozenset(
    ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
)


@dataclass(frozen=True, slots=True)
class RequestMeta:
    protocol_version: str
    client_capabilities: JSONObject
    client_info: JSONObject | None
    log_level: str | None
    progress_token: int | str | None


def is_modern_request(params: JSONObject | None) -> bool:
    meta = (params or {}).get("_meta")
    return isinstance(meta, dict) and META_PROTOCOL_VERSION in meta


def read_request_meta(params: JSONObject | None) -> RequestMeta:
    """The request's ``_meta``.

    Raises:
        InvalidParams: ``_meta``, its protocol version or its client capabilities are missing.
    """
    meta = (params or {}).get("_meta")
    if not isinstance(meta, dict):
        raise InvalidParams("missing _meta", message="Missing _meta")
    version = meta.get(META_PROTOCOL_VERSION)
    if not isinstance(version, str) or not version:
        raise InvalidParams("missing protocol version", message=f"Missing {META_PROTOCOL_VERSION}")
    caps = meta.get(META_CLIENT_CAPABILITIES)
    if not isinstance(caps, dict):
        raise InvalidParams("missing capabilities", message=f"Missing {META_CLIENT_CAPABILITIES}")
    info = meta.get(META_CLIENT_INFO)
    level = meta.get(META_LOG_LEVEL)
    token: JSONValue = meta.get("progressToken")
    return RequestMeta(
        protocol_version=version,
        client_capabilities=caps,
        client_info=info if isinstance(info, dict) else None,
        log_level=level if isinstance(level, str) and level in _LEVELS else None,
        progress_token=token
        if isinstance(token, int | str) and not isinstance(token, bool)
        else None,
    )


def require_supported(version: str) -> None:
    """Raises UnsupportedVersion (-32022, listing ours) unless ``version`` is modern."""
    if version not in MODERN_VERSIONS:
        raise UnsupportedVersion(
            "unsupported protocol version",
            data={"supported": list(SUPPORTED_VERSIONS), "requested": version},
        )
