"""Namespaced names and URIs: how an upstream's tools, prompts and resources are exposed.

Tools and prompts become ``<prefix><name>`` (prefix ``"<server><separator>"`` by default,
or ``""`` for bare names). Names longer than ``MAX_NAME`` (64, the limit common clients
enforce) keep their first 55 characters plus ``_`` and 8 hex digits of the SHA-256 of the
full name: stable across restarts and unique in practice. Resource URIs (and templates)
become ``<server-scheme>+<original>``, where the server scheme is the server name in
lower case with ``_`` turned into ``.`` (a valid URI scheme character that server names may
not contain), so the original URI is recovered exactly by removing the prefix. No two
servers of a configuration may share a scheme (``Notes`` and ``notes``: ``config.load``
refuses them), and a URI's ``carried_prefix`` names the server whose namespace it is in.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = [
    "MAX_NAME",
    "carried_prefix",
    "exposed_name",
    "server_scheme",
    "strip_uri_prefix",
    "uri_prefix",
]

MAX_NAME: Final = 64
_HASH_CHARS: Final = 8


def exposed_name(prefix: str, name: str) -> str:
    full = prefix + name
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{full[: MAX_NAME - _HASH_CHARS - 1]}_{digest}"


def server_scheme(server: str) -> str:
    return server.lower().replace("_", ".")


def uri_prefix(server: str, bare: bool) -> str:
    return "" if bare else f"{server_scheme(server)}+"


def carried_prefix(uri: str) -> str:
    """What ``uri`` would carry as a server's ``uri_prefix``: everything up to its first
    ``+``, the scheme compared without case (``B+note:`` is ``b+``); ``""`` without one."""
    head, plus, _ = uri.partition("+")
    return head.lower() + plus if plus else ""


def strip_uri_prefix(prefix: str, uri: str) -> str | None:
    """The upstream's URI for an exposed one, or None if it does not carry ``prefix``."""
    if not prefix:
        return uri
    return uri[len(prefix) :] if uri.startswith(prefix) else None
