"""Readable, bounded differences between two tool definitions, for admins and the audit log."""

from __future__ import annotations

import difflib
import json
from typing import Final

from bastion._types import JSONObject
from bastion.guard._unicode import visible

__all__ = ["changed_fields", "unified"]

MAX_DIFF_LINES: Final = 200
MAX_LINE: Final = 240


def _pretty(definition: JSONObject | None) -> list[str]:
    if definition is None:
        return []
    text = json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=False)
    return [visible(line, MAX_LINE) for line in text.splitlines()]


def unified(old: JSONObject | None, new: JSONObject | None, name: str) -> str:
    """A unified diff of the pretty JSON of ``old`` and ``new`` (hidden characters shown),
    at most ``MAX_DIFF_LINES`` lines."""
    lines = list(
        difflib.unified_diff(
            _pretty(old), _pretty(new), f"approved/{name}", f"offered/{name}", lineterm=""
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"… {len(lines) - MAX_DIFF_LINES} more lines"]
    return "\n".join(lines)


def changed_fields(old: JSONObject | None, new: JSONObject) -> list[str]:
    """The top-level fields that differ (all of ``new``'s when there is no ``old``)."""
    if old is None:
        return sorted(new)
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
