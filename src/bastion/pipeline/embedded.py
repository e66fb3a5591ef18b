"""Resources a tool result or a prompt embeds or links, decided for the caller (AZ-1, TC-4).

An upstream may put a resource's contents in its answer (a content block of type
``resource``) or point at one (``resource_link``); the gateway has already exposed their
URIs as the client would read them (``gateway.embedded``). ``withhold_unreadable`` decides
each as the ``resources/read`` of that URI by the caller: one the policy would refuse (or
allow only under an obligation such as an approval, which nothing here could meet) is
replaced by ``WITHHELD_TEXT``, a text block that names neither the URI nor the content,
and the request's audit detail counts them (``withheldResources``). Every other block is left
as it is, and a result without such blocks comes back as the very same object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from bastion._types import JSONObject, JSONValue
from bastion.policy.decision import Decision, PolicyRequest, Target

__all__ = ["WITHHELD_TEXT", "withhold_unreadable"]

WITHHELD_TEXT: Final = "[Bastion withheld an embedded resource: the caller may not read it.]"
READ: Final = "resources/read"
_KINDS: Final = frozenset({"resource", "resource_link"})


def withhold_unreadable(
    result: JSONValue,
    method: str,
    detail: JSONObject,
    decide: Callable[[PolicyRequest], Decision],
    request: PolicyRequest,
) -> JSONValue:
    """``result`` of a ``tools/call`` or ``prompts/get`` with each embedded or linked
    resource ``request``'s caller may not read replaced (see the module docstring)."""
    if not isinstance(result, dict):
        return result
    if method == "tools/call":
        content = result.get("content")
        if not isinstance(content, list):
            return result
        for block in content:
            if isinstance(block, dict) and block.get("type") in _KINDS:
                break
        else:
            return result  # the usual result: a few text blocks, nothing to decide
        checker = _Checker(decide, request)
        result = {**result, "content": [checker.checked(block) for block in content]}
    elif method == "prompts/get":
        messages = result.get("messages")
        if not isinstance(messages, list):
            return result
        checker = _Checker(decide, request)
        shown = [checker.message(message) for message in messages]
        if checker.withheld:
            result = {**result, "messages": shown}
    else:
        return result
    if checker.withheld:
        detail["withheldResources"] = checker.withheld
    return result


class _Checker:
    """Decides the blocks of one result for one caller, counting those withheld."""

    def __init__(self, decide: Callable[[PolicyRequest], Decision], request: PolicyRequest):
        self._decide = decide
        self._request = request
        self.withheld = 0

    def checked(self, block: JSONValue) -> JSONValue:
        if not _embeds(block) or self._readable(_uri(block)):
            return block
        self.withheld += 1
        return {"type": "text", "text": WITHHELD_TEXT}

    def message(self, message: JSONValue) -> JSONValue:
        if not isinstance(message, dict):
            return message
        block = message.get("content")
        new = self.checked(block)
        return message if new is block else {**message, "content": new}

    def _readable(self, uri: JSONValue) -> bool:
        if not isinstance(uri, str):
            return False
        read = msgspec.structs.replace(
            self._request, method=READ, target=Target("resource", uri), arguments={}
        )
        decision = self._decide(read)
        return decision.allowed and not decision.obligations


def _embeds(block: JSONValue) -> bool:
    return isinstance(block, dict) and block.get("type") in _KINDS


def _uri(block: JSONValue) -> JSONValue:
    if not isinstance(block, dict):
        return None
    if block.get("type") == "resource_link":
        return block.get("uri")
    resource = block.get("resource")
    return resource.get("uri") if isinstance(resource, dict) else None
