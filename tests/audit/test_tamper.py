"""Tampering with the SQLite file directly is detected and located by seq (AD-2)."""

from __future__ import annotations

import json
import sqlite3
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


def null_record(db: Path, seq: int) -> None:
    """Record ``seq`` set to NULL, past the column's NOT NULL (the schema text rewritten)."""
    tamper(
        db,
        "PRAGMA writable_schema = ON",
        "UPDATE sqlite_schema SET sql = replace(sql, 'record TEXT NOT NULL', 'record TEXT') "
        "WHERE name = 'records'",
        "PRAGMA writable_schema = OFF",
    )
    tamper(db, f"UPDATE records SET record = NULL WHERE seq = {seq}")


ODD_ROWS = {
    "blob_record": ("UPDATE records SET record = CAST(record AS BLOB) WHERE seq = 7",),
    "blob_prev": ("UPDATE records SET prev = CAST(prev AS BLOB) WHERE seq = 7",),
    "blob_hash": ("UPDATE records SET hash = CAST(hash AS BLOB) WHERE seq = 7",),
    "not_utf8": ("UPDATE records SET record = CAST(X'7B22C3' AS TEXT) WHERE seq = 7",),
    "head_seq_text": ("UPDATE head SET seq = 'twenty'",),
}


@pytest.mark.parametrize("case", [*ODD_ROWS, "record_null"])
async def test_ad2_an_oddly_typed_row_is_reported_not_a_traceback(db: Path, case: str) -> None:
    """Red team R finding 5: one row of another type (a blob, a NULL, a seq as text) made
    verify, tail and export end in a traceback. verify names it (at its seq, or the head)
    and goes on to the rest; tail and export show or skip it and go on."""
    if case == "record_null":
        null_record(db, 7)
    else:
        tamper(db, *ODD_ROWS[case])
    tamper(db, "DELETE FROM records WHERE seq = 12")  # another problem, still reported
    result = cli_verify(db)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    expected = "no-head: the stored head is unreadable" if case == "head_seq_text" else "seq 7: "
    assert expected in result.stdout
    assert "seq 12: missing" in result.stdout
    tail = audit_cli("tail", "--db", db, "-n", "100")
    assert tail.returncode == 0 and "Traceback" not in tail.stderr, tail.stderr
    assert len(tail.stdout.splitlines()) == COUNT - 1
    export = audit_cli("export", "--db", db)
    assert "Traceback" not in export.stderr, export.stderr
    if case != "head_seq_text":
        assert export.returncode == 1
        assert "seq 7 not exported" in export.stderr
        assert len(export.stdout.splitlines()) == COUNT - 2


async def test_ad2_verify_shows_what_a_record_holds_escaped(db: Path) -> None:
    """Red team R finding 4: a field name a db writer planted, with terminal escapes and a
    line break, reached the terminal as is in verify's report (clearing the TAMPERED lines
    and printing a fake 'ok'). It is shown escaped, like tail shows records."""
    fake = "\x1b[2J\x1b[H" + f"ok: {COUNT} records\n\x1b[8m"
    conn = sqlite3.connect(db)
    record = json.loads(conn.execute("SELECT record FROM records WHERE seq = 9").fetchone()[0])
    conn.close()
    record[fake] = 1
    planted = json.dumps(record, separators=(",", ":"), ensure_ascii=False).replace("'", "''")
    tamper(db, f"UPDATE records SET record = '{planted}' WHERE seq = 9")
    result = cli_verify(db)
    assert result.returncode == 1
    assert "\x1b" not in result.stdout
    assert "seq 9: unreadable: not a valid audit record" in result.stdout
    assert "\\x1b[2J" in result.stdout
    assert not any(line.startswith("ok:") for line in result.stdout.splitlines())


async def test_ad2_verify_shows_a_record_that_is_not_utf8_escaped(db: Path) -> None:
    """Bytes that are not UTF-8 made the whole log 'not a readable audit database', quoting
    SQLite's error, which held the row's bytes (escapes included). Now the row is named."""
    tamper(db, "UPDATE records SET record = CAST(X'7B22C31B5B324A' AS TEXT) WHERE seq = 9")
    result = cli_verify(db)
    assert result.returncode == 1
    assert "\x1b" not in result.stdout
    assert "seq 9: unreadable" in result.stdout
