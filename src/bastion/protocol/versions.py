"""The MCP protocol revisions Bastion speaks, and how a peer's revision is recognised.

Two eras are live: ``LEGACY`` (2025-11-25: ``initialize``, sessions) and ``MODERN``
(2026-07-28: stateless, ``_meta`` on every request, ``server/discover``). Older legacy
revisions are accepted during ``initialize`` negotiation and answered as the newest legacy
revision the client can speak.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

__all__ = [
    "LEGACY",
    "LEGACY_VERSIONS",
    "META_CLIENT_CAPABILITIES",
    "META_CLIENT_INFO",
    "META_LOG_LEVEL",
    "META_PROTOCOL_VERSION",
    "META_SERVER_INFO",
    "META_SUBSCRIPTION_ID",
    "MODERN",
    "MODERN_VERSIONS",
    "SUPPORTED_VERSIONS",
    "Era",
    "era_of",
    "negotiate_legacy",
]

LEGACY: Final = "2025-11-25"
MODERN: Final = "2026-07-28"
LEGACY_VERSIONS: Final = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
MODERN_VERSIONS: Final = ("2026-07-28",)
SUPPORTED_VERSIONS: Final = (*MODERN_VERSIONS, *LEGACY_VERSIONS)

META_PROTOCOL_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_CAPABILITIES: Final = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO: Final = "io.modelcontextprotocol/clientInfo"
META_LOG_LEVEL: Final = "io.modelcontextprotocol/logLevel"
META_SERVER_INFO: Final = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION_ID: Final = "io.modelcontextprotocol/subscriptionId"


class Era(Enum):
    LEGACY = "legacy"
    MODERN = "modern"


def era_of(version: str) -> Era | None:
    """The era of a known revision string, or None when we do not speak it."""
    if version in MODERN_VERSIONS:
        return Era.MODERN
    if version in LEGACY_VERSIONS:
        return Era.LEGACY
    return None


def negotiate_legacy(requested: str) -> str:
    """The version to answer an ``initialize`` with: the client's if we speak it, else ours."""
    return requested if requested in LEGACY_VERSIONS else LEGACY
