"""``FilePolicies``: the policy backend on the gateway's policy file and its ``PolicyStore``.

``put`` checks the text with the same loader the store uses, then replaces the file
atomically (a temporary file in the same directory, fsynced, ``os.replace``d, the directory
fsynced; through a symlink, its target is replaced) and makes the store reload it, so the
file on disk and the running policy agree and a crash leaves either the old file or the new
one. Writes are serialised by a lock. The version is the sha-256 of the file's text, so an
edit by hand changes it too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from bastion.admin.backends import PolicyDocument
from bastion.admin.errors import AdminError, InvalidPolicy
from bastion.config.load import read_text_file
from bastion.errors import ConfigError
from bastion.policy import parse_policy
from bastion.policy.load import MAX_POLICY_BYTES

if TYPE_CHECKING:
    from bastion.policy import PolicyStore

__all__ = ["FilePolicies"]

SOURCE = "policy"  # how problems name the document: never the server's file path


class FilePolicies:
    def __init__(self, store: PolicyStore) -> None:
        self._store = store
        self._lock = anyio.Lock()

    async def get(self) -> PolicyDocument:
        return await anyio.to_thread.run_sync(self._read)

    async def put(self, text: str) -> PolicyDocument:
        async with self._lock:
            return await anyio.to_thread.run_sync(self._replace, text)

    def _read(self) -> PolicyDocument:
        try:
            text = read_text_file(self._store.path, MAX_POLICY_BYTES)
        except ConfigError as exc:
            raise AdminError from exc
        return _document(text, len(self._store.current.rules))

    def _replace(self, text: str) -> PolicyDocument:
        try:
            policy = parse_policy(text, source=SOURCE)
        except ConfigError as exc:
            raise InvalidPolicy(str(exc)) from exc
        _write_atomically(self._store.path, text.encode())
        error = self._store.reload()
        if error is not None:  # the file changed under us between the write and the load
            raise AdminError from error
        return _document(text, len(policy.rules))


def _document(text: str, rules: int) -> PolicyDocument:
    version = hashlib.sha256(text.encode()).hexdigest()
    return PolicyDocument(text=text, version=version, rules=rules)


def _write_atomically(link: Path, data: bytes) -> None:
    # A policy path that is a symlink (to a file config management owns) is written through:
    # replacing the link itself would leave later edits of its target silently unread.
    path = Path(os.path.realpath(link))
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fchmod(file.fileno(), mode)
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
