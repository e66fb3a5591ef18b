"""Tampering with the SQLite file directly is detected and located by seq (AD-2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.audit.chain import link_hash
from bastion.audit.checkpoint import sign_checkpoint
from tests.audit.support import COUNT, audit_cli, logged, problems, tamper, write_log

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    return await logged(tmp_path)


def cli_verify(db: Path) -> subprocess.CompletedProcess[str]:
    return audit_cli("verify", "--db", db)


async def test_ad2_edited_field_is_found_at_its_seq(db: Path) -> None:
    tamper(db, "UPDATE records SET record = json_set(record, '$.decision', 'allow') WHERE seq = 5")
    assert problems(db) == [(5, "edited")]


async def test_ad2_edit_with_recomputed_hashes_is_caught_by_a_checkpoint(db: Path) -> None:
    """An intruder without the private key rewrites seq 3 and re-links every later record and
    the head: the chain is self-consistent again, but the signed checkpoints disagree."""
    import sqlite3

    tamper(db, "UPDATE records SET record = json_set(record, '$.principal', 'mallory') WHERE seq=3")
    conn = sqlite3.connect(db, isolation_level=None)
    rows = conn.execute("SELECT seq, prev, record FROM records ORDER BY seq").fetchall()
    prev = bytes.fromhex(conn.execute("SELECT hash FROM records WHERE seq = 2").fetchone()[0])
    for seq, _, record in rows[2:]:
        new = link_hash(prev, seq, record.encode())
        conn.execute(
            "UPDATE records SET prev = ?, hash = ? WHERE seq = ?", (prev.hex(), new.hex(), seq)
        )
        prev = new
    conn.execute("UPDATE head SET hash = ?", (prev.hex(),))
    conn.close()
    found = problems(db)
    assert found and all(kind == "edited" for _, kind in found)
    assert found[0][0] is not None and found[0][0] >= 3  # the first signed head after the edit


async def test_ad2_deleted_middle_record_is_found(db: Path) -> None:
    tamper(db, "DELETE FROM records WHERE seq = 11")
    found = problems(db)
    assert found[0] == (11, "missing")
    assert (12, "broken-link") in found


@pytest.mark.parametrize("k", [1, 3])
async def test_ad2_truncation_is_found(db: Path, k: int) -> None:
    tamper(db, f"DELETE FROM records WHERE seq > {COUNT - k}")
    assert (COUNT - k + 1, "truncated") in problems(db)


async def test_ad2_truncation_with_head_rewritten_is_found_by_the_checkpoint(db: Path) -> None:
    tamper(
        db,
        "DELETE FROM records WHERE seq > 17",
        "UPDATE head SET seq = 17, hash = (SELECT hash FROM records WHERE seq = 17)",
    )
    assert (COUNT, "truncated") in problems(db)  # the closing checkpoint signed seq 20


async def test_ad2_altered_checkpoint_signature_is_found(db: Path) -> None:
    tamper(
        db,
        "UPDATE checkpoints SET signature = substr(signature, 1, 10) || "
        "CASE substr(signature, 11, 1) WHEN 'a' THEN 'b' ELSE 'a' END || substr(signature, 12) "
        f"WHERE seq = {COUNT}",
    )
    assert problems(db) == [(COUNT, "bad-checkpoint")]


async def test_ad2_checkpoint_forged_with_another_key_is_found(db: Path) -> None:
    """Checkpoints are checked against the pinned public key, not a key stored in the db."""
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), 25, b"\x01" * 32, 1.0)
    tamper(
        db,
        "INSERT INTO checkpoints (seq, hash, time, key_id, signature) "
        f"VALUES (25, '{forged.hash.hex()}', 1.0, "
        f"'{forged.key_id}', '{forged.signature.hex()}')",
    )
    assert problems(db) == [(25, "bad-checkpoint")]


async def test_ad2_checkpoint_hash_altered_is_found(db: Path) -> None:
    tamper(
        db,
        f"UPDATE checkpoints SET hash = replace(hash, substr(hash, 1, 1), 'f') WHERE seq = {COUNT}",
    )
    assert (COUNT, "bad-checkpoint") in problems(db)


async def test_ad2_cli_verify_ok_then_tampered(db: Path) -> None:
    ok = cli_verify(db)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"ok: {COUNT} records" in ok.stdout
    tamper(db, "DELETE FROM records WHERE seq = 7")
    bad = cli_verify(db)
    assert bad.returncode == 1
    assert "TAMPERED" in bad.stdout
    assert "seq 7: missing" in bad.stdout


async def test_ad2_cli_verify_reports_an_edit_and_a_truncation(db: Path) -> None:
    tamper(
        db,
        "UPDATE records SET record = json_set(record, '$.outcome', '-32000') WHERE seq = 4",
        "DELETE FROM records WHERE seq > 18",
    )
    bad = cli_verify(db)
    assert bad.returncode == 1
    assert "seq 4: edited" in bad.stdout
    assert "seq 19: truncated" in bad.stdout


async def test_ad2_cli_verify_with_a_pinned_key_rejects_a_swapped_key(db: Path) -> None:
    """Replacing the key files beside the db does not help an intruder holding a pinned copy."""
    pinned = db.parent / "pinned.pub"
    pinned.write_bytes(db.with_suffix(".pub").read_bytes())
    other = db.parent / "other" / "audit.db"
    await write_log(other, COUNT, checkpoint_every=8)
    result = audit_cli("verify", "--db", other, "--public-key", pinned)
    assert result.returncode == 1
    assert "bad-checkpoint" in result.stdout
