"""Which principal created each workspace, kept in ``.creators.json`` in the root.

Workspaces outlive the server (and no tool deletes one), so a principal's share of
``max_workspaces`` must survive a restart: each workspace a principal creates is recorded
in a small JSON object (workspace name -> principal), rewritten atomically (a temporary
file renamed over it) in the root directory, which commands never see (they get only their
workspace). Its name starts with a dot, which no workspace name may. Entries of workspaces
that are gone are neither counted nor kept; workspaces created anonymously count for nobody.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from typing import Final

__all__ = ["CREATORS_FILE", "Creators"]

logger = logging.getLogger(__name__)

CREATORS_FILE: Final = ".creators.json"
_TEMP: Final = ".creators.json.tmp"
# Far above max_workspaces entries of a 64-character name and a 256-character principal.
MAX_FILE_BYTES: Final = 1024 * 1024


class Creators:
    """The creators' record of the root opened as ``root_fd``."""

    def __init__(self, root_fd: int) -> None:
        self._fd = root_fd
        self._by_name = self._load()

    def _load(self) -> dict[str, str]:
        try:
            fd = os.open(CREATORS_FILE, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=self._fd)
        except FileNotFoundError:
            return {}
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES)
        try:
            raw = json.loads(data)
        except ValueError:
            logger.warning("workspace: %s is unreadable; creators start unknown", CREATORS_FILE)
            return {}
        if not isinstance(raw, dict):
            return {}
        return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}

    def count(self, principal: str, existing: Collection[str]) -> int:
        """How many of the ``existing`` workspaces ``principal`` created."""
        return sum(1 for n, who in self._by_name.items() if who == principal and n in existing)

    def record(self, name: str, principal: str, existing: Collection[str]) -> None:
        """``principal`` created ``name``. Raises OSError if the record cannot be written."""
        kept = {n: who for n, who in self._by_name.items() if n in existing}
        kept[name] = principal
        data = json.dumps(kept, sort_keys=True).encode()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        fd = os.open(_TEMP, flags, 0o600, dir_fd=self._fd)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(_TEMP, CREATORS_FILE, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        self._by_name = kept
