"""The writer signs nothing a valid checkpoint does not already vouch for (AD-2, red team R
finding 1): a log whose checkpoints were deleted and whose chain was rewritten is refused on
open (the gateway does not start) and, if it is rewritten while open, its next checkpoints are
left unsigned, so ``verify`` keeps showing the forgery instead of a signed, clean log."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
from pathlib import Path

import pytest

from bastion.audit import AuditStore, AuditStoreError, verify
from tests.audit.support import (
    BASTION,
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
    return await logged(tmp_path)  # 20 records, checkpoints at 8, 16 and 20


def checkpoint_seqs(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [seq for (seq,) in conn.execute("SELECT seq FROM checkpoints ORDER BY seq")]
    finally:
        conn.close()


def principal_of(db: Path, seq: int) -> str:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT json_extract(record, '$.principal') FROM records WHERE seq = ?", (seq,)
        ).fetchone()
        return str(row[0])
    finally:
        conn.close()


async def test_ad2_the_gateway_will_not_start_on_a_forged_log(db: Path) -> None:
    """`bastion stdio` on the red team's forgery exits 78 naming `bastion audit verify`,
    and signs nothing: the forged chain gets no checkpoint."""
    forge(db)
    config = db.parent / "bastion.yaml"
    config.write_text(f"audit: {{db: {db}}}\nservers: {{}}\n")
    result = subprocess.run(
        [str(BASTION), "stdio", "-c", str(config)],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78, result.stderr
    assert "Traceback" not in result.stderr
    assert "changed behind Bastion's back" in result.stderr
    assert f"bastion audit verify --db {db}" in result.stderr
    assert checkpoint_seqs(db) == []
    assert principal_of(db, 5) == "mallory"  # nothing rewritten, nothing lost


async def test_ad2_the_store_refuses_to_open_a_forged_log(db: Path) -> None:
    forge(db)
    with pytest.raises(AuditStoreError, match="no checkpoint at seq 16 verifies"):
        AuditStore.open(db)


async def test_ad2_an_edit_after_the_last_checkpoint_is_refused_on_open(tmp_path: Path) -> None:
    """Records after the last checkpoint (a gateway that did not close cleanly) are checked
    link by link from it: an edited one is refused, not signed at the next checkpoint."""
    db = tmp_path / "audit.db"
    store = AuditStore.open(db, checkpoint_every=8)
    store.append(make_record(i) for i in range(1, 13))  # signed at 8; not closed cleanly
    store.close()
    tamper(db, "UPDATE records SET record = json_set(record, '$.decision', 'allow') WHERE seq = 10")
    with pytest.raises(AuditStoreError, match="seq 10 does not match its stored hash"):
        AuditStore.open(db)


async def test_ad2_a_log_forged_while_open_gets_no_more_checkpoints(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The forgery made while a gateway has the log open: its records are still written,
    its checkpoints are not signed (an error says why), and verify shows the gap."""
    store = AuditStore.open(db)
    try:
        forge(db)
        with caplog.at_level(logging.ERROR, logger="bastion.audit.store"):
            assert store.append(make_record(i) for i in range(21, 30)) == 29  # 24 is due
            store.checkpoint()
    finally:
        store.close()
    assert checkpoint_seqs(db) == []
    assert "audit checkpoint at seq 24 not signed" in caplog.text
    assert "bastion audit verify" in caplog.text
    found = problems(db)
    assert {
        (8, "missing-checkpoint"),
        (16, "missing-checkpoint"),
        (24, "missing-checkpoint"),
    } <= set(found)


async def test_an_intact_log_keeps_being_signed(db: Path) -> None:
    store = AuditStore.open(db)
    try:
        store.append(make_record(i) for i in range(21, 30))
        store.checkpoint()
    finally:
        store.close()
    assert checkpoint_seqs(db) == [8, 16, 20, 24, 29]
    assert verify(db, public_key(db)).ok


async def test_the_interval_recorded_at_creation_is_kept(db: Path) -> None:
    """A log is signed at the multiples it was created with, whatever a later open asks."""
    await write_log(db, 13)  # asks for the default, 1000
    assert checkpoint_seqs(db) == [8, 16, 20, 24, 32, 33]
    assert verify(db, public_key(db)).ok


def test_a_second_writer_opens_while_another_appends_ad2(tmp_path: Path) -> None:
    """Red team R finding 6: the head and the last record were read in two transactions, so
    a gateway starting beside one that was writing the same log sometimes refused with a
    false 'audit head does not match the last record'."""
    import threading
    import time

    db = tmp_path / "audit.db"
    AuditStore.open(db).close()
    stop = threading.Event()

    def append() -> None:
        writer = AuditStore.open(db)
        try:
            i = 0
            while not stop.is_set():
                i += 1
                writer.append([make_record(i)])
                time.sleep(0.001)  # a gateway commits every few ms at most
        finally:
            writer.close()

    thread = threading.Thread(target=append)
    thread.start()
    failures, opens = [], 0
    try:
        for _ in range(400):
            try:
                AuditStore.open(db).close()
                opens += 1
            except AuditStoreError as exc:
                failures.append(str(exc))
    finally:
        stop.set()
        thread.join()
    assert failures == [], f"{len(failures)} of {opens + len(failures)}: {failures[0]}"
    assert verify(db, public_key(db)).ok
