"""The current policy of a running gateway, replaced atomically on reload.

``reload()`` reads and compiles the file completely before swapping one reference, so a
request sees either the old policy or the new one, never a mix. A file that does not load
leaves the old policy in place and the error is logged (and returned). ``poll()`` reloads
when the file changed and says what happened, for the caller's audit log; a caller runs it
on a timer, so no restart is needed. ``check()`` and ``apply()`` are its two halves, for a
caller that compiles off the event loop (a 4 MiB policy takes seconds) and swaps on it.

A file being rewritten in place (``cat > policy.yaml``, an editor without atomic save) may
be read half-written, so a poll applies a new version only once it has seen it unchanged
(the same stamp and sha-256) on the poll before: one poll interval later than the change.
``reload()``, for a caller that has just replaced the file atomically, does not wait.

Each read takes a ticket before it opens the file, and ``apply`` drops a result whose ticket
is older than the one in force: a poll that compiled the file before ``PUT
/api/v1/policies`` replaced it can no longer undo the PUT when it finishes. ``in_force``
holds the policy with the text and the sha-256 of the bytes it was compiled from (what
``GET /api/v1/policies`` shows, whatever the file now says), ``refusal`` the last version
of the file that was refused and why. A compile that fails in an unexpected way (any
exception, not only ``ConfigError``) is a refusal too (IN-1): the old policy stays.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import NamedTuple

from bastion.errors import ConfigError
from bastion.policy.engine import Policy
from bastion.policy.load import Stamp, parse_policy, read_policy_file, stamp_of
from bastion.policy.principal_ids import warn_unmatchable

__all__ = ["InForce", "Loaded", "PolicyStore", "Refusal", "compile_policy", "load_policy"]

logger = logging.getLogger(__name__)


class Loaded(NamedTuple):
    """A policy file as loaded: its read's ticket, stamp and sha-256 (None when it could not
    be read), the compiled policy or why not, and the text it was compiled from."""

    ticket: int
    stamp: Stamp | None
    digest: str | None
    result: Policy | ConfigError
    text: str = ""


class InForce(NamedTuple):
    """The policy in force, the text it was compiled from and the sha-256 of those bytes."""

    policy: Policy
    text: str
    digest: str


class Refusal(NamedTuple):
    """A version of the policy file that was not put in force: the sha-256 of its bytes
    (None when it could not be read) and why."""

    digest: str | None
    error: ConfigError


def load_policy(path: Path) -> Policy:
    """Read, check and compile the policy file at ``path``.

    Raises:
        ConfigError: the file cannot be read or is not a valid policy.
    """
    result = compile_policy(read_policy_file(path).text, path.name)
    if isinstance(result, ConfigError):
        raise result
    return result


def compile_policy(text: str, source: str) -> Policy | ConfigError:
    """``text`` compiled, or why not: a ``ConfigError`` naming ``source``, also when the
    compile fails in a way nobody foresaw (logged with its traceback), so that whoever
    loads a policy keeps the old one rather than dying with the new one (IN-1)."""
    try:
        return Policy(parse_policy(text, source=source))
    except ConfigError as exc:
        return exc
    except Exception as exc:  # a bug here must not stop the gateway
        logger.error("policy %s: unexpected error while compiling", source, exc_info=exc)
        return ConfigError(f"{source}: cannot be compiled ({type(exc).__name__}; see the log)")


class PolicyStore:
    """Holds the current ``Policy``; build it with a file that loads (else ConfigError)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # check and reload run in worker threads, apply not
        self._tickets = 0  # the last ticket handed out
        self._ticket = 0  # the ticket of the read in force
        # Only the poller (check) uses it: a new version seen once, awaiting a second look.
        self._seen: tuple[Stamp | None, str | None, str] | None = None
        first = self._load(self._take_ticket())
        if isinstance(first.result, ConfigError):
            raise first.result
        assert first.digest is not None  # read, since compiled
        self._stamp = first.stamp
        self.in_force = InForce(first.result, first.text, first.digest)
        self.refusal: Refusal | None = None
        warn_unmatchable(first.result.source, path)

    @property
    def current(self) -> Policy:
        return self.in_force.policy

    @property
    def digest(self) -> str:
        """The sha-256 of the bytes the policy in force was compiled from."""
        return self.in_force.digest

    def reload(self) -> ConfigError | None:
        """Load the file again now; on failure keep the old policy and return the error."""
        result = self.apply(self._load(self._take_ticket()))
        return result if isinstance(result, ConfigError) else None

    def poll(self) -> Policy | ConfigError | None:
        """Reload if the file changed since the last load and was seen unchanged since the
        last poll: the policy now in force, or the error that kept the previous one; None
        when nothing was applied."""
        loaded = self.check()
        return None if loaded is None else self.apply(loaded)

    def check(self) -> Loaded | None:
        """The file read and compiled if it changed since the last load and this version was
        already seen on the previous call, else None; nothing is swapped in (``apply`` does
        that), so a big policy can be compiled off the event loop and applied on it."""
        if _stat(self.path) == self._stamp:
            self._seen = None
            return None
        read = self._read(self._take_ticket())
        error = str(read.result) if isinstance(read.result, ConfigError) else ""
        seen = (read.stamp, read.digest, error)
        again, self._seen = seen == self._seen, seen
        return self._compile(read) if again else None

    def apply(self, loaded: Loaded) -> Policy | ConfigError | None:
        """Put what ``check`` loaded in force: the new policy, or the error that keeps the
        previous one (logged; the same broken file is not retried on every poll); None when
        a later read is already in force (``loaded`` is stale, and dropped)."""
        with self._lock:
            if loaded.ticket < self._ticket:
                logger.info("policy reload from %s dropped: a later one is in force", self.path)
                return None
            self._ticket, self._stamp = loaded.ticket, loaded.stamp
            result = loaded.result
            if isinstance(result, ConfigError):
                self.refusal = Refusal(loaded.digest, result)
                logger.error("policy reload failed, keeping the previous policy: %s", result)
                return result
            assert loaded.digest is not None  # read, since compiled
            # One reference assignment: readers see the policy with its own text and digest.
            self.in_force = InForce(result, loaded.text, loaded.digest)
            self.refusal = None
        logger.info("policy reloaded from %s (%d rules)", self.path, len(result.rules))
        warn_unmatchable(result.source, self.path)  # as at start: on every policy applied
        return result

    def _take_ticket(self) -> int:
        with self._lock:
            self._tickets += 1
            return self._tickets

    def _load(self, ticket: int) -> Loaded:
        return self._compile(self._read(ticket))

    def _read(self, ticket: int) -> _Read:
        try:
            source = read_policy_file(self.path)
        except ConfigError as exc:
            return _Read(ticket, _stat(self.path), None, exc)
        return _Read(ticket, source.stamp, source.digest, source.text)

    def _compile(self, read: _Read) -> Loaded:
        if isinstance(read.result, ConfigError):
            return Loaded(read.ticket, read.stamp, read.digest, read.result)
        result = compile_policy(read.result, self.path.name)
        return Loaded(read.ticket, read.stamp, read.digest, result, read.result)


class _Read(NamedTuple):
    """A policy file read, not yet compiled: its text, or why it could not be read."""

    ticket: int
    stamp: Stamp | None
    digest: str | None
    result: str | ConfigError


def _stat(path: Path) -> Stamp | None:
    try:
        return stamp_of(os.stat(path))
    except OSError:
        return None
