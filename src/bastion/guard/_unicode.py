"""Invisible and direction-changing characters: the ones a reader cannot see but a model reads.

``INVISIBLE`` matches zero-width characters, bidi embeddings/overrides/isolates (U+202A-202E,
U+2066-2069), the Unicode tag block (U+E0000-E007F, "ASCII smuggling"), the variation
selector supplement and the blank "letters" (Hangul fillers, Khmer inherent vowels) that
render as nothing. ``HIDDEN`` adds the braille blank (U+2800), which a tool definition has no
use for but braille charts in results do, so only definitions are checked for it.
``visible`` renders any text with these (and control characters) escaped as ``\\u{...}``,
so excerpts shown to an admin show what is hidden.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["HIDDEN", "INVISIBLE", "visible"]

INVISIBLE: Final = re.compile(
    "["
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u061c"  # Arabic letter mark
    "\u115f\u1160"  # Hangul choseong and jungseong fillers
    "\u17b4\u17b5"  # Khmer inherent vowels
    "\u180e"  # Mongolian vowel separator
    "\u200b-\u200f"  # zero-width space/joiners, LRM, RLM
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\u3164"  # Hangul filler
    "\ufeff"  # zero-width no-break space (BOM)
    "\uffa0"  # halfwidth Hangul filler
    "\U000e0000-\U000e007f"  # tag characters
    "\U000e0100-\U000e01ef"  # variation selectors supplement (used to smuggle bytes)
    "]"
)
HIDDEN: Final = re.compile(INVISIBLE.pattern[:-1] + "\u2800]")  # + braille pattern blank
_UNSHOWN: Final = re.compile(HIDDEN.pattern[:-1] + "\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str, limit: int = 120) -> str:
    """``text`` with hidden characters escaped, cut to about ``limit`` characters."""
    shown = _UNSHOWN.sub(lambda m: f"\\u{{{ord(m.group()):04X}}}", text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
