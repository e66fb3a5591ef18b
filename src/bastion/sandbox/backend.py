"""The backend seam: what every sandbox backend is handed and what it gives back.

The execution engine resolves an ``ExecSpec`` into a ``LaunchRequest`` (real host paths,
final environment, limits, cgroup files, the runtime files) and a backend turns that into
a ``LaunchPlan``: the argv, environment and inherited descriptors to spawn. Backends do
little I/O (check that their tools exist, write a private arguments file, open what they
hand over by descriptor); spawning, streaming and killing are the engine's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from bastion.sandbox._runtime import RuntimeFiles
from bastion.sandbox.limits import Limits

__all__ = [
    "EGRESS_SOCKET",
    "PROXY_PORT",
    "SANDBOX_TMP",
    "WORKSPACE",
    "Backend",
    "LaunchPlan",
    "LaunchRequest",
    "base_environment",
]

WORKSPACE: Final = "/workspace"  # where the workspace appears inside every sandbox
EGRESS_SOCKET: Final = "/run/bastion/egress.sock"  # the filtering proxy, inside
PROXY_PORT: Final = 3128  # the in-sandbox bridge to it, on the sandbox's own loopback
SANDBOX_TMP: Final = "/tmp"  # noqa: S108 -- inside the sandbox: a private, size-capped tmpfs


def base_environment(*, egress: bool) -> dict[str, str]:
    """The sandbox's defaults; a spec's ``env`` is laid over them."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX_TMP,
        "TMPDIR": SANDBOX_TMP,
        "LANG": "C.UTF-8",
    }
    if egress:
        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            env[name] = proxy
        env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1"
    return env


@dataclass(frozen=True, kw_only=True)
class LaunchRequest:
    """A spec resolved against the host: every path real, every value final."""

    execution_id: str
    workspace: Path
    cwd: str  # relative to the workspace, normalised
    argv: tuple[str, ...]
    env: dict[str, str]
    limits: Limits
    runtime: RuntimeFiles
    readonly: tuple[Path, ...] = ()  # real paths inside ``workspace``
    extra_ro: tuple[Path, ...] = ()
    egress_socket: Path | None = None  # host side of EGRESS_SOCKET
    cgroup_procs: tuple[Path, ...] = ()
    pids_cgroup: bool = False  # a pids limit is in force in the command's own cgroup


@dataclass(kw_only=True)
class LaunchPlan:
    """What to spawn; ``cleanup`` (if any) runs after the process is gone.

    ``pass_fds`` are open descriptors the spawned process (and nothing else) inherits,
    under the same numbers, which ``argv`` names; ``close_fds()`` closes ours once it has
    its copies (or when it never starts).
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    enforced: tuple[str, ...] = ()
    cleanup: Callable[[], None] | None = None
    pass_fds: tuple[int, ...] = ()

    def close_fds(self) -> None:
        fds, self.pass_fds = self.pass_fds, ()  # once: the numbers are reused after
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


class Backend(Protocol):
    """A way to isolate a command. ``name`` appears in results and logs."""

    name: str
    # Whether the engine's cgroups apply (a backend with its own, like Docker, says no).
    uses_host_cgroups: bool

    def check(self) -> None:
        """Raise ``SandboxUnavailable`` (with the reason) when this backend cannot run here."""

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        """The argv and environment that run ``request`` isolated."""

    def host_cgroup_limits(self, limits: Limits) -> tuple[int | None, int | None]:
        """(memory bytes, pids) for the host cgroup around everything the backend starts."""
