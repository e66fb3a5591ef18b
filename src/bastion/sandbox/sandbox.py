"""The sandbox facade: choose a backend from configuration, then start commands in it.

``Sandbox("bubblewrap")`` (the default) refuses to run anything when bubblewrap is
missing; it never falls back to running unsandboxed. ``Sandbox("none")`` exists only for a
configuration that says ``sandbox: none`` in words, and warns at every start. A profile
may name a backend of its own (``high-security`` runs in gVisor). ``start`` is an async
context manager giving an ``Execution``; leaving it kills whatever still runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio
import anyio.abc

from bastion.sandbox._runtime import RuntimeFiles
from bastion.sandbox.backend import Backend, LaunchPlan, LaunchRequest, base_environment
from bastion.sandbox.bubblewrap import BubblewrapBackend
from bastion.sandbox.cgroups import CgroupSupport, CommandCgroup, detect_cgroups
from bastion.sandbox.docker import DockerBackend
from bastion.sandbox.egress import EgressProxy, Resolver
from bastion.sandbox.errors import SandboxError
from bastion.sandbox.execution import Execution
from bastion.sandbox.gvisor import GVisorBackend
from bastion.sandbox.launcher import SANDBOX_GID, SANDBOX_UID
from bastion.sandbox.limits import PROFILES, BackendName, Limits, Profile, resolve_limits
from bastion.sandbox.quota import is_quota_workspace
from bastion.sandbox.spec import ExecResult, ExecSpec, OutputChunk, inside_path
from bastion.sandbox.unsandboxed import UnsandboxedBackend

__all__ = ["BACKEND_NAMES", "PlannedLaunch", "Sandbox"]

logger = logging.getLogger(__name__)

BACKEND_NAMES: Final[tuple[BackendName, ...]] = ("bubblewrap", "gvisor", "docker", "none")
# Host directories that can never be a workspace (the sandbox would get them writable).
_FORBIDDEN_WORKSPACES: Final = frozenset(
    [
        "/",
        "/usr",
        "/etc",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/boot",
        "/dev",
        "/proc",
        "/sys",
        "/root",
        "/run",
        "/var",
        "/home",
        "/tmp",  # noqa: S108 -- refused as a workspace, not used
    ]
)


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedLaunch:
    """A command ready to spawn: the backend's plan, and what was set up around it."""

    execution_id: str
    backend: str
    request: LaunchRequest
    plan: LaunchPlan
    cgroup: CommandCgroup | None
    enforced: tuple[str, ...]  # the isolation measures in force, for results and logs


