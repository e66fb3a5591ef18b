"""Tool pinning (TC-2, TC-3): an upstream's tools are shown only as an admin (or trust on
first use) approved them.

Each tool definition is hashed canonically (``_pin_hash``: SHA-256 of sorted-key JSON, ``1.0``
as ``1``, of every field of the MCP ``Tool`` a client is shown: ``PIN_FIELDS``; anything else
is never passed on) and the same fields are scanned. A pin from before numbers were canonical
is re-keyed; one from before icons, execution and _meta were pinned is carried over when its
fields are unchanged and the new ones are clean. ``PinStore.review`` decides, per
server, which offered tools may be shown: pinned and unchanged ones, and new clean ones
under trust on first use (pinned on the spot). It holds a changed definition (a rug pull,
also after ``notifications/tools/list_changed``), a poisoned or schema-unusable new one, and
one that shadows another server's tool, until ``approve``. A name the server offers more
than once is held in every copy (``duplicate``), approved or not, for as long as it does:
clients would see one definition while the server may run the other. A name longer than
``MAX_TOOL_NAME`` (128, AZ-3's bound on names; MCP's SEP-986 says the same) is held for good
and never recorded for an admin (``name-too-long``). The held rows are bounded and paged
(``_held_tools``: caps, rows of tools no longer offered dropped). Every decision that changes
the store returns a ``PinEvent`` for the caller's audit log (and a ``HeldOverflow`` when the
number of held tools left unrecorded changes); nothing here writes the audit log.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Final, Literal

import msgspec

from bastion._types import Clock, JSONObject
from bastion.guard import _pin_hash
from bastion.guard._diff import changed_fields, unified
from bastion.guard._held_tools import (
    MAX_HELD_TOOLS,
    MAX_HELD_TOOLS_PER_SERVER,
    HeldOverflow,
    HeldTools,
    HoldReason,
    PendingKey,
    PendingTool,
)
from bastion.guard._pindb import open_db
from bastion.guard.findings import Finding
from bastion.guard.poison import PoisonScanner
from bastion.guard.schemas import SchemaValidator
from bastion.protocol.types import NAME_MAX

__all__ = [
    "MAX_HELD_TOOLS",
    "MAX_HELD_TOOLS_PER_SERVER",
    "MAX_TOOL_NAME",
    "PIN_FIELDS",
    "Held",
    "HeldOverflow",
    "HoldReason",
    "NotPending",
    "PendingKey",
    "PendingTool",
    "PinEvent",
    "PinStore",
    "Review",
    "pin_definition",
    "tool_hash",
]

MAX_TOOL_NAME: Final = NAME_MAX  # characters in an upstream's tool name (AZ-3)
PIN_FIELDS: Final = (
    "name", "title", "description", "inputSchema", "outputSchema", "annotations", "icons",
    "execution", "_meta",
)  # fmt: skip
_EARLIER_FIELDS: Final = PIN_FIELDS[:6]  # what pins stored before icons/execution/_meta
TOFU: Final = "trust-on-first-use"
_DECIDED: Final = tuple(
    f"SELECT 1 FROM {table} WHERE server = ? AND hash = ? AND coalesce(?, tool) = tool"  # noqa: S608 - fixed names
    for table in ("pins", "rejected")
)  # approved or rejected: ``decided``
_REKEY: Final = "UPDATE pins SET hash = ? WHERE server = ? AND tool = ?"
_UNRECORDED: Final = frozenset({"rejected", "name-too-long"})  # held, never (re)listed
_ENCODER: Final = msgspec.json.Encoder(order="sorted")


def pin_definition(tool: JSONObject | msgspec.Struct) -> JSONObject:
    """The pinned part of a tool definition (fields it does not carry are left out)."""
    item = msgspec.to_builtins(tool) if isinstance(tool, msgspec.Struct) else tool
    return {k: item[k] for k in PIN_FIELDS if k in item}


def tool_hash(tool: JSONObject | msgspec.Struct) -> str:
    """SHA-256 (hex) of the canonical JSON of ``pin_definition(tool)`` (``_pin_hash``)."""
    return _pin_hash.digest(pin_definition(tool))


class PinEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One change to the pins, for the audit log (``kind`` is always ``"pin"``)."""

    action: Literal["pinned", "held", "approved", "rejected"]
    server: str
    tool: str
    new_hash: str
    old_hash: str | None = None
    reason: str | None = None
    by: str | None = None
    changed: list[str] = []  # top-level fields that differ from the approved definition
    diff_lines: int = 0  # lines of the unified diff (``pending()`` shows it)
    findings: list[Finding] = []
    kind: Literal["pin"] = "pin"


