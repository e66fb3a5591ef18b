"""``audit_events``: the admin API's event callback writing to the tamper-evident audit log.

Each write and each refusal becomes one ``AuditRecord`` of kind ``admin`` (AD-1): the
principal and credential id (never a secret), the action as ``method``, its target, the
outcome and what the action said besides (``detail``: a key's roles, expiry, break-glass
flag); refusals are recorded as ``decision="deny"``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from bastion.audit import AuditRecord

if TYPE_CHECKING:
    from bastion._types import Clock, JSONObject
    from bastion.admin.app import AdminEvent
    from bastion.audit import AuditLog
    from bastion.auth.principal import Principal

__all__ = ["REFUSALS", "audit_events"]

REFUSALS: Final = frozenset({"unauthenticated", "forbidden"})


def audit_events(log: AuditLog, *, wall_clock: Clock = time.time) -> AdminEvent:
    """An ``AdminApi(audit=...)`` callback that records into ``log``.

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
        await log.record(
            AuditRecord(
                time=wall_clock(),
                kind="admin",
                principal=principal.id if principal else None,
                credential_id=principal.credential_id if principal else None,
                method=action,
                target=target,
                decision="deny" if outcome in REFUSALS else "allow",
                outcome=outcome,
                detail=detail,
            )
        )

    return record
