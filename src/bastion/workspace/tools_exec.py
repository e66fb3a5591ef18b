"""Running commands in a workspace: ``run_command``, ``list_executions``,
``cancel_execution`` and ``get_policy``.

A command is an argv (never a shell string), checked against the command policy (the
caller's role, deny rules first), rate-limited per agent, holding one of the run slots
(per workspace, per principal and on the server: ``Runner.slot``), and run in the sandbox
with the workspace as its one writable directory and the role's read-only paths bound
read-only. While it runs, its output goes to the caller as
``notifications/message`` log lines and ``notifications/progress`` (both bounded in rate
and size); at the end the result carries the exit code, the captured output and the limit
that ended it. ``cancel_execution`` or the MCP cancel of the request kills the whole tree:
leaving ``Sandbox.start`` SIGKILLs the sandbox's pid namespace and its cgroup. When the
gateway passes the caller's principal, ``list_executions`` and ``cancel_execution`` see only
that principal's runs (another's id is answered like an unknown one). The table of runs is
``runs``; what the caller sees of the output, ``run_output``.
"""

from __future__ import annotations

import os
from typing import Annotated, Final

import anyio
from msgspec import Meta

from bastion.sandbox import ExecResult, ExecSpec, Execution, Sandbox, SandboxError
from bastion.workspace.collab import Agent, Member, iso
from bastion.workspace.errors import InvalidInput, Refused, WorkspaceError
from bastion.workspace.invocation import Invocation
from bastion.workspace.paths import parse_path
from bastion.workspace.policy import describe_policy
from bastion.workspace.resources import meta_uri
from bastion.workspace.run_output import CAPTURE_BYTES, RUN_OUTPUT, reply, stream_output
from bastion.workspace.runs import Run, Runner
from bastion.workspace.store import Workspace
from bastion.workspace.toolkit import (
    STRING,
    Args,
    Reply,
    Token,
    ToolSpec,
    WorkspaceName,
    object_schema,
)
from bastion.workspace.toolkit import tool_spec as declare

__all__ = ["SPECS", "Runner", "SandboxFailed"]


class SandboxFailed(WorkspaceError):
    kind = "sandbox"


class RunArgs(Args, frozen=True):
    workspace: WorkspaceName
    argv: Annotated[
        list[Annotated[str, Meta(max_length=65536)]], Meta(min_length=1, max_length=1024)
    ]
    cwd: Annotated[str, Meta(max_length=4096)] = "."
    timeout: Annotated[float, Meta(gt=0)] | None = None
    profile: Annotated[str, Meta(max_length=64)] | None = None
    member_token: Token | None = None


def _member_name(agent: Agent, member: Member | None) -> str | None:
    return agent.name if member is not None else None


def hand_over(ws_fd: int, uid: int, gid: int) -> None:
    """Give what the server wrote (owned by us) to the sandbox user, so commands can
    change it. Walks by descriptor and never follows a symlink."""
    me = os.geteuid()
    if os.fstat(ws_fd).st_uid == me:
        os.fchown(ws_fd, uid, gid)
    for _, dirs, files, dir_fd in os.fwalk(".", dir_fd=ws_fd, follow_symlinks=False):
        for name in (*dirs, *files):
            try:
                if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_uid == me:
                    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # a command removed it meanwhile


async def run_command(inv: Invocation, a: RunArgs) -> Reply:
    runner = inv.server.runner
    ws = inv.workspace(a.workspace)
    member = inv.find_member(ws, a.member_token)
    agent = inv.agent(ws, a.member_token)
    name = _member_name(agent, member)
    policy = runner.policy
    argv = tuple(a.argv)
    if any("\0" in arg for arg in argv):
        raise InvalidInput("argv must not contain NUL bytes")
    decision = policy.decide(ws.name, name, argv)
    if not decision.allowed:
        raise Refused(f"command not allowed: {decision.reason}")
    profile = policy.profile_for(ws.name, name, a.profile)
    if runner.sandbox is None:
        raise SandboxFailed("this workspace server has no sandbox configured")
    limits = runner.sandbox.limits_for(profile)
    if a.timeout is not None and a.timeout > limits.wall_seconds:
        raise InvalidInput(
            f"timeout {a.timeout:g} s is above the {limits.wall_seconds:g} s of profile {profile}"
        )
    sandbox = runner.sandbox
    spec = ExecSpec(
        workspace=inv.server.root.path / ws.name,
        argv=argv,
        cwd=parse_path(a.cwd, allow_root=True).display,
        profile=profile,
        timeout=a.timeout,
        readonly_paths=tuple(p.text for p in policy.readonly_paths(ws.name, name)),
        # Python checks cached bytecode by mtime in whole seconds and size: an agent that
        # runs, edits (same size) and runs again within a second would test stale code.
        env={"PYTHONDONTWRITEBYTECODE": "1"},
        capture_bytes=CAPTURE_BYTES,
    )
    with runner.slot(ws.name, agent.principal):
        runner.rate.take(agent.owner)
        if sandbox.default_backend != "none" and os.geteuid() == 0:
            await inv.fs(ws, hand_over, sandbox.uid, sandbox.gid)
        run, result = await _execute(
            inv, ws, spec, sandbox=sandbox, profile=profile, agent=agent, member=member
        )
    return reply(run, result, decision.reason)


