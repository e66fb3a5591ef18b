"""``bastion audit tail | verify | export | checkpoint``: read the audit database (never write it).

The default database is ``$XDG_STATE_HOME/bastion/audit.db`` (``~/.local/state/...``), and
``verify`` checks checkpoints with the public key beside it unless ``--public-key`` names a
pinned copy, and holds the log to a checkpoint kept elsewhere (``--checkpoint``, written by
``checkpoint``). Exit codes: 0 ok, 1 tampered (verify, checkpoint; export: rows it could not
read; every command: a file that is not a readable audit database), 66 no database or no
checkpoint yet, 73 output file exists, 78 unusable key or kept checkpoint, 141 the reader of
stdout went away (``| head``; said nowhere, as a SIGPIPE would).
Whatever a record or a tampered file holds reaches the terminal only through ``shown``.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

import msgspec

from bastion._shown import shown

if TYPE_CHECKING:
    from bastion.audit.checkpoint import Checkpoint
    from bastion.audit.read import StoredRow, UnreadableRow

__all__ = [
    "default_db_path",
    "run_audit_checkpoint",
    "run_audit_export",
    "run_audit_tail",
    "run_audit_verify",
]

EXIT_TAMPERED: Final = 1
EXIT_NOINPUT: Final = 66  # EX_NOINPUT
EXIT_CANTCREAT: Final = 73  # EX_CANTCREAT
EXIT_PIPE: Final = 141  # 128 + SIGPIPE: what a shell sees of a reader that stopped early
FOLLOW_POLL_S: Final = 0.5  # how often `tail --follow` looks for new rows


def default_db_path() -> Path:
    from bastion._paths import audit_db

    return audit_db()


def _db(db: str | None) -> Path:
    return Path(db) if db else default_db_path()


def _create_private(output: str) -> BinaryIO | None:
    """``output`` created for writing, 0600 like the database whose content it will hold;
    None (said on stderr) when it exists: an export never overwrites anything."""
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"bastion: {output} exists; not overwriting it", file=sys.stderr)
        return None
    return os.fdopen(fd, "wb")


def _no_db(path: Path) -> int:
    print(f"bastion: no audit database at {path}", file=sys.stderr)
    return EXIT_NOINPUT


def run_audit_verify(db: str | None, public_key: str | None, checkpoint: str | None) -> int:
    from bastion.audit.keys import load_public_key, public_key_path
    from bastion.audit.verify import verify

    path = _db(db)
    if not path.is_file():
        return _no_db(path)
    key = load_public_key(Path(public_key) if public_key else public_key_path(path))
    kept = _read_kept(Path(checkpoint)) if checkpoint else None
    try:
        report = verify(path, key, kept=kept)
    except sqlite3.DatabaseError as exc:
        print(f"TAMPERED: {path} is not a readable audit database ({shown(exc)})")
        return EXIT_TAMPERED
    if not report.ok:
        print(f"TAMPERED: {path}")
        for problem in report.problems:
            print(f"  {shown(problem)}")
        if report.more_problems:
            print("  ... and more")
        return EXIT_TAMPERED
    print(
        f"ok: {report.records} records, last seq {report.last_seq}, "
        f"{report.checkpoints} signed checkpoints (last at seq {report.last_checkpoint_seq})"
    )
    if kept is not None:
        print(f"kept checkpoint at seq {kept.seq}: ok (the log holds it, unchanged)")
    if report.last_seq > report.last_checkpoint_seq:
        print(
            f"note: records after seq {report.last_checkpoint_seq} are not yet covered by "
            "a signed checkpoint (the log is open, or was not closed cleanly)"
        )
    if report.unchained_checkpoints:
        print(
            f"note: {report.unchained_checkpoints} signed checkpoints predate checkpoint "
            "chaining (written by an older Bastion): removing one of them is not detected"
        )
    return 0


def _read_kept(path: Path) -> Checkpoint:
    from bastion.audit.checkpoint import decode_checkpoint
    from bastion.errors import ConfigError

    try:
        return decode_checkpoint(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the kept checkpoint {path}: {exc}") from exc


def run_audit_checkpoint(db: str | None, output: str | None) -> int:
    """Write the log's latest signed checkpoint (checked with the key beside it) as JSON."""
    from bastion.audit.checkpoint import encode_checkpoint, verify_checkpoint
    from bastion.audit.keys import load_public_key, public_key_path
    from bastion.audit.read import checkpoint_rows, open_readonly, parse_checkpoint

    path = _db(db)
    if not path.is_file():
        return _no_db(path)
    key = load_public_key(public_key_path(path))
    conn = open_readonly(path)
    try:
        rows = checkpoint_rows(conn, last=True)
    except sqlite3.DatabaseError as exc:
        return _not_audit_db(path, exc)
    finally:
        conn.close()
    if not rows:
        print(f"bastion: {path} has no signed checkpoint yet", file=sys.stderr)
        return EXIT_NOINPUT
    latest = parse_checkpoint(rows[0])
    if latest is None or not verify_checkpoint(key, latest):
        print(f"TAMPERED: the last checkpoint in {path} does not verify; run audit verify")
        return EXIT_TAMPERED
    data = encode_checkpoint(latest) + b"\n"
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    out = _create_private(output)
    if out is None:
        return EXIT_CANTCREAT
    with out:
        out.write(data)
    print(f"kept the checkpoint at seq {latest.seq} in {output}", file=sys.stderr)
    return 0


