"""HTML images in one string (TC-4): ``<img src>`` and the other tags a browser fetches an
image or media file for as soon as it renders them. ``html_removals`` returns the tags a
``Decide`` says go.

The tags are ``<img>`` (``src``, ``srcset``, ``lowsrc``, ``dynsrc``), SVG's ``<image>``
(``href``, ``xlink:href``), ``<source>`` (``src``, ``srcset``), ``<input type=image>``,
``<video poster>`` and ``<audio src>``; each of those attributes is read on any of them, and
every URL of a ``srcset``. Tag and attribute names are matched in any case, attributes may
be separated by ``/`` as browsers allow (``<img/src=...>``), values may be quoted either way
or not at all (``src==url`` is read as ``src=url``, as some HTML sanitisers read it), and
character references in values are decoded (``&#104;ttps&colon;``) before the URL is
read. Text that only shows a tag (``&lt;img ...&gt;``) is no tag.

Every ``<img`` is read as a tag of its own, even inside another tag's attribute value: a
browser given the raw text reads ``<img alt="<img src=...>">`` as one tag, but a Markdown
renderer that finds the outer tag malformed (CommonMark's attribute syntax is stricter than
a browser's) shows it as text and passes the inner one on. A tag left open is read to its
end, or for ``MAX_TAG`` characters; a URL cut there is too long to be plain anyway.

The work is linear and bounded: each tag is read for at most ``MAX_TAG`` characters, one
unit of work per attribute and per ``_CHARACTERS_PER_UNIT`` characters, ``SOURCE_WORK`` per
URL; past ``MAX_WORK`` units the reader stops and says so, and the caller breaks every
image of the string.
"""

from __future__ import annotations

import html
import re
from typing import Final

from bastion.guard._image_urls import (
    MAX_PLAIN_URL,
    MAX_WORK,
    READ,
    SOURCE_WORK,
    Decide,
    Found,
    Removal,
    read_source,
)

__all__ = ["TAG", "TAG_START", "html_removals"]

MAX_TAG: Final = 4096  # characters of one tag read; a longer value is cut there
_CHARACTERS_PER_UNIT: Final = 64
_TAG_NAMES: Final = ("img", "image", "source", "input", "video", "audio")
# Any case, spelt out: "[iI][mM]..." lets the engine drop most "<" at their next character,
# three times faster than (?i:...) on HTML.
_ANY_NAME: Final = "|".join("".join(f"[{c}{c.upper()}]" for c in name) for name in _TAG_NAMES)
TAG: Final = re.compile(rf"<(?:{_ANY_NAME})(?=[\s/>])")
TAG_START: Final = re.compile(rf"<(?=(?:{_ANY_NAME})[\s/>])")  # the "<" alone
# Whitespace and, after a line break, a block quote's markers (a Markdown renderer strips
# "> " from each line of a quoted tag); between attributes "/" too. Possessive.
_GAP: Final = r"(?:\n[ \t>]*+|[ \t\r\f\v])*+"
_SEPARATOR: Final = r"(?:\n[ \t>]*+|[ \t\r\f\v/])*+"
_ATTRIBUTE: Final = re.compile(
    rf"""{_SEPARATOR}([^\s/>][^\s/>=]*)(?:{_GAP}=++{_GAP}("[^"]*"?|'[^']*'?|[^\s>]*))?"""
)
_QUOTE_MARKERS: Final = re.compile(r"\n[ \t>]*")
_TAG_END: Final = re.compile(rf"{_SEPARATOR}>?")
_FETCHED: Final = frozenset({"src", "srcset", "lowsrc", "dynsrc", "href", "xlink:href", "poster"})


def html_removals(text: str, decide: Decide) -> Found:
    """The image tags of ``text`` that ``decide`` removes."""
    found: list[Removal] = []
    work = 0
    at = 0
    while (tag := TAG.search(text, at)) is not None:
        at = tag.end()  # the next tag may start inside this one (see the module docstring)
        stop = min(len(text), tag.start() + MAX_TAG)
        alt: str | None = None
        removed: Removal | None = None
        read = at
        while (attribute := _ATTRIBUTE.match(text, read, stop)) is not None:
            work += 1 + (attribute.end() - read) // _CHARACTERS_PER_UNIT
            if work > MAX_WORK:
                return Found(found, complete=False)
            read = attribute.end()
            name, value = attribute.group(1).lower(), _value(attribute.group(2))
            if name == "alt" and alt is None:
                alt = value
            elif name in _FETCHED and removed is None:
                for url in _readings(value, srcset=name.endswith("srcset")):
                    work += SOURCE_WORK
                    source = read_source(url[:READ], longer=len(url) > MAX_PLAIN_URL)
                    if decide(source):
                        removed = Removal(tag.start(), read, source.host, "")
                        break
        if removed is not None:
            end = _TAG_END.match(text, read, stop).end()  # type: ignore[union-attr]
            found.append(removed._replace(end=end, alt=alt or ""))
    return Found(found)


def _value(written: str | None) -> str:
    """An attribute's value as the browser reads it: unquoted, references decoded."""
    if not written:
        return ""
    if written[0] in "\"'":
        written = written[1:-1] if len(written) > 1 and written[-1] == written[0] else written[1:]
    return html.unescape(written) if "&" in written else written


def _readings(value: str, *, srcset: bool) -> list[str]:
    """The URLs ``value`` may name: as written and, across line breaks, also without the
    block quote markers a Markdown renderer strips (``ht\\n> tps://`` is ``https://``)."""
    values = [value, _QUOTE_MARKERS.sub("", value)] if "\n" in value else [value]
    return [url for each in values for url in (_urls(each) if srcset else [each])]


def _urls(srcset: str) -> list[str]:
    """Every URL a ``srcset`` may name: split at whitespace (a URL may hold commas) and
    also at commas (``a.png 1x,https://b 2x`` needs no space after the comma)."""
    words = srcset.split()
    return [part for word in words for part in (word.strip(","), *word.split(",")) if part]
