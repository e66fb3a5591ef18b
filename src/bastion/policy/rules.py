"""One rule compiled: who, what and when as precompiled matchers, and why it did not match.

``failure()`` returns None when the rule applies to a request, else the first reason it does
not, as a callable giving the text (``explain`` prints these; deciding never builds them).
A rule applies when its *who* matches (the principal id matches ``principals`` or one of
the roles matches ``roles``; both are flat globs, where ``*`` matches ``/`` too; a deny
also counts the roles a claim binding could not decide, ``HeldRoles.unsure``), the method
matches ``methods`` (when given), the target matches ``tools``/``resources``/``prompts``
(when any is given) and every condition holds.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from bastion.policy.conditions import CompiledConditions, Reason
from bastion.policy.decision import PolicyRequest, TargetKind
from bastion.policy.glob import GlobSet
from bastion.policy.model import Rule
from bastion.policy.principals import HeldRoles

__all__ = ["CompiledRule"]

_KIND_FIELDS: Final[tuple[tuple[TargetKind, str], ...]] = (
    ("tool", "tools"),
    ("resource", "resources"),
    ("prompt", "prompts"),
)


class CompiledRule:
    """A ``Rule`` ready to match; ``position`` is its index in the file."""

    __slots__ = (
        "conditions",
        "deny",
        "description",
        "id",
        "methods",
        "position",
        "principals",
        "roles",
        "targets",
    )

    def __init__(self, rule: Rule, position: int) -> None:
        self.id = rule.id
        self.position = position
        self.deny = rule.effect == "deny"
        self.description = rule.description
        # Principal ids and role names are not paths: ``*`` matches ``/`` in them (``glob``).
        self.roles = None if rule.roles is None else GlobSet(rule.roles, flat=True)
        self.principals = None if rule.principals is None else GlobSet(rule.principals, flat=True)
        self.methods = None if rule.methods is None else GlobSet(rule.methods)
        self.targets: dict[TargetKind, GlobSet] = {
            kind: GlobSet(globs)
            for kind, field in _KIND_FIELDS
            if (globs := getattr(rule, field)) is not None
        }
        self.conditions = (
            None if rule.when is None else CompiledConditions(rule.when, deny=self.deny)
        )

    @property
    def effect(self) -> str:
        return "deny" if self.deny else "allow"

    def failure(
        self, request: PolicyRequest, roles: Collection[str], *, conditions: bool = True
    ) -> Reason | None:
        """None when the rule applies to ``request``; else why not, as a ``Reason`` (called
        only by ``explain``: deciding never pays for the text). ``conditions=False`` leaves the
        conditions' tests out (the engine's plan evaluates them itself per request)."""
        who = self._who_failure(request.principal, roles)
        if who is not None:
            return who
        if self.methods is not None and request.method not in self.methods:
            methods = self.methods
            return lambda: f"method {request.method!r} not in {list(methods.globs)}"
        if self.targets:
            target, targets = request.target, self.targets
            if target is None:
                return lambda: f"request has no target; rule names {_kinds(targets)}"
            globs = targets.get(target.kind)
            if globs is None:
                return lambda: f"target is a {target.kind}; rule names {_kinds(targets)}"
            if target.name not in globs:
                return lambda: f"{target.kind} {target.name!r} not in {list(globs.globs)}"
        if self.conditions is not None:
            listing = request.listing and self.conditions.has_args
            if listing and self.deny:
                return _NO_LISTED_DENY
            if conditions:
                return self.conditions.failure(request.arguments, request.at, skip_args=listing)
        return None

    def _who_failure(self, principal: str, roles: Collection[str]) -> Reason | None:
        if self.principals is not None and principal in self.principals:
            return None
        if self.roles is not None:
            if self.roles.any_of(roles):
                return None
            # Roles a claim binding could not decide count for a deny only (``principals``).
            if self.deny and isinstance(roles, HeldRoles) and self.roles.any_of(roles.unsure):
                return None
        return lambda: self._who_reason(principal, roles)

    def _who_reason(self, principal: str, roles: Collection[str]) -> str:
        parts = []
        if self.principals is not None:
            parts.append(f"principal {principal!r} not in {list(self.principals.globs)}")
        if self.roles is not None:
            unsure = roles.unsure if isinstance(roles, HeldRoles) else ()
            also = f" (unsure, not counted by an allow: {sorted(unsure)})" if unsure else ""
            parts.append(f"roles {sorted(roles)}{also} not in {list(self.roles.globs)}")
        return "; ".join(parts)


def _no_listed_deny() -> str:
    return "argument conditions cannot deny a listed item (arguments unknown)"


_NO_LISTED_DENY: Final[Reason] = _no_listed_deny


def _kinds(targets: dict[TargetKind, GlobSet]) -> str:
    return "/".join(f"{kind}s" for kind in targets)
