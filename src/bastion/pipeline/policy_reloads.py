"""The audit record of a policy file reloaded in place (AD-1), like ``PUT /api/v1/policies``.

A running gateway re-reads its policy file when it changes (``Security``); each outcome is
audited: loaded, with its rule count and the sha-256 of the bytes it was compiled from (not
of the file as it is when recorded: it may have changed again), or refused, with why (the
first ``MAX_POLICY_ERROR`` characters; the old policy stays).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

from bastion._types import JSONObject
from bastion.audit.log import AuditLog
from bastion.audit.record import AuditRecord
from bastion.errors import ConfigError
from bastion.policy.engine import Policy

__all__ = ["MAX_POLICY_ERROR", "record_policy_change"]

MAX_POLICY_ERROR: Final = 500  # characters of a refused policy's error kept in its audit record


async def record_policy_change(
    log: AuditLog, path: Path, change: Policy | ConfigError, digest: str | None
) -> None:
    """Audit ``change``, the outcome of reloading the policy file at ``path``: the policy
    loaded (from bytes of sha-256 ``digest``), or the error it was refused with."""
    if isinstance(change, Policy):
        outcome = "ok"
        detail: JSONObject = {"rules": len(change.rules), "sha256": digest}
    else:
        outcome = "invalid"
        detail = {"error": str(change)[:MAX_POLICY_ERROR]}
    await log.record(
        AuditRecord(
            time=time.time(),
            kind="policy",
            principal="policy-file",
            method="policy.reload",
            target=str(path),
            decision="allow" if outcome == "ok" else "deny",
            outcome=outcome,
            detail=detail,
        )
    )
