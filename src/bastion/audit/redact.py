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

_PATTERNS: Final = (
    # PEM private keys, whole block (also a truncated block with no END line).
    re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
        re.DOTALL,
    ),
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),  # Google API keys
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{30,}\b"),  # GitHub
    re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}\b"),  # GitLab
    re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}\b"),  # Slack
    re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b"),  # Stripe
    re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI / Anthropic style
    re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),  # JWTs
    re.compile(r"(?i)(?<=AccountKey=)[A-Za-z0-9+/=]{20,}"),  # Azure storage connection strings
    re.compile(r"(?i)(?<=aws_secret_access_key)(\s*[=:]\s*)[A-Za-z0-9/+=]{40}"),
)
# Credentials after an HTTP auth scheme: keep the word, mask what follows (see _scheme).
_AUTH_SCHEME: Final = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=\-]{8,})")
_TOKEN_CHAR: Final = re.compile(r"[0-9._~+/=\-]")
# scheme://user:password@host -> scheme://user:[REDACTED]@host
# Every repeat is bounded: an unbounded scheme made this quadratic on long runs of letters.
_URL_PASSWORD: Final = re.compile(
    r"\b([a-zA-Z][a-zA-Z0-9+.\-]{0,31}://[^\s:/?#@]{0,256}:)[^\s/?#@]{1,256}(@)"
)
# ?token=... &api_key=... in URLs and query strings.
_QUERY_SECRET: Final = re.compile(
    r"(?i)([?&](?:access_token|refresh_token|id_token|token|api_key|apikey|key|secret|"
    r"password|sig|signature|client_secret)=)[^&#\s]+"
)


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
# Searched for in the case-folded text, not with a case-insensitive regex alternation (~190
# µs per KiB of clean text; casefold() also folds the characters that re.IGNORECASE matches,
# such as U+017F for "s" and U+212A for "k"), by one regex with the words' common prefixes
# factored out (``_alternation``): on a short string (the usual argument value) ~0.6 µs
# where 31 substring tests took ~2, and no slower on a KiB (12-38 µs against 20-45).
_MAYBE_SECRET: Final = (
    "akia", "asia", "agpa", "aida", "aroa", "aiza", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "github_pat_", "glpat-", "xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "_live_",
    "_test_", "sk-", "eyj", "accountkey=", "aws_secret_access_key", "bearer", "basic", "://",
    "?", "&", "private key",
)  # fmt: skip


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


def _maybe_secret(text: str) -> bool:
    return _MAYBE_SECRET_RE.search(text.casefold()) is not None


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
