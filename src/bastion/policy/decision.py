"""What the engine is asked (``PolicyRequest``) and what it answers (``Decision``).

A request carries everything a decision depends on, time included, so the engine never reads
a clock. A decision always names the rule that made it (``default-deny`` and
``invalid-name`` are the engine's own) and, when it allows a high-security tool, the
obligations (step-up, human approval) that the pipeline must enforce before forwarding.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec

__all__ = [
    "DEFAULT_DENY",
    "INVALID_NAME",
    "Approval",
    "Decision",
    "Obligation",
    "PolicyRequest",
    "RecentAuth",
    "Target",
    "TargetKind",
]

DEFAULT_DENY: Final = "default-deny"
INVALID_NAME: Final = "invalid-name"

TargetKind = Literal["tool", "resource", "prompt"]
JSONValue = object


class Target(msgspec.Struct, frozen=True):
    """The tool, resource (URI) or prompt a request is about, by canonical namespaced name."""

    kind: TargetKind
    name: str


class PolicyRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One request to decide.

    ``roles`` are those the authenticator already established; bindings in the policy add
    more from ``principal`` and ``claims``. ``at`` must be timezone-aware.
    ``listing`` is True when deciding whether an item appears in a ``*/list`` result: the
    arguments of a later call are unknown then, so an allow rule with argument conditions
    counts as matching (the item may be callable) and a deny rule with argument conditions
    does not (it refuses only some calls). The call itself is decided again, with arguments.
    """

    principal: str
    method: str
    at: datetime
    roles: tuple[str, ...] = ()
    unsure_roles: tuple[str, ...] = ()
    """Roles the credential carries in a shape that cannot tell (``Principal``): deny rules
    count them, allow rules do not, as those of a claim binding (``HeldRoles``)."""
    claims: dict[str, JSONValue] = msgspec.field(default_factory=dict)
    target: Target | None = None
    arguments: dict[str, JSONValue] = msgspec.field(default_factory=dict)
    listing: bool = False

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("PolicyRequest.at must be timezone-aware")


class RecentAuth(msgspec.Struct, frozen=True, tag="recent_auth"):
    """Step-up: the principal must have authenticated within ``max_age`` seconds."""

    max_age: int


class Approval(msgspec.Struct, frozen=True, tag="approval"):
    """A human must approve this call before it is forwarded: with ``by="human"`` the
    caller's client may be asked; with ``by="admin"`` only an admin may approve it."""

    by: Literal["human", "admin"] = "human"


Obligation = RecentAuth | Approval


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The answer: ``effect``, the deciding ``rule_id`` and a human ``explanation``."""

    effect: Literal["allow", "deny"]
    rule_id: str
    explanation: str
    level: Literal["low", "medium", "high"] | None = None
    obligations: tuple[Obligation, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"
