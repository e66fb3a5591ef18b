"""What a request is about: the tool, resource or prompt its body names (AZ-1, AZ-3), and
the resources a 2026-07-28 ``subscriptions/listen`` asks to follow (each decided like the
``resources/subscribe`` it replaces).

Policy decides on the name in the body, never on mirrored headers (TR-12). A name or URI that
is missing or not a string (IN-1) raises ``InvalidParams``, as does a completion's ref off the
spec (read by ``protocol.refs.completion_ref``, as the gateway routes it): such a request is
refused -32602 before any policy; so is a ``subscriptions/listen`` following a URI that is
not a string, as ``resources/subscribe`` would be. An empty name is a string: the policy
engine refuses it as invalid before any rule.
"""

from __future__ import annotations

from typing import Final

from bastion._types import JSONObject, JSONValue
from bastion.errors import InvalidParams
from bastion.policy.decision import Target, TargetKind
from bastion.protocol.refs import completion_ref

__all__ = ["LISTEN", "LIST_KINDS", "SUBSCRIBE", "subscriptions_of", "target_of"]

LISTEN: Final = "subscriptions/listen"
SUBSCRIBE: Final = "resources/subscribe"  # what each URI of a listen request is decided as
COMPLETE: Final = "completion/complete"

_BY_METHOD: Final[dict[str, tuple[TargetKind, str]]] = {
    "tools/call": ("tool", "name"),
    "prompts/get": ("prompt", "name"),
    "resources/read": ("resource", "uri"),
    SUBSCRIBE: ("resource", "uri"),
    "resources/unsubscribe": ("resource", "uri"),
}
# */list result key -> (kind of item, the item field policy decides on)
LIST_KINDS: Final[dict[str, tuple[str, TargetKind, str]]] = {
    "tools/list": ("tools", "tool", "name"),
    "prompts/list": ("prompts", "prompt", "name"),
    "resources/list": ("resources", "resource", "uri"),
    "resources/templates/list": ("resourceTemplates", "resource", "uriTemplate"),
}


def target_of(method: str, params: JSONObject) -> Target | None:
    """The target ``method`` is about, None for a method without one.

    Raises:
        InvalidParams: the name or URI is missing or not a string, or the ref of a
            ``completion/complete`` is off the spec.
    """
    found = _BY_METHOD.get(method)
    if found is not None:
        kind, field = found
        name = params.get(field)
        if not isinstance(name, str):
            raise InvalidParams(f"{field}: a string is required")
        return Target(kind, name)
    if method == COMPLETE:
        return Target(*completion_ref(params.get("ref")))
    if method == LISTEN and not all(isinstance(uri, str) for uri in _listened(params)):
        # refused as resources/subscribe refuses such a URI
        raise InvalidParams("resourceSubscriptions: strings are required")
    return None


def subscriptions_of(method: str, params: JSONObject) -> tuple[Target, ...]:
    """The resources a ``subscriptions/listen`` request subscribes to (``resourceSubscriptions``),
    each once, in order; none for any other request or a malformed filter (which the MCP layer
    refuses; ``target_of`` refuses a URI that is not a string)."""
    if method != LISTEN:
        return ()
    uris = dict.fromkeys(uri for uri in _listened(params) if isinstance(uri, str))
    return tuple(Target("resource", uri) for uri in uris)


def _listened(params: JSONObject) -> list[JSONValue]:
    notifications = params.get("notifications")
    uris = notifications.get("resourceSubscriptions") if isinstance(notifications, dict) else None
    return uris if isinstance(uris, list) else []
