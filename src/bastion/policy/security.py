"""Security levels by tool-name glob, and the obligations a ``high`` tool carries.

When several entries match a tool, the strictest wins: the highest level, the shortest
step-up ``recent_auth`` and human approval if any entry asks for it (``admin`` over ``human``:
only an admin, never the caller's client). The engine attaches
these to allow decisions; enforcing them is the pipeline's job.
"""

from __future__ import annotations

from typing import Final, Literal

from bastion.policy.decision import Approval, Obligation, RecentAuth
from bastion.policy.glob import GlobSet
from bastion.policy.model import SecurityDef

__all__ = ["Level", "SecurityLevels", "seconds"]

Level = Literal["low", "medium", "high"]
_RANK: Final[dict[Level, int]] = {"low": 0, "medium": 1, "high": 2}
_UNIT: Final = {"s": 1, "m": 60, "h": 3600}


def seconds(duration: str | int) -> int:
    """``90s``/``10m``/``1h`` or an int of seconds (the loader checked the syntax)."""
    if isinstance(duration, int):
        return duration
    return int(duration[:-1]) * _UNIT[duration[-1]]


class SecurityLevels:
    __slots__ = ("_entries",)

    def __init__(self, table: dict[str, SecurityDef]) -> None:
        self._entries = tuple((GlobSet([glob]), spec) for glob, spec in table.items())

    def lookup(self, tool: str) -> tuple[Level | None, tuple[Obligation, ...]]:
        level: Level | None = None
        max_age: int | None = None
        approval: Literal["human", "admin"] | None = None
        for globs, spec in self._entries:
            if tool not in globs:
                continue
            if level is None or _RANK[spec.level] > _RANK[level]:
                level = spec.level
            if spec.step_up is not None:
                age = seconds(spec.step_up.recent_auth)
                max_age = age if max_age is None else min(max_age, age)
            if spec.approval == "admin" or approval is None:
                approval = spec.approval or approval
        obligations: list[Obligation] = []
        if max_age is not None:
            obligations.append(RecentAuth(max_age=max_age))
        if approval is not None:
            obligations.append(Approval(by=approval))
        return level, tuple(obligations)