class Held(msgspec.Struct, frozen=True, kw_only=True):
    server: str
    tool: str
    hash: str
    reason: HoldReason
    findings: list[Finding] = []


class Review(msgspec.Struct, frozen=True, kw_only=True):
    allowed: list[JSONObject]  # the offered definitions that may be shown, in offered order
    held: list[Held]
    events: list[PinEvent]
    unlisted: list[Held] = []  # held too, but not recorded: the held table is full
    overflow: HeldOverflow | None = None  # to report: the unlisted count changed


class NotPending(LookupError):
    """``approve``/``reject`` named a (server, tool, hash) that is not held."""


class PinStore:
    """The approved tool definitions of every upstream; safe to share between threads."""

    def __init__(
        self,
        path: Path | str,
        *,
        scanner: PoisonScanner | None = None,
        validator: SchemaValidator | None = None,
        trust_on_first_use: bool = True,
        hold_poisoned: bool = True,
        clock: Clock = time.time,  # wall clock: first_seen and approved_at are shown to admins
        max_held: int = MAX_HELD_TOOLS,
        max_held_per_server: int = MAX_HELD_TOOLS_PER_SERVER,
    ) -> None:
        self._db = open_db(Path(path))
        self._held = HeldTools(self._db, max_held=max_held, max_per_server=max_held_per_server)
        self._lock = threading.Lock()
        self._scanner = scanner or PoisonScanner()
        self._validator = validator or SchemaValidator()
        self._tofu = trust_on_first_use
        self._hold_poisoned = hold_poisoned
        self._clock = clock

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PinStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- review -----------------------------------------------------------------------------

    def review(
        self,
        server: str,
        tools: Iterable[JSONObject | msgspec.Struct],
        *,
        others: Mapping[str, Collection[str]] | None = None,
    ) -> Review:
        """Which of ``server``'s offered ``tools`` may be shown; holds and pins as described
        in the module docstring. ``others`` maps every other server to its bare tool names."""
        others = {k: v for k, v in (others or {}).items() if k != server}
        taken = {name for names in others.values() for name in names}
        allowed: list[JSONObject] = []
        held: list[Held] = []
        unlisted: list[Held] = []
        events: list[PinEvent] = []
        offered = [(tool, pin_definition(tool)) for tool in tools]
        names = Counter(str(definition.get("name", "")) for _, definition in offered)
        limit = 0
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._held.offered(server, {n for n in names if len(n) <= MAX_TOOL_NAME})
            for tool, definition in offered:
                item = msgspec.to_builtins(tool) if isinstance(tool, msgspec.Struct) else tool
                name = str(definition.get("name", ""))
                outcome: Held | PinEvent | None
                if len(name) > MAX_TOOL_NAME or names[name] > 1:
                    outcome = Held(
                        server=server, tool=name, hash=tool_hash(definition),
                        reason="name-too-long" if len(name) > MAX_TOOL_NAME else "duplicate",
                    )  # fmt: skip
                else:
                    outcome = self._decide(server, name, definition, others, taken)
                if not isinstance(outcome, Held):
                    allowed.append(item)
                    if outcome is not None:
                        events.append(outcome)
                    continue
                if outcome.reason not in _UNRECORDED and (full := self._held.room(server, name)):
                    unlisted.append(outcome)
                    limit = full
                    continue
                held.append(outcome)
                event = self._hold(outcome, definition)
                if event is not None:
                    events.append(event)
            overflow = self._held.overflow(server, len(unlisted), limit)
        return Review(
            allowed=allowed, held=held, events=events, unlisted=unlisted, overflow=overflow
        )

    def _decide(
        self,
        server: str,
        name: str,
        definition: JSONObject,
        others: Mapping[str, Collection[str]],
        taken: set[str],
    ) -> Held | PinEvent | None:
        """``Held``, or the ``PinEvent`` of an automatic pin, or None (already approved)."""
        digest = tool_hash(definition)
        # The hash an earlier version stored for this definition, if it has an integral float.
        legacy = _pin_hash.legacy_digest(definition) or digest
        pinned = self._db.execute(
            "SELECT hash FROM pins WHERE server = ? AND tool = ?", (server, name)
        ).fetchone()
        if pinned is not None and pinned[0] in (digest, legacy):
            if pinned[0] != digest:  # the same definition, re-keyed by its canonical hash
                self._db.execute(_REKEY, (digest, server, name))
            self._held.drop(server, name)
            return None
        if self._db.execute(
            "SELECT 1 FROM rejected WHERE server = ? AND tool = ? AND hash IN (?, ?)",
            (server, name, digest, legacy),
        ).fetchone():
            return Held(server=server, tool=name, hash=digest, reason="rejected")
        # A pin written before icons, execution and _meta were pinned: its fields are
        # unchanged, so only the fields never reviewed are new, and screened as on first use.
        reviewed: JSONObject = {k: definition[k] for k in _EARLIER_FIELDS if k in definition}
        earlier = (
            pinned is not None
            and pinned[0] in (_pin_hash.digest(reviewed), _pin_hash.legacy_digest(reviewed))
            and self._db.execute(
                "SELECT 1 FROM earlier WHERE server = ? AND tool = ?", (server, name)
            ).fetchone()
            is not None
        )
        findings = self._scanner.scan_tool(definition, server=server, others=others)
        # A bare name another server also offers is no threat by itself: every tool is
        # namespaced, and an exposed-name collision hides both (catalog). Shadowing is a
        # definition that reaches for another server's tools.
        shadowing = any(f.kind == "cross-server-reference" for f in findings)
        reason: HoldReason | None
        if pinned is not None and not earlier:
            reason = "changed"
        elif self._validator.unusable_reason(definition) is not None:
            reason = "schema-unusable"
        elif shadowing:
            reason = "shadowing"
        elif findings and self._hold_poisoned:
            reason = "new-poisoned"
        elif not self._tofu:
            reason = "new"
        else:
            reason = None
        if reason is not None and earlier:
            reason = "changed"  # the admin sees the new fields as a diff to the pin
        if reason is not None:
            return Held(server=server, tool=name, hash=digest, reason=reason, findings=findings)
        self._pin(server, name, digest, definition, TOFU)
        return PinEvent(
            action="pinned", server=server, tool=name, new_hash=digest, by=TOFU,
            changed=changed_fields(None, definition), findings=findings,
        )  # fmt: skip

    def _hold(self, held: Held, definition: JSONObject) -> PinEvent | None:
        if held.reason in _UNRECORDED:
            return None
        if self._held.held_hash(held.server, held.tool) == held.hash:
            return None  # already held and announced
        old = self._approved(held.server, held.tool)
        old_hash, old_definition = old if old is not None else (None, None)
        self._held.hold(
            (
                held.server, held.tool, held.hash, _json(definition), old_hash,
                None if old_definition is None else _json(old_definition), held.reason,
                _ENCODER.encode(held.findings).decode(), self._clock(),
            ),
        )  # fmt: skip
        diff = unified(old_definition, definition, held.tool)
        return PinEvent(
            action="held", server=held.server, tool=held.tool, new_hash=held.hash,
            old_hash=old_hash, reason=held.reason,
            changed=changed_fields(old_definition, definition),
            diff_lines=diff.count("\n") + 1 if diff else 0, findings=held.findings,
        )  # fmt: skip

    def _approved(self, server: str, tool: str) -> tuple[str, JSONObject] | None:
        row = self._db.execute(
            "SELECT hash, definition FROM pins WHERE server = ? AND tool = ?", (server, tool)
        ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def _pin(self, server: str, tool: str, digest: str, definition: JSONObject, by: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO pins VALUES (?, ?, ?, ?, ?, ?)",
            (server, tool, digest, _json(definition), by, self._clock()),
        )
        self._held.drop(server, tool)
        self._db.execute("DELETE FROM earlier WHERE server = ? AND tool = ?", (server, tool))

    # -- admin ------------------------------------------------------------------------------

    def approve(self, server: str, tool: str, digest: str, *, by: str) -> PinEvent:
        """Pin the held definition ``digest`` of ``server``'s ``tool``; the caller then
        rebuilds its catalog so the tool is shown.

        Raises:
            NotPending: no such held definition (it changed again, or was never held).
        """
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            item = self._pending_row(server, tool, digest)
            old = self._approved(server, tool)
            self._pin(server, tool, digest, item.definition, by)
            self._db.execute(
                "DELETE FROM rejected WHERE server = ? AND tool = ? AND hash = ?",
                (server, tool, digest),
            )
        return PinEvent(
            action="approved", server=server, tool=tool, new_hash=digest,
            old_hash=None if old is None else old[0], reason=item.reason, by=by,
            changed=changed_fields(None if old is None else old[1], item.definition),
        )  # fmt: skip

    def reject(self, server: str, tool: str, digest: str, *, by: str) -> PinEvent:
        """Keep the held definition ``digest`` hidden for good (no further events for it).

        Raises:
            NotPending: no such held definition.
        """
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            item = self._pending_row(server, tool, digest)
            self._db.execute(
                "INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?, ?)",
                (server, tool, digest, by, self._clock()),
            )
            self._held.drop(server, tool)
        return PinEvent(
            action="rejected", server=server, tool=tool, new_hash=digest,
            old_hash=item.old_hash, reason=item.reason, by=by,
        )  # fmt: skip

    def pending(
        self,
        server: str | None = None,
        *,
        limit: int | None = None,
        after: PendingKey | None = None,
    ) -> list[PendingTool]:
        """Held definitions, oldest first, each with a bounded unified diff: those past
        ``after`` (a listed one's ``key()``), at most ``limit``."""
        with self._lock:
            return self._held.page(server, limit, after)

    def held_tool(self, server: str, digest: str) -> PendingTool | None:
        """``server``'s held definition ``digest``, if it is held (and recorded)."""
        with self._lock:
            return self._held.find(server, digest)

    def decided(self, server: str, tool: str | None, digest: str) -> bool:
        """Whether definition ``digest`` of ``server``'s ``tool`` (None: any) was approved (it
        is pinned) or rejected: an admin has already answered for it."""
        with self._lock:
            return any(self._db.execute(q, (server, digest, tool)).fetchone() for q in _DECIDED)

    def approved(self, server: str) -> dict[str, str]:
        """``server``'s pinned tools: name -> hash."""
        with self._lock:
            rows = self._db.execute(
                "SELECT tool, hash FROM pins WHERE server = ? ORDER BY tool", (server,)
            ).fetchall()
        return dict(rows)

    def _pending_row(self, server: str, tool: str, digest: str) -> PendingTool:
        row = self._held.find(server, digest)
        if row is None or row.tool != tool:
            raise NotPending(f"{server}/{tool} has no held definition {digest[:12]}")
        return row


def _json(value: JSONObject) -> str:
    return _ENCODER.encode(value).decode()
