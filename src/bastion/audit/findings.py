"""What ``verify`` reports (AD-2): a ``Problem`` per finding, by seq and kind, and the
bounded list they are gathered in while a log is checked."""

from __future__ import annotations

from typing import Final, Literal

import msgspec

__all__ = ["MAX_PROBLEMS", "Findings", "Problem", "ProblemKind"]

MAX_PROBLEMS: Final = 100

ProblemKind = Literal[
    "edited",
    "unreadable",
    "missing",
    "broken-link",
    "truncated",
    "bad-checkpoint",
    "missing-checkpoint",
    "no-head",
]


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    seq: int | None
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        where = "" if self.seq is None else f"seq {self.seq}: "
        return f"{where}{self.kind}: {self.message}"


class Findings:
    """The problems found so far, at most ``MAX_PROBLEMS`` (``overflow``: more were)."""

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.overflow = False

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_PROBLEMS

    def has(self, seq: int | None, kind: ProblemKind) -> bool:
        return any(p.seq == seq and p.kind == kind for p in self.items)

    def add(self, seq: int | None, kind: ProblemKind, message: str) -> None:
        if self.full:
            self.overflow = True
        else:
            self.items.append(Problem(seq=seq, kind=kind, message=message))
