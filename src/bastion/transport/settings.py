"""The ``gateway.sessions`` configuration section: how long a 2025-11-25 session on the HTTP
face lives and how many are kept (SE-3). The configuration's ``gateway.sessions`` and the
transport's ``HttpSettings.sessions`` are this one type, so they cannot disagree."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

__all__ = ["SessionSettings"]


class SessionSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """2025-11-25 sessions on the HTTP face (SE-3): how long one lives, how many are kept
    (past ``max_sessions`` the least recently used one ends)."""

    idle_timeout: Annotated[float, Meta(gt=0.0, le=7 * 86400.0)] = 3600.0
    max_lifetime: Annotated[float, Meta(gt=0.0, le=30 * 86400.0)] = 86400.0
    max_sessions: Annotated[int, Meta(ge=1, le=1_000_000)] = 1024
