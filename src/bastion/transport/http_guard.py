"""Request checks every Streamable HTTP request passes before any work (pure functions).

DNS-rebinding defence: ``Host`` must name an allowed host (421 otherwise) and a present
``Origin`` must be exactly one of the allowed origins (403 otherwise). Defaults allow only
the loopback names of the port we listen on (an Origin without a port only on 80 / 443).
``Content-Type`` and ``Accept`` follow the transport spec (415 / 406).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "LOOPBACK_NAMES",
    "accepts",
    "default_allowed_hosts",
    "default_allowed_origins",
    "host_allowed",
    "origin_allowed",
]

LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost", "[::1]")
DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def default_allowed_hosts(port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    hosts.update(LOOPBACK_NAMES)  # a client may omit the default port
    hosts.update(h.lower() for h in extra)
    return frozenset(hosts)


def default_allowed_origins(port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """Our own origins, ``http`` and ``https`` with the loopback names and ``port``, plus
    ``extra``: a page on another port of this machine is another origin (TR-1)."""
    origins: set[str] = set()
    for scheme, default_port in DEFAULT_PORTS.items():
        # A browser leaves the scheme's default port out of the Origin it sends.
        suffix = "" if port == default_port else f":{port}"
        origins.update(f"{scheme}://{name}{suffix}" for name in LOOPBACK_NAMES)
    origins.update(o.lower().rstrip("/") for o in extra)
    return frozenset(origins)


def host_allowed(host: str | None, allowed: frozenset[str]) -> bool:
    return host is not None and host.lower() in allowed


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    # No Origin: not a browser (or a same-origin navigation); nothing to rebind.
    return origin is None or origin.lower() in allowed


def accepts(accept: str | None, *types: str) -> bool:
    if accept is None:
        return False
    offered = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return "*/*" in offered or all(t in offered for t in types)
