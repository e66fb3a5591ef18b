"""Helpers for the audit tests: write a log, and edit its SQLite file as an attacker would."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.audit import AuditLog, AuditRecord, verify
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


BASTION = Path(sys.executable).parent / "bastion"
COUNT = 20  # records of ``logged``: checkpoints at 8 and 16 (every 8) and 20 (the clean close)


async def logged(tmp_path: Path) -> Path:
    """A closed log of ``COUNT`` records that verifies."""
    path = tmp_path / "audit.db"
    await write_log(path, COUNT, checkpoint_every=8)
    assert verify(path, public_key(path)).ok
    return path


def problems(db: Path) -> list[tuple[int | None, str]]:
    """What ``verify`` finds in ``db``, which must not verify."""
    report = verify(db, public_key(db))
    assert not report.ok
    return [(p.seq, p.kind) for p in report.problems]


def audit_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``bastion audit ARGS``."""
    return subprocess.run(
        [str(BASTION), "audit", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def rechain(db: Path, start: int = 1) -> None:
    """Recompute every link from seq ``start`` on, and the head, from the stored bodies: what
    an intruder without the private key does after editing or removing records."""
    from bastion.audit.chain import GENESIS, link_hash

    tamper(db)  # the triggers off
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        before = conn.execute(
            "SELECT hash FROM records WHERE seq < ? ORDER BY seq DESC LIMIT 1", (start,)
        ).fetchone()
        prev = bytes.fromhex(before[0]) if before else GENESIS
        rows = conn.execute(
            "SELECT seq, record FROM records WHERE seq >= ? ORDER BY seq", (start,)
        ).fetchall()
        for seq, record in rows:
            new = link_hash(prev, seq, record.encode())
            conn.execute(
                "UPDATE records SET prev = ?, hash = ? WHERE seq = ?", (prev.hex(), new.hex(), seq)
            )
            prev = new
        last = conn.execute("SELECT max(seq) FROM records").fetchone()[0]
        conn.execute("UPDATE head SET seq = ?, hash = ?", (last, prev.hex()))
    finally:
        conn.close()


def forge(db: Path, seq: int = 5) -> None:
    """The red team's forgery (AD-2): every checkpoint deleted, record ``seq``'s principal
    changed, the whole chain and the head recomputed."""
    tamper(
        db,
        "DELETE FROM checkpoints",
        f"UPDATE records SET record = json_set(record, '$.principal', 'mallory') WHERE seq = {seq}",
    )
    rechain(db)
