"""What a request is about: the tool, resource or prompt its body names (AZ-1, AZ-3), and
the resources a 2026-07-28 ``subscriptions/listen`` asks to follow (each decided like the
``resources/subscribe`` it replaces).

Policy decides on the name in the body, never on mirrored headers (TR-12). A name of the wrong
JSON type becomes an empty name, which the policy engine refuses as invalid before any rule.
A completion's ref is read by ``protocol.refs.completion_ref``, as the gateway routes it: one
off the spec raises ``InvalidParams``, and the request is refused before any policy.
"""

from __future__ import annotations

from typing import Final

from bastion._types import JSONObject, JSONValue
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
        InvalidParams: a ``completion/complete`` whose ref is off the spec.
    """
    found = _BY_METHOD.get(method)
    if found is not None:
        kind, field = found
        return Target(kind, _name(params.get(field)))
    if method == COMPLETE:
        return Target(*completion_ref(params.get("ref")))
    return None


def _name(value: JSONValue) -> str:
    return value if isinstance(value, str) else ""


def subscriptions_of(method: str, params: JSONObject) -> tuple[Target, ...]:
    """The resources a ``subscriptions/listen`` request subscribes to (``resourceSubscriptions``),
    each once, in order; none for any other request or a malformed filter (which the MCP layer
    refuses)."""
    if method != LISTEN:
        return ()
    notifications = params.get("notifications")
    uris = notifications.get("resourceSubscriptions") if isinstance(notifications, dict) else None
    if not isinstance(uris, list):
        return ()
    return tuple(Target("resource", name) for name in dict.fromkeys(_name(u) for u in uris))
