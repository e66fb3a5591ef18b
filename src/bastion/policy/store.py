"""The current policy of a running gateway, replaced atomically on reload.

``reload()`` reads and compiles the file completely before swapping one reference, so a
request sees either the old policy or the new one, never a mix. A file that does not load
leaves the old policy in place and the error is logged (and returned). ``poll()`` reloads
when the file's mtime or size changed and says what happened, for the caller's audit log; a
caller runs it on a timer, so no restart is needed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bastion.errors import ConfigError
from bastion.policy.engine import Policy
from bastion.policy.load import load_policy_file

__all__ = ["PolicyStore", "load_policy"]

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
        stamp = self._stat()
        try:
            policy = load_policy(self.path)
        except ConfigError as exc:
            self._stamp = stamp  # do not retry the same broken file on every poll
            logger.error("policy reload failed, keeping the previous policy: %s", exc)
            return exc
        self._stamp = stamp
        self._policy = policy  # one reference assignment: atomic for readers
        logger.info("policy reloaded from %s (%d rules)", self.path, len(policy.rules))
        return None

    def poll(self) -> Policy | ConfigError | None:
        """Reload if the file changed since the last load: the policy now in force, or the
        error that kept the previous one; None when the file did not change."""
        if self._stat() == self._stamp:
            return None
        error = self.reload()
        return self._policy if error is None else error

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size
