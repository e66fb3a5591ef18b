"""An HMAC key ("pepper") beside a database: 32 random bytes in a 0600 file. The API-key
store's, so that a copy of the database alone cannot be used to test guessed keys; the audit
log's (``audit.pepper``), keying the digests of arguments in approvals and their records, so
that a reader of the log cannot test guessed values of the arguments it masks (AD-3).

The file is created once, atomically (written under a temporary name, then hard-linked into
place, which fails if another process won the race), and refused if group or others can
read it. The directory holding both is made 0700.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Final

__all__ = [
    "PEPPER_BYTES",
    "PepperError",
    "ensure_private_dir",
    "load_or_create_pepper",
    "pepper_path",
]

PEPPER_BYTES: Final = 32


class PepperError(Exception):
    """The pepper file is unusable (wrong mode, wrong size, unreadable)."""


def pepper_path(db_path: Path) -> Path:
    return db_path.with_suffix(".pepper")


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) as 0700 if missing; an existing directory is kept (the
    key store's ``open_private_db`` refuses one that anyone else may write)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def load_or_create_pepper(db_path: Path, *, create: bool) -> bytes:
    """The pepper beside ``db_path``; created if missing and ``create`` is true.

    Raises:
        PepperError: missing (and not to be created), accessible by group or others, or not
            exactly ``PEPPER_BYTES`` long.
    """
    path = pepper_path(db_path)
    if not path.exists():
        if not create:
            raise PepperError(
                f"{path} is missing but {db_path} holds keys; restore it (without it no key"
                " can be verified) or move the database away"
            )
        _create(path)
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PepperError(f"{path} is accessible by group or others; chmod 600 it")
        data = path.read_bytes()
    except OSError as exc:
        raise PepperError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) != PEPPER_BYTES:
        raise PepperError(f"{path} is not a {PEPPER_BYTES}-byte key file")
    return data


def _create(path: Path) -> None:
    ensure_private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(PEPPER_BYTES))
            file.flush()
            os.fsync(file.fileno())
        # link() never replaces: if another process created the pepper first, keep theirs.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
