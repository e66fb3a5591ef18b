"""What ``verify`` finds beyond single records (AD-2): removed checkpoints (each signs the seq
of the one before it), emptied logs, tail truncation against a kept checkpoint, old logs."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import msgspec
import pytest

from bastion.audit import AuditStore, verify
from bastion.audit.chain import link_hash
from bastion.audit.checkpoint import sign_checkpoint
from bastion.audit.keys import load_or_create_signing_key
from tests.audit.support import (
    COUNT,
    audit_cli,
    forge,
    logged,
    make_record,
    problems,
    public_key,
    tamper,
    write_log,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    return await logged(tmp_path)


def keep_checkpoint(db: Path) -> Path:
    kept = db.parent / "kept.json"
    result = audit_cli("checkpoint", "--db", db, "-o", kept)
    assert result.returncode == 0, result.stdout + result.stderr
    return kept


def truncate_to(db: Path, keep: int) -> None:
    """The red team's tail cut: records and the checkpoints naming them, head rewritten."""
    tamper(
        db,
        f"DELETE FROM records WHERE seq > {keep}",
        f"DELETE FROM checkpoints WHERE seq > {keep}",
        f"UPDATE head SET seq = {keep}, hash = (SELECT hash FROM records WHERE seq = {keep})",
    )


@pytest.mark.parametrize("gone", [8, 16])
async def test_ad2_a_deleted_checkpoint_is_found_by_the_next_one(db: Path, gone: int) -> None:
    tamper(db, f"DELETE FROM checkpoints WHERE seq = {gone}")
    assert problems(db) == [(gone, "missing-checkpoint")]


async def test_ad2_deleting_every_checkpoint_but_the_last_is_found(db: Path) -> None:
    """Each one is named: one must be at every multiple of the interval (8 here)."""
    tamper(db, "DELETE FROM checkpoints WHERE seq < 20")
    assert sorted(problems(db)) == [(8, "missing-checkpoint"), (16, "missing-checkpoint")]


async def test_ad2_a_checkpoint_chain_is_signed(db: Path) -> None:
    """Relinking a checkpoint past a deleted one breaks its signature."""
    tamper(
        db,
        "DELETE FROM checkpoints WHERE seq = 16",
        "UPDATE checkpoints SET prev_seq = 8 WHERE seq = 20",
    )
    assert (20, "bad-checkpoint") in problems(db)


@pytest.mark.parametrize(
    "statements",
    [
        ("DELETE FROM records",),
        ("DELETE FROM records", "DELETE FROM checkpoints"),
        ("DELETE FROM records", "DELETE FROM head"),
        ("DELETE FROM records", "DELETE FROM head", "DELETE FROM checkpoints"),
    ],
    ids=["records", "records+checkpoints", "records+head", "everything"],
)
async def test_ad2_an_emptied_log_is_found(db: Path, statements: tuple[str, ...]) -> None:
    """Deleting every record leaves signs of use: the head, checkpoints, or the file's free
    pages (an append-only log never frees one)."""
    tamper(db, *statements)
    assert problems(db)
    result = audit_cli("verify", "--db", db, "--public-key", db.with_suffix(".pub"))
    assert result.returncode == 1
    assert "TAMPERED" in result.stdout


