"""The audit record of a policy file reloaded in place (AD-1), like ``PUT /api/v1/policies``.

A running gateway re-reads its policy file when it changes (``Security``); each outcome is
audited: loaded, with its rule count and the sha-256 of the file as it is when recorded, or
refused, with why (the first ``MAX_POLICY_ERROR`` characters; the old policy stays).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Final

import anyio

from bastion._types import JSONObject
from bastion.audit.log import AuditLog
from bastion.audit.record import AuditRecord
from bastion.errors import ConfigError
from bastion.policy.engine import Policy

__all__ = ["MAX_POLICY_ERROR", "record_policy_change"]

MAX_POLICY_ERROR: Final = 500  # characters of a refused policy's error kept in its audit record


async def record_policy_change(log: AuditLog, path: Path, change: Policy | ConfigError) -> None:
    """Audit ``change``, the outcome of reloading the policy file at ``path``: the policy
    loaded, or the error it was refused with. The digest is taken in a worker thread."""
    if isinstance(change, Policy):
        digest = await anyio.to_thread.run_sync(_file_digest, path)
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


def _file_digest(path: Path) -> str | None:
    """The sha-256 of ``path`` as it is now (the file just loaded, unless edited again)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
