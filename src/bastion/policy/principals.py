"""Roles of a principal: those its credential carries plus those the policy binds to it.

Bindings match the principal id (a glob) or a claim: a string claim equal to the value, or
a list claim that contains it. Claims come from the authenticator (JWT or API-key record);
this module only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bastion.policy.glob import GlobSet
from bastion.policy.model import Binding

__all__ = ["RoleResolver"]


class RoleResolver:
    __slots__ = ("_by_claim", "_by_id")

    def __init__(self, bindings: Sequence[Binding]) -> None:
        self._by_id = tuple(
            (GlobSet([b.principal]), frozenset(b.roles)) for b in bindings if b.principal
        )
        self._by_claim = tuple(
            (b.claim, b.value, frozenset(b.roles))
            for b in bindings
            if b.claim is not None and b.value is not None
        )

    def roles(
        self, principal: str, roles: Sequence[str], claims: Mapping[str, object]
    ) -> frozenset[str]:
        found = set(roles)
        for globs, granted in self._by_id:
            if principal in globs:
                found |= granted
        for claim, value, granted in self._by_claim:
            held = claims.get(claim)
            if held == value or (isinstance(held, list) and value in held):
                found |= granted
        return frozenset(found)
