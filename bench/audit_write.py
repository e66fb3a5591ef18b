"""Audit write throughput: records/second through the hash chain + SQLite, beside baselines.

Cases, each writing the same ``--records`` records into a fresh database (WAL,
``synchronous=FULL``, batches of ``BATCH``):

- ``audit_log``: the product path, ``AuditLog.record`` (redaction, bounded queue, writer
  task, worker thread, chain, checkpoints every 1000, SQLite);
- ``store_chain``: ``AuditStore.append`` called directly (chain + checkpoints + SQLite, no
  async front, no redaction);
- ``sqlite_plain``: the same canonical record bytes inserted into a plain table, no chain
  (the baseline the ratios use);
- ``chain_memory``: canonical encoding + SHA-256 chain in memory, no disk.

Rounds rotate the case order so noise spreads evenly; medians are reported.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio
from _common import tree_state

from bastion.audit import AuditLog, AuditRecord, AuditStore, canonical_bytes
from bastion.audit.chain import Chain

BATCH = 512


def records(n: int) -> list[AuditRecord]:
    return [
        AuditRecord(
            time=1_800_000_000.0 + i,
            principal=f"user{i % 50}",
            credential_id=f"key-{i % 50}",
            session=f"sess-{i % 200}",
            request_id=i,
            method="tools/call",
            target="github__search_issues",
            decision="allow" if i % 10 else "deny",
            rule_id=f"rule-{i % 7}",
            outcome="ok",
            latency_ms=3.25,
            detail={"arguments": {"query": f"is:open label:bug {i}", "per_page": 30}},
        )
        for i in range(n)
    ]


def case_audit_log(db: Path, recs: list[AuditRecord]) -> None:
    async def run() -> None:
        async with AuditLog(db, max_batch=BATCH) as log:
            for r in recs:
                await log.record(r)

    anyio.run(run)


def case_store_chain(db: Path, recs: list[AuditRecord]) -> None:
    store = AuditStore.open(db)
    try:
        for i in range(0, len(recs), BATCH):
            store.append(recs[i : i + BATCH])
        store.checkpoint()
    finally:
        store.close()


def case_sqlite_plain(db: Path, recs: list[AuditRecord]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE records (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)")
    seq = 0
    for i in range(0, len(recs), BATCH):
        rows = []
        for r in recs[i : i + BATCH]:
            seq += 1
            rows.append((seq, canonical_bytes(r).decode()))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO records VALUES (?, ?)", rows)
        conn.execute("COMMIT")
    conn.close()


def case_chain_memory(db: Path, recs: list[AuditRecord]) -> None:
    del db
    chain = Chain()
    for r in recs:
        chain.append(canonical_bytes(r))


CASES: dict[str, Callable[[Path, list[AuditRecord]], None]] = {
    "audit_log": case_audit_log,
    "store_chain": case_store_chain,
    "sqlite_plain": case_sqlite_plain,
    "chain_memory": case_chain_memory,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    recs = records(args.records)
    rates: dict[str, list[float]] = {name: [] for name in CASES}
    names = list(CASES)
    with tempfile.TemporaryDirectory(prefix="bastion-bench-audit-") as tmp:
        for rnd in range(args.rounds):
            order = names[rnd % len(names) :] + names[: rnd % len(names)]
            for name in order:
                db = Path(tmp) / f"{name}-{rnd}" / "audit.db"
                db.parent.mkdir()
                started = time.perf_counter()
                CASES[name](db, recs)
                rates[name].append(len(recs) / (time.perf_counter() - started))
    print(f"audit_write: {args.records} records x {args.rounds} rounds, batch {BATCH}")
    print(f"tree: {tree_state()}, python {sys.version.split()[0]}")
    base = statistics.median(rates["sqlite_plain"])
    print(f"{'case':<14} {'median rec/s':>13} {'min':>10} {'max':>10} {'vs plain':>9}")
    for name in names:
        med = statistics.median(rates[name])
        print(
            f"{name:<14} {med:>13,.0f} {min(rates[name]):>10,.0f} {max(rates[name]):>10,.0f}"
            f" {med / base:>8.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
