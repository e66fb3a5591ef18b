"""Running commands in a workspace: ``run_command``, ``list_executions``,
``cancel_execution`` and ``get_policy``.

A command is an argv (never a shell string), checked against the command policy (the
caller's role, deny rules first), rate-limited per agent, bounded per workspace, and run in
the sandbox with the workspace as its one writable directory and the role's read-only
paths bound read-only. While it runs, its output goes to the caller as
``notifications/message`` log lines and ``notifications/progress`` (both bounded in rate
and size); at the end the result carries the exit code, the captured output and the limit
that ended it. ``cancel_execution`` or the MCP cancel of the request kills the whole tree:
leaving ``Sandbox.start`` SIGKILLs the sandbox's pid namespace and its cgroup.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Final, Literal

import anyio
from msgspec import Meta

from bastion._types import JSONObject
from bastion.sandbox import ExecResult, ExecSpec, Execution, Sandbox, SandboxError
from bastion.workspace.collab import Agent, Member, iso
from bastion.workspace.errors import InvalidInput, NotFound, Refused, TooLarge, WorkspaceError
from bastion.workspace.invocation import Invocation
from bastion.workspace.paths import parse_path
from bastion.workspace.policy import CommandPolicy, RateLimiter, describe_policy
from bastion.workspace.resources import meta_uri
from bastion.workspace.store import Workspace
from bastion.workspace.toolkit import (
    BOOLEAN,
    STRING,
    Args,
    Reply,
    Token,
    ToolSpec,
    WorkspaceName,
    object_schema,
)
from bastion.workspace.toolkit import tool_spec as declare

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SPECS", "Runner", "SandboxFailed"]

# Bytes of each stream kept for the final result (the rest is streamed, then counted).
CAPTURE_BYTES: Final = 256 * 1024
# Streaming: one notification pair at most every FLUSH_SECONDS, at most STREAM_BYTES
# each, at most STREAM_TOTAL per execution; what does not fit is said, not sent.
FLUSH_SECONDS: Final = 0.2
STREAM_BYTES: Final = 16 * 1024
STREAM_TOTAL: Final = 1024 * 1024
FINISHED_KEPT: Final = 32
State = Literal["running", "exited", "killed", "cancelled"]


class SandboxFailed(WorkspaceError):
    kind = "sandbox"


@dataclass(slots=True)
class Run:
    """One execution, running or recently ended."""

    id: str
    workspace: str
    argv: tuple[str, ...]
    cwd: str
    profile: str
    agent: Agent
    started: float  # wall clock
    state: State = "running"
    execution: Execution | None = None
    exit_code: int | None = None
    limit: str | None = None
    cancelled_by: Agent | None = None
    member: Member | None = field(default=None, repr=False)

    def to_json(self) -> JSONObject:
        entry: JSONObject = {
            "execution_id": self.id,
            "workspace": self.workspace,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "profile": self.profile,
            "agent": self.agent.to_json(),
            "started": iso(self.started),
            "state": self.state,
        }
        if self.state != "running":
            entry["exit_code"] = self.exit_code
            entry["limit"] = self.limit
        if self.cancelled_by is not None:
            entry["cancelled_by"] = self.cancelled_by.to_json()
        return entry


class Runner:
    """The server's command runner: the sandbox, the policy and the table of runs."""

    def __init__(
        self,
        sandbox: Sandbox | None,
        policy: CommandPolicy,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.sandbox = sandbox
        self.policy = policy
        self.rate = RateLimiter(policy.rate, clock)
        self.wall = wall
        self.running: dict[str, Run] = {}
        self.finished: deque[Run] = deque(maxlen=FINISHED_KEPT)

    def in_workspace(self, name: str) -> list[Run]:
        return [run for run in self.running.values() if run.workspace == name]

    def find(self, workspace: str, execution_id: str) -> Run:
        run = self.running.get(execution_id)
        if run is None or run.workspace != workspace:
            for old in self.finished:
                if old.id == execution_id and old.workspace == workspace:
                    return old
            raise NotFound(f"no execution {execution_id} in workspace {workspace}")
        return run


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
    cwd = parse_path(a.cwd, allow_root=True).display
    if len(runner.in_workspace(ws.name)) >= policy.max_running:
        raise TooLarge(
            f"{policy.max_running} commands already run in {ws.name}; "
            "wait for one to end or cancel_execution"
        )
    runner.rate.take(agent.owner)
    readonly = [p.text for p in policy.readonly_paths(ws.name, name)]
    sandbox = runner.sandbox
    if sandbox.default_backend != "none" and os.geteuid() == 0:
        await inv.fs(ws, hand_over, sandbox.uid, sandbox.gid)
    spec = ExecSpec(
        workspace=inv.server.root.path / ws.name,
        argv=argv,
        cwd=cwd,
        profile=profile,
        timeout=a.timeout,
        readonly_paths=tuple(readonly),
        # Python checks cached bytecode by mtime in whole seconds and size: an agent that
        # runs, edits (same size) and runs again within a second would test stale code.
        env={"PYTHONDONTWRITEBYTECODE": "1"},
        capture_bytes=CAPTURE_BYTES,
    )
    try:
        async with sandbox.start(spec) as execution:
            run = Run(
                execution.id, ws.name, argv, cwd, profile, agent, runner.wall(), member=member
            )
            run.execution = execution
            await _started(inv, ws, run)
            try:
                await _stream(inv, execution)
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
    return _reply(run, result, decision.reason)


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
    runner.finished.append(run)
    await inv.server.updated([meta_uri(ws.name, "members")])


async def _stream(inv: Invocation, execution: Execution) -> None:
    """Forward output to the caller while it runs; bounded (module constants)."""
    pending: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
    dropped = {"stdout": 0, "stderr": 0}
    sent = 0
    total = 0
    ticks = 0
    done = anyio.Event()

    async def flush() -> None:
        nonlocal sent, ticks
        for stream, buffer in pending.items():
            if not buffer and not dropped[stream]:
                continue
            data = bytes(buffer[:STREAM_BYTES])
            lost = dropped[stream] + len(buffer) - len(data)
            buffer.clear()
            dropped[stream] = 0
            if sent >= STREAM_TOTAL:
                continue
            sent += len(data)
            line: JSONObject = {
                "execution_id": execution.id,
                "stream": stream,
                "text": data.decode("utf-8", "replace"),
            }
            if lost:
                line["not_streamed_bytes"] = lost
            if sent >= STREAM_TOTAL:
                line["note"] = "streaming stopped here; the result keeps the captured output"
            await inv.ctx.log("info", line, "run_command")
        ticks += 1
        await inv.ctx.progress(
            ticks,
            message=f"{execution.id}: running {execution.elapsed:.1f} s, {total} bytes of output",
        )

    async def ticker() -> None:
        while not done.is_set():
            with anyio.move_on_after(FLUSH_SECONDS):
                await done.wait()
            await flush()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        async for chunk in execution.chunks():
            total += len(chunk.data)
            buffer = pending[chunk.stream]
            room = max(0, STREAM_BYTES - len(buffer))
            buffer += chunk.data[:room]
            dropped[chunk.stream] += len(chunk.data) - min(room, len(chunk.data))
        done.set()


def _reply(run: Run, result: ExecResult, rule: str) -> Reply:
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace")
    if result.limit == "none":
        how = (
            f"exit code {result.exit_code}"
            if result.signal is None
            else f"killed by signal {result.signal}"
        )
    else:
        how = f"stopped by the {result.limit} limit"
    parts = [f"{' '.join(run.argv)}: {how} after {result.duration:.2f} s (execution {run.id})"]
    for name, text, cut in (
        ("stdout", stdout, result.stdout_truncated),
        ("stderr", stderr, result.stderr_truncated),
    ):
        if text:
            parts.append(f"--- {name}{' (truncated)' if cut else ''} ---\n{text.rstrip()}")
    return Reply(
        "\n".join(parts),
        {
            "execution_id": run.id,
            "argv": list(run.argv),
            "cwd": run.cwd,
            "profile": run.profile,
            "exit_code": result.exit_code,
            "signal": result.signal,
            "limit": result.limit,
            "stdout": stdout,
            "stderr": stderr,
            "stdout_truncated": result.stdout_truncated,
            "stderr_truncated": result.stderr_truncated,
            "output_bytes": result.output_bytes,
            "duration_seconds": round(result.duration, 3),
            "backend": result.backend,
            "policy": rule,
        },
    )


class ListArgs(Args, frozen=True):
    workspace: WorkspaceName


async def list_executions(inv: Invocation, a: ListArgs) -> Reply:
    ws = inv.workspace(a.workspace)
    runner = inv.server.runner
    running = [run.to_json() for run in runner.in_workspace(ws.name)]
    ended = [run.to_json() for run in runner.finished if run.workspace == ws.name]
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
    run = inv.server.runner.find(ws.name, a.execution_id)
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


_INT_OR_NULL: Final = {"type": ["integer", "null"]}
_RUNS: Final = {"type": "array", "items": {"type": "object"}}
RUN_OUTPUT: Final = object_schema(
    {
        "execution_id": STRING,
        "argv": {"type": "array", "items": STRING},
        "cwd": STRING,
        "profile": STRING,
        "exit_code": _INT_OR_NULL,
        "signal": _INT_OR_NULL,
        "limit": {
            "type": "string",
            "enum": ["none", "timeout", "cpu", "memory", "output", "disk", "cancelled"],
        },
        "stdout": STRING,
        "stderr": STRING,
        "stdout_truncated": BOOLEAN,
        "stderr_truncated": BOOLEAN,
        "output_bytes": {"type": "integer"},
        "duration_seconds": {"type": "number"},
        "backend": STRING,
        "policy": STRING,
    },
    [
        "execution_id",
        "argv",
        "exit_code",
        "signal",
        "limit",
        "stdout",
        "stderr",
        "stdout_truncated",
        "stderr_truncated",
        "duration_seconds",
    ],
)

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
