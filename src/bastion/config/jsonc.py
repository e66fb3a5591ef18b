"""JSON with comments and trailing commas (VS Code's ``settings.json`` and ``mcp.json``) made
plain JSON, in time linear in its length (DS-4).

``strip_jsonc`` blanks each ``// line`` and ``/* block */`` comment outside strings (keeping
its line breaks, so that a parse error's line and column still point into the file), then
each comma that only whitespace separates from a closing ``}`` or ``]``. Every pattern
matches wherever it starts: an unclosed comment or string runs to the end of the text (where
``json`` then reports it). Sought again from every later ``/*`` or quote, as before, an
unclosed one made a 48 KB file take half a minute.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["strip_jsonc"]

# A string, from its opening quote to its closing one, or else to the end of the text.
_STRING: Final = r'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)'
_COMMENT: Final = re.compile(rf"{_STRING}|//[^\n]*|/\*(?:[\s\S]*?\*/|[\s\S]*)")
_TRAILING_COMMA: Final = re.compile(rf"{_STRING}|,(?=[ \t\n\r]*[}}\]])")


def strip_jsonc(text: str) -> str:
    """``text`` with comments and trailing commas blanked (see the module docstring)."""
    text = _COMMENT.sub(lambda m: m[0] if m[0][0] == '"' else _blank(m[0]), text)
    return _TRAILING_COMMA.sub(lambda m: m[0] if m[0][0] == '"' else " ", text)


def _blank(comment: str) -> str:
    """``comment`` as spaces, its line breaks kept."""
    return "\n".join(" " * len(line) for line in comment.split("\n"))
