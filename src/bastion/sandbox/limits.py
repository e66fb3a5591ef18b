"""Resource limits and the named profiles that bundle them.

A ``Limits`` is one frozen set of bounds; ``None`` means "not limited" (and is never the
default for a bound that protects the host). Profiles are named limit sets chosen by
configuration (``default``, ``strict``, ``build``, ``upstream``, ``high-security``);
``resolve_limits`` applies a per-call wall-clock override, never raising the other bounds.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, TypeAlias

import msgspec
from msgspec import Meta

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "BackendName",
    "Limits",
    "Profile",
    "resolve_limits",
]

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB

BackendName: TypeAlias = Literal["bubblewrap", "gvisor", "docker", "none"]
_Positive = Annotated[int, Meta(gt=0)]


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Bounds for one command. Sizes are bytes, times seconds.

    ``memory_bytes`` and ``processes`` are enforced by a cgroup (the only bound on a
    multi-process memory bomb) where the host offers one; ``address_space_bytes`` by an
    rlimit per process, and ``processes`` by one per sandbox user (shared by every
    sandbox) only where no pids cgroup is in force.
    """

    wall_seconds: Annotated[float, Meta(gt=0)] = 30.0
    cpu_seconds: _Positive | None = 60
    memory_bytes: _Positive | None = 1 * GiB
    address_space_bytes: _Positive | None = 4 * GiB
    processes: _Positive | None = 256
    file_size_bytes: _Positive | None = 1 * GiB
    open_files: _Positive | None = 1024
    # Bytes of stdout+stderr a command may produce before it is stopped ("output" limit).
    output_bytes: _Positive = 16 * MiB
    tmp_bytes: _Positive = 256 * MiB


class Profile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named limit set, and the backend it must run on (``None``: the configured one)."""

    name: str
    limits: Limits
    backend: BackendName | None = None


DEFAULT_PROFILE: Final = "default"

PROFILES: Final[dict[str, Profile]] = {
    "default": Profile(name="default", limits=Limits()),
    "strict": Profile(
        name="strict",
        limits=Limits(
            wall_seconds=10.0,
            cpu_seconds=10,
            memory_bytes=256 * MiB,
            address_space_bytes=1 * GiB,
            processes=64,
            file_size_bytes=64 * MiB,
            open_files=256,
            output_bytes=1 * MiB,
            tmp_bytes=64 * MiB,
        ),
    ),
    "build": Profile(
        name="build",
        limits=Limits(
            wall_seconds=600.0,
            cpu_seconds=1200,
            memory_bytes=4 * GiB,
            # JIT runtimes (node, the JVM) reserve far more address space than they use.
            address_space_bytes=None,
            processes=1024,
            file_size_bytes=4 * GiB,
            open_files=4096,
            output_bytes=256 * MiB,
            tmp_bytes=1 * GiB,
        ),
    ),
    # A long-running stdio MCP server (a sandboxed upstream): no CPU-time or wall-clock
    # bound on a process meant to live for days, the rest as the default.
    "upstream": Profile(
        name="upstream",
        limits=Limits(
            wall_seconds=600.0,  # not applied to upstreams; only to commands
            cpu_seconds=None,
            address_space_bytes=None,  # node and the JVM reserve far more than they use
        ),
    ),
    # The strict limits in gVisor's user-space kernel: for untrusted code that must not
    # reach the host kernel's syscall surface at all.
    "high-security": Profile(
        name="high-security",
        backend="gvisor",
        limits=Limits(
            wall_seconds=30.0,
            cpu_seconds=10,
            memory_bytes=256 * MiB,
            address_space_bytes=None,  # gVisor's Sentry bounds memory through the cgroup
            processes=64,
            file_size_bytes=64 * MiB,
            open_files=256,
            output_bytes=1 * MiB,
            tmp_bytes=64 * MiB,
        ),
    ),
}


def resolve_limits(profile: Profile | str, wall_seconds: float | None = None) -> Limits:
    """The limits of ``profile`` (a name from ``PROFILES`` or a ``Profile``), with the
    wall-clock timeout replaced by ``wall_seconds`` when given.

    Raises:
        KeyError: an unknown profile name.
        ValueError: a non-positive ``wall_seconds``.
    """
    chosen = PROFILES[profile] if isinstance(profile, str) else profile
    if wall_seconds is None:
        return chosen.limits
    if not wall_seconds > 0:
        raise ValueError("wall_seconds must be positive")
    return msgspec.structs.replace(chosen.limits, wall_seconds=float(wall_seconds))
