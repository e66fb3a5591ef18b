"""Errors of the workspace tools, each a refusal an agent can read and act on.

They become tool results with ``isError`` (never JSON-RPC errors, so the model sees them),
and from resource reads, JSON-RPC errors. The text is built only from values we
validated (workspace names, normalized paths, member names), never from ``OSError`` text.

    WorkspaceError
    ├── InvalidInput      bad arguments (a path with "..", a bad workspace name, ...)
    ├── NotFound          no such workspace, file or member
    ├── AlreadyExists     create-only write, a new workspace, a move target
    ├── Refused           outside the jail: symlinks, devices, FIFOs, hard links, ...
    ├── TooLarge          a size or count cap
    ├── Conflict          a version check failed, or the edit text did not match once
    └── Locked            another agent holds an advisory lock on the path
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlreadyExists",
    "Conflict",
    "InvalidInput",
    "Locked",
    "NotFound",
    "Refused",
    "TooLarge",
    "WorkspaceError",
]


class WorkspaceError(Exception):
    """A refusal with a client-safe message; ``kind`` names it for structured clients."""

    kind: ClassVar[str] = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(WorkspaceError):
    kind = "invalid"


class NotFound(WorkspaceError):
    kind = "not_found"


class AlreadyExists(WorkspaceError):
    kind = "exists"


class Refused(WorkspaceError):
    kind = "refused"


class TooLarge(WorkspaceError):
    kind = "too_large"


class Conflict(WorkspaceError):
    kind = "conflict"


class Locked(WorkspaceError):
    kind = "locked"
