"""Opaque cursors for list results: a page offset, encoded so clients treat it as opaque."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TypeVar

from bastion.errors import InvalidParams

__all__ = ["paginate"]

T = TypeVar("T")
_PREFIX = "o:"


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(_PREFIX):
            raise ValueError(cursor)
        offset = int(text[len(_PREFIX) :])
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParams("bad cursor", message="Invalid cursor") from exc
    if offset < 0:
        raise InvalidParams("negative cursor", message="Invalid cursor")
    return offset


def paginate(items: Sequence[T], cursor: str | None, page_size: int) -> tuple[list[T], str | None]:
    """One page of ``items`` and the cursor of the next page (None on the last).

    Raises:
        InvalidParams: the cursor is not one we issued.
    """
    start = 0 if cursor is None else _decode(cursor)
    end = start + page_size
    page = list(items[start:end])
    return page, (_encode(end) if end < len(items) else None)
