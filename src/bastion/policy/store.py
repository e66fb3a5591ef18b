"""The current policy of a running gateway, replaced atomically on reload.

``reload()`` reads and compiles the file completely before swapping one reference, so a
request sees either the old policy or the new one, never a mix. A file that does not load
leaves the old policy in place and the error is logged (and returned). ``poll()`` reloads
when the file's mtime or size changed and says what happened, for the caller's audit log; a
caller runs it on a timer, so no restart is needed. ``check()`` and ``apply()`` are its two
halves, for a caller that compiles off the event loop (a 4 MiB policy takes seconds) and
swaps on it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TypeAlias

from bastion.errors import ConfigError
from bastion.policy.engine import Policy
from bastion.policy.load import load_policy_file

__all__ = ["Loaded", "PolicyStore", "load_policy"]

# A policy file as loaded: its (mtime, size) stamp, and the compiled policy or why not.
Loaded: TypeAlias = tuple[tuple[int, int] | None, Policy | ConfigError]

logger = logging.getLogger(__name__)


def load_policy(path: Path) -> Policy:
    """Read, check and compile the policy file at ``path``.

    Raises:
        ConfigError: the file cannot be read or is not a valid policy.
    """
    return Policy(load_policy_file(path))


class PolicyStore:
    """Holds the current ``Policy``; build it with a file that loads (else ConfigError)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self._policy = load_policy(path)

    @property
    def current(self) -> Policy:
        return self._policy

    def reload(self) -> ConfigError | None:
        """Load the file again; on failure keep the old policy and return the error."""
        result = self.apply(self._load(self._stat()))
        return result if isinstance(result, ConfigError) else None

    def poll(self) -> Policy | ConfigError | None:
        """Reload if the file changed since the last load: the policy now in force, or the
        error that kept the previous one; None when the file did not change."""
        loaded = self.check()
        return None if loaded is None else self.apply(loaded)

    def check(self) -> Loaded | None:
        """The file read and compiled if it changed since the last load, else None; nothing
        is swapped in (``apply`` does that), so a big policy can be compiled off the event
        loop and applied on it."""
        stamp = self._stat()
        return None if stamp == self._stamp else self._load(stamp)

    def apply(self, loaded: Loaded) -> Policy | ConfigError:
        """Put what ``check`` loaded in force: the new policy, or the error that keeps the
        previous one (logged; the same broken file is not retried on every poll)."""
        stamp, result = loaded
        self._stamp = stamp
        if isinstance(result, ConfigError):
            logger.error("policy reload failed, keeping the previous policy: %s", result)
            return result
        self._policy = result  # one reference assignment: atomic for readers
        logger.info("policy reloaded from %s (%d rules)", self.path, len(result.rules))
        return result

    def _load(self, stamp: tuple[int, int] | None) -> Loaded:
        try:
            return stamp, load_policy(self.path)
        except ConfigError as exc:
            return stamp, exc

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size
