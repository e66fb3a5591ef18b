"""The Docker backend, for hosts with a Docker engine (none on our own machines).

``check`` asks the engine (``docker info``) and refuses when none answers. ``plan`` builds
one ``docker run``: no network, read-only root, all capabilities dropped, no new
privileges, the sandbox uid, memory/pids/ulimits from the profile, a size-capped ``/tmp``
tmpfs and the workspace as the only writable bind. The engine's own cgroups apply; the
container is removed (``docker rm -f``) after the command, also when it was killed.

The command's environment (an upstream's API token among it) is in no argv: every local
user can read every process's command line (IN-5). It goes by ``--env-file``, a per-command
file only Bastion's user can read (0600, in the sandbox's runtime directory, which only
Bastion can write), removed once the command is gone. Not ``--env NAME`` with the value in the
docker CLI's own environment: that environment steers the CLI itself, and the variables
would then choose which engine gets the values (``HOME=/tmp``, always set for the command,
makes the CLI read its config and current context from ``/tmp/.docker``, which any local
user can create; ``DOCKER_HOST``, proxies and others act likewise). So the CLI's
environment stays empty, as it always was. The env file has one ``NAME=value`` line per
variable, read by docker verbatim (no quoting, no escapes): a value with a line break or
NUL, a name with whitespace or starting with ``#``, or a line over docker's line limit is
refused, never altered.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Final

from bastion.sandbox.backend import SANDBOX_TMP, WORKSPACE, LaunchPlan, LaunchRequest
from bastion.sandbox.errors import SandboxError, SandboxUnavailable
from bastion.sandbox.launcher import SANDBOX_GID, SANDBOX_UID, tool
from bastion.sandbox.limits import Limits

__all__ = ["DEFAULT_IMAGE", "ENV_FILE_LINE_MAX", "DockerBackend"]

DEFAULT_IMAGE: Final = "debian:bookworm-slim"
INFO_TIMEOUT: Final = 5.0  # seconds for `docker info`: a live local engine answers in ms
REMOVE_TIMEOUT: Final = 30.0
# docker reads an env file with Go's bufio.Scanner: 64 KiB a line, its newline included.
ENV_FILE_LINE_MAX: Final = 64 * 1024 - 1


def _env_file(path: Path, env: dict[str, str]) -> None:
    """Write ``env`` to a new file only its owner (we) can read, as docker's env file.

    Raises:
        SandboxError: a variable docker would read back differently (or not at all).
    """
    lines = ["# bastion: this command's environment\n"]  # line 1, where docker drops a BOM
    for name, value in env.items():
        if not name or name.startswith("#") or any(c.isspace() or c in "=\0" for c in name):
            raise SandboxError(f"environment variable {name!r} cannot go to docker")
        if any(c in value for c in "\n\r\0"):
            raise SandboxError(f"environment variable {name!r} holds a line break or NUL")
        line = f"{name}={value}"
        try:
            size = len(line.encode())
        except UnicodeEncodeError:
            raise SandboxError(f"environment variable {name!r} is not UTF-8") from None
        if size > ENV_FILE_LINE_MAX:
            raise SandboxError(f"environment variable {name!r} is too long for docker")
        lines.append(f"{line}\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write("".join(lines))


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
        env_file = request.runtime.root / f"{request.execution_id}.env"
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
        argv += ["--env-file", str(env_file), self.image, *request.argv]
        _env_file(env_file, request.env)  # last: nothing below can fail and leave it behind

        def remove() -> None:
            try:
                subprocess.run(
                    [docker, "rm", "-f", container],
                    capture_output=True,
                    timeout=REMOVE_TIMEOUT,
                    check=False,
                )
            finally:
                env_file.unlink(missing_ok=True)

        return LaunchPlan(argv=argv, env={}, enforced=("docker", "docker-cgroups"), cleanup=remove)

    def host_cgroup_limits(self, limits: Limits) -> tuple[int | None, int | None]:
        return limits.memory_bytes, limits.processes
