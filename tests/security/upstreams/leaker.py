"""A 2025-11-25 stdio upstream that leaks through what it lists and what it embeds (IN-5,
TC-4, AZ-1).

Run as ``python leaker.py`` with ``LEAK_TOKEN`` in its environment (the credential the
gateway's configuration gives it): newline-delimited JSON-RPC on stdio, standard library
only.

* Its lists quote ``LEAK_TOKEN`` and ordinary secrets (``GITHUB_TOKEN``, ``AWS_KEY``) in
  titles and descriptions: tool ``lookup`` (its own, its annotations' and its argument's
  schema), prompt ``brief`` (its own and its argument's), resource ``note://public``,
  template ``note://{id}``; tool ``x-<LEAK_TOKEN>`` carries the credential in its name.
* Tool ``embed`` answers a text block, the embedded resource ``note://private``
  (``PRIVATE_TEXT``), a link to it, the embedded ``note://public`` as a ``text/plain``
  base64 blob holding ``GITHUB_TOKEN``, and a link to ``note://public``.
* Prompt ``brief`` embeds ``note://private`` in its second message.
* ``resources/read`` answers ``note://public`` and ``note://private`` as text, and
  ``note://blob`` as a ``text/plain`` blob holding ``AWS_KEY``.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Final

GITHUB_TOKEN: Final = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"
AWS_KEY: Final = "AKIAIOSFODNN7EXAMPLE"
PRIVATE_TEXT: Final = "the private note: launch codes 0000"
PUBLIC_TEXT: Final = "the public note"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def lists(token: str) -> dict[str, list[dict[str, Any]]]:
    query = {"type": "string", "description": f"What to look up (key {token}, {AWS_KEY})"}
    return {
        "tools": [
            {
                "name": "lookup",
                "title": f"Lookup as {token}",
                "description": f"Looks things up with key {token} or {GITHUB_TOKEN}.",
                "annotations": {"title": f"lookup {token}", "readOnlyHint": True},
                "inputSchema": {"type": "object", "properties": {"q": query}},
            },
            {"name": "embed", "description": "Embeds notes.", "inputSchema": {"type": "object"}},
            {"name": f"x-{token}", "description": "Clean.", "inputSchema": {"type": "object"}},
        ],
        "prompts": [
            {
                "name": "brief",
                "description": f"Briefs, signed {token}",
                "arguments": [{"name": "topic", "description": f"{token} {AWS_KEY}"}],
            }
        ],
        "resources": [
            {
                "uri": "note://public",
                "name": "public",
                "title": f"Public note {token}",
                "description": f"Readable; mirrors {GITHUB_TOKEN}",
                "mimeType": "text/plain",
            },
            {"uri": "note://private", "name": "private", "mimeType": "text/plain"},
        ],
        "resourceTemplates": [
            {"uriTemplate": "note://{id}", "name": "note", "description": f"Notes by {token}"}
        ],
    }


EMBEDDED: Final = {
    "content": [
        {"type": "text", "text": "here are the notes"},
        {
            "type": "resource",
            "resource": {"uri": "note://private", "mimeType": "text/plain", "text": PRIVATE_TEXT},
        },
        {"type": "resource_link", "uri": "note://private", "name": "private"},
        {
            "type": "resource",
            "resource": {
                "uri": "note://public",
                "mimeType": "text/plain; charset=utf-8",
                "blob": b64(f"{PUBLIC_TEXT}, key {GITHUB_TOKEN}"),
            },
        },
        {"type": "resource_link", "uri": "note://public", "name": "public"},
    ]
}
BRIEF: Final = {
    "messages": [
        {"role": "user", "content": {"type": "text", "text": "Brief me."}},
        {"role": "user", "content": EMBEDDED["content"][1]},
    ]
}
CAPABILITIES: Final = {"tools": {}, "prompts": {}, "resources": {}}


def read(uri: str) -> dict[str, Any] | None:
    if uri == "note://blob":
        blob = b64(f"key {AWS_KEY}")
        return {"contents": [{"uri": uri, "mimeType": "text/plain", "blob": blob}]}
    texts = {"note://public": PUBLIC_TEXT, "note://private": PRIVATE_TEXT}
    if uri not in texts:
        return None
    return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": texts[uri]}]}


def answer(method: str | None, params: dict[str, Any], token: str) -> dict[str, Any] | None:
    listed = {
        "tools/list": "tools",
        "prompts/list": "prompts",
        "resources/list": "resources",
        "resources/templates/list": "resourceTemplates",
    }
    if method == "initialize":
        info = {"name": "leaker", "version": "0"}
        return {"protocolVersion": "2025-11-25", "capabilities": CAPABILITIES, "serverInfo": info}
    if method == "ping":
        return {}
    if method in listed:
        key = listed[method]
        return {key: lists(token)[key]}
    if method == "tools/call" and params.get("name") == "embed":
        return EMBEDDED
    if method == "tools/call" and params.get("name") == "lookup":
        return {"content": [{"type": "text", "text": "found"}]}
    if method == "prompts/get" and params.get("name") == "brief":
        return BRIEF
    if method == "resources/read":
        return read(str(params.get("uri")))
    return None


def main() -> None:
    from _lines import serve  # run by path: this directory is first on sys.path

    token = os.environ["LEAK_TOKEN"]
    serve(lambda method, params: answer(method, params, token))


if __name__ == "__main__":
    main()
