"""The gVisor tier: the command runs on runsc's user-space kernel, from a hand-written OCI
bundle (no container engine).

The bundle's root is an empty read-only directory with the same view as bubblewrap's:
``/usr`` and chosen ``/etc`` entries read-only, our passwd/group/hosts, a private size-capped
``/tmp``, the workspace at ``/workspace``. The process runs as the sandbox uid with no
capabilities, no new privileges and the profile's rlimits (set in the bundle, so they bound
the command, not the Sentry); no network. runsc itself needs root. After the command, the
container is force-deleted and the bundle removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from bastion._types import JSONValue
from bastion.sandbox.backend import SANDBOX_TMP, WORKSPACE, LaunchPlan, LaunchRequest
from bastion.sandbox.bubblewrap import ETC_ENTRIES
from bastion.sandbox.errors import SandboxError, SandboxUnavailable
from bastion.sandbox.launcher import SANDBOX_GID, SANDBOX_UID, launcher_argv, tool
from bastion.sandbox.limits import Limits

__all__ = ["GVisorBackend", "oci_config"]

DELETE_TIMEOUT: Final = 30.0
SENTRY_MEMORY: Final = 64 * 1024 * 1024  # the Sentry and gofer themselves (measured: ~40 MiB)
SENTRY_THREADS: Final = 512  # host threads of the Sentry and gofer (Go runtimes)
_LINKS: Final = (
    ("usr/bin", "bin"),
    ("usr/sbin", "sbin"),
    ("usr/lib", "lib"),
    ("usr/lib64", "lib64"),
)


def _bind(source: str | Path, destination: str, *, readonly: bool = True) -> JSONValue:
    options: list[JSONValue] = ["rbind", "nosuid", "nodev", "ro" if readonly else "rw"]
    return {"destination": destination, "type": "bind", "source": str(source), "options": options}


def oci_config(request: LaunchRequest, *, uid: int, gid: int) -> dict[str, JSONValue]:
    """The OCI runtime ``config.json`` for ``request`` (rootfs: ``rootfs`` beside it)."""
    limits = request.limits
    cwd = WORKSPACE if request.cwd == "." else f"{WORKSPACE}/{request.cwd}"
    mounts: list[JSONValue] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": SANDBOX_TMP,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", f"size={limits.tmp_bytes}"],
        },
        _bind("/usr", "/usr"),
    ]
    mounts += [_bind(f"/etc/{e}", f"/etc/{e}") for e in ETC_ENTRIES if os.path.lexists(f"/etc/{e}")]
    mounts += [_bind(p, f"/etc/{p.name}") for p in sorted(request.runtime.etc.iterdir())]
    mounts.append(_bind(request.workspace, WORKSPACE, readonly=False))
    for path in request.readonly:
        mounts.append(_bind(path, f"{WORKSPACE}/{path.relative_to(request.workspace).as_posix()}"))
    mounts += [_bind(path, str(path)) for path in request.extra_ro]
    rlimits: list[JSONValue] = [{"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]
    pairs = (
        ("RLIMIT_CPU", limits.cpu_seconds),
        ("RLIMIT_FSIZE", limits.file_size_bytes),
        ("RLIMIT_NOFILE", limits.open_files),
        ("RLIMIT_AS", limits.address_space_bytes),
    )
    rlimits += [{"type": kind, "hard": value, "soft": value} for kind, value in pairs if value]
    resources: dict[str, JSONValue] = {}
    if limits.memory_bytes is not None:
        resources["memory"] = {"limit": limits.memory_bytes}
    if limits.processes is not None:
        resources["pids"] = {"limit": limits.processes}
    return {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sandbox",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid, "additionalGids": []},
            "args": list(request.argv),
            "env": [f"{k}={v}" for k, v in request.env.items()],
            "cwd": cwd,
            "capabilities": {
                "bounding": [],
                "effective": [],
                "inheritable": [],
                "permitted": [],
                "ambient": [],
            },
            "noNewPrivileges": True,
            "rlimits": rlimits,
        },
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "resources": resources,
        },
    }


class GVisorBackend:
    name = "gvisor"
    uses_host_cgroups = True  # runsc and its sandbox processes start inside our cgroup

    def __init__(self, *, uid: int = SANDBOX_UID, gid: int = SANDBOX_GID) -> None:
        self.uid, self.gid = uid, gid

    def check(self) -> None:
        tool("runsc")
        if os.geteuid() != 0:
            raise SandboxUnavailable("runsc needs root to create its sandbox")

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        if request.egress_socket is not None:
            raise SandboxError("the gVisor tier has no egress allow-list yet; network stays off")
        runsc = tool("runsc")
        bundle = Path(tempfile.mkdtemp(prefix="bastion-gvisor-"))
        state = bundle / "state"
        rootfs = bundle / "rootfs"
        for directory in (
            state,
            rootfs,
            rootfs / "etc",
            rootfs / "tmp",
            rootfs / "proc",
            rootfs / "dev",
            rootfs / WORKSPACE.lstrip("/"),
        ):
            directory.mkdir(parents=True, exist_ok=True)
        for target, link in _LINKS:
            (rootfs / link).symlink_to(target)
        config = oci_config(request, uid=self.uid, gid=self.gid)
        (bundle / "config.json").write_text(json.dumps(config))
        container = f"bastion-{request.execution_id}"
        argv = launcher_argv(
            request.limits,
            seccomp=None,
            cgroup_procs=list(request.cgroup_procs),
            drop_privileges=False,
            rlimits=False,
        )
        argv += [
            runsc,
            "--root",
            str(state),
            "--network",
            "none",
            "--ignore-cgroups",
            "run",
            "--bundle",
            str(bundle),
            container,
        ]

        def cleanup() -> None:
            subprocess.run(
                [runsc, "--root", str(state), "delete", "--force", container],
                capture_output=True,
                timeout=DELETE_TIMEOUT,
                check=False,
            )
            shutil.rmtree(bundle, ignore_errors=True)

        return LaunchPlan(argv=argv, env={}, enforced=("gvisor", "rlimits"), cleanup=cleanup)

    def host_cgroup_limits(self, limits: Limits) -> tuple[int | None, int | None]:
        # The cgroup holds runsc's Sentry and gofer, not the command's tasks (those are
        # goroutines of the Sentry): memory bounds everything, plus the runtime's own share;
        # pids counts the runtime's host threads, whatever the command forks.
        memory = None if limits.memory_bytes is None else limits.memory_bytes + SENTRY_MEMORY
        return memory, SENTRY_THREADS
