"""Helpers for the audit tests: write a log, and edit its SQLite file as an attacker would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.audit import AuditLog, AuditRecord
from bastion.audit.keys import load_public_key, public_key_path


def make_record(i: int, **detail: object) -> AuditRecord:
    return AuditRecord(
        time=1_800_000_000.0 + i,
        principal=f"user{i % 3}",
        credential_id=f"key-{i % 3}",
        session="s-1",
        request_id=i,
        method="tools/call",
        target="github__search",
        decision="deny" if i % 5 == 0 else "allow",
        rule_id=f"rule-{i % 4}",
        outcome="ok" if i % 7 else "-32602",
        latency_ms=1.25 * i,
        detail={"i": i, **detail},
    )


async def write_log(path: Path, count: int, *, checkpoint_every: int = 1000) -> None:
    async with AuditLog(path, checkpoint_every=checkpoint_every, max_batch=4) as log:
        for i in range(1, count + 1):
            await log.record(make_record(i))


def tamper(path: Path, *statements: str) -> None:
    """Run SQL on the file directly, past the append-only triggers (what an intruder can do)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            conn.execute(f"DROP TRIGGER {name}")
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def public_key(db: Path) -> Ed25519PublicKey:
    return load_public_key(public_key_path(db))
