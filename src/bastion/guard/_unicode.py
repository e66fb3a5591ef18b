"""Invisible and direction-changing characters: the ones a reader cannot see but a model reads.

``IGNORABLE`` matches every character Unicode says renders as nothing by default or only
formats others: the Default_Ignorable_Code_Point property plus general category Cf
(``_IGNORABLE_RANGES``: zero-width characters, bidi embeddings/overrides/isolates, the
deprecated format characters U+206A-206F, invisible operators, the tag block U+E0000-E0FFF
("ASCII smuggling"), variation selectors, Mongolian free variation selectors, Hangul and
Khmer blank "letters", musical beam/slur controls, shorthand format controls, interlinear
annotation marks, ...). ``INVISIBLE`` is the same except for one deliberate allowance: an
emoji presentation selector (U+FE0E text, U+FE0F emoji style) directly after a character
beyond ASCII that is no letter, digit or space (a symbol such as ⚠ or ❤, punctuation such
as ‼), or after a keycap base (0-9, #, *), is how ordinary emoji are written (``⚠️``,
``1️⃣``), and one selector there can neither split a word nor carry data. The same
selector after a letter, a space, ASCII punctuation, another hidden character or at the start
is matched. ``HIDDEN`` adds the braille blank (U+2800), which a tool definition has no use
for but braille charts in results do, so only definitions are checked for it. ``search`` is
``pattern.search`` for these three, faster.

``folded`` is the text a phrase scan reads (TC-1, TC-4): every ``IGNORABLE`` character
removed, NFKC-normalised (full-width and other compatibility letters become plain ones) and
case-folded, so "Ig\\u206Anore" and "IGNORE" in full-width letters (U+FF29 U+FF27 ...) read
as "ignore". ``visible`` renders any text with hidden characters (and control characters)
escaped as ``\\u{...}``, so excerpts shown to an admin show what is hidden.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["HIDDEN", "IGNORABLE", "INVISIBLE", "folded", "search", "visible"]

# Default_Ignorable_Code_Point (DerivedCoreProperties.txt) united with General_Category=Cf,
# Unicode 17.0, as inclusive (first, last) code point ranges. Generated with the `regex`
# package (2026.5.9, Unicode 17.0):
#   python -c "import regex; p = regex.compile(r'[\p{Default_Ignorable_Code_Point}\p{Cf}]');
#              print([c for c in range(0x110000) if p.match(chr(c))])"
# and the consecutive code points joined into ranges. Unassigned code points inside the
# ranges (U+2065, U+FFF0-FFF8, most of U+E0000-E0FFF) are reserved as default-ignorable, so
# a later Unicode version that assigns them keeps them invisible. tests/guard/test_unicode.py
# checks the table against the running Python's ``unicodedata``.
_IGNORABLE_RANGES: Final = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x0600, 0x0605),  # Arabic number signs (Cf)
    (0x061C, 0x061C),  # Arabic letter mark
    (0x06DD, 0x06DD),  # Arabic end of ayah (Cf)
    (0x070F, 0x070F),  # Syriac abbreviation mark (Cf)
    (0x0890, 0x0891),  # Arabic pound/piastre mark above (Cf)
    (0x08E2, 0x08E2),  # Arabic disputed end of ayah (Cf)
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors, vowel separator
    (0x200B, 0x200F),  # zero-width space/joiners, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates, deprecated formats
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors 1-16
    (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFFB),  # reserved, interlinear annotation marks
    (0x110BD, 0x110BD),  # Kaithi number sign (Cf)
    (0x110CD, 0x110CD),  # Kaithi number sign above (Cf)
    (0x13430, 0x1343F),  # Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol beam, tie, slur and phrase controls
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement, reserved
)
_EMOJI_SELECTORS: Final = "\ufe0e\ufe0f"


def _class_body(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


_ALL: Final = _class_body(_IGNORABLE_RANGES)
# An emoji selector is allowed right after a character that is neither a letter (``\w``
# less the digits), nor a space, nor ASCII, nor hidden itself (a symbol or punctuation such
# as ⚠ or ‼), or after a keycap base (0-9, #, *). The lookbehinds run only once a hidden
# character has matched, so clean text costs one character-class scan.
_NOT_AFTER_BASE: Final = (
    f"(?<![^\\w\\s\\x00-\\x7f{_ALL}][{_EMOJI_SELECTORS}])(?<![0-9#*][{_EMOJI_SELECTORS}])"
)

IGNORABLE: Final = re.compile(f"[{_ALL}]")
INVISIBLE: Final = re.compile(f"[{_ALL}]{_NOT_AFTER_BASE}")
HIDDEN: Final = re.compile(f"[{_ALL}\u2800]{_NOT_AFTER_BASE}")  # + braille pattern blank
_UNSHOWN: Final = re.compile(f"[{_ALL}\u2800\x00-\x08\x0b-\x1f\x7f-\x9f]")

# ``re`` tests a character against a class's BMP part with one bitmap lookup but against
# each range beyond U+FFFF one by one, which made those few ranges most of the cost of a
# scan. ``search`` scans with the BMP part alone and looks for the rest only in text that has
# a character beyond U+FFFF at all.
_BMP: Final = _class_body(tuple(r for r in _IGNORABLE_RANGES if r[0] <= 0xFFFF))
_ASTRAL: Final = re.compile(
    f"[{_class_body(tuple(r for r in _IGNORABLE_RANGES if r[0] > 0xFFFF))}]"
)  # no range spans U+FFFF
_SPLIT: Final = {
    IGNORABLE: re.compile(f"[{_BMP}]"),
    INVISIBLE: re.compile(f"[{_BMP}]{_NOT_AFTER_BASE}"),
    HIDDEN: re.compile(f"[{_BMP}\u2800]{_NOT_AFTER_BASE}"),
}


def search(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """``pattern.search(text)`` for ``IGNORABLE``, ``INVISIBLE`` or ``HIDDEN``, faster."""
    if text.isascii():  # O(1) in CPython; every hidden character is beyond ASCII
        return None
    match = _SPLIT[pattern].search(text)
    if _has_astral(text):
        earlier = _ASTRAL.search(text, 0, len(text) if match is None else match.start())
        match = earlier or match
    return match


def folded(text: str) -> str:
    """``text`` as a phrase scan should read it: hidden characters removed, NFKC, case-folded."""
    if not text.isascii():
        text = _SPLIT[IGNORABLE].sub("", text)
        if _has_astral(text):
            text = _ASTRAL.sub("", text)
    return unicodedata.normalize("NFKC", text).casefold()


def _has_astral(text: str) -> bool:
    """Whether ``text`` has a character beyond U+FFFF: two UTF-16 code units each, which is
    cheaper to count than to scan for."""
    return len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text)


def visible(text: str, limit: int = 120) -> str:
    """``text`` with hidden characters escaped, cut to about ``limit`` characters."""
    shown = _UNSHOWN.sub(lambda m: f"\\u{{{ord(m.group()):04X}}}", text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
