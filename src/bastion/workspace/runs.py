"""The table of a workspace server's command executions, running and recently ended.

``Runner`` holds the sandbox, the command policy with its per-agent rate limiter, the runs
in progress (by execution id) and the history of those that ended: the last
``FINISHED_KEPT`` of each (workspace, principal), for at most ``HISTORIES_KEPT`` such pairs
(the one least recently added to is dropped first), so one principal's many short runs never
push another's out of sight (AZ-1) and the history stays bounded (DS-4). A ``Run`` is one
execution as ``list_executions`` shows it; an execution is only found in its own workspace,
and, when the gateway passes the caller's principal, only by that principal: another
principal's run is answered like an unknown id (without a principal every agent sees all).

A run holds a slot from before its sandbox starts until it ends (``slot``). At most the
policy's ``max_running`` slots per workspace and ``max_running_total`` on the server; a
principal holds at most half of a workspace's (``WORKSPACE_SHARE``) and a quarter of the
server's (``SERVER_SHARE``), at least one of each, so one principal cannot take the slots
that others need. Callers without a principal have only the overall caps.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from bastion._types import JSONObject
from bastion.sandbox import Execution, Sandbox
from bastion.workspace.collab import Agent, Member, iso
from bastion.workspace.errors import NotFound, TooLarge
from bastion.workspace.policy import CommandPolicy, RateLimiter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "FINISHED_KEPT",
    "HISTORIES_KEPT",
    "SERVER_SHARE",
    "WORKSPACE_SHARE",
    "Run",
    "Runner",
    "State",
]

FINISHED_KEPT: Final = 32  # ended runs kept per (workspace, principal)
HISTORIES_KEPT: Final = 256  # (workspace, principal) histories kept
# A principal's share of the run slots: 1/2 of a workspace's (2 of the default 4, so the
# others always have as many) and 1/4 of the server's, as with workspaces and member places.
WORKSPACE_SHARE: Final = 2
SERVER_SHARE: Final = 4
WAIT_HINT: Final = "wait for one to end or cancel_execution"
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

    def visible_to(self, principal: str | None) -> bool:
        """Whether a caller with ``principal`` (None: not passed) may see this run."""
        return principal is None or self.agent.principal == principal

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
        # Ended runs with their place in the order they ended, by (workspace, principal).
        self._ended: OrderedDict[tuple[str, str | None], deque[tuple[int, Run]]] = OrderedDict()
        self._ends = itertools.count()
        # The principal (or None) of each run holding a slot, by workspace.
        self._slots: list[tuple[str, str | None]] = []

    def ended(self, run: Run) -> None:
        """Keep the ended ``run`` in its (workspace, principal) history."""
        key = (run.workspace, run.agent.principal)
        history = self._ended.get(key)
        if history is None:
            if len(self._ended) >= HISTORIES_KEPT:
                self._ended.popitem(last=False)
            history = self._ended[key] = deque(maxlen=FINISHED_KEPT)
        else:
            self._ended.move_to_end(key)
        history.append((next(self._ends), run))

    def listed(self, workspace: str, principal: str | None) -> tuple[list[Run], list[Run]]:
        """The running and the recently ended runs of ``workspace`` that the caller sees
        (ended ones in the order they ended)."""
        running = [r for r in self.running.values() if r.workspace == workspace]
        ended = sorted(
            (end for end in self._finished(workspace) if end[1].visible_to(principal)),
            key=lambda end: end[0],
        )
        return [r for r in running if r.visible_to(principal)], [run for _, run in ended]

    def _finished(self, workspace: str) -> Iterator[tuple[int, Run]]:
        for (where, _), history in self._ended.items():
            if where == workspace:
                yield from history

    def find(self, workspace: str, execution_id: str, principal: str | None = None) -> Run:
        """The run ``execution_id`` of ``workspace``, running or recently ended, if the
        caller with ``principal`` may see it.

        Raises:
            NotFound: there is none (in this workspace, for this principal).
        """
        candidates = [self.running.get(execution_id), *(r for _, r in self._finished(workspace))]
        run = next((r for r in candidates if r is not None and r.id == execution_id), None)
        if run is None or run.workspace != workspace or not run.visible_to(principal):
            raise NotFound(f"no execution {execution_id} in workspace {workspace}")
        return run

    @contextmanager
    def slot(self, workspace: str, principal: str | None) -> Iterator[None]:
        """Hold a run slot of ``workspace`` for ``principal`` while the block runs.

        Raises:
            TooLarge: the caller's share, the workspace or the server is full.
        """
        self._admit(workspace, principal)
        held = (workspace, principal)
        self._slots.append(held)
        try:
            yield
        finally:
            self._slots.remove(held)

    def _admit(self, workspace: str, principal: str | None) -> None:
        cap, total = self.policy.max_running, self.policy.max_running_total
        here = [who for ws, who in self._slots if ws == workspace]
        if principal is not None:
            share = max(1, cap // WORKSPACE_SHARE)
            if here.count(principal) >= share:
                raise TooLarge(
                    f"you already run {share} of the {cap} commands {workspace} may run at "
                    f"once; {WAIT_HINT}"
                )
            share = max(1, total // SERVER_SHARE)
            if [who for _, who in self._slots].count(principal) >= share:
                raise TooLarge(
                    f"you already run {share} of the {total} commands this server may run "
                    f"at once; {WAIT_HINT}"
                )
        if len(here) >= cap:
            raise TooLarge(f"{cap} commands already run in {workspace}; {WAIT_HINT}")
        if len(self._slots) >= total:
            raise TooLarge(
                f"the server already runs {total} commands, its limit; try again when one ends"
            )
