"""The default backend: bubblewrap, run as an unprivileged user with seccomp.

The command gets new user, mount, pid, ipc, uts, cgroup and network namespaces; ``/usr``
and a short list of ``/etc`` entries read-only (with our own passwd, group, hosts); a fresh
``/proc`` whose ``/proc/sys`` is read-only; a minimal ``/dev``; a private size-capped
``/tmp``; and one writable directory, the workspace at ``/workspace``, where read-only
paths and (so they cannot be renamed away) their parents are mount points. The workspace
and every path bound inside it go to bwrap as descriptors opened when the plan is made
(``_pinned``), never by path, so a symlink swapped in before bwrap starts is never what it
binds. bwrap is pid 1 of the namespace and dies with its parent, so killing it ends every
process in it.
"""

from __future__ import annotations

import os
from typing import Final

from bastion.sandbox._bridge import bridge_argv
from bastion.sandbox._pinned import PinnedWorkspace
from bastion.sandbox._runtime import HOSTNAME
from bastion.sandbox.backend import EGRESS_SOCKET, SANDBOX_TMP, WORKSPACE, LaunchPlan, LaunchRequest
from bastion.sandbox.errors import SandboxUnavailable
from bastion.sandbox.launcher import (
    ARGS_FD,
    SANDBOX_GID,
    SANDBOX_UID,
    SECCOMP_FD,
    launcher_argv,
    private_args_file,
    tool,
)
from bastion.sandbox.limits import Limits
from bastion.sandbox.seccomp import filter_supported

__all__ = ["ETC_ENTRIES", "BubblewrapBackend"]

# Host /etc entries a command may read: the dynamic loader, certificates, locale and
# resolver configuration. Not the rest, which can hold credentials (pip.conf, npmrc,
# gitconfig) or describe the host.
ETC_ENTRIES: Final = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "ssl",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "mime.types",
    "protocols",
    "services",
    "python3",
    "python3.11",
    "debian_version",
    "os-release",
)
_SYSTEM_LINKS: Final = (("usr/bin", "/bin"), ("usr/sbin", "/sbin"), ("usr/lib", "/lib"))
_OPTIONAL_LINKS: Final = (("usr/lib64", "/lib64"), ("usr/lib32", "/lib32"))


class BubblewrapBackend:
    """bubblewrap (``bwrap``); ``uid``/``gid`` is the user commands run as."""

    name = "bubblewrap"
    uses_host_cgroups = True

    def __init__(self, *, uid: int = SANDBOX_UID, gid: int = SANDBOX_GID) -> None:
        self.uid = uid
        self.gid = gid

    def check(self) -> None:
        tool("bwrap")
        if not filter_supported():
            raise SandboxUnavailable("the seccomp filter is built for x86-64 only")

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        pinned = PinnedWorkspace(request.workspace)
        try:
            return self._plan(request, pinned)
        finally:
            pinned.close()  # what the plan did not take over (everything, on failure)

    def _plan(self, request: LaunchRequest, pinned: PinnedWorkspace) -> LaunchPlan:
        filesystem = self._filesystem(request, pinned)
        # The environment's values (an upstream's API token) go to bwrap by file, not argv:
        # every local user can read every process's command line (IN-5).
        setenv = []
        for name, value in request.env.items():
            setenv += ["--setenv", name, value]
        args_file = request.runtime.root / f"{request.execution_id}.args"
        private_args_file(args_file, setenv)
        argv = launcher_argv(
            request.limits,
            seccomp=request.runtime.seccomp,
            cgroup_procs=list(request.cgroup_procs),
            pids_cgroup=request.pids_cgroup,
            uid=self.uid,
            gid=self.gid,
            args_file=args_file,
        )
        argv += [tool("bwrap"), *self._namespaces(), *filesystem]
        cwd = WORKSPACE if request.cwd == "." else f"{WORKSPACE}/{request.cwd}"
        argv += ["--chdir", cwd, "--hostname", HOSTNAME, "--args", str(ARGS_FD)]
        command = list(request.argv)
        if request.egress_socket is not None:
            command = bridge_argv(command)
        argv += ["--", *command]
        enforced = ("bubblewrap", "seccomp", "rlimits", f"uid-{self.uid}")
        return LaunchPlan(
            argv=argv,
            env={},
            enforced=enforced,
            cleanup=lambda: args_file.unlink(missing_ok=True),
            pass_fds=pinned.hand_over(),
        )

    @staticmethod
    def _namespaces() -> list[str]:
        return [
            "--unshare-all",  # ipc, pid, net, uts, cgroup (and user, implied unprivileged)
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",  # no controlling terminal to inject into
            "--cap-drop",
            "ALL",
            "--seccomp",
            str(SECCOMP_FD),
        ]

    @staticmethod
    def _filesystem(request: LaunchRequest, pinned: PinnedWorkspace) -> list[str]:
        args = ["--ro-bind", "/usr", "/usr"]
        for target, link in _SYSTEM_LINKS:
            args += ["--symlink", target, link]
        for target, link in _OPTIONAL_LINKS:
            if os.path.isdir(f"/{target}"):
                args += ["--symlink", target, link]
        for entry in ETC_ENTRIES:
            if os.path.lexists(f"/etc/{entry}"):
                args += ["--ro-bind", f"/etc/{entry}", f"/etc/{entry}"]
        for generated in sorted(request.runtime.etc.iterdir()):
            args += ["--ro-bind", str(generated), f"/etc/{generated.name}"]
        args += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
        # /dev read-only (device nodes still work); shared memory gets its own capped tmpfs.
        args += ["--size", str(request.limits.tmp_bytes), "--tmpfs", "/dev/shm"]  # noqa: S108 -- inside
        args += ["--remount-ro", "/dev"]
        args += ["--size", str(request.limits.tmp_bytes), "--tmpfs", SANDBOX_TMP]
        # System and runtime paths (root's, which no sandbox can write) and the configured
        # extra_ro go by path; the workspace and every path in it by descriptor.
        args += ["--bind-fd", str(pinned.pin(request.workspace, directory=True)), WORKSPACE]
        # Each parent of a read-only path is a mount point too (bound read-write onto
        # itself): renaming or removing it fails (EBUSY), where the read-only bind would
        # move away with it and a fresh copy put in its place be writable.
        parents = {
            p for path in request.readonly for p in path.parents if request.workspace in p.parents
        }
        for path in sorted(parents, key=lambda p: len(p.parts)):
            inside = path.relative_to(request.workspace).as_posix()
            fd = pinned.pin(path, directory=True)
            args += ["--bind-fd", str(fd), f"{WORKSPACE}/{inside}"]
        for path in request.readonly:
            inside = path.relative_to(request.workspace).as_posix()
            args += ["--ro-bind-fd", str(pinned.pin(path)), f"{WORKSPACE}/{inside}"]
        for path in request.extra_ro:
            args += ["--ro-bind", str(path), str(path)]
        if request.egress_socket is not None:
            args += ["--ro-bind", str(request.egress_socket), EGRESS_SOCKET]
        args += ["--remount-ro", "/"]
        return args

    def host_cgroup_limits(self, limits: Limits) -> tuple[int | None, int | None]:
        return limits.memory_bytes, limits.processes
