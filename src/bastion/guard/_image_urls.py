"""One image source read as a client would fetch it (TC-4): remote or not, which host, and
whether the URL carries data. The other half of the image filter (``_images``) finds the
sources in text.

A source is first decoded the way its renderer decodes it (``markdown_destination``:
backslash escapes and character references; an HTML attribute value: character
references), then normalised the way a browser's URL parser reads it (tab and line breaks
removed, leading and trailing controls and spaces stripped, ``\\`` read as ``/``) and
percent-decoded (up to ``_DECODE_ROUNDS`` times, so ``%68ttps:`` and ``https%3A//`` read as
``https://`` whether or not some renderer would). It is **remote** when it names a host:
``http``/``https``/``ws``/``wss``/``ftp`` with or without slashes (``https:evil.example``),
protocol-relative (``//host``, ``/\\host``), or any other scheme with an authority
(``file://host/share``, and ``file:////host`` as Windows reads it). ``data:``, relative
paths and schemes without a host fetch nothing from anyone.

A remote source **carries data** when its URL could hold more than its author's fixed text:
a query or fragment (``?``, ``#``), placeholder or masking characters (``{}``, ``[]``,
``<>``, ``$``: a template for a model to fill, or a secret Bastion masked), credentials
before the host, a known collector or an IP-literal host (``_phrases.EXFIL_URL``, the tool
scan's own test), a scheme other than ``http``/``https`` (``file://host/share`` sends a
Windows login hash to that host), a host label or path segment with a run that looks
encoded (at least ``_ENCODED_RUN`` base64/hex characters mixing letters and digits, or
``_LETTER_RUN`` of any kind: base64, hex, base32), or more than ``MAX_PLAIN_URL``
characters. A fixed URL of ordinary words and numbers does not
(``https://example.com/images/logo-2024.png``): it can only tell its host that the text
was shown.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple, TypeAlias
from urllib.parse import unquote

from bastion.guard._phrases import EXFIL_URL

__all__ = [
    "MAX_PLAIN_URL",
    "MAX_WORK",
    "READ",
    "SOURCE_WORK",
    "Decide",
    "Found",
    "Removal",
    "Source",
    "markdown_destination",
    "read_source",
    "shown_host",
]

MAX_PLAIN_URL: Final = 256  # characters; a longer image URL counts as carrying data
# Work a reader may do on one string (``_markdown_images``, ``_html_images``), in units of
# one bracket, parenthesis or attribute; reading a source costs ``SOURCE_WORK``. About
# 0.1 s; past it the string is not read on, and its images are broken (``_images``).
MAX_WORK: Final = 50_000
SOURCE_WORK: Final = 8
SOURCES: Final = 4096  # sources whose reading is remembered (repeated badges, icons)
READ: Final = MAX_PLAIN_URL + 1  # characters of a source ever read (callers pass no more)
_DECODE_ROUNDS: Final = 3
_ENCODED_RUN: Final = 16
_LETTER_RUN: Final = 32  # characters of a run that count as data without a digit
_FETCHING_SCHEMES: Final = frozenset({"http", "https", "ws", "wss", "ftp"})
_WEB_SCHEMES: Final = frozenset({"http", "https", ""})  # "" is protocol-relative
_DROPPED: Final = re.compile(r"[\t\n\r]")
_EDGES: Final = "".join(map(chr, range(0x21)))  # C0 controls and space
_MARKDOWN_ESCAPE: Final = re.compile(r"\\([!-/:-@\[-`{-~])")
_SCHEME: Final = re.compile(r"([a-z][a-z0-9+.\-]*):")
_AUTHORITY_END: Final = re.compile(r"[/?#]")
_TEMPLATE: Final = re.compile(r"[{}\[\]<>$?#]")
_RUN: Final = re.compile(rf"[A-Za-z0-9+=]{{{_ENCODED_RUN},}}")
_SHOWN_HOST: Final = re.compile(r"[^\w.\-:]")
_DIGIT: Final = re.compile(r"\d")
_LETTER: Final = re.compile(r"[A-Za-z]")


@dataclass(frozen=True, slots=True)
class Source:
    """What fetching one image source would do."""

    remote: bool
    host: str = ""  # lower-case, as the URL names it ("" for a local source)
    carries_data: bool = False


LOCAL: Final = Source(remote=False)
Decide: TypeAlias = Callable[[Source], bool]  # whether an image from this source goes


class Removal(NamedTuple):
    """One image to replace: ``text[start:end]``, shown as a marker naming ``host``."""

    start: int
    end: int
    host: str
    alt: str


class Found(NamedTuple):
    """The images of one string to replace, and whether the reader read it all (it stops
    at ``MAX_WORK``; then every image of the string is to be broken)."""

    removals: list[Removal]
    complete: bool = True


def shown_host(host: str) -> str:
    """``host`` as a marker may show it: no markup characters, at most 80 long."""
    return _SHOWN_HOST.sub("", host)[:80] or "unknown host"


def markdown_destination(raw: str) -> str:
    """A Markdown link destination as its renderer reads it: backslash escapes and
    character references (``&#104;``, ``&colon;``) decoded."""
    if "\\" in raw:
        raw = _MARKDOWN_ESCAPE.sub(r"\1", raw)
    return html.unescape(raw) if "&" in raw else raw


@functools.lru_cache(maxsize=SOURCES)
def read_source(url: str, *, longer: bool = False) -> Source:
    """``url`` (already decoded from its Markdown or HTML form) classified. ``longer``: the
    caller passed only the source's first characters (more than ``MAX_PLAIN_URL``)."""
    url = url[:READ]
    plain = _normalised(url)
    for _ in range(_DECODE_ROUNDS):
        if "%" not in plain:
            break
        decoded = unquote(plain)
        if decoded == plain:
            break
        plain = _normalised(decoded)
    lowered = plain.lower()
    scheme_match = _SCHEME.match(lowered)
    scheme = scheme_match.group(1) if scheme_match else ""
    rest = lowered[scheme_match.end() :] if scheme_match else lowered
    if scheme in _FETCHING_SCHEMES or (not scheme and rest.startswith("//")):
        authority_and_path = rest.lstrip("/")  # a browser skips any number of slashes
    elif rest.startswith("//") and (
        rest.startswith("////") or _host_of(rest[2:])[1] not in ("", "localhost")
    ):
        authority_and_path = rest[2:].lstrip("/")
    else:
        return LOCAL
    userinfo, host = _host_of(authority_and_path)
    data = (
        scheme not in _WEB_SCHEMES  # file://host/share leaks a Windows login hash to it
        or longer
        or len(url) > MAX_PLAIN_URL
        or bool(userinfo)
        or _TEMPLATE.search(plain) is not None
        or _looks_encoded(authority_and_path)
        or EXFIL_URL.search(f"https://{authority_and_path}") is not None
    )
    return Source(remote=True, host=host, carries_data=data)


def _normalised(url: str) -> str:
    """``url`` as a browser's URL parser reads it: tabs and line breaks dropped, controls
    and spaces at either end stripped, backslashes read as slashes."""
    if "\t" in url or "\n" in url or "\r" in url:
        url = _DROPPED.sub("", url)
    return url.strip(_EDGES).replace("\\", "/")


def _host_of(authority_and_path: str) -> tuple[str, str]:
    """(userinfo, host) of ``//``-less ``authority_and_path``; the port is dropped."""
    end = _AUTHORITY_END.search(authority_and_path)
    authority = authority_and_path[: end.start()] if end else authority_and_path
    userinfo, _, host = authority.rpartition("@")
    if not host.startswith("["):  # an IPv6 literal keeps its colons
        host = host.partition(":")[0]
    return userinfo, host.rstrip(".")


def _looks_encoded(text: str) -> bool:
    """Whether ``text`` has a run of base64/hex characters long enough to be data."""
    for run in _RUN.finditer(text):
        found = run.group()
        if len(found) >= _LETTER_RUN or (_DIGIT.search(found) and _LETTER.search(found)):
            return True
    return False
