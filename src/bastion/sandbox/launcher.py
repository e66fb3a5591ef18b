"""The host-side launch chain in front of every sandbox: join cgroups, drop to the
sandbox user, set rlimits, then exec the backend.

    sh -c SCRIPT sh SECCOMP ARGS CGROUP_PROCS... -- setpriv ... -- prlimit ... -- BACKEND ...

``sh`` runs as the caller (root, usually), writes its own pid into each cgroup (so every
later process is inside before anything else runs), opens the seccomp program as fd 3 and
the backend's private arguments file (if any; bwrap's ``--args``, which holds what must
not be in any argv, readable by every local user: the environment's values) as fd 4, and
execs on, leaving the other descriptors it was given (bwrap's bind sources, numbered from
``FIRST_PASSED_FD``) as they are; ``setpriv`` drops to the sandbox uid/gid with no groups,
no capabilities and no new privileges (launched by root, bwrap would leave the command
kernel uid 0); ``prlimit`` sets the rlimits, inherited by everything below. Every step
execs, so the pid we spawned is the backend's own and the environment stays exactly what
we passed: empty.
"""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path
from typing import Final

from bastion.sandbox.errors import SandboxError, SandboxUnavailable
from bastion.sandbox.limits import Limits

__all__ = [
    "ARGS_FD",
    "FIRST_PASSED_FD",
    "LAUNCH_FAILED",
    "SANDBOX_GID",
    "SANDBOX_UID",
    "launcher_argv",
    "private_args_file",
    "tool",
]

SANDBOX_UID: Final = 65534
SANDBOX_GID: Final = 65534
# The launcher's own exit status when it cannot join a cgroup (nothing was run).
LAUNCH_FAILED: Final = 125
SECCOMP_FD: Final = 3
ARGS_FD: Final = 4
# Descriptors handed through the chain to the backend are numbered from here: below are
# stdio, SECCOMP_FD and ARGS_FD, which the shell's redirections replace (and a margin).
FIRST_PASSED_FD: Final = 10

_SCRIPT: Final = (
    'unset PWD OLDPWD; s=$1; a=$2; shift 2; while [ "$#" -gt 0 ] && [ "$1" != -- ]; do '
    'echo $$ > "$1" || { echo "bastion-sandbox: cannot join cgroup $1" >&2; exit 125; }; '
    'shift; done; shift; [ -z "$a" ] || exec "$@" 3< "$s" 4< "$a"; exec "$@" 3< "$s"'
)


def tool(name: str) -> str:
    """The absolute path of a host tool (the launcher runs with an empty environment).

    Raises:
        SandboxUnavailable: the tool is not installed.
    """
    found = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise SandboxUnavailable(f"{name} is not installed (run scripts/bootstrap)")
    return found


def private_args_file(path: Path, args: list[str]) -> Path:
    """Write ``args`` NUL-separated to a new file only its owner (we) can read.

    Raises:
        SandboxError: an argument holds a NUL byte (it would split into two).
    """
    if any("\0" in arg for arg in args):
        raise SandboxError("an argument holds a NUL byte")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(b"".join(os.fsencode(arg) + b"\0" for arg in args))
    return path


def _rlimits(limits: Limits, *, pids_cgroup: bool) -> list[str]:
    def value(n: int | None) -> str:
        return "unlimited" if n is None else str(n)

    cpu = (
        "unlimited"
        if limits.cpu_seconds is None
        else f"{limits.cpu_seconds}:{limits.cpu_seconds + 1}"
    )
    options = [
        f"--cpu={cpu}",  # SIGXCPU at the soft limit, SIGKILL a second later
        f"--as={value(limits.address_space_bytes)}",
        f"--fsize={value(limits.file_size_bytes)}",
        f"--nofile={value(limits.open_files)}",
        "--core=0",
    ]
    # RLIMIT_NPROC counts every process of the (shared) sandbox uid on the host: with a
    # pids cgroup, as high as we may set it (the hard limit; root may lack CAP_SYS_RESOURCE).
    nproc = limits.processes
    if pids_cgroup:
        hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nproc = None if hard == resource.RLIM_INFINITY else hard
    return [*options, f"--nproc={value(nproc)}"]


def launcher_argv(
    limits: Limits,
    *,
    seccomp: Path | None,
    cgroup_procs: list[Path],
    uid: int = SANDBOX_UID,
    gid: int = SANDBOX_GID,
    drop_privileges: bool | None = None,
    rlimits: bool = True,
    args_file: Path | None = None,
    pids_cgroup: bool = False,
) -> list[str]:
    """The prefix that runs a backend command under ``limits`` as ``uid``/``gid``.

    ``drop_privileges`` defaults to "we are root"; a non-root caller already is an
    unprivileged user and cannot change uid. ``rlimits=False`` is for a backend that
    applies them inside its own kernel (gVisor), where they must not bound the runtime.
    ``args_file`` (from ``private_args_file``) is opened as ``ARGS_FD`` for the backend.
    ``pids_cgroup``: the command's own pids cgroup bounds its processes, so RLIMIT_NPROC
    is lifted to our own hard limit; as the fallback it counts every sandbox's processes
    together (they all run as one uid), and one command at its limit stops all the
    others from starting.
    """
    if drop_privileges is None:
        drop_privileges = os.geteuid() == 0
    argv = [tool("sh"), "-c", _SCRIPT, "sh", str(seccomp or os.devnull), str(args_file or "")]
    argv += [str(p) for p in cgroup_procs] + ["--"]
    if drop_privileges:
        if uid == 0 or gid == 0:
            raise SandboxUnavailable("the sandbox user must not be root")
        argv += [
            tool("setpriv"),
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
    if rlimits:
        argv += [tool("prlimit"), *_rlimits(limits, pids_cgroup=pids_cgroup), "--"]
    return argv
