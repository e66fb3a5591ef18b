"""``sandbox: none``: commands run directly on the host, with rlimits and nothing else.

Only for a configuration that says so in words; ``Sandbox`` logs a warning at every
start. The environment is still an explicit allow-list, the working directory is still
inside the workspace and the process tree is still killed by process group and cgroup,
but the command sees and can change everything its user can.

The environment is handed over as the launch chain's own (all of it runs as the command's
user, and each step execs the next unchanged), not as ``NAME=VALUE`` arguments: every
local user can read every process's command line (IN-5).
"""

from __future__ import annotations

from bastion.sandbox.backend import LaunchPlan, LaunchRequest
from bastion.sandbox.errors import SandboxError
from bastion.sandbox.launcher import launcher_argv, tool
from bastion.sandbox.limits import Limits

__all__ = ["UnsandboxedBackend"]


class UnsandboxedBackend:
    name = "none"
    uses_host_cgroups = True

    def check(self) -> None:
        tool("prlimit")

    def plan(self, request: LaunchRequest) -> LaunchPlan:
        argv = launcher_argv(
            request.limits,
            seccomp=None,
            cgroup_procs=list(request.cgroup_procs),
            pids_cgroup=request.pids_cgroup,
            drop_privileges=False,
        )
        # env(1) with -C: the working directory without a shell, then the command.
        cwd = request.workspace / request.cwd
        argv += [tool("env"), f"--chdir={cwd}"]
        if "=" in request.argv[0]:  # env(1) would take it for a variable
            raise SandboxError("a command name must not contain '='")
        argv += list(request.argv)
        return LaunchPlan(argv=argv, env=dict(request.env), enforced=("rlimits",))

    def host_cgroup_limits(self, limits: Limits) -> tuple[int | None, int | None]:
        return limits.memory_bytes, limits.processes
