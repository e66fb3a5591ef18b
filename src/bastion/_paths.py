"""Where Bastion keeps per-user state by default: ``$XDG_STATE_HOME/bastion``
(``~/.local/state/bastion``), holding the audit log, API keys and tool pins. A relative
``XDG_STATE_HOME`` is ignored, as the XDG specification says."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["audit_db", "keys_db", "state_dir"]


def state_dir(environ: Mapping[str, str] | None = None, *, home: Path | None = None) -> Path:
    state = (os.environ if environ is None else environ).get("XDG_STATE_HOME", "")
    base = Path(state) if state and os.path.isabs(state) else (home or Path.home()) / ".local/state"
    return base / "bastion"


def audit_db() -> Path:
    return state_dir() / "audit.db"


def keys_db() -> Path:
    return state_dir() / "keys.db"
