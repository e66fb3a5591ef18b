"""Held prompts, resources and templates and the admins' answers (TC-1), in the pin database.

``DefinitionScreen`` asks ``check`` about each poisoned-looking definition it is offered. An
approval is for that exact definition (its content hash) and outlives restarts: it is shown
while the server offers it unchanged; a changed one is screened again, and held again (a new
hash, a new approval) if it still looks poisoned. A rejected hash stays held and is not
listed again. At most ``MAX_HELD_DEFINITIONS`` wait for an answer at once (the oldest is
forgotten first: still held, and listed again when it is next offered). They are listed
oldest first, a page at a time (``pending(limit=, after=)``, by first seen and row id).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal, TypeAlias

import msgspec

from bastion._types import Clock, JSONObject
from bastion.guard._pindb import open_db
from bastion.guard.findings import Finding
from bastion.guard.pins import NotPending

__all__ = [
    "MAX_HELD_DEFINITIONS",
    "Candidate",
    "DefinitionDecision",
    "DefinitionKind",
    "HeldDefinitions",
    "PendingDefinition",
    "Standing",
]

DefinitionKind: TypeAlias = Literal["prompt", "resource", "resource-template"]
# approved: show it; rejected: hold, silently; held: already waiting for an answer;
# new: now waiting (the caller audits the hold).
Standing: TypeAlias = Literal["approved", "rejected", "held", "new"]
MAX_HELD_DEFINITIONS: Final = 1024  # definitions waiting for an admin (oldest forgotten)
_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_FINDINGS: Final = msgspec.json.Decoder(list[Finding])


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A poisoned-looking definition one server offers."""

    name: str  # the prompt's name, the resource's URI or the template
    hash: str  # SHA-256 of the definition's canonical JSON
    definition: JSONObject
    findings: list[Finding]


class PendingDefinition(msgspec.Struct, frozen=True, kw_only=True):
    kind: DefinitionKind
    server: str
    name: str
    hash: str
    findings: list[Finding]
    first_seen: float
    definition: JSONObject
    rowid: int = 0

    def key(self) -> tuple[float, int]:
        """Where this one is in the listing (``after=`` lists those past it)."""
        return (self.first_seen, self.rowid)


class DefinitionDecision(msgspec.Struct, frozen=True, kw_only=True):
    """An admin's answer about a held definition, for the audit log (kind ``pin``)."""

    action: Literal["approved", "rejected"]
    kind: DefinitionKind
    server: str
    name: str
    hash: str
    by: str
    old_hash: str | None = None  # the hash approved before for this name, if any
    findings: list[Finding] = []


