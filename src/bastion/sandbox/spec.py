"""What a caller asks the sandbox to run (``ExecSpec``) and what comes back.

``ExecSpec`` names a workspace directory, an argv, a working directory *inside* the
workspace, an explicit environment (nothing is inherited), a profile, a network policy and
read-only paths. While it runs, output arrives as ``OutputChunk``s; at the end an
``ExecResult`` says how it ended and which limit, if any, ended it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal, TypeAlias

import msgspec

from bastion.sandbox.errors import SandboxError
from bastion.sandbox.limits import DEFAULT_PROFILE, Limits, Profile

__all__ = [
    "DEFAULT_CAPTURE_BYTES",
    "LIMIT_REASONS",
    "ExecResult",
    "ExecSpec",
    "LimitReason",
    "NetworkPolicy",
    "OutputChunk",
    "StreamName",
    "inside_path",
]

LimitReason: TypeAlias = Literal["none", "timeout", "cpu", "memory", "output", "disk", "cancelled"]
LIMIT_REASONS: Final = ("none", "timeout", "cpu", "memory", "output", "disk", "cancelled")
StreamName: TypeAlias = Literal["stdout", "stderr"]
# Bytes of each stream kept for the final result; the rest is streamed but not kept.
DEFAULT_CAPTURE_BYTES: Final = 1024 * 1024


class NetworkPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """No network at all (the default), or HTTPS egress to these domains only.

    An entry is a host name (``pypi.org``) or a suffix pattern (``*.pythonhosted.org``),
    optionally with ``:port`` (443 and 80 when absent). Traffic goes through a filtering
    proxy the sandbox reaches over a unix socket; the sandbox has no route of its own.
    """

    allow: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.allow)


NO_NETWORK: Final = NetworkPolicy()


class ExecSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One command to run in the sandbox.

    ``cwd`` and ``readonly_paths`` are relative to the workspace; ``extra_ro_paths`` are
    host paths made visible read-only at the same place (a toolchain outside ``/usr``).
    ``env`` is the whole environment of the command besides the sandbox's own ``PATH``,
    ``HOME``, ``LANG`` and ``TMPDIR`` defaults (which it may override).
    """

    workspace: Path
    argv: tuple[str, ...]
    cwd: str = "."
    env: Mapping[str, str] = msgspec.field(default_factory=dict)
    profile: Profile | str = DEFAULT_PROFILE
    timeout: float | None = None
    network: NetworkPolicy = NO_NETWORK
    readonly_paths: tuple[str, ...] = ()
    extra_ro_paths: tuple[Path, ...] = ()
    capture_bytes: int = DEFAULT_CAPTURE_BYTES

    def __post_init__(self) -> None:
        if not self.argv:
            raise SandboxError("argv must not be empty")
        for name, value in self.env.items():
            if not name or "=" in name or "\0" in name:
                raise SandboxError(f"invalid environment variable name {name!r}")
            if "\0" in value:
                raise SandboxError(f"environment variable {name!r} holds a NUL byte")
        inside_path(self.cwd)
        for path in self.readonly_paths:
            inside_path(path)


def inside_path(relative: str) -> str:
    """``relative`` normalised as a path below the workspace root ("." for the root).

    Raises:
        SandboxError: an absolute path, or one that climbs out with ``..``.
    """
    if "\0" in relative or posixpath.isabs(relative):
        raise SandboxError(f"path must be relative to the workspace: {relative!r}")
    normal = posixpath.normpath(relative)
    if normal == ".." or normal.startswith("../"):
        raise SandboxError(f"path leaves the workspace: {relative!r}")
    return normal


class OutputChunk(msgspec.Struct, frozen=True):
    """Bytes the command wrote to one of its streams, as they arrived."""

    stream: StreamName
    data: bytes


class ExecResult(msgspec.Struct, frozen=True, kw_only=True):
    """How a command ended.

    Exactly one of ``exit_code`` and ``signal`` is set. ``limit`` names the limit that
    ended the command (``"none"`` when it ended by itself). ``stdout``/``stderr`` keep at
    most ``ExecSpec.capture_bytes`` each (``*_truncated`` says when more was written);
    ``output_bytes`` counts everything the command wrote.
    """

    exit_code: int | None
    signal: int | None
    limit: LimitReason
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    output_bytes: int
    duration: float
    backend: str
    limits: Limits
    enforced: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit == "none"
