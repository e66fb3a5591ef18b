"""Helpers the benchmark scripts share (they run as ``python bench/<script>.py``, so this
module is importable as ``_common``)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tree_state() -> str:
    """The commit measured, and whether ``src/`` differs from it."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], check=False, cwd=ROOT, capture_output=True)
        return done.stdout.decode().strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "src")
    except OSError:
        return "unknown"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