async def _execute(
    inv: Invocation,
    ws: Workspace,
    spec: ExecSpec,
    *,
    sandbox: Sandbox,
    profile: str,
    agent: Agent,
    member: Member | None,
) -> tuple[Run, ExecResult]:
    """Run ``spec`` in the sandbox, in the table of runs while it runs."""
    wall = inv.server.runner.wall
    try:
        async with sandbox.start(spec) as execution:
            run = Run(
                execution.id,
                ws.name,
                spec.argv,
                spec.cwd,
                profile,
                agent,
                wall(),
                member=member,
            )
            run.execution = execution
            await _started(inv, ws, run)
            try:
                await stream_output(inv, execution)
                result = await execution.wait()
            except anyio.get_cancelled_exc_class():
                # The MCP cancel of this request. The sandbox's supervisor task is being
                # cancelled too and may finish first; kill the tree ourselves either way.
                run.state = "cancelled"
                execution.cancel()
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    await _ended(inv, ws, run, execution)
    except SandboxError as exc:
        raise SandboxFailed(
            f"the sandbox could not run the command: {exc.detail or exc.message}"
        ) from None
    return run, result


async def _started(inv: Invocation, ws: Workspace, run: Run) -> None:
    runner = inv.server.runner
    runner.running[run.id] = run
    if run.member is not None:
        run.member.running[run.id] = {
            "execution_id": run.id,
            "argv": list(run.argv),
            "started": iso(run.started),
        }
    ws.collab.record(run.agent, "run", run.cwd, to=" ".join(run.argv)[:200])
    await inv.server.updated([meta_uri(ws.name, "members")])
    await inv.ctx.log("info", {"execution_id": run.id, "event": "started"}, "run_command")


async def _ended(inv: Invocation, ws: Workspace, run: Run, execution: Execution) -> None:
    runner = inv.server.runner
    runner.running.pop(run.id, None)
    if run.member is not None:
        run.member.running.pop(run.id, None)
    if run.state == "cancelled":  # the request itself was cancelled
        run.limit = "cancelled"
    else:
        result = await execution.wait()
        run.exit_code, run.limit = result.exit_code, result.limit
        run.state = (
            "cancelled"
            if result.limit == "cancelled"
            else "exited"
            if result.limit == "none"
            else "killed"
        )
    runner.ended(run)
    await inv.server.updated([meta_uri(ws.name, "members")])


class ListArgs(Args, frozen=True):
    workspace: WorkspaceName


async def list_executions(inv: Invocation, a: ListArgs) -> Reply:
    ws = inv.workspace(a.workspace)
    found_running, found_ended = inv.server.runner.listed(ws.name, inv.principal)
    running = [run.to_json() for run in found_running]
    ended = [run.to_json() for run in found_ended]
    lines = [
        f"{r['execution_id']} {r['state']} {' '.join(r['argv'])} by {r['agent']['name']}"
        for r in (*running, *ended)
    ]
    return Reply("\n".join(lines) or "No executions.", {"running": running, "ended": ended})


class CancelArgs(Args, frozen=True):
    workspace: WorkspaceName
    execution_id: Annotated[str, Meta(min_length=1, max_length=64)]
    member_token: Token | None = None


async def cancel_execution(inv: Invocation, a: CancelArgs) -> Reply:
    ws = inv.workspace(a.workspace)
    agent = inv.agent(ws, a.member_token)
    run = inv.server.runner.find(ws.name, a.execution_id, inv.principal)
    if run.state != "running" or run.execution is None:
        raise InvalidInput(f"execution {run.id} already ended ({run.state})")
    run.cancelled_by = agent
    run.execution.cancel()
    await run.execution.wait()
    ws.collab.record(agent, "cancel", run.cwd, to=run.id)
    return Reply(
        f"Cancelled {run.id} ({' '.join(run.argv)}); its process tree is killed.",
        {"execution_id": run.id, "state": "cancelled"},
    )


class PolicyArgs(Args, frozen=True):
    workspace: WorkspaceName
    member_token: Token | None = None


async def get_policy(inv: Invocation, a: PolicyArgs) -> Reply:
    ws = inv.workspace(a.workspace)
    member = inv.find_member(ws, a.member_token)
    agent = inv.agent(ws, a.member_token)
    policy = inv.server.runner.policy
    role, _ = policy.role_of(ws.name, _member_name(agent, member))
    return Reply(
        f"You have role {role} in {ws.name}.",
        {"workspace": ws.name, "role": role, "policy": dict(describe_policy(policy, ws.name))},
    )


_RUNS: Final = {"type": "array", "items": {"type": "object"}}

SPECS: Final[tuple[ToolSpec, ...]] = (
    declare(
        "run_command",
        "Run a command (argv list, no shell) in the workspace's sandbox: no network, only the "
        "workspace writable. Output streams as log messages while it runs; the result has the "
        "exit code, stdout, stderr and the limit that ended it. Commands must be allowed by "
        "the workspace's policy (get_policy).",
        RunArgs,
        run_command,
        destructive=True,
        output=RUN_OUTPUT,
    ),
    declare(
        "list_executions",
        "Commands running in a workspace (id, argv, agent, start, state) and recent ones.",
        ListArgs,
        list_executions,
        read_only=True,
        output=object_schema({"running": _RUNS, "ended": _RUNS}, ["running", "ended"]),
    ),
    declare(
        "cancel_execution",
        "Stop a running command by execution id: its whole process tree is killed at once.",
        CancelArgs,
        cancel_execution,
        destructive=True,
        output=object_schema({"execution_id": STRING, "state": STRING}, ["execution_id", "state"]),
    ),
    declare(
        "get_policy",
        "The command policy of a workspace and your role in it.",
        PolicyArgs,
        get_policy,
        read_only=True,
        output=object_schema(
            {"workspace": STRING, "role": STRING, "policy": {"type": "object"}},
            ["workspace", "role", "policy"],
        ),
    ),
)
