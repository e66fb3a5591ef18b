"""Upstream error answers on their way to a client (UP-4, IN-5).

An upstream's JSON-RPC error is relayed with its code, but its ``message`` and ``data`` are
untrusted text like a result: they go through the result filter (secrets masked, invisible
characters stripped, injection annotated; blocked means the generic ``Upstream error``),
every URL naming an internal host is replaced by ``[internal URL]``, and the message is
capped at ``MAX_MESSAGE`` characters. A host is internal when it is an address that is not
globally routable (loopback, private, link-local, unique-local, shared, reserved), a name
without a dot, ``localhost``, or a name under a private suffix (``.internal``, ``.local``,
``.lan``, ``.corp``, ``.svc``, ``.home.arpa``, ...).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

from bastion._types import JSONValue
from bastion.errors import PeerError
from bastion.guard.findings import Finding
from bastion.guard.sanitise import Sanitiser

__all__ = [
    "INTERNAL_URL",
    "MAX_MESSAGE",
    "UPSTREAM_ERROR",
    "clean_peer_error",
    "is_internal_url",
    "mask_internal_urls",
]

MAX_MESSAGE: Final = 1000
INTERNAL_URL: Final = "[internal URL]"
UPSTREAM_ERROR: Final = "Upstream error"
_URL: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s\"'<>\\`]{1,2048}")
_PRIVATE_SUFFIXES: Final = (
    ".internal", ".local", ".localdomain", ".localhost", ".lan", ".home", ".corp",
    ".intranet", ".private", ".svc", ".home.arpa",
)  # fmt: skip
_MAX_DEPTH: Final = 64


def is_internal_url(url: str) -> bool:
    """Whether ``url`` names a host only an internal network can reach (see the docstring)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return True  # not even parseable: do not show it
    if not host:
        return False
    host = host.rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host == "localhost" or host.endswith(_PRIVATE_SUFFIXES)
    return not address.is_global


def clean_peer_error(error: PeerError, sanitiser: Sanitiser) -> tuple[PeerError, list[Finding]]:
    """The error to relay instead of ``error``, and what was found in it (counted, never
    quoted, by the caller)."""
    message = sanitiser.text(error.peer_message, "$.error.message")
    findings = list(message.findings)
    data: JSONValue = None
    if error.peer_data is not None:
        cleaned = sanitiser.value(error.peer_data, "$.error.data")
        findings.extend(cleaned.findings)
        if cleaned.blocked:
            return PeerError(error.peer_code, UPSTREAM_ERROR), findings
        data = mask_internal_urls(cleaned.value, findings)
    if message.blocked or not isinstance(message.value, str):
        return PeerError(error.peer_code, UPSTREAM_ERROR), findings
    text = _mask_text(message.value, findings)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "…"
    return PeerError(error.peer_code, text, data), findings


def _mask_text(text: str, findings: list[Finding], path: str = "$.error") -> str:
    if "://" not in text:
        return text
    masked = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal masked
        if is_internal_url(match.group()):
            masked += 1
            return INTERNAL_URL
        return match.group()

    out = _URL.sub(swap, text)
    if masked:
        findings.append(Finding(kind="secret", path=path, excerpt=f"{masked} internal URLs"))
    return out


def mask_internal_urls(
    value: JSONValue, findings: list[Finding], path: str = "$.error", depth: int = 0
) -> JSONValue:
    """``value`` with every URL naming an internal host in its strings replaced by
    ``INTERNAL_URL``; the replacements are counted into ``findings`` under ``path``."""
    if isinstance(value, str):
        return _mask_text(value, findings, path)
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {k: mask_internal_urls(v, findings, path, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_internal_urls(v, findings, path, depth + 1) for v in value]
    return value
