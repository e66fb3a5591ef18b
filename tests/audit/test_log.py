"""The async writer: dense seqs under concurrency, a bounded queue, nothing dropped (AD-1, AD-2)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import anyio
import msgspec
import pytest

from bastion.audit import AuditLog, AuditRecord, AuditUnavailable, verify
from bastion.audit.log import MAX_RECORD_BYTES
from bastion.audit.read import iter_rows, open_readonly
from tests.audit.support import public_key

pytestmark = pytest.mark.anyio


def stored(db: Path) -> list[tuple[int, dict[str, object]]]:
    conn = open_readonly(db)
    try:
        return [(r.seq, msgspec.json.decode(bytes(r.record))) for r in iter_rows(conn)]
    finally:
        conn.close()


async def test_ad2_many_writers_keep_seq_dense_and_chain_valid(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    tasks, each = 40, 25
    with anyio.fail_after(60):
        async with AuditLog(db, queue_size=8, max_batch=16, checkpoint_every=50) as log:

            async def client(t: int) -> None:
                for i in range(each):
                    await log.record(AuditRecord(time=1.0, principal=f"t{t}", detail={"i": i}))
                    if i % 5 == 0:
                        await anyio.sleep(0)

            async with anyio.create_task_group() as tg:
                for t in range(tasks):
                    tg.start_soon(client, t)
    rows = stored(db)
    assert [seq for seq, _ in rows] == list(range(1, tasks * each + 1))
    seen = sorted((r["principal"], r["detail"]["i"]) for _, r in rows)  # type: ignore[index]
    assert seen == sorted((f"t{t}", i) for t in range(tasks) for i in range(each))
    report = verify(db, public_key(db))
    assert report.ok, report.problems
    assert report.checkpoints == (tasks * each) // 50  # at seq 50, 100, ...; close adds none


async def test_ad2_full_queue_blocks_briefly_then_refuses_never_drops(tmp_path: Path) -> None:
    """With the disk stuck (another connection holds the write lock), the writer holds one
    batch, the queue fills to its bound, and the next record is refused, not dropped."""
    db = tmp_path / "audit.db"
    queue_size = 3
    accepted = 0
    with anyio.fail_after(60):
        async with AuditLog(db, queue_size=queue_size, max_batch=1, enqueue_timeout=0.2) as log:
            blocker = sqlite3.connect(db, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # the writer will wait on this lock
            try:
                with pytest.raises(AuditUnavailable):
                    for i in range(queue_size + 5):
                        await log.record(AuditRecord(time=1.0, detail={"i": i}))
                        accepted += 1
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert accepted == queue_size + 1  # one in the writer's hands, the rest queued
    rows = stored(db)
    assert [r["detail"] for _, r in rows] == [{"i": i} for i in range(accepted)]
    assert verify(db, public_key(db)).ok


async def test_record_after_close_is_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    async with log:
        await log.record(AuditRecord(time=1.0))
    with pytest.raises(AuditUnavailable):
        await log.record(AuditRecord(time=2.0))


async def test_queued_records_are_written_when_the_owner_is_cancelled(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    with anyio.CancelScope() as scope:
        async with AuditLog(db, queue_size=100) as log:
            for i in range(50):
                await log.record(AuditRecord(time=1.0, detail={"i": i}))
            scope.cancel()
            await anyio.sleep(1)
    assert [seq for seq, _ in stored(db)] == list(range(1, 51))
    assert verify(db, public_key(db)).ok


async def test_oversized_detail_and_non_finite_numbers_are_bounded(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    async with AuditLog(db, wall_clock=lambda: 42.0) as log:
        await log.record(AuditRecord(time=1.0, detail={"blob": "x" * (MAX_RECORD_BYTES + 1)}))
        await log.record(AuditRecord(time=float("nan"), latency_ms=float("inf")))
    (_, big), (_, odd) = stored(db)
    assert big["detail"] == {"truncated": True, "bytes": pytest.approx(MAX_RECORD_BYTES, rel=0.01)}
    assert (odd["time"], odd["latency_ms"]) == (42.0, -1.0)
    assert verify(db, public_key(db)).ok


async def test_a_failing_writer_fails_its_owner_instead_of_losing_records_quietly(
    tmp_path: Path,
) -> None:
    """The disk refuses the batch (here: its table is gone): the owner's scope fails with
    the error, and later records are refused rather than queued for nobody."""
    db = tmp_path / "audit.db"
    log = AuditLog(db, commit_interval=0)
    with pytest.raises(BaseExceptionGroup) as raised, anyio.fail_after(30):
        async with log:
            vandal = sqlite3.connect(db, isolation_level=None)
            vandal.execute("DROP TABLE records")
            vandal.close()
            await log.record(AuditRecord(time=1.0))
            await anyio.sleep(10)  # the failure cancels this
    assert raised.group_contains(sqlite3.OperationalError, match="records")
    with pytest.raises(AuditUnavailable):
        await log.record(AuditRecord(time=2.0))


async def test_records_close_together_are_committed_together(tmp_path: Path) -> None:
    """Group commit: records queued within ``commit_interval`` land in one transaction (a
    reader sees none of them, then all), and ``flush`` returns once they are on disk."""
    db = tmp_path / "audit.db"
    counts: set[int] = set()
    async with AuditLog(db, commit_interval=0.2) as log:
        for i in range(20):
            await log.record(AuditRecord(time=1.0, detail={"i": i}))
        reader = sqlite3.connect(db)
        try:
            with anyio.fail_after(5):
                while (n := reader.execute("SELECT count(*) FROM records").fetchone()[0]) < 20:
                    counts.add(n)
                    await anyio.sleep(0.001)
                await log.flush()
        finally:
            reader.close()
    assert counts == {0}
    assert verify(db, public_key(db)).ok


def _bounded_fields() -> list[tuple[str, int]]:
    """Every field of the record type whose decoder caps a string's length, with its cap."""
    found = []
    info = msgspec.inspect.type_info(AuditRecord)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        kinds = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else ()
        for kind in (*kinds, field.type):
            if isinstance(kind, msgspec.inspect.StrType) and kind.max_length is not None:
                found.append((field.name, kind.max_length))
    return found


