"""Requests an upstream sends to the caller's client during a call, decided by the caller's
policy (AZ-1, TC-6; MCP10 over-sharing).

While a tool call, prompt or read runs, its upstream may ask the client for an LLM
completion (``sampling/createMessage``), for the user's input (``elicitation/create``) or
for the client's roots (``roots/list``: its directories). Each is decided like a request of
that method on the call's own target, for the caller, with the call's arguments: a rule
allowing the target with no ``methods`` allows them, one naming ``methods: [tools/call]``
does not, and a deny on ``methods: [roots/list]`` keeps the client's roots from every
upstream. A refused one never reaches the client: a 2025-11-25 upstream gets -32003 for it
(``PolicedCall``, also read by a 2026-07-28 call parked at such an upstream); a call whose
2026-07-28 upstream asks it is refused (``check_input_requests``). Every such decision is
kept in the call's audit detail (``relayed``, at most ``MAX_RELAYED_KEPT`` of them, then a
count). Bastion's own requests (``approval: human``'s elicitation, keys under
``io.bastion/``) are not the upstream's and are not decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from bastion._types import JSONObject, JSONValue
from bastion.errors import Denied
from bastion.pipeline.wrapped_call import WrappedCall
from bastion.policy.decision import Decision, PolicyRequest
from bastion.protocol.methods import INPUT_REQUEST_METHODS
from bastion.session.peer import Call

__all__ = ["MAX_RELAYED_KEPT", "PolicedCall", "check_input_requests", "relay_decider"]

MAX_RELAYED_KEPT: Final = 32  # decisions listed in one call's audit detail; then counted
_RESERVED: Final = "io.bastion/"  # keys of the gateway's own input requests

Decide = Callable[[str], Decision]


def relay_decider(
    decide: Callable[[PolicyRequest], Decision], request: PolicyRequest, detail: JSONObject
) -> Decide:
    """Decide an upstream's request of ``method`` as ``request`` (the call's own) with that
    method, and note the decision in ``detail`` (the call's audit detail)."""

    def decide_method(method: str) -> Decision:
        decision = decide(msgspec.structs.replace(request, method=method))
        _note(detail, method, decision)
        return decision

    return decide_method


def _note(detail: JSONObject, method: str, decision: Decision) -> None:
    kept = detail.setdefault("relayed", [])
    if isinstance(kept, list) and len(kept) < MAX_RELAYED_KEPT:
        kept.append({"method": method, "decision": decision.effect, "rule_id": decision.rule_id})
    else:
        more = detail.get("relayed_more")
        detail["relayed_more"] = (more if isinstance(more, int) else 0) + 1


class PolicedCall(WrappedCall):
    """The call's channel to its client, refusing the upstream requests the policy denies."""

    __slots__ = ("_decide",)

    def __init__(self, inner: Call, decide: Decide) -> None:
        super().__init__(inner)
        self._decide = decide

    async def request(
        self, method: str, params: JSONObject | None = None, *, timeout: float | None = None
    ) -> JSONValue:
        self.screen_input(method)
        return await self._inner.request(method, params, timeout=timeout)

    def screen_input(self, method: str) -> None:
        """Raises Denied when the policy refuses the upstream's ``method`` request."""
        if method in INPUT_REQUEST_METHODS:
            decision = self._decide(method)
            if not decision.allowed:
                raise Denied(f"upstream's {method}: {decision.explanation}")


def check_input_requests(result: JSONValue, decide: Decide) -> None:
    """Refuse a 2026-07-28 input-required ``result`` whose upstream asks the client anything
    the policy denies.

    Raises:
        Denied: naming the method refused.
    """
    if not isinstance(result, dict):
        return
    requests = result.get("inputRequests")
    if not isinstance(requests, dict):
        return
    for key, asked in requests.items():
        if key.startswith(_RESERVED) or not isinstance(asked, dict):
            continue
        method = asked.get("method")
        if isinstance(method, str) and method in INPUT_REQUEST_METHODS:
            decision = decide(method)
            if not decision.allowed:
                raise Denied(f"upstream's {method}: {decision.explanation}")