def run_audit_tail(db: str | None, n: int, *, follow: bool, as_json: bool) -> int:
    from bastion.audit.read import iter_rows, open_readonly, tail_rows

    path = _db(db)
    if not path.is_file():
        return _no_db(path)
    conn = open_readonly(path)
    try:
        last = None
        for row in tail_rows(conn, n):  # streamed: -n 1000000 holds one page at a time
            _print_row(row, as_json=as_json)
            last = row.seq if row.seq is not None else last
        while follow:
            time.sleep(FOLLOW_POLL_S)
            for row in iter_rows(conn, after=last):
                _print_row(row, as_json=as_json)
                last = row.seq if row.seq is not None else last
    except BrokenPipeError:
        return _reader_gone()
    except sqlite3.DatabaseError as exc:
        return _not_audit_db(path, exc)
    finally:
        conn.close()
    return 0


def _print_row(row: StoredRow | UnreadableRow, *, as_json: bool) -> None:
    """One row as ``tail`` shows it; a row that is not an audit record (an edit) as a line
    saying so, which ``verify`` explains."""
    from bastion.audit.read import UnreadableRow
    from bastion.audit.record import canonical_bytes, decode_record

    seq = "null" if row.seq is None else str(row.seq)
    body = b"" if isinstance(row, UnreadableRow) else bytes(row.record)
    try:
        rec = decode_record(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        if as_json:
            print(f'{{"seq":{seq},"unreadable":true}}', flush=True)
        else:
            print(
                f"{seq:>8} unreadable: not an audit record (see bastion audit verify)", flush=True
            )
        return
    if as_json:  # re-encoded (as stored, unless edited): no raw line break can get through
        print(f'{{"seq":{seq},"record":{canonical_bytes(rec).decode()}}}', flush=True)
        return
    try:
        when = datetime.datetime.fromtimestamp(rec.time, tz=datetime.UTC).isoformat(
            timespec="milliseconds"
        )
    except (OverflowError, ValueError, OSError):  # an edited time, out of range
        when = f"time={rec.time!r}"
    rule = f" ({shown(rec.rule_id)})" if rec.rule_id else ""
    principal, target = shown(rec.principal or "-"), shown(rec.target or "-")
    print(
        f"{seq:>8} {when} {shown(rec.kind):<8} {principal:<16} "
        f"{shown(rec.method):<20} {target:<24} {shown(rec.decision)}{rule} "
        f"{shown(rec.outcome)} {rec.latency_ms:.1f}ms",
        flush=True,
    )


def _not_audit_db(path: Path, exc: sqlite3.DatabaseError) -> int:
    """``path`` is a file SQLite cannot read as an audit log (another database, not a
    database, or a log whose tables were dropped): one line, exit 1, as ``verify`` says."""
    print(
        f"bastion: {path} is not a readable audit database ({shown(exc)}); "
        "run `bastion audit verify`",
        file=sys.stderr,
    )
    return EXIT_TAMPERED


def _reader_gone() -> int:
    """stdout's reader stopped reading (``| head``): end quietly. stdout goes to /dev/null
    first, so that flushing it at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_PIPE


def run_audit_export(db: str | None, output: str | None) -> int:
    from bastion.audit.read import export_jsonl, open_readonly

    path = _db(db)
    if not path.is_file():
        return _no_db(path)
    conn = open_readonly(path)
    try:
        if output is None:
            try:
                count, unreadable = export_jsonl(conn, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            except BrokenPipeError:
                return _reader_gone()
        else:
            out = _create_private(output)
            if out is None:
                return EXIT_CANTCREAT
            try:
                with out:
                    count, unreadable = export_jsonl(conn, out)
            except sqlite3.DatabaseError:
                os.unlink(output)  # ours, just created: no empty export is left behind
                raise
            print(f"exported {count} records to {output}", file=sys.stderr)
    except sqlite3.DatabaseError as exc:
        return _not_audit_db(path, exc)
    finally:
        conn.close()
    for row in unreadable:
        where = "a row" if row.seq is None else f"seq {row.seq}"
        print(f"bastion: {where} not exported: {row.reason}", file=sys.stderr)
    if unreadable:
        print("bastion: run `bastion audit verify`", file=sys.stderr)
        return EXIT_TAMPERED
    return 0
