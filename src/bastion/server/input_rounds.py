"""The rounds of a 2026-07-28 request that needs input from the client.

A handler that must ask raises ``InputRequired``; ``input_required`` answers with the
``inputRequests`` and the answers so far sealed into a ``requestState``. The client's retry
carries that state and its ``inputResponses``; ``restore_responses`` merges them, and keys
under Bastion's own ``io.bastion/`` prefix come only from the seal. A state is bound to its
request's method, target and caller (AZ-1), so nobody else's retry can resume it. An
upstream's own questions (``upstream_questions``) may not use that prefix: the gateway's
questions are not decided by the caller's policy, so one asked under it would pass unchecked.
"""

from __future__ import annotations

from typing import Final

import msgspec

from bastion._types import JSONObject, JSONValue
from bastion.errors import InvalidParams, InvalidRequest
from bastion.protocol import types as t
from bastion.protocol.request_state import RequestStateSealer
from bastion.server.context import InputRequired
from bastion.session.peer import Call

__all__ = ["RESERVED", "binding", "input_required", "restore_responses", "upstream_questions"]

# inputResponses keys a client may not send: Bastion's own, kept in the sealed requestState.
RESERVED: Final = "io.bastion/"


def upstream_questions(requests: JSONObject) -> dict[str, t.InputRequest]:
    """The ``inputRequests`` of a 2026-07-28 upstream's input-required result, as
    ``ToolContext.ask`` takes them (entries that are not objects are left out).

    Raises:
        InvalidRequest: a key is under ``RESERVED`` (AZ-1, TC-6).
    """
    if any(key.startswith(RESERVED) for key in requests):
        raise InvalidRequest(
            f"upstream input request under {RESERVED}", message="Upstream used a reserved key"
        )
    return {
        key: t.InputRequest(method=str(asked.get("method")), params=asked.get("params") or {})
        for key, asked in requests.items()
        if isinstance(asked, dict)
    }


def restore_responses(
    call: Call, sealer: RequestStateSealer, caller: tuple[str, str] | None
) -> tuple[JSONObject, bool]:
    """The answers a retried request carries, and whether it resumed a sealed state.

    Raises:
        InvalidParams: ``requestState`` is not a string or does not verify for this request,
            or ``inputResponses`` is not an object.
    """
    params = call.params
    responses: JSONObject = {}
    resumed = False
    state = params.get("requestState")
    if state is not None:
        if not isinstance(state, str):
            raise InvalidParams("requestState must be a string")
        earlier = sealer.unseal(state, binding=binding(call, caller))
        resumed = True
        if isinstance(earlier, dict):
            responses.update(earlier)
    fresh = params.get("inputResponses")
    if fresh is not None and not isinstance(fresh, dict):
        raise InvalidParams("inputResponses must be an object")
    if isinstance(fresh, dict):
        # Keys under Bastion's own prefix come only from the sealed state (the parked
        # upstream call it names, for one), and what was sealed is never overridden.
        sealed = dict(responses)
        responses.update(
            (key, value) for key, value in fresh.items() if not key.startswith(RESERVED)
        )
        responses.update(sealed)
    return responses, resumed


def input_required(
    call: Call, need: InputRequired, sealer: RequestStateSealer, caller: tuple[str, str] | None
) -> JSONValue:
    """The ``InputRequiredResult`` asking for ``need``, its answers so far sealed."""
    result = t.InputRequiredResult(
        inputRequests=need.requests,
        requestState=sealer.seal(need.answered, binding=binding(call, caller)),
    )
    encoded: JSONObject = msgspec.to_builtins(result)
    encoded["resultType"] = result.resultType  # a default, so to_builtins leaves it out
    return encoded


def binding(call: Call, caller: tuple[str, str] | None) -> str:
    """What a ``requestState`` is bound to (AZ-1): this request's method and target, and
    the caller, so nobody else's retry (another principal or credential) can resume it."""
    params = call.params
    target = params.get("name") or params.get("uri") or ""
    return msgspec.json.encode([call.method, target, *(caller or ())]).decode()
