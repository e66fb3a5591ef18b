"""2026-07-28 HTTP mirror headers (SEP-2243), sans-IO: ``Mcp-Name`` and ``Mcp-Param-*``.

A header value that is not plain visible ASCII (or has edge whitespace, or looks like the
sentinel itself) travels as ``=?base64?<base64 of UTF-8>?=``. A tool parameter whose schema
carries ``x-mcp-header`` is mirrored as ``Mcp-Param-<name>``; ``tool_param_headers`` validates
a tool's annotations and returns None for a tool whose annotations are invalid (such a tool
must not be called).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from bastion._types import JSONObject, JSONValue

__all__ = [
    "decode_header_value",
    "encode_header_value",
    "param_headers",
    "tool_param_headers",
]

# Used with fullmatch: `$` would also match before a trailing newline.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 tchar
_SAFE: Final = re.compile(r"[\x20-\x7e]*")
_SENTINEL: Final = re.compile(r"=\?base64\?([A-Za-z0-9+/]*={0,2})\?=")
_HEADER_TYPES: Final = frozenset({"string", "integer", "boolean"})


def encode_header_value(value: str) -> str:
    needs_base64 = (
        not _SAFE.fullmatch(value)
        or value != value.strip(" \t")
        or (value.startswith("=?base64?") and value.endswith("?="))
    )
    if not needs_base64:
        return value
    return "=?base64?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


def decode_header_value(raw: str) -> str | None:
    """The value a header carries, or None when its base64 form is malformed."""
    value = raw.strip(" \t")
    match = _SENTINEL.fullmatch(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group(1), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def tool_param_headers(tool: JSONObject) -> dict[str, str] | None:
    """``{parameter: header suffix}`` for a tool's annotated top-level parameters.

    Returns None when an annotation is invalid: empty or non-token name, a duplicate name
    (case-insensitive), or a parameter type other than string, integer or boolean.
    """
    schema = tool.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return {}
    found: dict[str, str] = {}
    seen: set[str] = set()
    for name, prop in properties.items():
        if not isinstance(prop, dict) or "x-mcp-header" not in prop:
            continue
        header = prop["x-mcp-header"]
        if not isinstance(header, str) or not _TOKEN.fullmatch(header):
            return None
        kind = prop.get("type")
        if not isinstance(kind, str) or kind not in _HEADER_TYPES or header.lower() in seen:
            return None
        seen.add(header.lower())
        found[name] = header
    return found


def _as_text(value: JSONValue) -> str | None:
    if value is None or isinstance(value, dict | list | float):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def param_headers(annotated: dict[str, str], arguments: JSONObject) -> dict[str, str]:
    """The ``Mcp-Param-*`` headers for one call (null and absent values send no header)."""
    headers: dict[str, str] = {}
    for name, header in annotated.items():
        text = _as_text(arguments.get(name))
        if text is not None:
            headers[f"Mcp-Param-{header}"] = encode_header_value(text)
    return headers
