"""The ways an upstream may read a string argument, for the policy's string tests (AZ-1).

A rule is written for one spelling of a path or URL, and the upstream may read another one
as the same thing: ``./secret/key``, ``secret//key``, ``pub/../secret/key``, ``secret\\key``
and ``secret/%6Bey`` are all ``secret/key`` to a server that normalises paths the usual way;
``https://INTERNAL.example:443/a/%2e%2e/admin`` is ``https://internal.example/admin``.

``allow_spellings`` are the readings every allow test must pass: the value as sent, its
lexical path form (empty and ``.`` segments dropped, ``..`` resolved, a trailing slash
kept), the same with backslashes as separators and with percent-escapes decoded, and for a
URL its normal form (RFC 3986 6.2.2-6.2.3: scheme and host in lower case, no user info, no
trailing dot on the host, no default port, escapes of unreserved characters and of ``.``
decoded, dot segments removed). ``deny_spellings`` adds the readings only a deny needs to
catch (a deny test holds if any passes): the trailing slash dropped, a URL-looking value
read as a plain path (``x://y/../../secret`` is ``secret`` to a file server), and a path
that climbs out and back in (``../base/secret`` is ``secret`` if the server's root is
named ``base``). A value with no separator, dot or escape has one spelling and costs nothing.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = ["allow_spellings", "deny_spellings"]

_PLAIN: Final = re.compile(r"[^/\\.%]*")
_ESCAPE: Final = re.compile(r"%[0-9A-Fa-f]{2}")
_URL_HEAD: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# Escapes an URL means the same unescaped (RFC 3986 2.3), and ``.``: ``%2e%2e`` is ``..``
# to WHATWG URL parsers.
_UNRESERVED_ESCAPE: Final = re.compile(
    r"%(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[DEde]|5[Ff]|7[Ee])"
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}


def allow_spellings(value: str) -> tuple[str, ...]:
    """``value`` and every reading of it an allow test must pass (module docstring)."""
    if _PLAIN.fullmatch(value):
        return (value,)
    return tuple(_readings(value, deny=False))


def deny_spellings(value: str) -> tuple[str, ...]:
    """``value`` and every reading of it a deny test looks at (module docstring)."""
    if _PLAIN.fullmatch(value):
        return (value,)
    return tuple(_readings(value, deny=True))


def _readings(value: str, *, deny: bool) -> list[str]:
    forms = [value]

    def add(form: str) -> None:
        if form not in forms:
            forms.append(form)

    escaped = _ESCAPE.search(value) is not None
    for text in dict.fromkeys((value, value.replace("\\", "/"))):
        url = _URL_HEAD.match(text) is not None
        paths = [text, unquote(text)] if escaped else [text]
        if url:
            normal = _normal_url(text)  # decodes what a URL may decode, in its path only
            add(normal)
            if deny and normal.endswith("/"):
                add(normal.rstrip("/"))
        else:
            for path in paths:
                add(_normal_path(path, keep_trailing=True))
        if deny:  # also read as a plain path, whatever it looks like
            for path in paths:
                plain = _normal_path(path, keep_trailing=False)
                add(plain)
                add(_reentered(plain))
    return forms


def _normal_path(text: str, *, keep_trailing: bool) -> str:
    """``text`` as a lexical path: empty and ``.`` segments dropped, ``..`` resolved (kept at
    the start of a relative path; dropped at the root of an absolute one); a trailing slash
    kept when ``keep_trailing`` (``a/`` may name a directory, ``a`` a file)."""
    absolute = text.startswith("/")
    parts: list[str] = []
    for segment in text.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not absolute:
                parts.append(segment)
            continue
        parts.append(segment)
    joined = ("/" if absolute else "") + "/".join(parts)
    if keep_trailing and parts and text.endswith("/"):
        joined += "/"
    return joined or "."


def _reentered(path: str) -> str:
    """``../../a/b/rest`` as ``rest``: climbing k levels out of the server's root and k names
    back down lands in the root again when those are its names."""
    parts = path.split("/")
    climbs = 0
    while climbs < len(parts) and parts[climbs] == "..":
        climbs += 1
    if climbs == 0 or len(parts) <= 2 * climbs:
        return path
    return "/".join(parts[2 * climbs :])


def _normal_url(text: str) -> str:
    """``text``, a URL, in its normal form (module docstring); as sent if it does not parse."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host += f":{port}"
    path = _UNRESERVED_ESCAPE.sub(lambda m: unquote(m.group(0)), parts.path)
    path = _normal_path(path, keep_trailing=True) if path else ""
    if path == ".":
        path = ""
    query = f"?{parts.query}" if parts.query else ""
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{scheme}://{host}{path}{query}{fragment}"
