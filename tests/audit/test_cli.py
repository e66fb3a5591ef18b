"""``bastion audit tail`` and ``export``, and the default database path (AD-2)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import tracemalloc
from pathlib import Path

import msgspec
import pytest

from bastion.audit import AuditStore
from bastion.audit.log import AuditLog
from bastion.audit.record import AuditRecord
from bastion.cli import main
from bastion.cli.audit import default_db_path
from tests.audit.support import BASTION, make_record, write_log

pytestmark = pytest.mark.anyio


async def test_tail_prints_the_last_n(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "audit.db"
    await write_log(db, 12)
    assert main(["audit", "tail", "--db", str(db), "-n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["10", "11", "12"]
    assert "github__search" in lines[0] and "deny (rule-2)" in lines[0]
    assert main(["audit", "tail", "--db", str(db), "-n", "1", "--json"]) == 0
    row = msgspec.json.decode(capsys.readouterr().out)
    assert row["seq"] == 12 and row["record"]["request_id"] == 12


async def test_ad2_tail_shows_control_characters_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """AD-2, IN-5 (red-team H1): a client chooses a refused tool's name and a JWT's subject;
    with a line break and ANSI escapes in them, ``audit tail`` printed a forged record line,
    cleared the screen and set the terminal title. They are shown escaped now, one line per
    record; ``--json`` was already safe (JSON escapes them)."""
    db = tmp_path / "audit.db"
    forged = "x\n     999 2026-01-01T00:00:00.000+00:00 request  root tools/call fx__admin allow"
    async with AuditLog(db) as log:
        await log.record(
            AuditRecord(
                time=1.0,
                principal="jwt:https://idp#\x1b]0;pwned\x07eve",
                method="tools/call",
                target=forged + "\x1b[2J\u202e",
                decision="deny",
                rule_id="invalid-name",
                outcome="-32003",
            )
        )
    assert main(["audit", "tail", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\u202e" not in out
    assert "\\x1b]0;pwned\\x07eve" in out and "x\\n     999" in out and "\\u202e" in out


async def test_export_jsonl_to_a_new_private_file(tmp_path: Path) -> None:
    db, out = tmp_path / "audit.db", tmp_path / "out.jsonl"
    await write_log(db, 5)
    assert main(["audit", "export", "--db", str(db), "-o", str(out)]) == 0
    rows = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[1]["prev"] == rows[0]["hash"]
    assert (out.stat().st_mode & 0o777) == 0o600
    assert main(["audit", "export", "--db", str(db), "-o", str(out)]) == 73  # never overwrites


def test_missing_database_is_exit_66(tmp_path: Path) -> None:
    for command in ("tail", "verify", "export"):
        assert main(["audit", command, "--db", str(tmp_path / "none.db")]) == 66


def test_default_path_follows_xdg_state_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "bastion" / "audit.db"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_db_path() == tmp_path / "home" / ".local" / "state" / "bastion" / "audit.db"


async def test_not_a_database_is_reported_as_tampered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "audit.db"
    await write_log(db, 2)
    db.write_bytes(b"not sqlite at all" * 100)
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    assert main(["audit", "verify", "--db", str(db)]) == 1
    assert "TAMPERED" in capsys.readouterr().out


@pytest.mark.parametrize("command", [("export",), ("tail", "-n", "5000")])
def test_a_reader_that_stops_early_ends_it_quietly(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """`bastion audit export | head -1` printed a BrokenPipeError traceback."""
    db = tmp_path / "audit.db"
    store = AuditStore.open(db)
    store.append(make_record(i) for i in range(1, 2001))  # far more than a pipe holds
    store.close()
    result = subprocess.run(
        ["/bin/sh", "-c", f'"$0" audit {" ".join(command)} --db "$1" | head -1', BASTION, db],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0  # head's
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr == ""


class _LineCounter(io.TextIOBase):
    """A stdout that keeps nothing but the count of lines written to it."""

    lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


def test_tail_holds_a_page_at_a_time(tmp_path: Path) -> None:
    """`audit tail -n N` read the N rows at once (660 MB for 595k records); it streams them."""
    db = tmp_path / "audit.db"
    store = AuditStore.open(db)
    for start in range(1, 12001, 1000):
        store.append(make_record(i) for i in range(start, start + 1000))
    store.close()
    out = _LineCounter()
    tracemalloc.start()
    try:
        with contextlib.redirect_stdout(out):
            assert main(["audit", "tail", "--db", str(db), "-n", "12000", "--json"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.lines == 12000
    assert peak < 4_000_000, peak  # a page of rows; all 12000 took over 10 MB