BOUNDED = _bounded_fields()


def test_the_client_reachable_fields_are_among_the_bounded_ones() -> None:
    names = {name for name, _ in BOUNDED}
    assert {"target", "request_id", "method", "principal", "session", "outcome"} <= names


@pytest.mark.parametrize(("field", "limit"), BOUNDED)
async def test_ad2_overlong_field_is_bounded_by_the_writer_so_verify_stays_ok(
    tmp_path: Path, field: str, limit: int
) -> None:
    """A client sends a name or id longer than the record type allows (a 600-character tool
    name, a 600-character JSON-RPC id): the writer stores a bounded value that still shows
    the original length and its SHA-256, and ``verify`` reports the untouched log as ok."""
    db = tmp_path / "audit.db"
    long, huge, exact = "v" * (limit + 88) + "end", "h" * 100_000, "e" * limit
    async with AuditLog(db) as log:
        await log.record(AuditRecord(time=1.0, detail={"k": 1}, **{field: long}))  # type: ignore[arg-type]
        await log.record(AuditRecord(time=2.0, detail={"k": 2}, **{field: huge}))  # type: ignore[arg-type]
        await log.record(AuditRecord(time=3.0, **{field: exact}))  # type: ignore[arg-type]
    report = verify(db, public_key(db))
    assert report.ok, report.problems
    (_, first), (_, second), (_, third) = stored(db)
    for record, original in ((first, long), (second, huge)):
        value = record[field]
        assert isinstance(value, str) and len(value) <= limit
        assert value.startswith(original[:300])
        assert f"truncated: {len(original)} chars" in value
        assert hashlib.sha256(original.encode()).hexdigest() in value
    assert (first["detail"], second["detail"]) == ({"k": 1}, {"k": 2})  # not dropped as "too big"
    assert third[field] == exact  # at the limit: stored as sent


@pytest.mark.parametrize("field", [name for name, _ in BOUNDED])
async def test_ad3_a_secret_in_any_name_or_id_is_redacted_AD3(tmp_path: Path, field: str) -> None:
    """AD-3: every name and id may carry what a client sent (a JSON-RPC id ``Bearer ...``, a
    path holding a key in an authentication record's ``method``): the stored record has the
    secret masked, whichever field held it, and still verifies."""
    db = tmp_path / "audit.db"
    secrets = {
        "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0": "Bearer [REDACTED]",
        "POST /api/v1/sk-proj-abcdefghijklmnopqrstuvwxyz012345": "POST /api/v1/[REDACTED]",
    }
    async with AuditLog(db) as log:
        for i, value in enumerate(secrets):
            await log.record(AuditRecord(time=float(i), **{field: value}))  # type: ignore[arg-type]
    kept = [record[field] for _, record in stored(db)]
    assert kept == list(secrets.values())
    assert verify(db, public_key(db)).ok


@pytest.mark.parametrize("field", [name for name, _ in BOUNDED])
async def test_ad3_a_secret_across_the_cut_is_redacted_before_bounding(
    tmp_path: Path, field: str
) -> None:
    """Redaction runs on the whole value first: cutting first could leave part of a secret
    that no longer matches its pattern, and the digest would be the secret's."""
    db = tmp_path / "audit.db"
    secret = "ghp_" + "a1B2" * 9
    value = "v" * 400 + f"/{secret}/" + "w" * 200
    async with AuditLog(db) as log:
        await log.record(AuditRecord(time=1.0, **{field: value}))  # type: ignore[arg-type]
    [(_, record)] = stored(db)
    kept = record[field]
    assert isinstance(kept, str) and "truncated" in kept
    assert "ghp_" not in kept
    assert hashlib.sha256(value.encode()).hexdigest() not in kept
    assert verify(db, public_key(db)).ok
