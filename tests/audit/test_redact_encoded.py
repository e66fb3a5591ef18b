"""Secrets inside percent-encoded text (TC-4, AD-3, IN-5): a nested redirect or callback URL
(OAuth ``redirect_uri``, ``next=``), a form-encoded header or an encodeURI'd message carries
its ``=``, ``?``, ``&`` and spaces as ``%3D``, ``%3F``, ``%26`` and ``%20`` (``%253D``... when
encoded twice). The hex digit just before a key is a word character, so the key patterns'
``\\b`` never held there and ``?token=`` never matched ``%3Ftoken%3D``: results, logs and
audit records carried such secrets as sent (red team round 14)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.audit import redact_text
from bastion.audit.redact import (
    _QUERY_ENDINGS,
    _QUERY_NAMES,
    _QUERY_SEPARATORS,
    REDACTED,
    _mask,
    _maybe_secret,
)

GITHUB = "ghp_" + "a1B2" * 9
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"
AWS = "AKIAIOSFODNN7EXAMPLE"
BASIC = "Zm9vOmJhcjEyMzQ1"  # base64 of foo:bar12345

# One sample of each key pattern: after an escape each must be masked like after a space.
KEYS = (
    AWS,
    "AIza" + "SyA1234567890abcdefghijklmnopqrstuv",
    GITHUB,
    "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnop",
    "glpat-" + "abcdefghij0123456789",
    "xoxb-" + "123456789012-abcdefABCDEF",
    "sk_live_" + "0123456789abcdefABCD",
    "sk-ant-" + "api03-abcdefghijklmnopqrstuvwxyz",
    JWT,
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        # The red team's result, and their in-process cases.
        (f"see https://x.example/cb#access_token%3D{GITHUB} and more", GITHUB),
        (f"Authorization%3A%20Bearer%20{BASIC}", BASIC),
        (f"authorize?redirect_uri=https%3A%2F%2Fapp%2Fcb%3Ftoken%3D{GITHUB}", GITHUB),
        (f"id_token%3D{JWT}", JWT),
        (f"aws%3D{AWS}", AWS),
        ("https://a.example/login?next=%2Fcb%3Faccess_token%3Dsecretvalue123", "secretvalue123"),
        # Encoded twice (a redirect inside a redirect).
        ("next=%252Fcb%253Faccess_token%253Dsecretvalue123%2526page%253D2", "secretvalue123"),
        (f"u=https%253A%252F%252Fapp%252Fcb%253Fcode%253D{GITHUB}", GITHUB),
        (f"h=Authorization%253A%2520Bearer%2520{BASIC}", BASIC),
        # Every name, each separator level.
        ("cb%26client_secret%3Dcs-abc-0123456", "cs-abc-0123456"),
        ("cb%26api_key%3Dk3y-value-xyz", "k3y-value-xyz"),
        ("cb%23access_token%3Dfragment-token-1", "fragment-token-1"),
        ("https://app.example/cb#access_token=implicit-flow-token&token_type=bearer", "implicit"),
        # A form-encoded header (quote_plus: space as "+"), padding encoded too.
        ("h=Authorization%3A+Bearer+abc123def456ghi&z=1", "abc123def456ghi"),
        ("Authorization%3A%20Basic%20dXNlcjpwYXNzMQ%3D%3D", "dXNlcjpwYXNzMQ"),
        ("Authorization%3A%20Bearer%20abc%2Fdefghijk%2Blmnop", "defghijk"),
        # encodeURI keeps ":/@" but encodes spaces.
        ("see%20postgres://bob:hunter2@db.internal/app", "hunter2"),
        ("x%3Dhttps://bob:hunter2@db.internal/app", "hunter2"),
    ],
)
def test_tc4_ad3_in5_secrets_after_a_percent_escape_are_masked(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("before", ["%3D", "%3d", "%20", "%2F", "%253D", "x%3F", "q=a%26"])
def test_tc4_ad3_every_key_pattern_holds_after_an_escape(before: str, key: str) -> None:
    assert redact_text(f"{before}{key}") == f"{before}{REDACTED}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An encoded value ends at the encoded "&", "#" or space: the rest is left alone.
        (
            "https://a.example/?next=%2Fc%3Faccess_token%3Dsecretvalue123%26page%3D2",
            f"https://a.example/?next=%2Fc%3Faccess_token%3D{REDACTED}%26page%3D2",
        ),
        ("q=hello%26key%3Dabc%20more%20words", f"q=hello%26key%3D{REDACTED}%20more%20words"),
        (
            "x%253Ftoken%253Dsecret%252Bvalue%2526page%253D2",
            f"x%253Ftoken%253D{REDACTED}%2526page%253D2",
        ),
        # A plain value holds its own escapes: an encoded "&" is part of it, masked with it.
        ("?token=abc%26def&page=2", f"?token={REDACTED}&page=2"),
        # The scheme word and the encoded space stay readable.
        (f"Authorization%3A%20Bearer%20{BASIC}", f"Authorization%3A%20Bearer%20{REDACTED}"),
    ],
)
def test_tc4_ad3_an_encoded_value_is_masked_up_to_its_own_end(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "see 100%3Dx and more prose here",
        "ratio 100%3Dx, key%3Dvalue pairs and a token%20price",
        "the 50%25 rise in token%20prices, sig%20figs",
        "basic+authentication plan for 2024",
        "Bearer%20of%20bad%20news",
        "sort(key=len) and dict(key=value)",
        "# key=value heading",
        "what is 2+2? and 3&4?",
    ],
)
def test_tc4_ad3_ordinary_text_with_escapes_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_ad3_prefilter_words_cover_every_query_name() -> None:
    """The pre-check lets the query pattern through by its names' endings: each name has one."""
    assert all(name.endswith(_QUERY_ENDINGS) for name in _QUERY_NAMES)
    assert _QUERY_SEPARATORS == ("=", "%3d", "%253d")


