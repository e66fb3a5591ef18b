"""The text patterns shared by the tool scanner (``poison``) and the result filter (``sanitise``).

Each is a bounded regular expression (every repeat has an upper limit, so no pattern is
quadratic on hostile input). They are heuristics: they catch the published attack shapes
(Invariant Labs' tool poisoning, "ignore previous instructions", credential file lures),
not every paraphrase, which is why held tools still need an admin's eye. ``find_injection``
also reads text beyond ASCII as a model would (``_unicode.folded``: hidden characters
removed, NFKC, case-folded), so neither an invisible character inside a keyword nor
full-width letters hide a phrase.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from bastion.guard._unicode import INVISIBLE, folded, search

__all__ = [
    "EXFIL_URL",
    "INJECTION",
    "SEND_TO_URL",
    "SENSITIVE_FILE",
    "TOOL_OVERRIDE",
    "find_injection",
]

# Instructions addressed to the model rather than the user.
INJECTION: Final = (
    # <IMPORTANT>, </SYSTEM>, <instructions>, [INST], <|im_start|>...
    re.compile(
        r"(?i)<\s{0,4}/?\s{0,4}(?:important|system|instructions?|hidden|secret|admin|critical"
        r"|assistant|prompt)\b[^<>]{0,64}>|\[/?INST\]|<\|im_(?:start|end)\|>"
    ),
    re.compile(
        r"(?i)\b(?:ignore|disregard|forget|override)\s{1,8}(?:all\s{1,8}|any\s{1,8})?"
        r"(?:of\s{1,8})?(?:the\s{1,8}|your\s{1,8})?(?:previous|prior|above|earlier|preceding|"
        r"other|system)\s{1,8}(?:instructions?|prompts?|messages?|rules|directions|guidelines)"
    ),
    re.compile(
        r"(?i)\b(?:do\s{1,8}not|don'?t|never)\s{1,8}(?:tell|inform|mention|reveal|notify|alert|"
        r"show)\s{1,8}(?:this\s{1,8}(?:to\s{1,8})?)?(?:the\s{1,8})?user"
    ),
    re.compile(
        r"(?i)\bbefore\s{1,8}(?:using|calling|invoking|running)\s{1,8}(?:this|the|any)\s{1,8}"
        r"tool\b[^.]{0,120}?\b(?:read|open|cat|fetch|load|send|pass|include|provide)\b"
    ),
    re.compile(r"(?i)\b(?:new|updated)\s{1,8}instructions?\s{0,4}:|\byou\s{1,8}are\s{1,8}now\b"),
)

# Words each INJECTION pattern cannot match without (case-folded): substring tests cost a
# fraction of a case-insensitive regex scan, so clean text skips the patterns entirely.
_GATES: Final = (
    ("<", "[inst", "[/inst"),
    ("ignore", "disregard", "forget", "override"),
    ("user",),
    ("before",),
    ("instruction", "now"),
)
_ANY_GATE: Final = tuple(word for gate in _GATES for word in gate)


def find_injection(text: str, *, stripped: bool = False) -> re.Match[str] | None:
    """The first INJECTION match in ``text``, or None. Text beyond ASCII is also read as a
    model would (``folded``: hidden characters removed, NFKC, case-folded), so an invisible
    character inside a keyword or full-width letters do not hide a phrase; such a match is
    on that copy (``match.string``), not on ``text``. ``stripped``: the caller has removed
    every ``INVISIBLE`` character from ``text`` already (spares a scan)."""
    lowered = text.casefold()
    gated = any(map(lowered.__contains__, _ANY_GATE))
    match = _search(text, lowered) if gated else None
    if (
        match is None
        and not text.isascii()
        # Otherwise the folded copy has no gate word: ``lowered`` has none, and removing an
        # emoji selector INVISIBLE allows (after a visible non-letter) cannot make one.
        and (
            gated
            or not unicodedata.is_normalized("NFKC", text)
            or (not stripped and search(INVISIBLE, text))
        )
    ):
        plain = folded(text)
        match = _search(plain, plain)
    return match


def _search(text: str, lowered: str) -> re.Match[str] | None:
    contains = lowered.__contains__
    for gate, pattern in zip(_GATES, INJECTION, strict=True):
        if any(map(contains, gate)):
            match = pattern.search(text)
            if match:
                return match
    return None


SENSITIVE_FILE: Final = re.compile(
    r"(?i)~/\.ssh\b|\.ssh/|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|(?<![\w.])\.env\b|/etc/(?:passwd|"
    r"shadow|sudoers)\b|\bmcp\.json\b|claude_desktop_config\.json|\.aws/credentials|\.netrc\b|"
    r"\.kube/config|\.docker/config\.json|\.git-credentials|\.bash_history|\.npmrc\b|"
    r"\.pypirc\b|\bauthorized_keys\b|\bknown_hosts\b|\.gnupg\b|\bwallet\.dat\b"
)

# A URL that looks built to carry data out: an IP-literal host, a well-known collector, a
# placeholder or data-like query parameter.
EXFIL_URL: Final = re.compile(
    r"(?i)\b(?:https?|wss?|ftp)://(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:]{2,39}\]|"
    r"[^\s/\"'<>]{0,100}(?:webhook\.site|requestbin|pipedream|ngrok|burpcollaborator|"
    r"interact\.sh|oast\.|beeceptor|hookbin))[^\s\"'<>]{0,200}"
    r"|\b(?:https?|wss?)://[^\s\"'<>]{1,200}(?:[?&](?:data|d|q|payload|content|key|secret|"
    r"token|c)=\{|\{\{?[a-z_]{1,40}\}?\})"
)
# "send ... to http://", "upload the contents ... https://"
SEND_TO_URL: Final = re.compile(
    r"(?i)\b(?:send|post|upload|forward|transmit|exfiltrate|leak|report|copy)\b[^.\n]{0,120}?"
    r"\b(?:to|at|into)\s{1,8}(?:https?|wss?|ftp)://"
)
# TC-3: steering the model away from another tool.
_TOOL_NAME = r"[`'\"]?[A-Za-z0-9_.\-]{1,64}[`'\"]?"
_IDENTIFIER = r"[`'\"]?[A-Za-z0-9.\-]{0,64}_[A-Za-z0-9_.\-]{0,64}[`'\"]?"  # has an underscore
TOOL_OVERRIDE: Final = re.compile(
    r"(?i)\b(?:use|call|prefer)\s{1,8}this\s{1,8}tool\s{1,8}(?:instead|rather)\b"
    rf"|\binstead\s{{1,8}}of\s{{1,8}}(?:the\s{{1,8}})?(?:{_TOOL_NAME}\s{{1,8}}tool\b|{_IDENTIFIER})"
    rf"|\b(?:do\s{{1,8}}not|don'?t|never)\s{{1,8}}(?:use|call)\s{{1,8}}(?:the\s{{1,8}})?"
    rf"(?:{_TOOL_NAME}\s{{1,8}}tool\b|{_IDENTIFIER})"
)
