"""The one normal form of a resource URI that policy decides on (AZ-3, IN-4).

Rules match a URI as sent, and an upstream reads it the way URIs are read: escapes decoded,
dot segments resolved, scheme and host without case, ``localhost`` as no host in a ``file:``
URI, user info ignored, a default port the same as none. So every other spelling of a URI
would step around a deny written in the normal one, and ``uri_is_normal`` refuses them:

- percent-encoding in RFC 3986 (6.2.2) normal form: upper-case hex digits, no escaped
  unreserved character (``.%65nv`` is ``.env``), no broken escape;
- a path (hierarchical or opaque, as in ``doc:a/b``) without ``.``, ``..`` or empty segments;
- a lower-case scheme (a namespaced URI's ``server+`` is part of it);
- in the authority: no user info, a lower-case host without a trailing dot, no port that is
  empty, has a leading zero or is the scheme's default (``DEFAULT_PORTS``), and for
  ``file:`` no ``localhost`` (``file:///x``, never ``file://localhost/x``).
An authority holding a URI template expression (``{id}``) is not checked: a template is only
listed and completed, and the URI read through it is checked on its own.

The query and the fragment are kept (a resource may be named with a query), but an upstream
may ignore them, so ``without_query`` gives the URI a deny glob is also matched against.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["DEFAULT_PORTS", "uri_is_normal", "without_query"]

# A scheme's port that means the same as no port at all.
DEFAULT_PORTS: Final = {"http": "80", "https": "443", "ws": "80", "wss": "443", "ftp": "21"}
# A percent-encoding that RFC 3986 (6.2.2) says is not normal: lower-case hex digits, a
# broken escape, or an escaped unreserved character (ALPHA DIGIT - . _ ~).
_NOT_NORMAL_ESCAPE: Final = re.compile(
    r"%(?![0-9A-F]{2})|%(?:[46][1-9A-F]|[57][0-9A]|3[0-9]|2[DE]|5F|7E)"
)
# ``scheme:`` and ``//authority`` (a namespaced URI's ``server+`` is part of its scheme),
# and a path segment no normal path has: ``.``, ``..`` or an empty one.
_SCHEME_AUTHORITY: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(?://([^/?#]*))?")
_ODD_SEGMENT: Final = re.compile(r"/(?:\.\.?)?(?:/|$)")
_HOST_PORT: Final = re.compile(r"(\[[^\]]*\]|[^:]*)(?::(.*))?")


def uri_is_normal(uri: str) -> bool:
    """Whether ``uri`` is in the one spelling rules are written in (module docstring)."""
    if "%" in uri and _NOT_NORMAL_ESCAPE.search(uri) is not None:
        return False
    head = _SCHEME_AUTHORITY.match(uri)
    path = uri[head.end() :] if head is not None else ""
    path = path.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):  # an opaque path (``doc:pub/a``) is read the same way
        path = "/" + path
    if path != "/" and _ODD_SEGMENT.search(path) is not None:
        return False
    if head is None:
        return True
    scheme, authority = head.group(1), head.group(2)
    if scheme != scheme.lower():
        return False
    return authority is None or "{" in authority or _authority_is_normal(scheme, authority)


def _authority_is_normal(scheme: str, authority: str) -> bool:
    if "@" in authority:
        return False
    found = _HOST_PORT.fullmatch(authority)
    if found is None:
        return False
    host, port = found.group(1), found.group(2)
    if host != host.lower() or host.endswith("."):
        return False
    base = scheme.rpartition("+")[2]  # ``files+file`` is a file URI
    if base == "file" and host == "localhost":
        return False
    if port is None or not (port.isascii() and port.isdigit()):
        return port != ""  # a name after ':' is not a port: left alone, like the host
    return not (port.startswith("0") and port != "0") and DEFAULT_PORTS.get(base) != port


def without_query(uri: str) -> str | None:
    """``uri`` without its query and fragment, or None when it has neither."""
    cut = min((i for i in (uri.find("?"), uri.find("#")) if i >= 0), default=-1)
    return None if cut < 0 else uri[:cut]
