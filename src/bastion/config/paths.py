"""Where Bastion keeps per-user state by default: ``$XDG_STATE_HOME/bastion``
(``~/.local/state/bastion``), holding the audit log, API keys and tool pins."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["state_dir"]


def state_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "bastion"