class Sandbox:
    """Commands run isolated by ``backend``; use as a context manager (it owns a few
    runtime files and the cgroup detection)."""

    def __init__(
        self,
        backend: BackendName = "bubblewrap",
        *,
        profiles: dict[str, Profile] | None = None,
        uid: int = SANDBOX_UID,
        gid: int = SANDBOX_GID,
        cgroups: CgroupSupport | None = None,
        egress_resolver: Resolver | None = None,
        egress_allow_private: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if backend not in BACKEND_NAMES:
            raise SandboxError(f"unknown sandbox backend {backend!r}")
        self.default_backend: BackendName = backend
        self.profiles = dict(PROFILES if profiles is None else profiles)
        self.uid, self.gid = uid, gid
        self._cgroups = cgroups
        self._resolver = egress_resolver
        self._allow_private = egress_allow_private
        self._clock = clock
        self._backends: dict[str, Backend] = {}
        self._runtime: RuntimeFiles | None = None
        self.backend(backend)  # fail now, not at the first command, when it is missing
        if backend == "none":
            logger.warning("sandbox: none: commands run UNSANDBOXED on the host (configured)")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    @property
    def cgroups(self) -> CgroupSupport:
        if self._cgroups is None:
            self._cgroups = detect_cgroups()
            logger.info("sandbox: limits in force: rlimits, %s", self._cgroups.describe)
            if self._cgroups.memory is None and self._cgroups.v2 is None:
                logger.warning(
                    "sandbox: no memory cgroup here: memory is bounded per process only"
                    " (RLIMIT_AS), not for a command's whole process tree"
                )
        return self._cgroups

    @property
    def runtime(self) -> RuntimeFiles:
        if self._runtime is None:
            self._runtime = RuntimeFiles(self.uid, self.gid)
        return self._runtime

    def backend(self, name: BackendName) -> Backend:
        """The backend called ``name``, checked once.

        Raises:
            SandboxUnavailable: it cannot run on this machine.
        """
        if name not in self._backends:
            backend: Backend
            if name == "bubblewrap":
                backend = BubblewrapBackend(uid=self.uid, gid=self.gid)
            elif name == "gvisor":
                backend = GVisorBackend(uid=self.uid, gid=self.gid)
            elif name == "docker":
                backend = DockerBackend(uid=self.uid, gid=self.gid)
            else:
                backend = UnsandboxedBackend()
            backend.check()
            self._backends[name] = backend
        return self._backends[name]

    def profile(self, spec: ExecSpec) -> Profile:
        if isinstance(spec.profile, Profile):
            return spec.profile
        try:
            return self.profiles[spec.profile]
        except KeyError:
            raise SandboxError(f"unknown sandbox profile {spec.profile!r}") from None

    def prepare(
        self, spec: ExecSpec, execution_id: str
    ) -> tuple[Backend, LaunchRequest, CommandCgroup | None]:
        """Resolve ``spec`` against the host and create its cgroup (the caller removes it).

        Raises:
            SandboxError: the workspace, cwd or a path is unusable.
            SandboxUnavailable: the backend cannot run here.
        """
        profile = self.profile(spec)
        limits = resolve_limits(profile, spec.timeout)
        backend = self.backend(profile.backend or self.default_backend)
        if backend.name == "none":
            logger.warning("sandbox: none: %s runs UNSANDBOXED on the host", spec.argv[0][:200])
        workspace = _real_workspace(spec.workspace)
        if backend.name == "bubblewrap" and os.geteuid() == 0:
            _check_reachable(workspace, self.uid, self.gid)
        cwd = _real_inside(workspace, spec.cwd)
        if not (workspace / cwd).is_dir():
            raise SandboxError(f"cwd is not a directory in the workspace: {spec.cwd!r}")
        readonly = []
        for relative in spec.readonly_paths:
            inside = _real_inside(workspace, relative)
            if (workspace / inside).exists():
                readonly.append(workspace / inside)
        for path in spec.extra_ro_paths:
            if not path.is_absolute() or not path.exists():
                raise SandboxError(f"extra read-only path must exist and be absolute: {path}")
        env = base_environment(egress=spec.network.enabled)
        env.update(spec.env)
        egress = None
        if spec.network.enabled:
            egress = self.runtime.sockets / f"{execution_id}.sock"
        cgroup = None
        if backend.uses_host_cgroups:
            cgroup = CommandCgroup(self.cgroups, execution_id)
            cgroup.create(*backend.host_cgroup_limits(limits))
        request = LaunchRequest(
            execution_id=execution_id,
            workspace=workspace,
            cwd=cwd,
            argv=tuple(spec.argv),
            env=env,
            limits=limits,
            runtime=self.runtime,
            readonly=tuple(readonly),
            extra_ro=tuple(spec.extra_ro_paths),
            egress_socket=egress,
            cgroup_procs=tuple(cgroup.procs_files) if cgroup else (),
            pids_cgroup=cgroup is not None and cgroup.bounds_processes,
        )
        return backend, request, cgroup

    def proxy(self, spec: ExecSpec) -> EgressProxy:
        return EgressProxy(
            spec.network.allow, resolve=self._resolver, allow_private=self._allow_private
        )

    @contextlib.asynccontextmanager
    async def planned(self, spec: ExecSpec) -> AsyncIterator[PlannedLaunch]:
        """Prepare ``spec``, start its egress proxy (if any) and plan the backend's command;
        leaving the block stops the proxy, closes the plan's descriptors (if still open) and
        removes the cgroup and runtime files.

        Raises:
            SandboxError: the spec cannot be run as asked.
            SandboxUnavailable: the backend cannot run here.
        """
        execution_id = secrets.token_hex(8)
        backend, request, cgroup = self.prepare(spec, execution_id)
        plan = None
        try:
            async with anyio.create_task_group() as tg:
                if request.egress_socket is not None:
                    await tg.start(self.proxy(spec).run, request.egress_socket)
                plan = backend.plan(request)
                enforced = plan.enforced + (tuple(cgroup.enforced) if cgroup else ())
                try:
                    yield PlannedLaunch(
                        execution_id=execution_id,
                        backend=backend.name,
                        request=request,
                        plan=plan,
                        cgroup=cgroup,
                        enforced=enforced,
                    )
                finally:
                    tg.cancel_scope.cancel()
        finally:
            if plan is not None:
                plan.close_fds()
            if cgroup is not None:
                cgroup.remove()
            if request.egress_socket is not None:
                request.egress_socket.unlink(missing_ok=True)
            if plan is not None and plan.cleanup is not None:
                plan.cleanup()

    @contextlib.asynccontextmanager
    async def start(self, spec: ExecSpec) -> AsyncIterator[Execution]:
        """Start ``spec``; leaving the block kills the tree if it still runs.

        Raises:
            SandboxError: the spec cannot be run as asked.
            SandboxUnavailable: the backend cannot run here.
        """
        async with self.planned(spec) as launch, anyio.create_task_group() as tg:
            plan, request = launch.plan, launch.request
            try:
                process = await anyio.open_process(
                    plan.argv,
                    env=plan.env,
                    cwd="/",
                    stdin=None,
                    start_new_session=True,
                    pass_fds=plan.pass_fds,
                )
            finally:
                plan.close_fds()  # the process has its own copies
            if process.stdin is not None:
                await process.stdin.aclose()  # commands read no input
            logger.info(
                "sandbox %s: %s started (%s)",
                launch.execution_id,
                launch.backend,
                ", ".join(launch.enforced),
            )
            execution = Execution(
                execution_id=launch.execution_id,
                process=process,
                limits=request.limits,
                capture_bytes=spec.capture_bytes,
                cgroup=launch.cgroup,
                backend=launch.backend,
                enforced=launch.enforced,
                quota_root=request.workspace if is_quota_workspace(request.workspace) else None,
                clock=self._clock,
            )
            tg.start_soon(execution.run)
            try:
                yield execution
            finally:
                if execution.running:
                    execution.cancel()
                with anyio.CancelScope(shield=True):
                    await execution.wait()
                tg.cancel_scope.cancel()

    async def run(
        self, spec: ExecSpec, on_output: Callable[[OutputChunk], object] | None = None
    ) -> ExecResult:
        """Run ``spec`` to the end; ``on_output`` (if given) sees each chunk as it comes."""
        async with self.start(spec) as execution:
            if on_output is not None:
                async for chunk in execution.chunks():
                    on_output(chunk)
            return await execution.wait()

    def limits_for(self, profile: str, timeout: float | None = None) -> Limits:
        return resolve_limits(self.profiles[profile], timeout)


def _real_workspace(path: Path) -> Path:
    try:
        real = path.resolve(strict=True)
    except OSError as exc:
        raise SandboxError(f"workspace does not exist: {path}") from exc
    if not real.is_dir():
        raise SandboxError(f"workspace is not a directory: {path}")
    if str(real) in _FORBIDDEN_WORKSPACES:
        raise SandboxError(f"{real} cannot be a workspace")
    return real


def _real_inside(workspace: Path, relative: str) -> str:
    """``relative`` with symlinks resolved, still below ``workspace`` (as a relative path)."""
    normal = inside_path(relative)
    real = (workspace / normal).resolve()
    try:
        inside = real.relative_to(workspace)
    except ValueError:
        raise SandboxError(f"path leaves the workspace: {relative!r}") from None
    return inside.as_posix() or "."


def _check_reachable(path: Path, uid: int, gid: int) -> None:
    """bwrap mounts the workspace as the sandbox user, who must be able to reach it."""
    for directory in (path, *path.parents):
        info = directory.stat()
        if info.st_uid == uid:
            bit = stat.S_IXUSR
        elif info.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            raise SandboxError(
                f"the sandbox user (uid {uid}) cannot reach {path}: {directory} is not searchable"
            )
