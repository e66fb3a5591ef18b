"""One poll of a running gateway's policy file (``PolicyPolls``), and its audit record
(AD-1), like ``PUT /api/v1/policies``'s.

A running gateway re-reads its policy file when it changes (``Security``); each outcome is
audited: loaded, with its rule count and the sha-256 of the bytes it was compiled from (not
of the file as it is when recorded: it may have changed again), or refused, with why (the
first ``MAX_POLICY_ERROR`` characters; the old policy stays). A poll never raises (IN-1): a
file the store refuses is a refusal, and so is any failure of the poll itself (audited and
logged once while it repeats), so a typo in the policy file cannot stop the gateway.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Final

import anyio

from bastion._types import JSONObject
from bastion.audit.log import AuditLog
from bastion.audit.record import AuditRecord
from bastion.errors import ConfigError
from bastion.policy.engine import Policy
from bastion.policy.store import PolicyStore

__all__ = ["MAX_POLICY_ERROR", "PolicyPolls", "record_policy_change"]

logger = logging.getLogger(__name__)

MAX_POLICY_ERROR: Final = 500  # characters of a refused policy's error kept in its audit record


class PolicyPolls:
    """Polls of one ``PolicyStore``: ``poll`` compiles a changed file in a worker thread and
    puts it in force on the event loop, returning without awaiting after the swap."""

    def __init__(self, store: PolicyStore) -> None:
        self._store = store
        self._failing: str | None = None  # the failure of the last poll, said once

    async def poll(self) -> tuple[Policy | ConfigError | None, str | None]:
        """What this poll changed, to audit: the policy now in force or the error that
        kept the previous one (None: nothing), and the sha-256 of the bytes it read."""
        store = self._store
        try:
            loaded = await anyio.to_thread.run_sync(store.check)
            change = None if loaded is None else store.apply(loaded)
        except Exception as exc:  # the gateway outlives its policy file
            problem = f"{store.path}: cannot be reloaded ({type(exc).__name__}: {exc})"
            if problem == self._failing:
                return None, None
            self._failing = problem
            logger.error(
                "policy reload failed, keeping the previous policy: %s", problem, exc_info=exc
            )
            return ConfigError(problem), None
        self._failing = None
        return change, None if loaded is None else loaded.digest


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
