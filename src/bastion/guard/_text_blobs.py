"""Text sent as bytes (TC-4): a resource's base64 ``blob`` whose ``mimeType`` says it is text.

An upstream can carry in a ``blob`` what it would otherwise put in ``text``, where the
result filter reads it; a client shown a ``text/plain`` blob decodes it and hands it to the
model all the same. ``TextBlob.of`` decodes such a blob (``text/*``, JSON, XML, YAML,
JavaScript, by the media type's essence; its ``charset`` parameter, UTF-8 by default) so the
filter can read it, and ``encode`` turns the filtered text back into base64 in the same
charset. UTF-8 is decoded with ``surrogateescape``, so bytes that are not UTF-8 survive the
round trip unchanged and cannot hide the text around them. A blob that is not base64, in an
unknown charset or longer than ``MAX_TEXT_BLOB_CHARS`` (more than any upstream message may
carry) is left as bytes.
"""

from __future__ import annotations

import base64
import binascii
import codecs
from dataclasses import dataclass
from typing import Final

from bastion.protocol.codec import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["MAX_TEXT_BLOB_CHARS", "TextBlob"]

MAX_TEXT_BLOB_CHARS: Final = DEFAULT_MAX_MESSAGE_BYTES
_TEXT_TYPES: Final = frozenset(
    {
        "application/json",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/javascript",
        "application/ecmascript",
        "application/x-sh",
        "application/sql",
        "application/toml",
        "application/x-www-form-urlencoded",
    }
)
_UTF8: Final = codecs.lookup("utf-8").name


@dataclass(frozen=True, slots=True)
class TextBlob:
    """A blob's text and the charset it came in (``utf-8`` decoded with
    ``surrogateescape``; any other strictly)."""

    text: str
    charset: str

    @classmethod
    def of(cls, blob: object, mime_type: object) -> TextBlob | None:
        """The text of ``blob`` when ``mime_type`` names text and it decodes; else None."""
        if not isinstance(blob, str) or not isinstance(mime_type, str):
            return None
        if len(blob) > MAX_TEXT_BLOB_CHARS:
            return None
        charset = _text_charset(mime_type)
        if charset is None:
            return None
        try:
            data = base64.b64decode(blob, validate=True)
            if charset == _UTF8:
                return cls(data.decode(_UTF8, "surrogateescape"), charset)
            return cls(data.decode(charset), charset)
        except (binascii.Error, ValueError, LookupError):  # a decode error is a ValueError
            return None

    def encode(self, text: str) -> str:
        """``text`` (this blob's, filtered) as base64 in this blob's charset; a character
        the charset cannot hold (a marker's ``…``) becomes ``?``."""
        if self.charset == _UTF8:
            data = text.encode(_UTF8, "surrogateescape")
        else:
            data = text.encode(self.charset, "replace")
        return base64.b64encode(data).decode("ascii")


def _text_charset(mime_type: str) -> str | None:
    """The codec name to decode a ``mime_type`` body with, when it names text; else None."""
    essence, _, parameters = mime_type.partition(";")
    essence = essence.strip().lower()
    kind, _, subtype = essence.partition("/")
    if not (
        kind == "text"
        or essence in _TEXT_TYPES
        or (kind == "application" and subtype.endswith(("+json", "+xml", "+yaml")))
    ):
        return None
    charset = "utf-8"
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or charset
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        return None
    return _UTF8 if name == "ascii" else name
