"""Which hosts are this machine's own: the one test for "loopback" where a URL's host decides
whether a credential may travel over plain http."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback_host"]


def is_loopback_host(host: str) -> bool:
    """``localhost``, or an IP literal in 127.0.0.0/8 or ``::1`` (as ``urlsplit`` gives a
    host: IPv6 without brackets)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
