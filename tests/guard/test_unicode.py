"""TC-1 / TC-4: which characters count as hidden. Every default-ignorable code point and every
format (Cf) character renders as nothing, so each is caught in definitions and stripped from
results; only an emoji presentation selector right after an emoji-like base is ordinary text.
A phrase scan reads the text with them removed, NFKC-normalised and case-folded."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.guard._unicode import (
    _IGNORABLE_RANGES,
    HIDDEN,
    IGNORABLE,
    INVISIBLE,
    folded,
    search,
)
from tests.security.upstreams.hider import full_width

# Default_Ignorable_Code_Point of DerivedCoreProperties.txt (Unicode 17.0), as published.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
# What the red team found rendered as nothing yet passed (round 14).
MISSED = [
    0x2065, *range(0x206A, 0x2070), *range(0x1D173, 0x1D17B), *range(0xFFF0, 0xFFFC),
    0x180B, 0x180C, 0x180D, 0x180F, *range(0xFE00, 0xFE10), *range(0x1BCA0, 0x1BCA4),
]  # fmt: skip


def _code_points(ranges: tuple[tuple[int, int], ...]) -> set[int]:
    return {cp for first, last in ranges for cp in range(first, last + 1)}


def test_tc1_tc4_every_default_ignorable_and_format_character_is_hidden() -> None:
    """The table holds Default_Ignorable_Code_Point and every Cf character this Python's
    Unicode database knows (it may be older than the table, never newer in practice)."""
    table = _code_points(_IGNORABLE_RANGES)
    assert _code_points(DEFAULT_IGNORABLE) <= table
    format_characters = {
        cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf"
    }
    assert format_characters <= table
    assert all(IGNORABLE.fullmatch(chr(cp)) for cp in table)
    # ``search`` scans the BMP and the astral planes apart: no range may span both.
    assert all(last <= 0xFFFF or first > 0xFFFF for first, last in _IGNORABLE_RANGES)


@pytest.mark.parametrize("cp", MISSED, ids=[f"U+{cp:04X}" for cp in MISSED])
def test_tc1_tc4_characters_that_passed_unseen_are_caught_inside_a_word(cp: int) -> None:
    text = f"Ig{chr(cp)}nore"
    assert search(INVISIBLE, text) is not None and search(HIDDEN, text) is not None
    assert INVISIBLE.sub("", text) == "Ignore"


@pytest.mark.parametrize(
    "text",
    ["⚠\ufe0f Deletes", "❤\ufe0f", "1\ufe0f\u20e3", "#\ufe0f\u20e3", "\u2122\ufe0f", "☺\ufe0e"],
)
def test_tc1_tc4_an_emoji_presentation_selector_after_its_base_is_ordinary_text(text: str) -> None:
    assert search(INVISIBLE, text) is None and search(HIDDEN, text) is None


@pytest.mark.parametrize(
    "text",
    [
        "a\ufe0fb",  # after a letter: splits a word
        "\ufe0fx",  # at the start
        "a \ufe0f b",  # after a space
        "<\ufe0fimportant>",  # after ASCII punctuation: no emoji base
        "⚠\ufe0f\ufe0e\ufe0f",  # a run after one base: only the first is a selector
        "x\u200b\ufe0f",  # after another hidden character
        "⚠\ufe00",  # a selector other than text/emoji style
    ],
)
def test_tc1_tc4_a_selector_anywhere_else_is_hidden(text: str) -> None:
    assert search(INVISIBLE, text) is not None and search(HIDDEN, text) is not None


_TEXT = st.text(
    alphabet=st.sampled_from(
        "aZ1 <#⚠❤漢é\u2800\u200b\u206a\ufe00\ufe0e\ufe0f\U0001d173\U0001d400\U000e0041\U0001f600"
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_tc1_tc4_the_fast_search_finds_what_the_pattern_finds(text: str) -> None:
    for pattern in (IGNORABLE, INVISIBLE, HIDDEN):
        fast, full = search(pattern, text), pattern.search(text)
        assert (fast and fast.span()) == (full and full.span())


def test_tc1_tc4_the_phrase_scan_reads_through_hidden_and_full_width_characters() -> None:
    assert folded("Ig\u206anore ALL") == "ignore all"
    assert folded(full_width("IGNORE") + "\u3000" + full_width("PREVIOUS")) == "ignore previous"
    assert folded("<\ufe0fIMPORTANT>") == "<important>"
    assert folded("plain text") == "plain text"
