"""Building policies and requests in tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from bastion.policy import Policy, PolicyRequest, Target, TargetKind, parse_policy

MONDAY_NOON = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
ROLES = {"admin": None, "developer": None, "viewer": None}


def policy(rules: list[dict[str, Any]], **extra: Any) -> Policy:
    document = {"roles": ROLES, "rules": rules, **extra}
    return Policy(parse_policy(yaml.safe_dump(document), source="policy.yaml"))


def request(
    method: str = "tools/call",
    *,
    principal: str = "p",
    roles: tuple[str, ...] = ("developer",),
    kind: TargetKind | None = "tool",
    name: str = "srv__tool",
    arguments: dict[str, object] | None = None,
    at: datetime = MONDAY_NOON,
    claims: dict[str, object] | None = None,
) -> PolicyRequest:
    return PolicyRequest(
        principal=principal,
        roles=roles,
        claims=claims or {},
        method=method,
        target=None if kind is None else Target(kind, name),
        arguments=arguments or {},
        at=at,
    )