# What re.IGNORECASE matches to a letter besides its two cases (casefold() folds only some).
_CONFUSABLE = {"i": "\u0131\u0130", "s": "\u017f", "k": "\u212a"}


def _spelled(words: tuple[str, ...]) -> st.SearchStrategy[str]:
    """One of ``words``, each letter in either case or a character IGNORECASE matches to it."""

    def letters(word: str) -> st.SearchStrategy[str]:
        options = [c + c.swapcase() + _CONFUSABLE.get(c.lower(), "") for c in word]
        return st.tuples(*(st.sampled_from(o) for o in options)).map("".join)

    return st.sampled_from(words).flatmap(letters)


def _joined(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


_QUERY_PIECE = _joined(
    st.sampled_from(("", "?", "&", "#", "%3F", "%3f", "%253F", "%26", "%2526", "%23", "x", "%")),
    _spelled(_QUERY_NAMES),
    st.sampled_from(("", "=", "%3D", "%3d", "%253D", "%253d", "%3", ":", "%20")),
    st.sampled_from(("", "abc", "s3cr3t%2Bx", "%26", "%2526", " ", "v%20w")),
)
_SCHEME_PIECE = _joined(
    st.sampled_from(("", " ", "%20", "x", "%3A%20")),
    _spelled(("bearer", "basic")),
    st.sampled_from(("", " ", "%20", "%2520", "+", "\t", "%2")),
    st.sampled_from(("abc123def456", "dXNlcjpwYXNz", "authentication", "abc%2Fdefghijk")),
)
_KEY_PIECE = _joined(
    st.sampled_from(("", " ", "%3D", "%253D", "%20", "x", "_", "%", "%2", "=")),
    st.sampled_from(KEYS),
)
_URL_PIECE = _joined(
    st.sampled_from(("", "x", "%3D", "%20")),
    st.sampled_from(("postgres", "h", "")),
    st.sampled_from(("://", ":/")),
    st.sampled_from(("bob:pw@h", "bob@h", "h/p")),
)
_OTHER_PIECE = st.sampled_from(
    ("", " ", "x", "%", "%25", "AccountKey=", "aws_secret_access_key", "://", "\u0131", "\u0130")
)


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.one_of(_QUERY_PIECE, _SCHEME_PIECE, _KEY_PIECE, _URL_PIECE, _OTHER_PIECE), max_size=4
    ).map("".join)
)
def test_ad3_the_prefilter_never_skips_a_text_the_patterns_would_change(text: str) -> None:
    """The fast pre-check (``_maybe_secret``) may say "maybe" for a clean text, never "no"
    for one that holds a secret: what it skips, every pattern leaves as it is."""
    if not _maybe_secret(text):
        assert _mask(text) == text


@settings(max_examples=500, deadline=None)
@given(
    key=st.sampled_from(KEYS),
    escape=st.sampled_from(("%", "%25")),
    hex_pair=st.text(alphabet="0123456789abcdefABCDEF", min_size=2, max_size=2),
    before=st.text(max_size=12),
    after=st.sampled_from(("", " ", "&x=1", "%26x%3D1", ".", "\n")),
)
def test_tc4_ad3_a_key_after_any_escape_is_masked(
    key: str, escape: str, hex_pair: str, before: str, after: str
) -> None:
    text = f"{before}{escape}{hex_pair}{key}{after}"
    assert key not in redact_text(text)
