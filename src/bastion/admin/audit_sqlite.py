"""``SqliteAudit``: the audit backend on the audit database, read-only (AD-2, AD-4).

Queries open their own read-only connection (the log's writer is never blocked and nothing
here can change history), filter in SQL, return at most ``MAX_AUDIT_LIMIT`` records in seq
order and run in a worker thread. ``verify`` is ``bastion.audit.verify`` with the public key
kept beside the database. A log that does not exist yet is empty, not an error; a row that
is not the text the writer stores (an edit) reads as ``{"unreadable": true}``, which verify
explains.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Final

import anyio
import msgspec

from bastion.admin.backends import MAX_AUDIT_LIMIT, AuditEntry, AuditFilters, AuditPage
from bastion.admin.errors import AdminError
from bastion.audit import VerifyReport, verify
from bastion.audit.keys import load_public_key, public_key_path
from bastion.audit.read import open_readonly
from bastion.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SqliteAudit"]

_EMPTY_REPORT: Final = VerifyReport(
    records=0, last_seq=0, checkpoints=0, last_checkpoint_seq=0, problems=()
)
_DECODER: Final = msgspec.json.Decoder(dict[str, object])


class SqliteAudit:
    def __init__(self, db_path: Path) -> None:
        self._path = db_path

    async def query(self, filters: AuditFilters, limit: int) -> AuditPage:
        limit = max(1, min(limit, MAX_AUDIT_LIMIT))
        return await anyio.to_thread.run_sync(self._query, filters, limit)

    async def verify(self) -> VerifyReport:
        return await anyio.to_thread.run_sync(self._verify)

    def _query(self, filters: AuditFilters, limit: int) -> AuditPage:
        sql = "SELECT seq, hash, record FROM records WHERE seq > ?"
        args: list[object] = [filters.since_seq]
        if filters.principal is not None:
            sql += " AND json_extract(record, '$.principal') = ?"
            args.append(filters.principal)
        if filters.method is not None:
            sql += " AND json_extract(record, '$.method') = ?"
            args.append(filters.method)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        try:
            conn = open_readonly(self._path)
        except FileNotFoundError:
            return AuditPage(records=(), next_since_seq=filters.since_seq)
        try:
            rows = conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise AdminError from exc
        finally:
            conn.close()
        entries = tuple(
            AuditEntry(
                seq=seq, hash=hash_ if isinstance(hash_, str) else "", record=_record(record)
            )
            for seq, hash_, record in rows
        )
        return AuditPage(
            records=entries, next_since_seq=entries[-1].seq if entries else filters.since_seq
        )

    def _verify(self) -> VerifyReport:
        if not self._path.is_file():
            return _EMPTY_REPORT
        try:
            key = load_public_key(public_key_path(self._path))
            return verify(self._path, key)
        except (ConfigError, sqlite3.Error, FileNotFoundError) as exc:
            raise AdminError from exc


def _record(stored: object) -> dict[str, object]:
    # An edited row (not JSON, or not text at all) is shown as unreadable here, and
    # reported by verify.
    if not isinstance(stored, str):
        return {"unreadable": True}
    try:
        return _DECODER.decode(stored)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {"unreadable": True}
