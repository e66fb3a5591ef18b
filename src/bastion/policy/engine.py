"""The policy engine: pure decisions from a compiled policy, no I/O, no clock.

Precedence, in this order:
1. A target name outside the AZ-3 alphabet is denied before any rule (``invalid-name``); so
   is a resource URI that is not in its one normal form (``uri_form``: escapes, dot and
   empty segments, scheme and host case, user info, default ports, ``file://localhost``),
   since rules match the URI as sent and the upstream decodes and normalises it.
2. If any applicable rule is a deny, the decision is deny (deny wins). A deny on resources
   applies when its glob matches the URI as sent or without its query and fragment (an
   upstream may ignore them); an allow must match the URI as sent.
3. Else if any applicable rule is an allow, the decision is allow.
4. Else deny (``default-deny``).
The effect therefore never depends on rule order. The reported ``rule_id`` is the first
applicable rule of the winning effect in file order (the only order-dependent part).

Everything but the conditions depends only on who asks (principal and roles), the method,
the target and whether it is a listing, so ``decide`` plans that part once per such key:
the candidate rules whose who/method/target match, each with its finished decision, and
the fallback. A request then only evaluates the conditions of the planned rules, in order.
Plans are kept per ``Policy`` (a reload starts afresh), at most ``MAX_PLANS`` of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final, TypeVar

import msgspec

from bastion.policy.conditions import CompiledConditions
from bastion.policy.decision import (
    DEFAULT_DENY,
    INVALID_NAME,
    Decision,
    Obligation,
    PolicyRequest,
    Target,
    TargetKind,
)
from bastion.policy.index import RuleIndex
from bastion.policy.model import PolicyFile
from bastion.policy.principals import RoleResolver
from bastion.policy.rules import CompiledRule
from bastion.policy.security import Level, SecurityLevels
from bastion.policy.uri_form import uri_is_normal, without_query

__all__ = ["CALL_METHODS", "MAX_PLANS", "Policy", "RuleTrace", "listing_request", "valid_name"]

T = TypeVar("T")

# AZ-3: the canonical namespaced names of tools and prompts; resource URIs are printable
# ASCII without spaces (non-ASCII must arrive percent-encoded), at most 4096 characters.
_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_URI: Final = re.compile(r"[\x21-\x7e]{1,4096}")
# The call that a listed item stands for, decided when filtering a */list result (AZ-2).
CALL_METHODS: Final[dict[TargetKind, str]] = {
    "tool": "tools/call",
    "resource": "resources/read",
    "prompt": "prompts/get",
}
# Plans held per policy; the table is cleared when full (a plan is cheap to rebuild).
MAX_PLANS: Final = 4096

# Who asks, what about: (principal, roles, method, target, listing).
_PlanKey = tuple[str, frozenset[str], str, Target | None, bool]


class _Plan(msgspec.Struct, frozen=True):
    """The rules that may still apply once their conditions hold, each with the decision it
    makes, in precedence order; ``fallback`` when none does."""

    steps: tuple[tuple[CompiledConditions | None, Decision], ...]
    fallback: Decision


def valid_name(target: Target) -> bool:
    if target.kind == "resource":
        return _URI.fullmatch(target.name) is not None and uri_is_normal(target.name)
    return _NAME.fullmatch(target.name) is not None


class RuleTrace(msgspec.Struct, frozen=True, kw_only=True):
    """One rule as ``explain`` saw it: whether it applied, and if not, why."""

    rule_id: str
    effect: str
    applies: bool
    reason: str = ""


class Policy:
    """A compiled policy. Build it once per file (``Policy(policy_file)``); it is immutable
    and safe to share between requests and threads."""

    def __init__(self, source: PolicyFile) -> None:
        self.source = source
        self.rules = tuple(CompiledRule(rule, i) for i, rule in enumerate(source.rules))
        self._index = RuleIndex(self.rules)
        self._roles = RoleResolver(source.principals)
        self._security = SecurityLevels(source.security.tools)
        self._plans: dict[_PlanKey, _Plan] = {}

    def decide(self, request: PolicyRequest) -> Decision:
        """The decision for one request (see the module docstring for precedence)."""
        roles = self.roles_of(request)
        listing = request.listing
        key = (request.principal, roles, request.method, request.target, listing)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(request, roles)
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            self._plans[key] = plan
        for conditions, decision in plan.steps:
            if conditions is None:
                return decision
            skip_args = listing and conditions.has_args
            if conditions.failure(request.arguments, request.at, skip_args=skip_args) is None:
                return decision
        return plan.fallback

    def _plan(self, request: PolicyRequest, roles: frozenset[str]) -> _Plan:
        """What ``decide`` needs beyond the conditions, for requests like ``request``."""
        if request.target is not None and not valid_name(request.target):
            return _Plan((), _invalid(request.target))
        candidates = self._index.candidates(request)
        bare = _without_query(request)
        if bare is not None:  # denies also match the URI without its query and fragment
            more = [rule for rule in self._index.candidates(bare) if rule.deny]
            merged = {rule.position: rule for rule in candidates + more}
            candidates = sorted(merged.values(), key=lambda rule: (not rule.deny, rule.position))
        steps: list[tuple[CompiledConditions | None, Decision]] = []
        for rule in candidates:
            misses = rule.failure(request, roles, conditions=False) is not None
            if misses and rule.deny and bare is not None:
                misses = rule.failure(bare, roles, conditions=False) is not None
            if misses:
                continue
            conditions = rule.conditions
            steps.append((conditions, self._decision(rule, request)))
            if conditions is None:
                break  # this rule always applies: the ones after it are never reached
        return _Plan(tuple(steps), _default_deny(request, roles))

    def explain(self, request: PolicyRequest) -> tuple[Decision, list[RuleTrace]]:
        """The decision and every rule in file order, checked in full without the index."""
        if request.target is not None and not valid_name(request.target):
            return _invalid(request.target), []
        roles = self.roles_of(request)
        bare = _without_query(request)
        traces: list[RuleTrace] = []
        deny: CompiledRule | None = None
        allow: CompiledRule | None = None
        for rule in self.rules:
            reason = rule.failure(request, roles)
            if reason is not None and rule.deny and bare is not None:
                reason = rule.failure(bare, roles)
            traces.append(
                RuleTrace(
                    rule_id=rule.id,
                    effect=rule.effect,
                    applies=reason is None,
                    reason="" if reason is None else reason(),
                )
            )
            if reason is None and rule.deny and deny is None:
                deny = rule
            elif reason is None and not rule.deny and allow is None:
                allow = rule
        winner = deny or allow
        decision = (
            _default_deny(request, roles) if winner is None else self._decision(winner, request)
        )
        return decision, traces

    def filter_list(
        self, request: PolicyRequest, kind: TargetKind, items: Iterable[T], name: Callable[[T], str]
    ) -> list[T]:
        """The items of a ``tools/list``, ``resources/list`` (or templates) or
        ``prompts/list`` result that ``request``'s principal may see: each is decided as
        the call it stands for (``CALL_METHODS``), with ``listing=True`` (AZ-2)."""
        return [
            item
            for item in items
            if self.decide(listing_request(request, kind, name(item))).allowed
        ]

    def roles_of(self, request: PolicyRequest) -> frozenset[str]:
        return self._roles.roles(
            request.principal, request.roles, request.claims, request.unsure_roles
        )

    def _decision(self, rule: CompiledRule, request: PolicyRequest) -> Decision:
        what = _what(request)
        if rule.deny:
            because = f": {rule.description}" if rule.description else ""
            return Decision(
                effect="deny",
                rule_id=rule.id,
                explanation=f"{what} denied by rule {rule.id}{because}",
            )
        level: Level | None = None
        obligations: tuple[Obligation, ...] = ()
        if request.target is not None and request.target.kind == "tool":
            level, obligations = self._security.lookup(request.target.name)
        because = f": {rule.description}" if rule.description else ""
        return Decision(
            effect="allow",
            rule_id=rule.id,
            explanation=f"{what} allowed by rule {rule.id}{because}",
            level=level,
            obligations=obligations,
        )


def listing_request(request: PolicyRequest, kind: TargetKind, name: str) -> PolicyRequest:
    """The request that decides whether item ``name`` of a list result is shown."""
    return msgspec.structs.replace(
        request, method=CALL_METHODS[kind], target=Target(kind, name), arguments={}, listing=True
    )


def _without_query(request: PolicyRequest) -> PolicyRequest | None:
    """``request`` about its resource URI without query and fragment, if it has either."""
    target = request.target
    if target is None or target.kind != "resource":
        return None
    bare = without_query(target.name)
    if bare is None:
        return None
    return msgspec.structs.replace(request, target=Target("resource", bare))


def _what(request: PolicyRequest) -> str:
    target = "" if request.target is None else f" on {request.target.kind} {request.target.name!r}"
    return f"{request.method}{target} by {request.principal!r}"


def _invalid(target: Target) -> Decision:
    limit = (
        "printable ASCII, 1-4096 characters, in normal form (percent-encoding, no '.', '..'"
        " or empty segments, lower-case scheme and host, no user info, default port or"
        " file://localhost)"
        if target.kind == "resource"
        else ("[A-Za-z0-9_.-]{1,128}")
    )
    return Decision(
        effect="deny",
        rule_id=INVALID_NAME,
        explanation=f"{target.kind} name refused before policy: not {limit}",
    )


def _default_deny(request: PolicyRequest, roles: frozenset[str]) -> Decision:
    return Decision(
        effect="deny",
        rule_id=DEFAULT_DENY,
        explanation=f"no rule allows {_what(request)} (roles: {sorted(roles) or 'none'})",
    )
