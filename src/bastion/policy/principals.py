"""Roles of a principal: those its credential carries plus those the policy binds to it.

Bindings match the principal id (a flat glob: ``*`` matches ``/`` too, as in a JWT principal
``jwt:https://idp/realms/eng#alice``) or a claim, read at a dotted path exactly as the JWT
validator reads ``roles_claim`` (``bastion._claims``): a string claim equal to the value, or
a list claim that contains it. Claims come from the authenticator (JWT or API-key record);
this module only reads them.

A claim binding that cannot be decided, because the claim is there in a shape it cannot
read (an object, a number, a list holding non-strings without the value, a path through a
non-object, or a space-separated string that holds the value as one of its words), grants
its roles as *unsure*: deny rules count them and allow rules do not (``HeldRoles``). So an
odd-shaped claim never dodges a deny meant for the role, and never earns an allow either.
A credential's own roles may be unsure in the same way (the words of a JWT's string
``roles_claim``, ``bastion.auth.jwt``): they come in as ``unsure_roles``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bastion._claims import ABSENT, claim_at, claim_words, string_values
from bastion.policy.glob import GlobSet
from bastion.policy.model import Binding

__all__ = ["HeldRoles", "RoleResolver"]


class HeldRoles(frozenset[str]):
    """The roles a principal holds for sure (the set itself), and ``unsure``: roles a claim
    binding could not decide (module docstring), which only deny rules count. Equal and
    hashed by both, so a plan cached for one is never used for the other."""

    __slots__ = ("unsure",)
    unsure: frozenset[str]

    def __new__(cls, held: Iterable[str] = (), unsure: Iterable[str] = ()) -> HeldRoles:
        self = super().__new__(cls, held)
        self.unsure = frozenset(unsure).difference(self)
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, frozenset) or not frozenset.__eq__(self, other):
            return False
        return self.unsure == (other.unsure if isinstance(other, HeldRoles) else frozenset())

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return frozenset.__hash__(self) ^ hash(self.unsure)


class RoleResolver:
    __slots__ = ("_by_claim", "_by_id")

    def __init__(self, bindings: Sequence[Binding]) -> None:
        self._by_id = tuple(
            (GlobSet([b.principal], flat=True), frozenset(b.roles)) for b in bindings if b.principal
        )
        self._by_claim = tuple(
            (b.claim, b.value, frozenset(b.roles))
            for b in bindings
            if b.claim is not None and b.value is not None
        )

    def roles(
        self,
        principal: str,
        roles: Sequence[str],
        claims: Mapping[str, object],
        unsure_roles: Sequence[str] = (),
    ) -> frozenset[str]:
        """The roles held; a ``HeldRoles`` when some are unsure (``unsure_roles``, the
        credential's own, or a claim binding's), else a plain frozenset."""
        found = set(roles)
        unsure = set(unsure_roles)
        for globs, granted in self._by_id:
            if principal in globs:
                found |= granted
        for claim, value, granted in self._by_claim:
            held = _holds(claim, claim_at(claims, claim), value)
            if held is True:
                found |= granted
            elif held is None:
                unsure |= granted
        return HeldRoles(found, unsure) if unsure else frozenset(found)


def _holds(path: str, held: object, value: str) -> bool | None:
    """Whether claim value ``held`` (at ``path``) carries ``value``; None when that cannot
    be told."""
    if held is ABSENT:
        return False
    if isinstance(held, str):
        if value in string_values(path, held):
            return True
        return None if value in claim_words(held) else False
    if isinstance(held, list):
        if value in held:
            return True
        return False if all(isinstance(item, str) for item in held) else None
    return None  # UNREADABLE, an object, a number, a boolean
