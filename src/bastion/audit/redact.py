"""Secret redaction (AD-3): a pure function over JSON values, shared by audit and the pipeline.

Two rules: a mapping key named like a secret (the defaults plus configured argument field
names, compared case-insensitively with ``-``/``_`` ignored) has its whole value replaced, and
any string has obvious secrets masked in place (cloud and SaaS keys, bearer/basic credentials,
JWTs, passwords in URLs, private key blocks). Depth is capped so hostile nesting cannot recurse
without limit. Redaction is best-effort pattern matching: configure field names for the rest.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable
from typing import Final

from bastion._types import JSONValue

__all__ = ["DEFAULT_SECRET_FIELDS", "REDACTED", "Redactor", "redact_text"]

REDACTED: Final = "[REDACTED]"
MAX_DEPTH: Final = 32  # deeper values are replaced whole; no legitimate detail nests this far

DEFAULT_SECRET_FIELDS: Final = frozenset(
    {
        "password", "passwd", "pwd", "secret", "clientsecret", "token", "accesstoken",
        "refreshtoken", "idtoken", "apikey", "authorization", "proxyauthorization", "cookie",
        "setcookie", "privatekey", "secretaccesskey", "sessiontoken", "credentials",
    }
)  # fmt: skip


def _started(width: int) -> str:
    """A lookbehind, placed right after a secret's first ``width`` characters (fixed width,
    literal), that holds when the secret starts after anything but an ASCII letter or digit,
    or right after a percent-escape (once or twice encoded: ``%3D``, ``%253D``) whose last
    hex digit would otherwise glue on: ``access_token%3Dghp_...`` in an encoded redirect URL
    and ``%20Bearer%20...`` from encodeURI have no word boundary (``\\b``) before ``ghp_`` or
    ``Bearer``. After the literal characters, not before: a pattern that begins with them is
    searched for them first, where a leading lookbehind is tried at every position (~30x
    slower on prose)."""
    skip = rf"[\s\S]{{{width}}}"
    return (
        rf"(?:(?<![A-Za-z0-9]{skip})|(?<=%[0-9A-Fa-f]{{2}}{skip})"
        rf"|(?<=%25[0-9A-Fa-f]{{2}}{skip}))"
    )


_PATTERNS: Final = (
    # PEM private keys, whole block (also a truncated block with no END line).
    re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
        re.DOTALL,
    ),
    re.compile(r"(?:AKIA|ASIA|AGPA|AIDA|AROA)" + _started(4) + r"[0-9A-Z]{16}\b"),  # AWS key ids
    re.compile(r"AIza" + _started(4) + r"[0-9A-Za-z_\-]{35}\b"),  # Google API keys
    re.compile(  # GitHub
        r"gh[pousr]_" + _started(4) + r"[A-Za-z0-9]{30,}\b"
        r"|github_pat_" + _started(11) + r"[A-Za-z0-9_]{30,}\b"
    ),
    re.compile(r"glpat-" + _started(6) + r"[A-Za-z0-9_\-]{20,}\b"),  # GitLab
    re.compile(r"xox[abposr]-" + _started(5) + r"[A-Za-z0-9\-]{10,}\b"),  # Slack
    re.compile(r"(?:sk|rk|pk)_" + _started(3) + r"(?:live|test)_[A-Za-z0-9]{16,}\b"),  # Stripe
    re.compile(r"sk-" + _started(3) + r"(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI, Anthropic
    re.compile(  # JWTs
        r"eyJ" + _started(3) + r"[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"
    ),
    re.compile(r"(?i)(?<=AccountKey=)[A-Za-z0-9+/=]{20,}"),  # Azure storage connection strings
    re.compile(r"(?i)(?<=aws_secret_access_key)(\s*[=:]\s*)[A-Za-z0-9/+=]{40}"),
)
# Credentials after an HTTP auth scheme: keep the word and the space, mask what follows (see
# _scheme). The space may be percent-encoded (``Bearer%20...``, ``Bearer%2520...``) or a
# form-encoded ``+``, and the credential may hold encoded ``+``, ``/`` and ``=``.
_AUTH_SCHEME: Final = re.compile(
    r"(?i)(bearer" + _started(6) + r"|basic" + _started(5) + r")((?:\s|%(?:25)?20|\+)+)"
    r"((?:[A-Za-z0-9._~+/=\-]|%(?:25)?(?:2B|2F|3D)){8,})"
)
_TOKEN_CHAR: Final = re.compile(r"[0-9._~+/=\-]")
# scheme://user:password@host -> scheme://user:[REDACTED]@host, found by its "://" after a
# scheme character, whatever comes before the scheme (``%3Dhttps://u:p@h`` from a half-encoded
# URL too). Every repeat is bounded.
_URL_PASSWORD: Final = re.compile(
    r"(://(?<=[A-Za-z0-9+.\-]://)[^\s:/?#@]{0,256}:)[^\s/?#@]{1,256}(@)"
)
# ?token=... &api_key=... #access_token=... in URLs, query strings and fragments, also
# percent-encoded inside another URL (``%3Ftoken%3D...``, ``%26key%253D...``: an OAuth
# redirect_uri or callback). The value ends where its own encoding level ends it: a plain
# value at ``&``, ``#`` or white space (an encoded ``%26`` inside it is part of it), an
# encoded one also at ``%26``, ``%23`` or ``%20``, a twice-encoded one at ``%2526`` ... .
_QUERY_NAMES: Final = (
    "access_token", "refresh_token", "id_token", "token", "api_key", "apikey", "key", "secret",
    "password", "sig", "signature", "client_secret",
)  # fmt: skip
_QUERY_SECRET: Final = re.compile(
    # One character of [?&#%] first (a "%" then the rest of its escape): a pattern that
    # begins with a character set is searched for it, where a leading alternation is tried
    # at every position (3x slower on prose).
    r"(?i)([?&#%](?:(?<=%)(?:25)?(?:3F|26|23)|(?<!%))(?:" + "|".join(_QUERY_NAMES) + r")"
    r"(?:(=)|(%3D)|%253D))"
    r"(?(2)[^&#\s]+|(?(3)(?:[^&#\s%]|%(?!2[036]))+|(?:[^&#\s%]|%(?!252[036]))+))"
)
# What every name above ends with, and the separators: the pre-check's words for this pattern.
_QUERY_ENDINGS: Final = ("token", "key", "secret", "password", "sig", "signature")
_QUERY_SEPARATORS: Final = ("=", "%3d", "%253d")


@functools.lru_cache(maxsize=1024)  # bounded; argument names repeat across requests
def _normalise(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _scheme(match: re.Match[str]) -> str:
    # Prose such as "basic authentication" stays readable: mask only what looks like a
    # credential (a digit or token punctuation, or base64 of "user:password").
    credential = match.group(3)
    if _TOKEN_CHAR.search(credential) or _is_basic_pair(credential):
        return match.group(1) + match.group(2) + REDACTED
    return match.group(0)


def _is_basic_pair(text: str) -> bool:
    try:
        return b":" in base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        return False


# What every pattern below needs to find first, case-folded: most strings contain none of
# these and skip the ~14 full scans (measured: redaction was half the audit log's CPU).
# Searched for in the case-folded text (``_fold``), not with a case-insensitive regex
# alternation (~190 µs per KiB of clean text; casefold() also folds the characters that
# re.IGNORECASE matches, such as U+017F for "s" and U+212A for "k"), by one regex with the
# words' common prefixes factored out (``_alternation``): on a short string (the usual
# argument value) ~0.6 µs where 31 substring tests took ~2, and no slower on a KiB (12-38 µs
# against 20-45). The query-string pattern is let through by its names' endings followed by
# ``=`` or an encoded ``=``, not by every "?" and "&" (which most questions hold).
_MAYBE_SECRET: Final = (
    "akia", "asia", "agpa", "aida", "aroa", "aiza", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "github_pat_", "glpat-", "xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "_live_",
    "_test_", "sk-", "eyj", "accountkey=", "aws_secret_access_key", "bearer", "basic", "://",
    "private key",
    *(ending + separator for ending in _QUERY_ENDINGS for separator in _QUERY_SEPARATORS),
)  # fmt: skip
# The characters re.IGNORECASE matches to an ASCII letter that casefold() does not fold to it:
# U+0131 (dotless i) and U+0130 (dotted capital I, folded to "i" and U+0307) both match "i".
_FOLD_TO_ASCII: Final = {0x131: "i", 0x307: None}


# Short strings that hold nothing to redact repeat (principal ids, credential ids, tool names,
# argument values): remembered, so the next sight skips the scan. Only clean strings are kept,
# so no secret lingers here; bounded (cleared when full), ~1 MiB at most.
_CLEAN: Final[set[str]] = set()
_CLEAN_MAX: Final = 4096
_CLEAN_MAX_CHARS: Final = 256


def _alternation(words: Iterable[str]) -> str:
    """A regex that matches exactly ``words``, factored by first character at every depth
    (``ab|ac`` becomes ``a(?:b|c)``), so a search tries one branch where a plain alternation
    tries every word."""
    tails: dict[str, list[str]] = {}
    for word in words:
        tails.setdefault(word[:1], []).append(word[1:])
    parts = [re.escape(head) + _alternation(rest) for head, rest in tails.items() if head]
    if not parts:
        return ""
    either = parts[0] if len(parts) == 1 else f"(?:{'|'.join(parts)})"
    return f"(?:{either})?" if "" in tails else either


_MAYBE_SECRET_RE: Final = re.compile(_alternation(_MAYBE_SECRET))


def _fold(text: str) -> str:
    """``text`` case-folded as the pre-check compares it (a superset of what the patterns'
    IGNORECASE matches: never a word less than they would see)."""
    folded = text.casefold()
    return folded if folded.isascii() else folded.translate(_FOLD_TO_ASCII)


def _maybe_secret(text: str) -> bool:
    return _MAYBE_SECRET_RE.search(_fold(text)) is not None


def redact_text(text: str) -> str:
    """``text`` with every recognised secret replaced by ``[REDACTED]``."""
    if len(text) <= _CLEAN_MAX_CHARS and text in _CLEAN:
        return text
    if not _maybe_secret(text):
        if len(text) <= _CLEAN_MAX_CHARS:
            if len(_CLEAN) >= _CLEAN_MAX:
                _CLEAN.clear()
            _CLEAN.add(text)
        return text
    return _mask(text)


def _mask(text: str) -> str:
    """Every pattern applied to ``text``; ``redact_text`` calls it when the pre-check says
    the text may hold a secret."""
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(_scheme, text)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(2), text)
    return _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, text)


class Redactor:
    """Callable that returns a redacted copy of a JSON value; the input is never modified."""

    def __init__(self, fields: Iterable[str] = (), *, include_defaults: bool = True) -> None:
        names = {_normalise(f) for f in fields}
        self._fields = frozenset(names | DEFAULT_SECRET_FIELDS if include_defaults else names)

    def is_secret_field(self, name: str) -> bool:
        return _normalise(name) in self._fields

    def __call__(self, value: JSONValue) -> JSONValue:
        return self._redact(value, 0)

    def _redact(self, value: JSONValue, depth: int) -> JSONValue:
        if isinstance(value, str):
            return redact_text(value)
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                return "[TOO DEEP]"
            fields, depth = self._fields, depth + 1
            return {
                k: REDACTED
                if isinstance(k, str) and _normalise(k) in fields
                else self._redact(v, depth)
                for k, v in value.items()
            }
        if isinstance(value, list):
            if depth >= MAX_DEPTH:
                return "[TOO DEEP]"
            return [self._redact(v, depth + 1) for v in value]
        return value