class HeldDefinitions:
    """The held definitions of every upstream; safe to share between threads."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Clock = time.time,  # wall clock: first_seen and the answers' times are shown
        max_held: int = MAX_HELD_DEFINITIONS,
    ) -> None:
        self._db = open_db(Path(path))
        self._lock = threading.Lock()
        self._clock = clock
        self._max_held = max_held

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HeldDefinitions:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check(
        self, server: str, kind: DefinitionKind, candidates: Sequence[Candidate]
    ) -> list[Standing]:
        """Each candidate's standing, in order; a new one is recorded as waiting."""
        standings: list[Standing] = []
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for item in candidates:
                standings.append(self._standing(server, kind, item))
            self._forget_oldest()
        return standings

    def _standing(self, server: str, kind: DefinitionKind, item: Candidate) -> Standing:
        key = (server, kind, item.name)
        approved = self._db.execute(
            "SELECT hash FROM definitions WHERE server = ? AND kind = ? AND name = ?", key
        ).fetchone()
        if approved is not None and approved[0] == item.hash:
            self._db.execute(
                "DELETE FROM held_definitions WHERE server = ? AND kind = ? AND name = ?", key
            )
            return "approved"
        if self._db.execute(
            "SELECT 1 FROM rejected_definitions WHERE server = ? AND kind = ? AND hash = ?",
            (server, kind, item.hash),
        ).fetchone():
            return "rejected"
        held = self._db.execute(
            "SELECT hash FROM held_definitions WHERE server = ? AND kind = ? AND name = ?", key
        ).fetchone()
        if held is not None and held[0] == item.hash:
            return "held"
        self._db.execute(
            "INSERT OR REPLACE INTO held_definitions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*key, item.hash, _json(item.definition), _json(item.findings), self._clock()),
        )
        return "new"

    def _forget_oldest(self) -> None:
        (count,) = self._db.execute("SELECT COUNT(*) FROM held_definitions").fetchone()
        if count > self._max_held:
            self._db.execute(
                "DELETE FROM held_definitions WHERE rowid IN (SELECT rowid FROM held_definitions"
                " ORDER BY first_seen, rowid LIMIT ?)",
                (count - self._max_held,),
            )

    def approve(
        self, server: str, kind: DefinitionKind, digest: str, *, by: str
    ) -> DefinitionDecision:
        """Show the held definition ``digest`` while ``server`` offers it unchanged; the caller
        then rebuilds its catalog.

        Raises:
            NotPending: no such held definition (it changed again, or was never held).
        """
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            item = self._pending_row(server, kind, digest)
            key = (server, kind, item.name)
            old = self._db.execute(
                "SELECT hash FROM definitions WHERE server = ? AND kind = ? AND name = ?", key
            ).fetchone()
            self._db.execute(
                "INSERT OR REPLACE INTO definitions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*key, digest, _json(item.definition), by, self._clock()),
            )
            self._db.execute(
                "DELETE FROM held_definitions WHERE server = ? AND kind = ? AND name = ?", key
            )
            self._db.execute(
                "DELETE FROM rejected_definitions WHERE server = ? AND kind = ? AND hash = ?",
                (server, kind, digest),
            )
        return DefinitionDecision(
            action="approved", kind=kind, server=server, name=item.name, hash=digest, by=by,
            old_hash=None if old is None else old[0], findings=item.findings,
        )  # fmt: skip

    def reject(
        self, server: str, kind: DefinitionKind, digest: str, *, by: str
    ) -> DefinitionDecision:
        """Keep the held definition ``digest`` hidden, and unlisted, for good.

        Raises:
            NotPending: no such held definition.
        """
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            item = self._pending_row(server, kind, digest)
            self._db.execute(
                "INSERT OR REPLACE INTO rejected_definitions VALUES (?, ?, ?, ?, ?, ?)",
                (server, kind, item.name, digest, by, self._clock()),
            )
            self._db.execute(
                "DELETE FROM held_definitions WHERE server = ? AND kind = ? AND name = ?",
                (server, kind, item.name),
            )
        return DefinitionDecision(
            action="rejected", kind=kind, server=server, name=item.name, hash=digest, by=by,
            findings=item.findings,
        )  # fmt: skip

    def pending(
        self, *, limit: int = -1, after: tuple[float, int] = (float("-inf"), 0)
    ) -> list[PendingDefinition]:
        """Held definitions waiting for an answer, oldest first: those past ``after`` (a
        listed one's ``key()``), at most ``limit`` (-1: all)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT rowid, * FROM held_definitions WHERE (first_seen, rowid) > (?, ?)"
                " ORDER BY first_seen, rowid LIMIT ?",
                (*after, limit),
            ).fetchall()
        return [_pending(row) for row in rows]

    def held(self, server: str, kind: DefinitionKind, digest: str) -> PendingDefinition | None:
        """``server``'s held ``kind`` ``digest``, if it waits for an answer."""
        with self._lock:
            try:
                return self._pending_row(server, kind, digest)
            except NotPending:
                return None

    def decided(self, server: str, kind: DefinitionKind, digest: str) -> bool:
        """Whether an admin approved or rejected definition ``digest`` of ``server``."""
        with self._lock:
            for table in ("definitions", "rejected_definitions"):
                row = self._db.execute(
                    f"SELECT 1 FROM {table} WHERE server = ? AND kind = ? AND hash = ?",  # noqa: S608 - fixed names
                    (server, kind, digest),
                ).fetchone()
                if row is not None:
                    return True
        return False

    def _pending_row(self, server: str, kind: DefinitionKind, digest: str) -> PendingDefinition:
        row = self._db.execute(
            "SELECT rowid, * FROM held_definitions WHERE server = ? AND kind = ? AND hash = ?",
            (server, kind, digest),
        ).fetchone()
        if row is None:
            raise NotPending(f"{server} has no held {kind} {digest[:12]}")
        return _pending(row)


def _json(value: object) -> str:
    return _ENCODER.encode(value).decode()


def _pending(row: tuple[int, str, str, str, str, str, str, float]) -> PendingDefinition:
    rowid, server, kind, name, digest, definition, findings, first_seen = row
    return PendingDefinition(
        rowid=rowid,
        kind=kind,  # type: ignore[arg-type]
        server=server,
        name=name,
        hash=digest,
        findings=_FINDINGS.decode(findings),
        first_seen=first_seen,
        definition=json.loads(definition),
    )
