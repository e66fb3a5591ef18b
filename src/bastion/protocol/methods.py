"""Which MCP methods exist, in which revision, and the typed params of each.

``CLIENT_METHODS`` are requests a client sends to a server; ``SERVER_METHODS`` the requests a
2025-11-25 server sends to its client (in 2026-07-28 they travel as input requests inside
an input-required result instead). ``parse_params`` turns a request's raw ``params`` into
its struct or raises ``InvalidParams`` (-32602) with a JSON path for the logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeVar

import msgspec

from bastion._types import JSONObject
from bastion.errors import InvalidParams
from bastion.protocol import types as t
from bastion.protocol.versions import Era

__all__ = [
    "CLIENT_METHODS",
    "INPUT_REQUEST_METHODS",
    "SERVER_METHODS",
    "MethodSpec",
    "parse_params",
]

_BOTH: Final = frozenset({Era.LEGACY, Era.MODERN})
_LEGACY: Final = frozenset({Era.LEGACY})
_MODERN: Final = frozenset({Era.MODERN})


@dataclass(frozen=True, slots=True)
class MethodSpec:
    params: type[t.Model]
    eras: frozenset[Era]
    # The params field that names the target: what Mcp-Name must mirror on 2026-07-28.
    name_field: str | None = None


CLIENT_METHODS: Final[dict[str, MethodSpec]] = {
    "initialize": MethodSpec(t.InitializeParams, _LEGACY),
    "ping": MethodSpec(t.MetaOnlyParams, _LEGACY),
    "logging/setLevel": MethodSpec(t.SetLevelParams, _LEGACY),
    "resources/subscribe": MethodSpec(t.SubscribeParams, _LEGACY),
    "resources/unsubscribe": MethodSpec(t.SubscribeParams, _LEGACY),
    "server/discover": MethodSpec(t.DiscoverParams, _MODERN),
    "subscriptions/listen": MethodSpec(t.SubscriptionsListenParams, _MODERN),
    "tools/list": MethodSpec(t.ListParams, _BOTH),
    "tools/call": MethodSpec(t.CallToolParams, _BOTH, "name"),
    "resources/list": MethodSpec(t.ListParams, _BOTH),
    "resources/templates/list": MethodSpec(t.ListParams, _BOTH),
    "resources/read": MethodSpec(t.ReadResourceParams, _BOTH, "uri"),
    "prompts/list": MethodSpec(t.ListParams, _BOTH),
    "prompts/get": MethodSpec(t.GetPromptParams, _BOTH, "name"),
    "completion/complete": MethodSpec(t.CompleteParams, _BOTH),
}

SERVER_METHODS: Final[dict[str, MethodSpec]] = {
    "ping": MethodSpec(t.MetaOnlyParams, _LEGACY),
    "sampling/createMessage": MethodSpec(t.CreateMessageParams, _LEGACY),
    "elicitation/create": MethodSpec(t.ElicitParams, _LEGACY),
    "roots/list": MethodSpec(t.MetaOnlyParams, _LEGACY),
}

# The server-to-client requests that a 2026-07-28 server asks for through inputRequests,
# with the client capability each needs.
INPUT_REQUEST_METHODS: Final[dict[str, str]] = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}

_M = TypeVar("_M", bound=t.Model)


def parse_params(kind: type[_M], params: JSONObject | None) -> _M:
    """Validate raw params against ``kind``.

    Raises:
        InvalidParams: the params do not match (the detail names the JSON path).
    """
    try:
        return msgspec.convert(params if params is not None else {}, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidParams(str(exc)) from exc
