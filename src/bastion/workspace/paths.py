"""Names and paths as agents give them, checked before any system call (pure code).

A workspace path is relative, ``/``-separated, and resolved later component by component
from the workspace's directory descriptor (see ``jail``), so this module only has to
refuse what can never be a name inside the workspace: ``..``, absolute paths, NUL and
other control characters, bidi and line-separator characters (they disguise names in a
listing), look-alikes of ``/``, ``\\`` and ``.`` (so no name reads as a traversal in a
log or a review; SECURITY.md IN-4), lone surrogates, and names too long or too deep for the
kernel. Unicode is never normalized, so no check can be undone by a later normalization.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from bastion.workspace.errors import InvalidInput

__all__ = [
    "MAX_COMPONENT_BYTES",
    "MAX_DEPTH",
    "MAX_PATH_BYTES",
    "RelPath",
    "check_workspace_name",
    "parse_path",
]

MAX_COMPONENT_BYTES: Final = 255  # NAME_MAX on Linux file systems
MAX_PATH_BYTES: Final = 4000  # below PATH_MAX (4096), room for the workspace root
MAX_DEPTH: Final = 64  # directory levels; deeper trees are not source code
WORKSPACE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
# Characters that change how a name is displayed rather than what it is.
_DISGUISING: Final = frozenset(
    "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\ufeff"
)
# Characters drawn like a path separator or a dot.
_LOOK_ALIKES: Final = frozenset("\u2044\u2215\u29f8\uff0f\u2216\ufe68\uff3c\u2024\ufe52\uff0e")


def check_workspace_name(name: str) -> str:
    """Raises InvalidInput unless ``name`` is 1-63 of ``a-z 0-9 _ . -``, starting alphanumeric."""
    if not WORKSPACE_NAME.fullmatch(name):
        raise InvalidInput(
            "invalid workspace name: use 1-63 characters a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class RelPath:
    """A checked path inside a workspace; ``parts`` is empty for the workspace itself."""

    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        return "/".join(self.parts)

    @property
    def display(self) -> str:
        return self.text or "."

    @property
    def parent(self) -> RelPath:
        return RelPath(self.parts[:-1])

    @property
    def name(self) -> str:
        if not self.parts:
            raise InvalidInput("the workspace root is a directory, not a file")
        return self.parts[-1]

    def child(self, name: str) -> RelPath:
        return RelPath((*self.parts, name))


def parse_path(path: str, *, allow_root: bool = False) -> RelPath:
    """Check an agent's path. ``""`` and ``"."`` name the workspace root (if allowed).

    Raises:
        InvalidInput: the path could never name something inside the workspace.
    """
    if "\x00" in path:
        raise InvalidInput("path contains a NUL byte")
    if path.startswith("/"):
        raise InvalidInput("absolute paths are not allowed; give a path relative to the workspace")
    if "\\" in path:
        raise InvalidInput("use '/' to separate path components, not '\\'")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("path is not valid Unicode (lone surrogate)") from None
    if size > MAX_PATH_BYTES:
        raise InvalidInput(f"path is longer than {MAX_PATH_BYTES} bytes")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue  # "a//b", "./a" and "a/" mean what they say
        if part == "..":
            raise InvalidInput("'..' is not allowed in workspace paths")
        _check_component(part)
        parts.append(part)
    if len(parts) > MAX_DEPTH:
        raise InvalidInput(f"path is deeper than {MAX_DEPTH} directories")
    if not parts and not allow_root:
        raise InvalidInput("path names the workspace root; give a file path")
    return RelPath(tuple(parts))


def _check_component(part: str) -> None:
    if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise InvalidInput(f"a path component is longer than {MAX_COMPONENT_BYTES} bytes")
    for char in part:
        if char in _DISGUISING or unicodedata.category(char) == "Cc":
            raise InvalidInput(
                f"path contains a control or direction-changing character (U+{ord(char):04X})"
            )
        if char in _LOOK_ALIKES:
            raise InvalidInput(
                f"path contains a character that looks like '/', '\\' or '.' (U+{ord(char):04X})"
            )
