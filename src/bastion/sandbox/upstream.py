"""Sandboxed upstreams: a long-running stdio MCP server started inside the sandbox.

``sandboxed_upstream`` resolves the server's argv as a command of the given profile and
yields an ``UpstreamLaunch``: the argv, (empty) environment and inherited descriptors to
hand to the stdio transport (``close_fds()`` once it has spawned), which spawns and stops
it as any child (its SIGTERM/SIGKILL of the process group takes the whole pid namespace
down). For as long as the block runs, the cgroup and, with a network allow-list, the
filtering proxy stay up; leaving it kills what is left. There is no wall-clock limit on a
server, and the ``upstream`` profile sets no CPU-time one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bastion.sandbox.limits import Profile
from bastion.sandbox.sandbox import Sandbox
from bastion.sandbox.spec import ExecSpec, NetworkPolicy

__all__ = ["UpstreamLaunch", "sandboxed_upstream"]

UPSTREAM_PROFILE = "upstream"


@dataclass(frozen=True, kw_only=True)
class UpstreamLaunch:
    """Spawn ``argv`` with exactly ``env`` (empty: the sandbox sets the command's own) and
    ``pass_fds``; then ``close_fds()`` (else they close when the block is left)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    backend: str = "bubblewrap"
    enforced: tuple[str, ...] = ()
    pass_fds: tuple[int, ...] = ()
    close_fds: Callable[[], None] = field(default=lambda: None)


@contextlib.asynccontextmanager
async def sandboxed_upstream(
    sandbox: Sandbox,
    argv: Sequence[str],
    *,
    workspace: Path,
    profile: Profile | str = UPSTREAM_PROFILE,
    network: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    readonly_paths: Sequence[str] = (),
    extra_ro_paths: Sequence[Path] = (),
) -> AsyncIterator[UpstreamLaunch]:
    """The sandboxed launch of a stdio server ``argv``; ``workspace`` is its one writable
    directory (its state), ``network`` the domains it may reach (none by default).

    Raises:
        SandboxError: the spec cannot be run as asked.
        SandboxUnavailable: the backend cannot run here.
    """
    spec = ExecSpec(
        workspace=workspace,
        argv=tuple(argv),
        env=dict(env or {}),
        profile=profile,
        network=NetworkPolicy(allow=tuple(network)),
        readonly_paths=tuple(readonly_paths),
        extra_ro_paths=tuple(extra_ro_paths),
    )
    async with sandbox.planned(spec) as launch:
        yield UpstreamLaunch(
            argv=launch.plan.argv,
            env=launch.plan.env,
            backend=launch.backend,
            enforced=launch.enforced,
            pass_fds=launch.plan.pass_fds,
            close_fds=launch.plan.close_fds,
        )
