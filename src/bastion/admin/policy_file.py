"""``FilePolicies``: the policy backend on the gateway's policy file and its ``PolicyStore``.

``get`` shows the policy in force: the text it was compiled from, the sha-256 of those bytes
as its version and its rule count, whatever the file says now; when the file on disk is
something else, ``file`` says so: its version and whether it is ``pending`` (it loads; the
gateway applies it at its next polls) or ``refused`` and why (invalid, unreadable, or
others may change it).

``put`` compiles the text with the same loader the store uses and checks that only root or
the gateway's user may change the file (as the store does before it reads it), both before
touching anything, so a refused PUT leaves the file as it was; then it replaces the file
atomically (a temporary file in the same directory, fsynced, ``os.replace``d, the directory
fsynced; through a symlink, its target is replaced) and makes the store reload it, so the
file on disk and the running policy agree and a crash leaves either the old file or the new
one. Writes are serialised by a lock. Messages never name the server's files: the log does.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from bastion._file_trust import Untrusted, untrusted_step
from bastion.admin.backends import PolicyDocument, PolicyFileState
from bastion.admin.errors import Conflict, InvalidPolicy
from bastion.errors import ConfigError
from bastion.policy.load import read_policy_file
from bastion.policy.store import compile_policy

if TYPE_CHECKING:
    from bastion.policy import PolicyStore

__all__ = ["FilePolicies"]

logger = logging.getLogger(__name__)

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
        in_force = self._store.in_force
        return PolicyDocument(
            text=in_force.text,
            version=in_force.digest,
            rules=len(in_force.policy.rules),
            file=self._file_state(in_force.digest),
        )

    def _file_state(self, in_force: str) -> PolicyFileState | None:
        """The file on disk, unless it is what the policy in force was compiled from."""
        path = self._store.path
        step = untrusted_step(path)
        if step is not None:
            return PolicyFileState(version=None, status="refused", error=_untrusted(step, path))
        try:
            digest = read_policy_file(path).digest
        except ConfigError as exc:
            return PolicyFileState(version=None, status="refused", error=_unnamed(exc, path))
        if digest == in_force:
            return None
        refusal = self._store.refusal
        if refusal is not None and refusal.digest == digest:
            error = _unnamed(refusal.error, path)
            return PolicyFileState(version=digest, status="refused", error=error)
        return PolicyFileState(version=digest, status="pending")

    def _replace(self, text: str) -> PolicyDocument:
        compiled = compile_policy(text, SOURCE)
        if isinstance(compiled, ConfigError):
            raise InvalidPolicy(str(compiled))
        path = self._store.path
        step = untrusted_step(path)
        if step is not None:  # the store would refuse the file written: write nothing
            logger.warning(
                "PUT /api/v1/policies refused: %s %s; run: %s %s",
                step.entry,
                step.why,
                step.fix,
                step.entry,
            )
            raise Conflict(f"{_untrusted(step, path)}; the policy was not replaced")
        data = text.encode()
        version = hashlib.sha256(data).hexdigest()
        _write_atomically(path, data)
        error = self._store.reload()
        if error is not None or self._store.digest != version:
            # Another writer changed the file (or its permissions) between the two.
            logger.warning("PUT /api/v1/policies overtaken by a change of %s: %s", path, error)
            raise Conflict(
                "the policy file changed while it was being replaced; "
                "GET /api/v1/policies shows the policy in force"
            )
        return PolicyDocument(text=text, version=version, rules=len(compiled.rules))


def _untrusted(step: Untrusted, path: Path) -> str:
    """Why others may change the policy, and the fix, without naming the server's files."""
    own = step.entry in (path, Path(os.path.realpath(path)))
    where = "the policy file" if own else "a directory or link on the way to the policy file"
    return f"others may change the policy: {where} {step.why} (run {step.fix} on it)"


def _unnamed(error: ConfigError, path: Path) -> str:
    """``error`` (the store's, or a read's) naming the document ``policy``, not its file."""
    message = str(error)
    for name in (str(path), path.name):
        if message.startswith(f"{name}:"):
            return SOURCE + message[len(name) :]
    return message


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