async def test_a_new_log_never_written_to_verifies(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    await write_log(db, 0)
    report = verify(db, public_key(db))
    assert report.ok and report.records == 0


async def test_ad2_tail_truncation_is_found_with_a_kept_checkpoint(db: Path) -> None:
    """Cutting the tail back to an earlier consistent state cannot be seen in the file alone
    (verify says ok); a checkpoint exported before and kept elsewhere shows it."""
    kept = keep_checkpoint(db)
    truncate_to(db, 17)
    assert verify(db, public_key(db)).ok  # the stated limit
    result = audit_cli("verify", "--db", db, "--checkpoint", kept)
    assert result.returncode == 1
    assert f"seq {COUNT}: truncated" in result.stdout


async def test_ad2_truncation_and_forged_records_are_found_with_a_kept_checkpoint(
    db: Path,
) -> None:
    """The tail cut and refilled with re-chained records (the chain alone is unkeyed)."""
    kept = keep_checkpoint(db)
    truncate_to(db, 17)
    conn = sqlite3.connect(db, isolation_level=None)
    prev = bytes.fromhex(conn.execute("SELECT hash FROM records WHERE seq = 17").fetchone()[0])
    from bastion.audit.record import canonical_bytes

    for seq in range(18, COUNT + 1):
        body = canonical_bytes(make_record(seq + 100))
        new = link_hash(prev, seq, body)
        conn.execute(
            "INSERT INTO records VALUES (?, ?, ?, ?)", (seq, prev.hex(), new.hex(), body.decode())
        )
        prev = new
    conn.execute("UPDATE head SET seq = ?, hash = ?", (COUNT, prev.hex()))
    conn.close()
    assert verify(db, public_key(db)).ok
    result = audit_cli("verify", "--db", db, "--checkpoint", kept)
    assert result.returncode == 1
    assert f"seq {COUNT}: edited" in result.stdout


async def test_a_kept_checkpoint_of_an_untouched_log_verifies(db: Path) -> None:
    kept = keep_checkpoint(db)
    await write_log(db, 3, checkpoint_every=8)  # the log grows after the export
    result = audit_cli("verify", "--db", db, "--checkpoint", kept)
    assert result.returncode == 0, result.stdout
    assert f"kept checkpoint at seq {COUNT}: ok" in result.stdout


async def test_ad2_a_kept_checkpoint_from_another_key_is_refused(db: Path) -> None:
    other = db.parent / "other" / "audit.db"
    await write_log(other, COUNT, checkpoint_every=8)
    kept = keep_checkpoint(other)
    result = audit_cli("verify", "--db", db, "--checkpoint", kept)
    assert result.returncode == 1
    assert "bad-checkpoint" in result.stdout


async def test_checkpoint_export_never_overwrites(db: Path) -> None:
    kept = keep_checkpoint(db)
    assert audit_cli("checkpoint", "--db", db, "-o", kept).returncode == 73


def make_old(db: Path) -> None:
    """Rewrite ``db`` as a log written before checkpoint chaining: no ``prev_seq`` column and
    checkpoints signed over (seq, hash, time, key id) only."""
    key = load_or_create_signing_key(db)
    conn = sqlite3.connect(db, isolation_level=None)
    rows = conn.execute("SELECT seq, hash, time FROM checkpoints ORDER BY seq").fetchall()
    conn.close()
    tamper(db, "DELETE FROM checkpoints", "ALTER TABLE checkpoints DROP COLUMN prev_seq")
    conn = sqlite3.connect(db, isolation_level=None)
    for seq, hash_hex, when in rows:
        cp = sign_checkpoint(key, seq, bytes.fromhex(hash_hex), when)
        conn.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?)",
            (cp.seq, cp.hash.hex(), cp.time, cp.key_id, cp.signature.hex()),
        )
    conn.close()


async def test_ad2_an_old_log_verifies_and_says_its_checkpoints_are_unchained(db: Path) -> None:
    make_old(db)
    report = verify(db, public_key(db))
    assert report.ok, report.problems
    assert report.unchained_checkpoints == 3
    result = audit_cli("verify", "--db", db)
    assert result.returncode == 0
    assert "3 signed checkpoints predate checkpoint chaining" in result.stdout


async def test_ad2_an_old_log_continues_with_chained_checkpoints(db: Path) -> None:
    make_old(db)
    await write_log(db, 20, checkpoint_every=8)  # checkpoints at 24, 32 and 40 (close)
    report = verify(db, public_key(db))
    assert report.ok, report.problems
    assert (report.checkpoints, report.unchained_checkpoints) == (6, 3)
    tamper(db, "DELETE FROM checkpoints WHERE seq = 24")
    assert problems(db) == [(24, "missing-checkpoint")]


async def test_ad2_an_unchained_checkpoint_after_chained_ones_is_found(db: Path) -> None:
    """A checkpoint in the old form cannot follow chained ones: signing stops at none."""
    key = load_or_create_signing_key(db)
    cp = sign_checkpoint(key, 12, bytes(32), 1.0)
    tamper(
        db,
        "INSERT INTO checkpoints (seq, hash, time, key_id, signature) VALUES "
        f"(12, '{cp.hash.hex()}', 1.0, '{cp.key_id}', '{cp.signature.hex()}')",
    )
    assert (12, "bad-checkpoint") in problems(db)


