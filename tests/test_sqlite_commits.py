"""``CommitWatch`` on real WAL databases: every commit by another connection or process is
seen, nothing is claimed unchanged without a recent exact check, and a database it cannot
read (no ``-shm`` yet) never passes as unchanged. The API-key store relies on it (AU-5:
a revocation by ``bastion keys revoke`` is refused on the next request)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion._sqlite import open_private_db
from bastion._sqlite_commits import RECHECK_EVERY_S, CommitWatch


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "k.db"
    conn = open_private_db(path, busy_timeout=5)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (0)")
    conn.close()
    return path


@pytest.fixture
def reader(db: Path) -> Iterator[sqlite3.Connection]:
    """The watcher's own open connection, as the key store holds one (it keeps -shm alive)."""
    conn = open_private_db(db, busy_timeout=5)
    conn.execute("SELECT x FROM t").fetchall()
    yield conn
    conn.close()


def test_nothing_is_unchanged_before_the_first_mark(db: Path, reader: sqlite3.Connection) -> None:
    watch = CommitWatch(db)
    assert not watch.unchanged()
    watch.close()


def test_unchanged_until_another_connection_commits(db: Path, reader: sqlite3.Connection) -> None:
    watch = CommitWatch(db)
    writer = sqlite3.connect(db, isolation_level=None)
    for value in range(1, 301):
        watch.mark()
        assert watch.unchanged() and watch.unchanged()
        writer.execute("UPDATE t SET x = ?", (value,))
        assert not watch.unchanged(), f"commit {value} was not seen"
    writer.close()
    watch.close()


def test_a_checkpoint_counts_as_a_change(db: Path, reader: sqlite3.Connection) -> None:
    """Harmless: the caller then asks SQLite exactly."""
    watch = CommitWatch(db)
    watch.mark()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    writer.close()
    assert not watch.unchanged()
    watch.close()


def test_commits_by_another_process_are_seen(db: Path, reader: sqlite3.Connection) -> None:
    watch = CommitWatch(db)
    script = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "for line in sys.stdin:\n"
        "    c.execute('UPDATE t SET x = ?', (int(line),))\n"
        "    print('ok', flush=True)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as child:  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        for value in range(1, 51):
            watch.mark()
            assert watch.unchanged()
            child.stdin.write(f"{value}\n")
            child.stdin.flush()
            assert child.stdout.readline() == "ok\n"
            assert not watch.unchanged(), f"commit {value} was not seen"
    watch.close()


def test_the_exact_check_still_runs_every_recheck_interval(
    db: Path, reader: sqlite3.Connection
) -> None:
    ticks = Ticks()
    watch = CommitWatch(db, monotonic=ticks)
    watch.mark()
    ticks.now += RECHECK_EVERY_S * 0.9
    assert watch.unchanged()
    ticks.now += RECHECK_EVERY_S * 0.2
    assert not watch.unchanged()
    watch.mark()
    assert watch.unchanged()
    watch.close()


def test_without_a_shm_file_nothing_is_unchanged(tmp_path: Path) -> None:
    watch = CommitWatch(tmp_path / "never-opened.db")
    watch.mark()
    assert not watch.unchanged()
    watch.close()


def test_closed_watch_claims_nothing(db: Path, reader: sqlite3.Connection) -> None:
    watch = CommitWatch(db)
    watch.mark()
    watch.close()
    assert not watch.unchanged()
    watch.mark()  # reopens
    assert watch.unchanged()
    watch.close()
