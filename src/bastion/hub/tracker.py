"""One registered instance's state machine: the checks that move it between states, the
backoff between attempts, and removing its file once it is dead.

A ``Tracker`` is made by ``Discovery`` for each valid registry file and supervised in
Discovery's task group; every state change goes back to Discovery (``on_state``), which
logs it and keeps the list of ACTIVE instances. Before each attempt to reach the instance
and before each ping, the listener on its port must be one of our uid's sockets (the
``listener_ours`` check Discovery passes in); when it is not, the instance is not reached
(nor pinged, nor sent its credential), and an ACTIVE one leaves ACTIVE at once. Its
process exiting makes it DEAD whatever state it is in. Sleeping is injected so backoff
tests take no wall time::

    STARTING --port accepts--> LISTENING --MCP answer--> ACTIVE --3 missed pings--> RETRYING
       |                          |                        ^                          |
       +--------------------------+-- retries exhausted ---|------- answer -----------+
                    or process exit or file removed        +--> DEAD (file removed)
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio

from bastion.hub.liveness import Pinger
from bastion.hub.registry import InstanceRecord

__all__ = [
    "BACKOFF_FIRST",
    "BACKOFF_MAX",
    "MAX_ATTEMPTS",
    "MISSED_PINGS",
    "PING_INTERVAL",
    "Checks",
    "InstanceState",
    "Tracker",
    "Transition",
    "backoff",
]

logger = logging.getLogger(__name__)

PING_INTERVAL: Final = 2.0  # seconds between pings of an ACTIVE instance
MISSED_PINGS: Final = 3  # consecutive misses that move ACTIVE to RETRYING
BACKOFF_FIRST: Final = 0.05  # seconds; a just-started instance is usually ready at once
BACKOFF_MAX: Final = 5.0
MAX_ATTEMPTS: Final = 10  # ~25 s of backoff before an instance is declared DEAD

Sleep = Callable[[float], Awaitable[None]]
Listening = Callable[[InstanceRecord], Awaitable[bool]]
WaitExit = Callable[[int], Awaitable[None]]
Signature = tuple[int, int, int]  # a registry file's inode, mtime (ns) and size


class InstanceState(enum.Enum):
    STARTING = "starting"
    LISTENING = "listening"
    ACTIVE = "active"
    RETRYING = "retrying"
    DEAD = "dead"


@dataclass(frozen=True)
class Transition:
    """One state change of one instance; ``at`` is the injected clock's reading."""

    instance_id: str
    old: InstanceState | None
    new: InstanceState
    reason: str
    at: float


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Checks:
    """How every instance is looked at (shared by all trackers of one Discovery)."""

    listener_ours: Callable[[InstanceRecord], bool]
    listening: Listening
    ping: Pinger
    wait_exit: WaitExit
    sleep: Sleep
    ping_interval: float
    max_attempts: int


OnState = Callable[["Tracker", "InstanceState | None", "InstanceState", str], None]


@dataclass(eq=False)
class Tracker:
    """One registry file (``name`` in ``directory``) and the instance it announces."""

    name: str
    record: InstanceRecord
    signature: Signature
    directory: Path
    checks: Checks
    on_state: OnState  # called after each change of ``state``: (tracker, old, new, reason)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    state: InstanceState | None = None
    checked: anyio.Event = field(default_factory=anyio.Event)  # set after its first check

    async def supervise(self) -> None:
        """Walk the state machine until DEAD (or ``scope`` is cancelled)."""
        try:
            with self.scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._follow_process, tg.cancel_scope)
                    await self._walk()
                    tg.cancel_scope.cancel()
        finally:
            self.checked.set()

    def set_state(self, new: InstanceState, reason: str) -> None:
        old = self.state
        self.state = new
        self.on_state(self, old, new, reason)

    def die(self, reason: str) -> None:
        """DEAD, and its file removed (unless a writer replaced it since)."""
        if self.state is InstanceState.DEAD:
            return
        self.set_state(InstanceState.DEAD, reason)
        self._remove_file()

    async def _follow_process(self, scope: anyio.CancelScope) -> None:
        await self.checks.wait_exit(self.record.pid)
        self.die(f"process {self.record.pid} exited")
        scope.cancel()

    async def _walk(self) -> None:
        attempts = 0
        while True:
            if self.state is InstanceState.ACTIVE:
                reason = await self._keep_alive()
                self.set_state(InstanceState.RETRYING, reason)
                attempts = 0
            else:
                reached = await self._reach()
                self.checked.set()
                if reached:
                    attempts = 0
                    continue
            attempts += 1
            if attempts >= self.checks.max_attempts:
                self.die(f"no answer after {attempts} attempts")
                return
            await self.checks.sleep(backoff(attempts))

    async def _reach(self) -> bool:
        checks, record = self.checks, self.record
        if not checks.listener_ours(record) or not await checks.listening(record):
            return False
        if self.state is InstanceState.STARTING:
            self.set_state(InstanceState.LISTENING, f"port {record.port} accepts")
        if not await checks.ping(record):
            return False
        self.set_state(InstanceState.ACTIVE, "answered MCP")
        return True

    async def _keep_alive(self) -> str:
        """Return (why) after MISSED_PINGS consecutive failed pings, or at once when the
        port's listener is not ours."""
        missed = 0
        while missed < MISSED_PINGS:
            await self.checks.sleep(self.checks.ping_interval)
            if not self.checks.listener_ours(self.record):
                return "port listener is not ours"
            if await self.checks.ping(self.record):
                missed = 0
            else:
                missed += 1
                logger.info("instance %s missed ping %d/%d", self.record.id, missed, MISSED_PINGS)
        return f"{MISSED_PINGS} missed pings"

    def _remove_file(self) -> None:
        path = self.directory / self.name
        try:
            # Only the file we judged: a writer may have replaced it since (same id, new pid).
            info = path.stat(follow_symlinks=False)
            if (info.st_ino, info.st_mtime_ns, info.st_size) == self.signature:
                path.unlink()
                logger.info("removed stale registry file %s", self.name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("cannot remove stale registry file %s: %s", self.name, exc)
