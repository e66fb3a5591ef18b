"""Result filter (TC-4, AD-3): what an upstream returns is untrusted text for a model.

``Sanitiser`` walks a ``tools/call`` result, a ``resources/read`` contents list or a
``prompts/get`` result by the MCP schema and filters every string and every key of arbitrary
JSON (only a content block's base64 ``data``/``blob`` excepted) with ``TextFilter``
(``_text_filter``: invisible characters, secrets, the gateway's own credentials, PII, prompt
injection, Markdown and HTML images that could carry data out when rendered, the
``max_chars`` budget); a value under a secret-named key is masked whole and the key renamed.
Prompt injection is annotated (each such string is wrapped as untrusted data) or blocks the
whole result. Schema tokens (``type``, ``uri``, ``mimeType``, ``role``) are masked but never
wrapped or cut; nesting deeper than ``MAX_DEPTH`` is dropped. The input is never modified; a
clean input comes back as the very same object.
A resource's ``blob`` whose ``mimeType`` names text is text too: it is decoded, filtered
and encoded again (``_text_blobs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

from bastion._types import JSONObject, JSONValue
from bastion.audit.redact import REDACTED
from bastion.guard._text_blobs import TextBlob
from bastion.guard._text_filter import (
    CLOSE_MARK,
    MIN_KNOWN_SECRET,
    OPEN_MARK,
    ImageMode,
    InjectionAction,
    TextFilter,
    Walk,
    Where,
    render,
)
from bastion.guard.findings import Finding

__all__ = [
    "BLOCKED_TEXT",
    "CLOSE_MARK",
    "MIN_KNOWN_SECRET",
    "OPEN_MARK",
    "ImageMode",
    "InjectionAction",
    "Sanitised",
    "Sanitiser",
]

MAX_DEPTH: Final = 32
BLOCKED_TEXT: Final = "[Bastion withheld this result: it looks like a prompt injection.]"


@dataclass(frozen=True, slots=True)
class Sanitised:
    """The filtered value, what was found (for the audit log) and whether to refuse it."""

    value: JSONValue
    findings: tuple[Finding, ...] = ()
    blocked: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.findings)


class Sanitiser(TextFilter):
    """One configured filter; cheap to call, safe to share."""

    # -- entry points -----------------------------------------------------------------------

    def tool_result(self, result: JSONObject) -> Sanitised:
        """A ``tools/call`` result; blocked results become an ``isError`` text result."""
        walk = Walk(self._max)
        value = self._shaped(result, "$", walk, 0, _RESULT)
        if walk.injected and self._action == "block":
            blocked = {"content": [{"type": "text", "text": BLOCKED_TEXT}], "isError": True}
            return Sanitised(blocked, tuple(walk.findings), blocked=True)
        return Sanitised(value, tuple(walk.findings))

    def resource_contents(self, contents: list[JSONValue]) -> Sanitised:
        """A ``resources/read`` contents list; when blocked, the caller refuses the read."""
        return self._other(self._contents_list, contents)

    def prompt_result(self, result: JSONObject) -> Sanitised:
        """A ``prompts/get`` result; when blocked, the caller refuses the prompt."""
        return self._other(self._prompt, result)

    def text(self, text: str, path: str = "$") -> Sanitised:
        return self._other(self._json, text, path)

    def value(self, value: JSONValue, path: str = "$", *, by_name: bool = True) -> Sanitised:
        """Any other untrusted JSON (an upstream error's ``data``). ``by_name=False`` for
        JSON whose keys name things rather than hold them (an elicitation's
        ``requestedSchema``, where ``password`` names a field to ask for): its strings are
        still scanned, but nothing is masked just for the key it sits under."""
        return self._other(self._json, value, path, by_name=by_name)

    def _other(
        self,
        walker: Callable[[JSONValue, Where, Walk, int], JSONValue],
        value: JSONValue,
        path: str = "$",
        *,
        by_name: bool = True,
    ) -> Sanitised:
        walk = Walk(self._max, by_name=by_name)
        out = walker(value, path, walk, 0)
        if walk.injected and self._action == "block":
            return Sanitised(None, tuple(walk.findings), blocked=True)
        return Sanitised(out, tuple(walk.findings))

    # -- walk -------------------------------------------------------------------------------
    # The MCP shapes (result, content block, resource contents, prompt message) are walked
    # field by field: only a block's base64 payload and the schema's own words (a block
    # type, a role) are left alone, and fixed fields (``type``, ``mimeType``, ``uri``,
    # ``role``, an icon's ``src``) are scanned as tokens, whose secrets are masked but which
    # are never wrapped in markers or cut. Anything else (structuredContent, _meta, unknown
    # fields) is arbitrary JSON: every string and every object key is text.

    def _json(self, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
        if isinstance(value, str):
            return self._string(value, path, walk)
        if isinstance(value, dict):
            return self._mapping(value, path, walk, depth, _NO_FIELDS)
        if isinstance(value, list):
            return self._list(value, path, walk, depth, self._json)
        return value

    def _mapping(
        self,
        value: JSONObject,
        path: Where,
        walk: Walk,
        depth: int,
        fields: Mapping[str, _Step],
    ) -> JSONValue:
        if depth >= MAX_DEPTH:
            walk.findings.append(Finding(kind="truncated", path=render(path), excerpt="too deep"))
            return None
        pairs: list[tuple[str, JSONValue]] | None = None
        for index, (key, child) in enumerate(value.items()):
            step = fields.get(key)
            new_key = key
            if step is None:
                # Keys are text for a model too; a renamed key names the path, so a secret
                # key never reaches the audit log through a finding's path.
                new_key, child_path = self._key(key, path, walk)
                if (
                    self._mask
                    and walk.by_name
                    and self._redactor.is_secret_field(key)
                    and child is not None
                ):
                    new: JSONValue = REDACTED
                    walk.findings.append(
                        Finding(kind="secret", path=render(child_path), excerpt="field")
                    )
                else:
                    new = self._json(child, child_path, walk, depth + 1)
            else:
                new = step(self, child, (path, key), walk, depth + 1)
            if pairs is None and (new is not child or new_key != key):
                pairs = list(value.items())[:index]
            if pairs is not None:
                pairs.append((new_key, new))
        return value if pairs is None else _unique(pairs)

    def _list(
        self,
        value: list[JSONValue],
        path: Where,
        walk: Walk,
        depth: int,
        item: Callable[[JSONValue, Where, Walk, int], JSONValue],
    ) -> JSONValue:
        if depth >= MAX_DEPTH:
            walk.findings.append(Finding(kind="truncated", path=render(path), excerpt="too deep"))
            return None
        items: list[JSONValue] | None = None
        for index, child in enumerate(value):
            new = item(child, (path, index), walk, depth + 1)
            if new is not child:
                items = list(value) if items is None else items
                items[index] = new
        return value if items is None else items

    def _token(self, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
        if isinstance(value, str):
            return value if value in _VOCABULARY else self._string(value, path, walk, token=True)
        return self._json(value, path, walk, depth)

    def _shaped(
        self, value: JSONValue, path: Where, walk: Walk, depth: int, fields: Mapping[str, _Step]
    ) -> JSONValue:
        if isinstance(value, dict):
            return self._mapping(value, path, walk, depth, fields)
        return self._json(value, path, walk, depth)

    def _block(self, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
        kind = value.get("type") if isinstance(value, dict) else None
        fields = _BINARY_BLOCK if isinstance(kind, str) and kind in _BINARY_TYPES else _BLOCK
        return self._shaped(value, path, walk, depth, fields)

    def _blocks(self, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
        if isinstance(value, list):
            return self._list(value, path, walk, depth, self._block)
        return self._block(value, path, walk, depth)

    def _contents(self, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
        if not isinstance(value, dict) or "blob" not in value or "text" in value:
            return self._shaped(value, path, walk, depth, _CONTENTS)
        shaped = self._shaped(value, path, walk, depth, _BLOB)
        # Text sent as base64 is read as text, and sent back in the same charset.
        blob = TextBlob.of(value["blob"], value.get("mimeType"))
        if blob is None or not isinstance(shaped, dict):
            return shaped
        text = self._string(blob.text, (path, "blob"), walk)
        return shaped if text is blob.text else {**shaped, "blob": blob.encode(text)}

    def _contents_list(self, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
        if isinstance(value, list):
            return self._list(value, path, walk, depth, self._contents)
        return self._json(value, path, walk, depth)

    def _prompt(self, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
        return self._shaped(value, path, walk, depth, _PROMPT)

    def _message(self, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
        return self._shaped(value, path, walk, depth, _MESSAGE)

    def _messages(self, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
        if isinstance(value, list):
            return self._list(value, path, walk, depth, self._message)
        return self._json(value, path, walk, depth)

    def _icons(self, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
        def icon(item: JSONValue, where: Where, walk: Walk, depth: int) -> JSONValue:
            return self._shaped(item, where, walk, depth, _ICON)

        if isinstance(value, list):
            return self._list(value, path, walk, depth, icon)
        return self._json(value, path, walk, depth)


def _keep(self: Sanitiser, value: JSONValue, path: Where, walk: Walk, depth: int) -> JSONValue:
    """Base64 (``data`` of an image or audio block, ``blob``): bytes for a client to decode,
    not text for a model; masking would corrupt them."""
    return value if isinstance(value, str) else self._json(value, path, walk, depth)


def _unique(pairs: list[tuple[str, JSONValue]]) -> JSONObject:
    """A mapping of ``pairs`` in order; a key already taken (two secret keys both masked to
    ``[REDACTED]``) gets a numbered suffix, so no value is dropped."""
    out: JSONObject = {}
    for key, value in pairs:
        name, number = key, 1
        while name in out:
            number += 1
            name = f"{key}#{number}"
        out[name] = value
    return out


_Step: TypeAlias = Callable[[Sanitiser, JSONValue, Where, Walk, int], JSONValue]
_NO_FIELDS: Final[Mapping[str, _Step]] = {}
_TEXT: Final = Sanitiser._json
_TOKEN: Final = Sanitiser._token
# Fields of each MCP shape (schema 2025-11-25 and 2026-07-28); fields not listed are walked
# as arbitrary JSON, their keys included.
_ICON: Final[Mapping[str, _Step]] = {
    "src": _TOKEN, "mimeType": _TOKEN, "sizes": _TEXT, "theme": _TOKEN,
}  # fmt: skip
_CONTENTS: Final[Mapping[str, _Step]] = {
    "uri": _TOKEN, "mimeType": _TOKEN, "text": _TEXT, "_meta": _TEXT,
}  # fmt: skip
_BLOB: Final[Mapping[str, _Step]] = {**_CONTENTS, "blob": _keep}
_BLOCK: Final[Mapping[str, _Step]] = {
    "type": _TOKEN, "text": _TEXT, "mimeType": _TOKEN, "uri": _TOKEN, "name": _TEXT,
    "title": _TEXT, "description": _TEXT, "size": _TEXT, "icons": Sanitiser._icons,
    "resource": Sanitiser._contents, "annotations": _TEXT, "_meta": _TEXT,
}  # fmt: skip
_BINARY_TYPES: Final = frozenset({"image", "audio"})
_VOCABULARY: Final = (
    frozenset({"text", "resource_link", "resource", "user", "assistant"}) | _BINARY_TYPES
)
_BINARY_BLOCK: Final[Mapping[str, _Step]] = {**_BLOCK, "data": _keep}
_MESSAGE: Final[Mapping[str, _Step]] = {
    "role": _TOKEN, "content": Sanitiser._blocks, "_meta": _TEXT,
}  # fmt: skip
_RESULT: Final[Mapping[str, _Step]] = {
    "content": Sanitiser._blocks, "structuredContent": _TEXT, "isError": _TEXT,
    "resultType": _TOKEN, "_meta": _TEXT,
}  # fmt: skip
_PROMPT: Final[Mapping[str, _Step]] = {
    "description": _TEXT, "messages": Sanitiser._messages, "resultType": _TOKEN, "_meta": _TEXT,
}  # fmt: skip
