"""Resources an upstream embeds in, or links from, a tool result or a prompt (AZ-1, TC-4):
their URIs as the client reads them through the gateway.

An embedded resource (a content block of type ``resource``) and a resource link
(``resource_link``) name a URI of the upstream's own. ``namespaced_result`` (a
``tools/call`` result's ``content``) and ``namespaced_prompt`` (each message of a
``prompts/get`` result) give each such URI the server's URI prefix, as ``resources/read``
contents get it: the client reads it back from the same server, never another server under
the bare URI, and the policy decides on the name the client would read
(``pipeline.embedded``). Every other block, and a URI that is not a string, is left as
sent; a result is copied only where something changed.
"""

from __future__ import annotations

from typing import Final

from bastion._types import JSONObject, JSONValue

__all__ = ["namespaced_prompt", "namespaced_result"]

_LINK: Final = "resource_link"
_EMBEDDED: Final = "resource"


def namespaced_result(result: JSONObject, prefix: str) -> JSONObject:
    """A ``tools/call`` result with the URIs of its content blocks under ``prefix``."""
    content = result.get("content")
    if not prefix or not isinstance(content, list):
        return result
    blocks = _blocks(content, prefix)
    return result if blocks is content else {**result, "content": blocks}


def namespaced_prompt(result: JSONObject, prefix: str) -> JSONObject:
    """A ``prompts/get`` result with the URIs of its messages' blocks under ``prefix``."""
    messages = result.get("messages")
    if not prefix or not isinstance(messages, list):
        return result
    changed: list[JSONValue] | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        block = message.get("content")
        new = _block(block, prefix)
        if new is not block:
            changed = list(messages) if changed is None else changed
            changed[index] = {**message, "content": new}
    return result if changed is None else {**result, "messages": changed}


def _blocks(content: list[JSONValue], prefix: str) -> list[JSONValue]:
    changed: list[JSONValue] | None = None
    for index, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") == "text":
            continue  # most blocks: nothing to expose
        new = _block(block, prefix)
        if new is not block:
            changed = list(content) if changed is None else changed
            changed[index] = new
    return content if changed is None else changed


def _block(block: JSONValue, prefix: str) -> JSONValue:
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == _LINK:
        uri = block.get("uri")
        return {**block, "uri": prefix + uri} if isinstance(uri, str) else block
    if kind == _EMBEDDED:
        resource = block.get("resource")
        uri = resource.get("uri") if isinstance(resource, dict) else None
        if isinstance(resource, dict) and isinstance(uri, str):
            return {**block, "resource": {**resource, "uri": prefix + uri}}
    return block
