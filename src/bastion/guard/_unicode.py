"""Invisible and direction-changing characters: the ones a reader cannot see but a model reads.

``INVISIBLE`` matches zero-width characters, bidi embeddings/overrides/isolates (U+202A-202E,
U+2066-2069), the Unicode tag block (U+E0000-E007F, "ASCII smuggling") and the variation
selector supplement. ``visible`` renders any text with these (and control characters)
escaped as ``\\u{...}``, so excerpts shown to an admin show what is hidden.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["INVISIBLE", "visible"]

INVISIBLE: Final = re.compile(
    "["
    "\u00ad"  # soft hyphen
    "\u061c"  # Arabic letter mark
    "\u180e"  # Mongolian vowel separator
    "\u200b-\u200f"  # zero-width space/joiners, LRM, RLM
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\ufeff"  # zero-width no-break space (BOM)
    "\U000e0000-\U000e007f"  # tag characters
    "\U000e0100-\U000e01ef"  # variation selectors supplement (used to smuggle bytes)
    "]"
)
_UNSHOWN: Final = re.compile(INVISIBLE.pattern[:-1] + "\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str, limit: int = 120) -> str:
    """``text`` with hidden characters escaped, cut to about ``limit`` characters."""
    shown = _UNSHOWN.sub(lambda m: f"\\u{{{ord(m.group()):04X}}}", text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
