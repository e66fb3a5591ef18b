"""The checkpoint signing key (AD-2): an Ed25519 key pair in two files beside the database.

``audit.key`` (PKCS#8 PEM) is created with mode 0600 and refused if group or others can read
it; ``audit.pub`` is what a verifier needs, and can be copied off the host so that someone
who can rewrite the database and the key directory still cannot pass verification against
the pinned copy.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.errors import ConfigError

__all__ = [
    "key_id",
    "load_or_create_signing_key",
    "load_public_key",
    "private_key_path",
    "public_key_path",
]


def private_key_path(db_path: Path) -> Path:
    return db_path.with_suffix(".key")


def public_key_path(db_path: Path) -> Path:
    return db_path.with_suffix(".pub")


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its SHA-256."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_signing_key(db_path: Path) -> Ed25519PrivateKey:
    """The key beside ``db_path``, created (0600, with its ``.pub``) if there is none.

    Raises:
        ConfigError: the key file is readable by group or others, or is not an Ed25519 key.
    """
    path = private_key_path(db_path)
    if not path.exists():
        _create(db_path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is accessible by group or others; chmod 600 it")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read a PEM public key.

    Raises:
        ConfigError: the file is missing or does not hold an Ed25519 public key.
    """
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the audit public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key")
    return key


def _create(db_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = private_key_path(db_path)
    # Written whole under a private name, then published with link(), which fails if the
    # name exists: never reuse a file someone else prepared, 0o600 from the first byte, and a
    # second gateway starting at the same moment reads a complete key (the winner's).
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            return  # another process created the key first; theirs is the key
    finally:
        draft.unlink(missing_ok=True)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_draft = draft.with_suffix(".pub")
    public_draft.write_bytes(public)
    public_draft.replace(public_key_path(db_path))