def test_ad2_processes_sharing_a_log_keep_the_checkpoint_chain(tmp_path: Path) -> None:
    """Two writers on one log (one gateway per stdio client): the one closing first signs
    the stored head, not its own last record, so checkpoints stay in seq order."""
    from bastion.audit import AuditStore

    db = tmp_path / "audit.db"
    first = AuditStore.open(db, checkpoint_every=4)
    second = AuditStore.open(db, checkpoint_every=4)
    try:
        first.append(make_record(i) for i in range(1, 4))
        second.append(make_record(i) for i in range(4, 10))  # signs 4 and 8
        first.checkpoint()  # signs the head, 9
        second.checkpoint()  # nothing left to sign
    finally:
        first.close()
        second.close()
    report = verify(db, public_key(db))
    assert report.ok, report.problems
    assert (report.checkpoints, report.last_checkpoint_seq) == (3, 9)


async def test_ad2_deleting_every_checkpoint_and_rechaining_is_found(db: Path) -> None:
    """Red team R finding 1: every checkpoint deleted, record 5 edited, the chain and the
    head recomputed from record 1 verified as ok. A checkpoint is required at every
    multiple of the log's interval (8 here)."""
    forge(db)
    result = audit_cli("verify", "--db", db)
    assert result.returncode == 1, result.stdout
    assert "seq 8: missing-checkpoint" in result.stdout
    assert "seq 16: missing-checkpoint" in result.stdout


async def test_ad2_a_raised_interval_does_not_excuse_missing_checkpoints(
    tmp_path: Path,
) -> None:
    """The recorded interval is not signed; verify never expects fewer checkpoints than one
    every 1000 records, whatever it says."""
    db = tmp_path / "audit.db"
    store = AuditStore.open(db, checkpoint_every=1000)
    store.append(make_record(i) for i in range(1, 1201))
    store.close()
    tamper(db, "UPDATE meta SET value = '1000000' WHERE key = 'checkpoint_every'")
    forge(db)
    result = audit_cli("verify", "--db", db)
    assert result.returncode == 1, result.stdout
    assert "edited: the recorded checkpoint interval is not a whole number" in result.stdout
    assert "seq 1000: missing-checkpoint" in result.stdout


async def test_ad2_a_log_from_before_the_interval_was_recorded_needs_one_every_1000(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.db"
    store = AuditStore.open(db)
    store.append(make_record(i) for i in range(1, 2101))
    store.checkpoint()
    store.close()
    tamper(db, "DELETE FROM meta WHERE key = 'checkpoint_every'")  # as an older Bastion wrote it
    assert verify(db, public_key(db)).ok
    forge(db)
    assert problems(db) == [(1000, "missing-checkpoint"), (2000, "missing-checkpoint")]


def test_ad2_verify_of_a_log_being_written_is_ok(tmp_path: Path) -> None:
    """Red team R finding 2: verify read the checkpoints, the head and each page of records
    in separate read transactions, so a log a gateway was writing showed as TAMPERED
    ('records after the head were added'). It reads one snapshot now."""
    db = tmp_path / "audit.db"
    store = AuditStore.open(db)
    store.append(make_record(i) for i in range(1, 3001))
    stop = threading.Event()

    def append() -> None:
        i = 3000
        while not stop.is_set():
            i += 1
            store.append([make_record(i)])
            time.sleep(0.001)

    thread = threading.Thread(target=append)
    thread.start()
    try:
        results = [audit_cli("verify", "--db", db) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
        store.close()
    assert [r.returncode for r in results] == [0, 0, 0], [r.stdout for r in results]
    assert all(r.stdout.startswith("ok: ") for r in results)


async def test_ad2_rows_before_seq_1_are_found_and_exported(db: Path) -> None:
    """Red team R finding 9: rows at seq 0 and below were shown by tail but never read by
    verify or export."""
    body = msgspec.json.encode(
        {"kind": "admin", "method": "keys.create", "target": "backdoor", "time": 1.0}
    ).decode()
    tamper(
        db,
        f"INSERT INTO records VALUES (0, '{'0' * 64}', '{'0' * 64}', '{body}')",
        f"INSERT INTO records VALUES (-7, '{'0' * 64}', '{'0' * 64}', '{body}')",
    )
    result = audit_cli("verify", "--db", db)
    assert result.returncode == 1, result.stdout
    assert "seq -7: edited: a row before seq 1" in result.stdout
    assert "seq 0: edited: a row before seq 1" in result.stdout
    exported = audit_cli("export", "--db", db)
    seqs = [msgspec.json.decode(line)["seq"] for line in exported.stdout.splitlines()]
    assert seqs == [-7, 0, *range(1, COUNT + 1)]
