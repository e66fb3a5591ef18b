"""The hash chain and the store round-trip (AD-2), and what a record holds (AD-1)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bastion.audit import AuditRecord, AuditStore, canonical_bytes, verify
from bastion.audit.chain import GENESIS, Chain, link_hash
from bastion.audit.read import iter_rows, open_readonly
from bastion.audit.record import decode_record
from tests.audit.support import make_record, public_key, write_log

pytestmark = pytest.mark.anyio


def test_canonical_bytes_sort_keys_at_every_depth() -> None:
    a = AuditRecord(time=1.0, detail={"b": 1, "a": {"z": [{"y": 1, "x": 2}], "c": None}})
    b = AuditRecord(time=1.0, detail={"a": {"c": None, "z": [{"x": 2, "y": 1}]}, "b": 1})
    assert canonical_bytes(a) == canonical_bytes(b)
    assert b'"detail":{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}' in canonical_bytes(a)
    assert decode_record(canonical_bytes(a)) == a


def test_ad1_record_names_who_what_decision_and_outcome() -> None:
    body = canonical_bytes(make_record(10))
    for field in (
        b'"principal":"user1"',
        b'"credential_id":"key-1"',
        b'"session":"s-1"',
        b'"request_id":10',
        b'"method":"tools/call"',
        b'"target":"github__search"',
        b'"decision":"deny"',
        b'"rule_id":"rule-2"',
        b'"outcome":"ok"',
        b'"latency_ms":12.5',
    ):
        assert field in body


def test_ad2_each_link_covers_prev_seq_and_body() -> None:
    chain = Chain()
    first = chain.append(b"one")
    second = chain.append(b"two")
    assert (first.seq, first.prev) == (1, GENESIS)
    assert second.prev == first.hash
    assert second.hash == link_hash(first.hash, 2, b"two")
    assert link_hash(first.hash, 3, b"two") != second.hash  # seq is covered
    assert link_hash(GENESIS, 2, b"two") != second.hash  # the previous hash is covered
    assert link_hash(first.hash, 2, b"twO") != second.hash  # the body is covered


async def test_ad2_round_trip_and_verify_ok(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    await write_log(db, 30, checkpoint_every=10)
    conn = open_readonly(db)
    rows = list(iter_rows(conn))
    conn.close()
    assert [r.seq for r in rows] == list(range(1, 31))
    assert [decode_record(bytes(r.record)) for r in rows] == [make_record(i) for i in range(1, 31)]
    report = verify(db, public_key(db))
    assert report.ok, report.problems
    assert (report.records, report.last_seq, report.last_checkpoint_seq) == (30, 30, 30)
    assert report.checkpoints >= 3  # every 10 records (at batch ends) and on close


async def test_ad2_reopening_continues_the_chain(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    await write_log(db, 5)
    await write_log(db, 5)
    report = verify(db, public_key(db))
    assert report.ok and report.last_seq == 10


async def test_ad2_store_refuses_to_append_after_a_truncation(tmp_path: Path) -> None:
    from bastion.audit import AuditStoreError
    from tests.audit.support import tamper

    db = tmp_path / "audit.db"
    await write_log(db, 5)
    tamper(db, "DELETE FROM records WHERE seq = 5")
    with pytest.raises(AuditStoreError):
        AuditStore.open(db)


async def test_store_is_append_only_through_sqlite_too(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    await write_log(db, 3)
    conn = sqlite3.connect(db)
    for statement in (
        "UPDATE records SET record = '{}' WHERE seq = 2",
        "DELETE FROM records WHERE seq = 3",
        "DELETE FROM checkpoints",
        "DELETE FROM head",
    ):
        with pytest.raises(sqlite3.IntegrityError, match=r"append-only|cannot be deleted"):
            conn.execute(statement)
    conn.close()
    assert not hasattr(AuditStore, "update") and not hasattr(AuditStore, "delete")


async def test_files_are_private(tmp_path: Path) -> None:
    db = tmp_path / "state" / "audit.db"
    await write_log(db, 1)
    assert (db.parent.stat().st_mode & 0o777) == 0o700
    assert (db.stat().st_mode & 0o777) == 0o600
    assert (db.with_suffix(".key").stat().st_mode & 0o777) == 0o600
