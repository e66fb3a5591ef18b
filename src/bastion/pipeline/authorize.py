"""The authorize stage (AZ-1, AZ-2, AZ-4, TC-6): ask the policy about every request, refuse
what it does not allow before anything reaches an upstream, filter list results by the same
decisions, and enforce a high-security tool's obligations (recent authentication, approval).
Each URI a ``subscriptions/listen`` follows is decided as the ``resources/subscribe`` it
replaces; one refused refuses the whole request, with the same answer, before anything is
subscribed.

The policy is read through a callable on every request, so a reloaded policy applies to the
next request without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from bastion._types import Clock, JSONValue
from bastion.errors import Denied
from bastion.pipeline.approvals import ApprovalGate
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import Handler
from bastion.pipeline.targets import LIST_KINDS, SUBSCRIBE
from bastion.policy.decision import Approval, Decision, PolicyRequest, RecentAuth
from bastion.policy.engine import Policy

__all__ = ["AuthorizeStage"]

logger = logging.getLogger(__name__)


class AuthorizeStage:
    name = "authorize"

    def __init__(
        self,
        policy: Callable[[], Policy],
        approvals: ApprovalGate | None = None,
        *,
        wall_clock: Clock = time.time,
    ) -> None:
        self._policy = policy
        self._approvals = approvals
        self._wall = wall_clock

    async def __call__(self, exchange: Exchange, proceed: Handler) -> JSONValue:
        policy = self._policy()
        now = self._wall()
        request = self._request(exchange, now)
        decision = policy.decide(request)
        exchange.decision = decision
        if not decision.allowed:
            raise Denied(decision.explanation)
        _authorize_subscriptions(policy, exchange, request)
        await self._obligations(exchange, decision, now)
        result = await proceed(exchange)
        listed = LIST_KINDS.get(exchange.method)
        if listed is not None and isinstance(result, dict):
            key, kind, field = listed
            items = result.get(key)
            if isinstance(items, list):
                result[key] = policy.filter_list(request, kind, items, lambda i: _field(i, field))
        return result

    def _request(self, exchange: Exchange, now: float) -> PolicyRequest:
        principal = exchange.principal
        return PolicyRequest(
            principal=principal.id,
            method=exchange.method,
            at=datetime.fromtimestamp(now, UTC),
            roles=principal.roles,
            claims=principal.claims,
            target=exchange.target,
            arguments=exchange.arguments if exchange.target is not None else {},
        )

    async def _obligations(self, exchange: Exchange, decision: Decision, now: float) -> None:
        for obligation in decision.obligations:
            if isinstance(obligation, RecentAuth):
                _require_recent(exchange, obligation, now)
            elif isinstance(obligation, Approval):
                if self._approvals is None:
                    raise Denied("approval required but no approver is configured")
                await self._approvals.require(exchange, obligation.by)


def _authorize_subscriptions(policy: Policy, exchange: Exchange, request: PolicyRequest) -> None:
    """Each resource a listen request follows, decided as its ``resources/subscribe``.

    Raises:
        Denied: one is not allowed; it becomes the exchange's target and decision (audit).
    """
    for subscription in exchange.subscriptions:
        decision = policy.decide(
            msgspec.structs.replace(request, method=SUBSCRIBE, target=subscription, arguments={})
        )
        if not decision.allowed:
            exchange.target, exchange.decision = subscription, decision
            raise Denied(decision.explanation)


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


def _field(item: JSONValue, field: str) -> str:
    value = item.get(field) if isinstance(item, dict) else None
    return value if isinstance(value, str) else ""
