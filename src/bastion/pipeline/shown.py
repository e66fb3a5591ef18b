"""What the caller of a list or completion request may be shown, by the policy (AZ-2).

``ShownCall`` stands in for the request's ``Call`` on a ``*/list`` or ``completion/complete``
request and answers ``Call.shown`` with the caller's policy: an item is shown when the call
it stands for would be allowed (``listing_request``). The MCP layer asks before it pages a
list, so a page is full of items the caller may see and a cursor counts only those
(``server.pagination``), and it drops completion values naming a resource the caller may not
read (``server.completions``). ``consulted`` says whether the MCP layer asked: a list it did
not filter is filtered by the authorize stage afterwards (``filter_unconsulted``), so a layer
that never asks cannot show more than before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from bastion._types import JSONValue
from bastion.pipeline.targets import COMPLETE, LIST_KINDS
from bastion.pipeline.wrapped_call import WrappedCall
from bastion.policy.decision import PolicyRequest
from bastion.policy.engine import Policy, listing_request
from bastion.session.peer import Call

__all__ = ["SHOWN_METHODS", "ShownCall", "filter_unconsulted"]

SHOWN_METHODS: Final = frozenset({*LIST_KINDS, COMPLETE})


class ShownCall(WrappedCall):
    __slots__ = ("_policy", "_request", "consulted")

    def __init__(self, inner: Call, policy: Policy, request: PolicyRequest) -> None:
        super().__init__(inner)
        self._policy = policy
        self._request = request
        self.consulted = False

    def shown(self, kind: Literal["tool", "prompt", "resource"]) -> Callable[[str], bool]:
        self.consulted = True
        decide, request = self._policy.decide, self._request

        def may_see(name: str) -> bool:
            return decide(listing_request(request, kind, name)).allowed

        return may_see


def filter_unconsulted(call: ShownCall, method: str, result: JSONValue) -> None:
    """Filter the items of ``result``, a ``method`` list the MCP layer answered without
    asking ``call`` what its caller may see (the page as it came: unlike a filtered one,
    it may be short)."""
    listed = LIST_KINDS.get(method)
    if call.consulted or listed is None or not isinstance(result, dict):
        return
    key, kind, field = listed
    items = result.get(key)
    if isinstance(items, list):
        may_see = call.shown(kind)
        result[key] = [item for item in items if may_see(_field(item, field))]


def _field(item: JSONValue, field: str) -> str:
    value = item.get(field) if isinstance(item, dict) else None
    return value if isinstance(value, str) else ""
