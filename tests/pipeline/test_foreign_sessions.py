"""The audit of someone else's 2025-11-25 session named (AD-1, SE-2): who tried it, on which
session (its digest, never the id), bounded under a flood, and never an error the caller
could tell apart from an unknown id."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.audit import AuditLog, AuditRecord
from bastion.audit.log import AuditUnavailable
from bastion.auth.principal import Principal
from bastion.pipeline.connection import session_tag
from bastion.pipeline.foreign_sessions import FOREIGN_SESSION, ForeignSessionAudit
from tests.pipeline.support import audit_records

pytestmark = pytest.mark.anyio

BOB = Principal(id="apikey:bob", credential_id="apikey:k-bob", method="api-key", roles=("dev",))
SESSION = "3f1c9a0e5b7d4e2a8c6f1b3d5e7a9c0b"


async def test_ad1_se2_a_foreign_session_use_is_recorded_without_the_id_AD1(
    tmp_path: Path,
) -> None:
    """AD-1: bob's DELETE of alice's session is a refusal naming bob, his credential, the
    request and the session as alice's own records name it (``session_tag``); the id itself,
    which would let a reader of the log use the session, is nowhere in the record."""
    db = tmp_path / "audit.db"
    async with AuditLog(db) as log:
        audit = ForeignSessionAudit(lambda: log, wall_clock=lambda: 1_800_000_000.0)
        await audit(BOB, "DELETE /mcp", SESSION, None)
        await audit(BOB, "POST /mcp", SESSION, 7)
    first, *rest = audit_records(db)
    assert first == AuditRecord(
        time=1_800_000_000.0,
        kind="request",
        principal="apikey:bob",
        credential_id="apikey:k-bob",
        session=session_tag(SESSION),
        method="DELETE /mcp",
        decision="deny",
        outcome=FOREIGN_SESSION,
    )
    assert SESSION not in db.read_bytes().decode("latin-1")
    # The second, in the same second, is counted in the summary written at close (DS-4).
    [summary] = rest
    assert (summary.outcome, summary.detail["refused"]) == (FOREIGN_SESSION, 1)


async def test_ad1_ds4_a_flood_of_foreign_session_uses_is_bounded(tmp_path: Path) -> None:
    """DS-4: 500 tries in a moment are one record and one counted summary, not 500."""
    db = tmp_path / "audit.db"
    async with AuditLog(db) as log:
        audit = ForeignSessionAudit(lambda: log)
        for n in range(500):
            await audit(BOB, "POST /mcp", f"{SESSION}{n}", n)
    records = audit_records(db)
    assert len(records) == 2
    assert records[1].detail["refused"] == 499


class Unavailable:
    async def record(self, record: AuditRecord) -> None:
        raise AuditUnavailable("audit queue full")

    def record_nowait(self, record: AuditRecord) -> bool:
        raise AuditUnavailable("audit queue full")

    async def refused(self, key: tuple[str, str], record: AuditRecord) -> None:
        raise AuditUnavailable("audit queue full")


async def test_se2_a_full_audit_log_does_not_tell_the_caller_the_session_exists() -> None:
    """SE-2: an unknown id is answered 404 whatever the audit log's state; so is a foreign
    one: a log that cannot take the record is reported in the gateway's log, not raised
    (a 500 would say the session exists). Without a log, nothing happens."""
    await ForeignSessionAudit(Unavailable)(BOB, "GET /mcp", SESSION, None)
    await ForeignSessionAudit(lambda: None)(BOB, "GET /mcp", SESSION, None)
