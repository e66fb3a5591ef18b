"""The authorize stage (AZ-1, AZ-2, AZ-4, TC-6): ask the policy about every request, refuse
what it does not allow before anything reaches an upstream, filter list results by the same
decisions (and the resources a result or prompt embeds or links: ``embedded``), and
enforce a high-security tool's obligations (recent authentication, approval).
List items and completion values are filtered as the MCP layer builds the answer, before a
list is paged (``ShownCall``), so a page and its cursor count only what the caller may see.
A request that cannot be served as sent (``Exchange.malformed``: a method this protocol era
does not have, -32601, or a target that cannot be read from its params, -32602) is refused
before the policy is asked; the audit stage around it records the refusal.
Each URI a ``subscriptions/listen`` follows is decided as the ``resources/subscribe`` it
replaces; one refused refuses the whole request, with the same answer, before anything is
subscribed.

The policy is read through a callable on every request, so a reloaded policy applies to the
next request without a restart. A listen stream outlives its request's decision, so it is
held in ``OpenListens`` and ``reauthorize`` (run by the gateway on every policy poll and
credential check) ends those whose caller lapsed or that the current policy refuses. Requests
outside a session (2026-07-28 stateless calls) are held in ``InFlightCalls`` while they run,
so the credential check ends those of a revoked or expired credential too (AU-5).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from bastion._types import Clock, JSONValue
from bastion.errors import Denied
from bastion.pipeline.approvals import ApprovalGate
from bastion.pipeline.embedded import withhold_unreadable
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.inflight import InFlightCalls
from bastion.pipeline.listens import OpenListens
from bastion.pipeline.shown import SHOWN_METHODS, ShownCall, filter_unconsulted
from bastion.pipeline.stage import Handler
from bastion.pipeline.targets import LISTEN, SUBSCRIBE
from bastion.pipeline.upstream_requests import PolicedCall, check_input_requests, relay_decider
from bastion.policy.decision import Approval, Decision, PolicyRequest, RecentAuth, Target
from bastion.policy.engine import Policy

if TYPE_CHECKING:
    from bastion.auth.principal import Principal

__all__ = ["AuthorizeStage", "reauthorize"]

logger = logging.getLogger(__name__)


class AuthorizeStage:
    name = "authorize"

    def __init__(
        self,
        policy: Callable[[], Policy],
        approvals: ApprovalGate | None = None,
        *,
        listens: OpenListens | None = None,
        calls: InFlightCalls | None = None,
        wall_clock: Clock = time.time,
    ) -> None:
        self._policy = policy
        self._approvals = approvals
        self._listens = listens
        self._calls = calls
        self._wall = wall_clock

    async def __call__(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        if exchange.malformed is not None:
            raise exchange.malformed
        policy = self._policy()
        now = self._wall()
        request = _request(exchange, now)
        decision = policy.decide(request)
        exchange.decision = decision
        if not decision.allowed:
            raise Denied(decision.explanation)
        refused = _refused_subscription(policy, exchange, request)
        if refused is not None:
            exchange.target, exchange.decision = refused  # the audit record names the URI
            raise Denied(refused[1].explanation)
        await self._obligations(exchange, decision, now)
        if exchange.method == LISTEN and self._listens is not None:
            return await self._listens.hold(exchange, proceed)
        relay = relay_decider(policy.decide, request, exchange.detail)
        exchange.call = PolicedCall(exchange.call, relay)
        shown = None
        if exchange.method in SHOWN_METHODS:  # filtered by the MCP layer, before paging
            shown = exchange.call = ShownCall(exchange.call, policy, request)
        if exchange.session is None and self._calls is not None:
            result = await self._calls.hold(exchange, proceed)
        else:
            result = await proceed(exchange)
        check_input_requests(result, relay)
        result = withhold_unreadable(
            result, exchange.method, exchange.detail, policy.decide, request
        )
        if shown is not None:
            filter_unconsulted(shown, exchange.method, result)
        return result

    async def _obligations(self, exchange: Exchange, decision: Decision, now: float) -> None:
        for obligation in decision.obligations:
            if isinstance(obligation, RecentAuth):
                _require_recent(exchange, obligation, now)
            elif isinstance(obligation, Approval):
                if self._approvals is None:
                    raise Denied("approval required but no approver is configured")
                await self._approvals.require(exchange, obligation.by)


def reauthorize(
    listens: OpenListens,
    policy: Policy,
    now: float,
    lapsed: Callable[[Principal], bool] | None = None,
) -> int:
    """End the open listen streams their caller may no longer hold (AU-5, SE-3, AZ-1): its
    credential ``lapsed``, or ``policy`` refuses the request or one of its subscriptions at
    ``now``. Returns how many ended."""
    ended = 0
    for exchange in listens.snapshot():
        if lapsed is not None and lapsed(exchange.principal):
            ended += listens.end(exchange, "credential lapsed")
            continue
        request = _request(exchange, now)
        decision = policy.decide(request)
        if decision.allowed:
            refused = _refused_subscription(policy, exchange, request)
            if refused is None:
                continue
            exchange.target, decision = refused
        exchange.decision = decision
        ended += listens.end(exchange, "no longer allowed by the policy")
    return ended


def _request(exchange: Exchange, now: float) -> PolicyRequest:
    principal = exchange.principal
    return PolicyRequest(
        principal=principal.id,
        method=exchange.method,
        at=datetime.fromtimestamp(now, UTC),
        roles=principal.roles,
        unsure_roles=principal.unsure_roles,
        claims=principal.claims,
        target=exchange.target,
        arguments=exchange.arguments if exchange.target is not None else {},
    )


def _refused_subscription(
    policy: Policy, exchange: Exchange, request: PolicyRequest
) -> tuple[Target, Decision] | None:
    """The first resource a listen request follows that its ``resources/subscribe`` would
    not be allowed for, with that decision; None when all are."""
    for subscription in exchange.subscriptions:
        decision = policy.decide(
            msgspec.structs.replace(request, method=SUBSCRIBE, target=subscription, arguments={})
        )
        if not decision.allowed:
            return subscription, decision
    return None


def _require_recent(exchange: Exchange, need: RecentAuth, now: float) -> None:
    principal = exchange.principal
    if principal.method == "local":
        return  # the operating-system user at the keyboard: nothing stronger exists
    if principal.authenticated_at is None:
        raise Denied(
            f"step-up: a {principal.method} credential carries no authentication time",
            message="Recent authentication required",
            data={"maxAuthAge": need.max_age},
        )
    if now - principal.authenticated_at > need.max_age:
        raise Denied(
            f"step-up: authenticated {now - principal.authenticated_at:.0f}s ago",
            message="Recent authentication required",
            data={"maxAuthAge": need.max_age},
        )
