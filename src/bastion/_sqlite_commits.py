"""``CommitWatch``: a one-syscall test that no connection has committed to a WAL database.

``PRAGMA data_version`` answers "has another connection committed since I last looked?"
exactly, but it opens a read transaction to do so: ``fcntl`` locks on two files and a trip
through SQLite's statement machinery, ~4 µs in a tight loop and ~20 µs per request inside a
loaded gateway (a py-spy profile of ``bench/security_overhead.py``'s "on" gateway put a
fifth of the API-key check there). In WAL mode every commit rewrites the wal-index header
at the start of the ``-shm`` file before it returns (both copies, 96 bytes: frame count,
salts, checksums; the layout is in SQLite's file-format document, "WAL-Index Format"). So
if one ``pread`` of those bytes returns what it returned last time, nothing was committed
in between, and the caller may keep what it read; when they differ, cannot be read, or
``RECHECK_EVERY_S`` has passed, the caller asks ``data_version`` as before. A torn read
(a writer halfway through the header) only ever looks like a change.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = ["CommitWatch"]

HEADER_BYTES: Final = 96  # the two copies of the 48-byte WalIndexHdr
# However the header behaves, the exact check still runs this often.
RECHECK_EVERY_S: Final = 1.0


class CommitWatch:
    """Watches the ``-shm`` file of the WAL database at ``db``; not thread-safe (callers
    hold their own lock)."""

    def __init__(self, db: Path, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._shm = db.with_name(db.name + "-shm")
        self._fd: int | None = None
        self._seen: bytes | None = None
        self._checked_at = 0.0
        self._monotonic = monotonic

    def unchanged(self) -> bool:
        """True only if no commit can have happened since the last ``mark`` (and that was
        less than ``RECHECK_EVERY_S`` ago)."""
        if self._seen is None or self._monotonic() - self._checked_at >= RECHECK_EVERY_S:
            return False
        return self._header() == self._seen

    def mark(self) -> None:
        """Remember the header as it is now; call it just before the exact check, so a
        commit landing between the two is seen as a change next time."""
        self._seen = self._header()
        self._checked_at = self._monotonic()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._seen = None

    def _header(self) -> bytes | None:
        if self._fd is None:
            try:
                self._fd = os.open(self._shm, os.O_RDONLY)
            except OSError:  # no -shm yet
                return None
        try:
            header = os.pread(self._fd, HEADER_BYTES, 0)
        except (OSError, AttributeError):  # AttributeError: no os.pread on this platform
            return None
        return header if len(header) == HEADER_BYTES else None
