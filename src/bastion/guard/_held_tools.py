"""The held tool definitions of the pin database (table ``pending``), bounded (DS-4, TC-2).

At most ``MAX_HELD_TOOLS_PER_SERVER`` of one server's tools and ``MAX_HELD_TOOLS`` in all
wait for an admin. A tool held past either cap is not recorded: it stays hidden (it is not
approved), is not listed, and is recorded when it is offered again once there is room (the
caller reports the overflow once, not per tool). When a server lists its tools, the rows of
names it no longer offers go (offered again, a tool is screened, and held, again). Rows are
listed oldest first by ``PendingKey`` (first seen, then row id), a page at a time, and a
row's diff is built only when it is listed; an admin's decision reads its row alone, by
(server, hash): the hash covers the name, so it names one row of a server.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from typing import Final, Literal, TypeAlias

import msgspec

from bastion._types import JSONObject
from bastion.guard._diff import unified
from bastion.guard.findings import Finding

__all__ = [
    "MAX_HELD_TOOLS",
    "MAX_HELD_TOOLS_PER_SERVER",
    "HeldOverflow",
    "HeldTools",
    "HoldReason",
    "PendingKey",
    "PendingTool",
]

MAX_HELD_TOOLS: Final = 1024  # held tool definitions waiting for an admin, all servers
MAX_HELD_TOOLS_PER_SERVER: Final = 256  # ... of one server
HoldReason: TypeAlias = Literal[
    "changed", "new-poisoned", "shadowing", "schema-unusable", "new", "rejected", "duplicate",
    "name-too-long",
]  # fmt: skip
PendingKey: TypeAlias = tuple[float, int]  # (first seen, row id): the listing's order
_FINDINGS: Final = msgspec.json.Decoder(list[Finding])
_COLUMNS: Final = "rowid, *"  # the pending columns in order, after the row id


class PendingTool(msgspec.Struct, frozen=True, kw_only=True):
    server: str
    tool: str
    hash: str
    reason: HoldReason
    findings: list[Finding]
    first_seen: float
    definition: JSONObject
    old_hash: str | None = None
    old_definition: JSONObject | None = None
    diff: str = ""
    rowid: int = 0

    def key(self) -> PendingKey:
        """Where this row is in the listing (``after=`` lists the rows past it)."""
        return (self.first_seen, self.rowid)


class HeldOverflow(msgspec.Struct, frozen=True, kw_only=True):
    """``unlisted`` of ``server``'s offered tools are held but not recorded for an admin: the
    held table is full (``limit``: the cap that was reached). For the audit log."""

    server: str
    unlisted: int
    limit: int
    action: str = "held-unlisted"
    kind: str = "pin"


class HeldTools:
    """The ``pending`` table on an open connection; the caller holds the lock and runs
    ``offered`` and ``hold`` in one write transaction."""

    def __init__(self, db: sqlite3.Connection, *, max_held: int, max_per_server: int) -> None:
        self._db = db
        self._max = max_held
        self._share = max_per_server
        self._server = ""  # the server under review, its held rows and all held rows
        self._counts = (0, 0)
        self._unlisted: dict[str, int] = {}  # server -> its unlisted count last reported

    def offered(self, server: str, names: Collection[str]) -> None:
        """``server`` offers exactly ``names`` now: drop its other rows, count what is left."""
        rows = self._db.execute("SELECT tool FROM pending WHERE server = ?", (server,)).fetchall()
        gone = [(server, tool) for (tool,) in rows if tool not in names]
        self._db.executemany("DELETE FROM pending WHERE server = ? AND tool = ?", gone)
        (total,) = self._db.execute("SELECT COUNT(*) FROM pending").fetchone()
        self._server, self._counts = server, (len(rows) - len(gone), total)

    def drop(self, server: str, tool: str) -> None:
        """No longer held (approved, rejected, or offered as pinned)."""
        cursor = self._db.execute(
            "DELETE FROM pending WHERE server = ? AND tool = ?", (server, tool)
        )
        if cursor.rowcount > 0:
            mine, total = self._counts
            self._counts = (mine - (server == self._server), total - 1)

    def held_hash(self, server: str, tool: str) -> str | None:
        row = self._db.execute(
            "SELECT hash FROM pending WHERE server = ? AND tool = ?", (server, tool)
        ).fetchone()
        return None if row is None else str(row[0])

    def room(self, server: str, tool: str) -> int | None:
        """None when a row for ``tool`` fits (it replaces one, or is under both caps), else
        the cap it would pass."""
        if self.held_hash(server, tool) is not None:
            return None
        mine, total = self._counts
        if mine >= self._share:
            return self._share
        if total >= self._max:
            return self._max
        return None

    def hold(self, row: tuple[object, ...]) -> None:
        """Record ``row`` (the ``pending`` columns in order); ``room`` said it fits."""
        replaced = self.held_hash(str(row[0]), str(row[1])) is not None
        self._db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        if not replaced:
            mine, total = self._counts
            self._counts = (mine + (row[0] == self._server), total + 1)

    def overflow(self, server: str, unlisted: int, limit: int) -> HeldOverflow | None:
        """What to report of ``server``'s ``unlisted`` held tools: only a changed count."""
        if self._unlisted.get(server, 0) == unlisted:
            return None
        self._unlisted[server] = unlisted
        return HeldOverflow(server=server, unlisted=unlisted, limit=limit) if unlisted else None

    def page(
        self, server: str | None, limit: int | None, after: PendingKey | None
    ) -> list[PendingTool]:
        """Held rows (of ``server``, or all) past ``after``, oldest first, at most ``limit``."""
        where: list[str] = []
        args: list[object] = []
        if server is not None:
            where.append("server = ?")
            args.append(server)
        if after is not None:
            where.append("(first_seen, rowid) > (?, ?)")
            args += after
        query = f"SELECT {_COLUMNS} FROM pending"  # noqa: S608 - fixed names
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY first_seen, rowid"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        return [_pending(row) for row in self._db.execute(query, args).fetchall()]

    def find(self, server: str, digest: str) -> PendingTool | None:
        """The held row of ``server`` whose definition is ``digest``."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM pending WHERE server = ? AND hash = ?",  # noqa: S608 - fixed names
            (server, digest),
        ).fetchone()
        return None if row is None else _pending(row)


def _pending(
    row: tuple[int, str, str, str, str, str | None, str | None, str, str, float],
) -> PendingTool:
    rowid, server, tool, digest, definition, old_hash, old_definition, reason, findings, first = row
    new = json.loads(definition)
    old = None if old_definition is None else json.loads(old_definition)
    return PendingTool(
        server=server, tool=tool, hash=digest, reason=reason,  # type: ignore[arg-type]
        findings=_FINDINGS.decode(findings), first_seen=first, definition=new,
        old_hash=old_hash, old_definition=old, diff=unified(old, new, tool), rowid=rowid,
    )  # fmt: skip
