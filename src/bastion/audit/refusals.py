"""Refusals by a limit, audited in bounded numbers (AD-1, DS-3, DS-4): ``RefusalTally``.

A flood over a rate limit is refused cheaply, and must not cost one audit record per
refusal. The first refusal of a key (who, limit) in a window of ``window`` seconds is written
as usual; the next ones in that window are only counted, and their count becomes one summary
record (``detail``: ``refused``, ``window_s``) when the window ends, or on the key's next
refusal after it. The summary says what it counts: ``attempts`` lists each distinct
(``method``, ``target``) refused with its ``count`` (the first ``MAX_SUMMARY_PAIRS`` pairs
seen; the refusals of any others are counted in ``other``), and it names a method, target,
session or credential, or keeps a ``detail`` entry, only when every refusal it counts shares
it. Nothing is lost: ``drain`` hands back every count still open (at shutdown). The table
holds at most ``max_keys`` keys; a refusal of a new key when it is full is written on its
own, as before. Pure code: the caller passes the time and writes what it gets back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import msgspec

from bastion._types import JSONObject, JSONValue
from bastion.audit.record import AuditRecord, bound_name

__all__ = [
    "MAX_SUMMARY_PAIRS",
    "MAX_TALLIED_KEYS",
    "REFUSAL_WINDOW_S",
    "RefusalKey",
    "RefusalTally",
]

REFUSAL_WINDOW_S: Final = 1.0  # at most two records a second per flooding key
MAX_TALLIED_KEYS: Final = 4096  # keys (who, limit) counted at once; past it, one record each
MAX_SUMMARY_PAIRS: Final = 16  # (method, target) pairs a summary names; the rest are ``other``
# The fields a summary keeps only when every refusal it counts has the same value.
_SHARED_FIELDS: Final = ("credential_id", "session", "method", "target", "rule_id")

RefusalKey = tuple[str, str]
"""Who was refused (a principal id or a peer address) and by which limit."""


@dataclass(slots=True)
class _Window:
    started: float
    counted: AuditRecord | None = None
    """The first refusal counted, less what a later one did not share."""
    count: int = 0
    pairs: dict[tuple[str, str | None], int] = field(default_factory=dict)
    other: int = 0

    def count_in(self, record: AuditRecord) -> None:
        self.count += 1
        pair = (record.method, record.target)
        if pair in self.pairs or len(self.pairs) < MAX_SUMMARY_PAIRS:
            self.pairs[pair] = self.pairs.get(pair, 0) + 1
        else:
            self.other += 1
        if self.counted is None:
            self.counted = record
            return
        shared = self.counted
        changes: dict[str, object] = {
            name: "" if name == "method" else None
            for name in _SHARED_FIELDS
            if getattr(shared, name) != getattr(record, name)
        }
        if any(record.detail.get(k) != v for k, v in shared.detail.items()):
            changes["detail"] = {
                k: v for k, v in shared.detail.items() if record.detail.get(k) == v
            }
        if changes:
            self.counted = msgspec.structs.replace(shared, **changes)


class RefusalTally:
    def __init__(
        self, *, window: float = REFUSAL_WINDOW_S, max_keys: int = MAX_TALLIED_KEYS
    ) -> None:
        if window <= 0 or max_keys < 1:
            raise ValueError("window and max_keys must be positive")
        self.window = window
        self._max = max_keys
        self._open: dict[RefusalKey, _Window] = {}

    def __len__(self) -> int:
        return len(self._open)

    def refused(self, key: RefusalKey, record: AuditRecord, now: float) -> list[AuditRecord]:
        """The records to write for this refusal at monotonic time ``now``: ``record`` when it
        opens a window (after the summary of the key's previous one), else none."""
        current = self._open.get(key)
        if current is not None and now < current.started + self.window:
            current.count_in(record)
            return []
        out = [] if current is None else self._summaries(current, record.time)
        if current is None and len(self._open) >= self._max:
            return [record]  # full: no count to keep, so nothing may wait in one
        self._open[key] = _Window(started=now)
        out.append(record)
        return out

    def due(self, now: float, wall: float) -> list[AuditRecord]:
        """The summaries of the windows ended by ``now``, which are forgotten; ``wall`` is
        the time the summaries carry."""
        ended = [k for k, w in self._open.items() if now >= w.started + self.window]
        return [r for k in ended for r in self._summaries(self._open.pop(k), wall)]

    def drain(self, wall: float) -> list[AuditRecord]:
        """Every open window's summary (its count so far); the table is left empty."""
        windows, self._open = list(self._open.values()), {}
        return [r for w in windows for r in self._summaries(w, wall)]

    def _summaries(self, window: _Window, wall: float) -> list[AuditRecord]:
        counted = window.counted
        if counted is None:
            return []
        attempts: list[JSONValue] = [
            {
                "method": bound_name(method),
                "target": None if target is None else bound_name(target),
                "count": n,
            }
            for (method, target), n in window.pairs.items()
        ]
        # A window of allowed events (an admin's reads, ``AuditLog.repeated``) counts them
        # as ``repeated``; one of refusals, as ``refused``.
        label = "refused" if counted.decision == "deny" else "repeated"
        detail: JSONObject = {
            **counted.detail,
            label: window.count,
            "window_s": self.window,
            "attempts": attempts,
        }
        if window.other:
            detail["other"] = window.other
        summary = msgspec.structs.replace(
            counted, time=wall, request_id=None, latency_ms=0.0, detail=detail
        )
        return [summary]
