"""The table of a workspace server's command executions, running and recently ended.

``Runner`` holds the sandbox, the command policy with its per-agent rate limiter, the runs
in progress (by execution id) and the last ``FINISHED_KEPT`` that ended. A ``Run`` is one
execution as ``list_executions`` shows it; an execution is only found in its own workspace.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from bastion._types import JSONObject
from bastion.sandbox import Execution, Sandbox
from bastion.workspace.collab import Agent, Member, iso
from bastion.workspace.errors import NotFound
from bastion.workspace.policy import CommandPolicy, RateLimiter

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FINISHED_KEPT", "Run", "Runner", "State"]

FINISHED_KEPT: Final = 32
State = Literal["running", "exited", "killed", "cancelled"]


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
        """The run ``execution_id`` of ``workspace``, running or recently ended.

        Raises:
            NotFound: there is none (in this workspace).
        """
        run = self.running.get(execution_id)
        if run is None or run.workspace != workspace:
            for old in self.finished:
                if old.id == execution_id and old.workspace == workspace:
                    return old
            raise NotFound(f"no execution {execution_id} in workspace {workspace}")
        return run
