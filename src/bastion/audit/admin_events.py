"""``audit_events``: the admin event callback writing to the tamper-evident audit log.

Each write and each refusal becomes one ``AuditRecord`` of kind ``admin`` (AD-1): the
principal and credential id (never a secret), the action as ``method``, its target, the
outcome and what the action said besides (``detail``); anything but success is recorded
as ``decision="deny"`` (``admin_record``). The admin API and ``bastion keys`` both record
through it, and both
describe a key they created, rotated or revoked with ``key_detail``, ``rotation_detail``
and ``revocation_detail`` (its name, roles, expiry and break-glass flag, never its secret).
A created or rotated key is described under ``key``, so that its break-glass flag is never
read as the top-level ``breakGlass`` that marks the caller's use of a break-glass key.
It lives here, not in ``bastion.admin``, so that the command need not load the admin API.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol

from bastion.audit.record import AuditRecord

if TYPE_CHECKING:
    from bastion._types import Clock, JSONObject
    from bastion.admin.app import AdminEvent
    from bastion.audit import AuditLog
    from bastion.auth.principal import Principal

__all__ = [
    "MAX_REVOKED_DETAILED",
    "DescribedKey",
    "admin_record",
    "audit_events",
    "key_detail",
    "revocation_detail",
    "rotation_detail",
]

MAX_REVOKED_DETAILED: Final = 16  # keys one revocation describes in its audit detail


class DescribedKey(Protocol):
    """What a key's audit detail is made of (the admin API's ``KeyRecord`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def roles(self) -> tuple[str, ...]: ...
    @property
    def expires_at(self) -> float | None: ...
    @property
    def break_glass(self) -> bool: ...


def admin_record(
    principal: Principal | None,
    action: str,
    target: str | None,
    outcome: str,
    detail: JSONObject,
    *,
    now: float,
) -> AuditRecord:
    """The ``admin`` record of one admin action or refusal at wall-clock ``now``: allowed
    only when it succeeded; a break-glass caller marked ``breakGlass: true`` in ``detail``,
    as on ``/mcp``."""
    if principal is not None and principal.method == "break-glass":
        detail = {**detail, "breakGlass": True}
    return AuditRecord(
        time=now,
        kind="admin",
        principal=principal.id if principal is not None else None,
        credential_id=principal.credential_id if principal is not None else None,
        method=action,
        target=target,
        decision="allow" if outcome == "ok" else "deny",
        outcome=outcome,
        detail=detail,
    )


def audit_events(log: AuditLog, *, wall_clock: Clock = time.time) -> AdminEvent:
    """An ``AdminApi(audit=...)`` callback that records each event into ``log`` as it is
    (``admin_record``); the gateway's own callback (``pipeline.admin_mount``) makes the same
    records and bounds floods of them.

    Raises (from the callback):
        AuditUnavailable: the log cannot take the record (the request then fails closed).
    """

    async def record(
        principal: Principal | None,
        action: str,
        target: str | None,
        outcome: str,
        detail: JSONObject,
    ) -> None:
        await log.record(admin_record(principal, action, target, outcome, detail, now=wall_clock()))

    return record


def key_detail(key: DescribedKey) -> JSONObject:
    """What the audit log says of a key created (AD-1): ``key``, its description."""
    return {"key": _described(key)}


def _described(key: DescribedKey) -> JSONObject:
    return {
        "name": key.name,
        "roles": list(key.roles),
        "expiresAt": key.expires_at,
        "breakGlass": key.break_glass,
    }


def rotation_detail(key: DescribedKey, rotated_from: str, overlap: int) -> JSONObject:
    """``key``, the successor of ``rotated_from``, which stays valid ``overlap`` seconds."""
    return {**key_detail(key), "rotatedFrom": rotated_from, "overlapSeconds": overlap}


def revocation_detail(revoked: Sequence[DescribedKey]) -> JSONObject:
    """The keys one revocation ended: the first ``MAX_REVOKED_DETAILED`` and the count."""
    shown = revoked[:MAX_REVOKED_DETAILED]
    return {"revoked": [{"id": key.id, **_described(key)} for key in shown], "count": len(revoked)}
