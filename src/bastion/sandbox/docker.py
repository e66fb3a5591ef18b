"""The Docker backend, for hosts with a Docker engine (none on our own machines).

``check`` asks the engine (``docker info``) and refuses when none answers. ``plan`` builds
one ``docker run``: no network, read-only root, all capabilities dropped, no new
privileges, the sandbox uid, memory/pids/ulimits from the profile, a size-capped ``/tmp``
tmpfs and the workspace as the only writable bind. The engine's own cgroups apply; the
container is removed (``docker rm -f``) after the command, also when it was killed.
"""

from __future__ import annotations

import subprocess
from typing import Final

from bastion.sandbox.backend import SANDBOX_TMP, WORKSPACE, LaunchPlan, LaunchRequest
from bastion.sandbox.errors import SandboxError, SandboxUnavailable
from bastion.sandbox.launcher import SANDBOX_GID, SANDBOX_UID, tool
from bastion.sandbox.limits import Limits

__all__ = ["DEFAULT_IMAGE", "DockerBackend"]

DEFAULT_IMAGE: Final = "debian:bookworm-slim"
INFO_TIMEOUT: Final = 5.0  # seconds for `docker info`: a live local engine answers in ms
REMOVE_TIMEOUT: Final = 30.0


class DockerBackend:
    name = "docker"
    uses_host_cgroups = False  # the engine puts the container in cgroups of its own

    def __init__(
        self, *, uid: int = SANDBOX_UID, gid: int = SANDBOX_GID, image: str = DEFAULT_IMAGE
    ) -> None:
        self.uid, self.gid, self.image = uid, gid, image

    def check(self) -> None:
        docker = tool("docker")
        try:
            done = subprocess.run(
                [docker, "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=INFO_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxUnavailable("no Docker engine answered `docker info`") from exc
        if done.returncode != 0 or not done.stdout.strip():
            reason = (done.stderr.strip().splitlines() or ["no answer"])[-1][:300]
            raise SandboxUnavailable(f"no Docker engine: {reason}")

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        if request.egress_socket is not None:
            raise SandboxError("the Docker backend has no egress allow-list; use bubblewrap")
        limits = request.limits
        docker = tool("docker")
        container = f"bastion-{request.execution_id}"
        cwd = WORKSPACE if request.cwd == "." else f"{WORKSPACE}/{request.cwd}"
        argv = [
            docker,
            "run",
            "--rm",
            "--init",
            "--name",
            container,
            "--network",
            "none",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--ipc",
            "private",
            "--user",
            f"{self.uid}:{self.gid}",
            "--tmpfs",
            f"{SANDBOX_TMP}:rw,nosuid,nodev,size={limits.tmp_bytes}",
            "--mount",
            f"type=bind,source={request.workspace},target={WORKSPACE}",
            "--workdir",
            cwd,
        ]
        for path in request.readonly:
            inside = path.relative_to(request.workspace).as_posix()
            argv += ["--mount", f"type=bind,source={path},target={WORKSPACE}/{inside},readonly"]
        for path in request.extra_ro:
            argv += ["--mount", f"type=bind,source={path},target={path},readonly"]
        if limits.memory_bytes is not None:
            argv += [
                "--memory",
                str(limits.memory_bytes),
                "--memory-swap",
                str(limits.memory_bytes),
            ]
        if limits.processes is not None:
            argv += ["--pids-limit", str(limits.processes)]
        ulimits: dict[str, int | None] = {
            "cpu": limits.cpu_seconds,
            "fsize": limits.file_size_bytes,
            "nofile": limits.open_files,
            "core": 0,
        }
        for key, value in ulimits.items():
            if value is not None:
                argv += ["--ulimit", f"{key}={value}:{value}"]
        for name, text in request.env.items():
            argv += ["--env", f"{name}={text}"]
        argv += [self.image, *request.argv]

        def remove() -> None:
            subprocess.run(
                [docker, "rm", "-f", container],
                capture_output=True,
                timeout=REMOVE_TIMEOUT,
                check=False,
            )

        return LaunchPlan(argv=argv, env={}, enforced=("docker", "docker-cgroups"), cleanup=remove)

    def host_cgroup_limits(self, limits: Limits) -> tuple[int | None, int | None]:
        return limits.memory_bytes, limits.processes
