"""Resource URI confinement (IN-4): allow-listed schemes, and ``file:`` URIs held to roots.

``UriPolicy.check`` refuses a URI unless the last ``+``-separated part of its scheme is on
the allow-list, when there is one (the gateway exposes ``<server-scheme>+<original>``, so
``files+file:///x`` is a ``file`` URI), and never allows fetching schemes (``http``,
``https``, ``gopher``, ``jar``, ``php``, ...) whatever the configuration says. A ``file:``
URI has no host (``//host/share`` is refused), is decoded exactly once, and may not contain
NUL, control characters, backslashes, non-ASCII characters, ``..`` segments or encoded
separators, dots, percent signs or non-ASCII bytes; its realpath (symlinks resolved) must
lie inside a configured root, so with no roots every ``file:`` URI is refused.
Errors name the rule broken, never the path or any file content.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from bastion.errors import InvalidParams

__all__ = ["ALWAYS_REFUSED", "DEFAULT_SCHEMES", "UriPolicy", "UriRefused"]

MAX_URI: Final = 8192
DEFAULT_SCHEMES: Final = ("file", "workspace")
ALWAYS_REFUSED: Final = frozenset(
    {
        "http", "https", "ftp", "ftps", "sftp", "gopher", "jar", "php", "phar", "data",
        "javascript", "vbscript", "ldap", "ldaps", "dict", "smb", "nfs", "netdoc", "expect",
        "zip", "glob", "ws", "wss", "tftp", "telnet", "ssh", "scp", "unc",
    }
)  # fmt: skip
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]{0,63}):")
_UNSAFE: Final = re.compile(r"[^\x21-\x7e]|\\")  # anything but visible ASCII, and backslash
_UNSAFE_DECODED: Final = re.compile(r"[^\x20-\x7e]|\\")  # a decoded path may hold spaces
_ESCAPE: Final = re.compile(r"%(?:[0-9A-Fa-f]{2})?")
# What an escape may not decode to: separators, dots, a second round of escapes, controls.
_FORBIDDEN_BYTES: Final = (
    frozenset(b"/\\.%") | frozenset(range(0x20)) | frozenset(range(0x7F, 0x100))
)


class UriRefused(InvalidParams):
    """A resource URI broke the confinement rules; ``detail`` says which rule (fixed text)."""

    message = "Resource URI refused"


def _refuse(reason: str) -> UriRefused:
    return UriRefused(reason, message=f"Resource URI refused: {reason}")


class UriPolicy:
    """One configured confinement; ``file_roots`` are resolved once, here."""

    def __init__(
        self,
        *,
        schemes: Iterable[str] | None = DEFAULT_SCHEMES,
        file_roots: Iterable[str | os.PathLike[str]] = (),
        max_length: int = MAX_URI,
    ) -> None:
        """``schemes=None``: no allow-list; the fetching schemes are refused all the same.

        Raises:
            ValueError: a scheme that can never be allowed, or a relative root.
        """
        self.schemes = None if schemes is None else frozenset(s.lower() for s in schemes)
        bad = (self.schemes or frozenset()) & ALWAYS_REFUSED
        if bad:
            raise ValueError(f"schemes that fetch cannot be allowed: {sorted(bad)}")
        roots = [Path(r) for r in file_roots]
        if any(not r.is_absolute() for r in roots):
            raise ValueError("file roots must be absolute paths")
        self.file_roots = tuple(os.path.realpath(r) for r in roots)
        self._max = max_length

    def check(self, uri: str) -> str:
        """``uri`` itself when it may be read.

        Raises:
            UriRefused: see the module docstring.
        """
        if len(uri) > self._max:
            raise _refuse("too long")
        if _UNSAFE.search(uri):
            raise _refuse("contains control, space, backslash or non-ASCII characters")
        match = _SCHEME.match(uri)
        if match is None:
            raise _refuse("no scheme")
        parts = match.group(1).lower().split("+")
        if any(p in ALWAYS_REFUSED for p in parts):
            raise _refuse("scheme not allowed")
        if self.schemes is not None and parts[-1] not in self.schemes:
            raise _refuse("scheme not allowed")
        if parts[-1] == "file":
            inner = uri[len(match.group(1)) - len(parts[-1]) :]
            self.resolve_file(inner)
        return uri

    def resolve_file(self, uri: str) -> Path:
        """The real path a ``file:`` URI names, inside one of the roots.

        Raises:
            UriRefused: see the module docstring.
        """
        if not uri[:7].lower() == "file://":
            raise _refuse("file URIs must be file:///absolute/path")
        rest = uri[7:]
        authority, slash, encoded = rest.partition("/")
        if authority.lower() not in ("", "localhost") or not slash:
            raise _refuse("file URIs may not name a host")
        if encoded.startswith("/"):
            raise _refuse("file URIs may not name a host")  # file:////host/share (UNC)
        if _UNSAFE.search(encoded) or "?" in encoded or "#" in encoded:
            raise _refuse("contains forbidden characters")
        for escape in _ESCAPE.finditer(encoded):
            code = escape.group()
            if len(code) != 3 or int(code[1:], 16) in _FORBIDDEN_BYTES:
                raise _refuse("contains a forbidden percent-encoding")
        path = "/" + unquote(encoded, errors="strict")
        if _UNSAFE_DECODED.search(path):
            raise _refuse("contains forbidden characters")
        if any(segment in ("..", ".") for segment in path.split("/")):
            raise _refuse("contains dot segments")
        if not self.file_roots:
            raise _refuse("no file roots configured")
        real = os.path.realpath(path)
        for root in self.file_roots:
            if real == root or real.startswith(root.rstrip("/") + "/"):
                return Path(real)
        raise _refuse("outside the allowed roots")
