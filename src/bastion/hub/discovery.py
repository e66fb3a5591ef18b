"""Discovery: which registered instances can be used right now.

A registry file only says an instance might exist; a live connection says it does. Each
valid file gets a ``Tracker`` (``tracker``: the per-instance state machine, its checks and
backoff) and Discovery logs every transition; ``instances()`` lists the ACTIVE ones only,
so a stale file (dead pid, closed port, silent endpoint) is never listed. This module owns
the registry directory (watching it, rescanning it, at most ``MAX_INSTANCES`` files, a
tracker per file, forgotten when its file goes or changes) and the list the hub reads.
The listener on an instance's port must be one of our uid's sockets
(``liveness.listener_is_ours``) before each attempt to reach it and before each ping: one
owned by another user (who bound the port of a stopped instance) is skipped with a log
line, never connected to, and an ACTIVE instance whose port changed hands leaves the list
at once (``listener_ours`` is the same check for the hub, before each connection a mounted
instance's upstream makes). ``settle()`` waits for the first scan and each file's first
check, so a client that asks once, right after the hub starts (a one-shot client), sees
the instances already running. Every per-instance task runs in the task group of
``run()``; sleeping and the clock are injected so backoff tests take no wall time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import anyio
import anyio.abc

from bastion.errors import ConfigError
from bastion.hub.liveness import (
    McpPinger,
    Pinger,
    listener_is_ours,
    tcp_listening,
    wait_process_exit,
)
from bastion.hub.liveness import pid_alive as _pid_alive
from bastion.hub.registry import SUFFIX, InstanceRecord, ensure_registry_dir, read_record
from bastion.hub.tracker import (
    MAX_ATTEMPTS,
    PING_INTERVAL,
    Checks,
    InstanceState,
    Listening,
    Signature,
    Sleep,
    Tracker,
    Transition,
    WaitExit,
)
from bastion.hub.watcher import POLL_INTERVAL, WatchMode, watch_directory

__all__ = ["Discovery"]

logger = logging.getLogger(__name__)

RESCAN_INTERVAL: Final = 5.0  # a full rescan even with OS notifications, in case one is lost
MAX_INSTANCES: Final = 256  # registry files beyond this are ignored (and logged)


class Discovery:
    """Watches a registry directory and keeps each instance's state.

    ``on_change`` is called (synchronously) whenever the list ``instances()`` returns
    changes; ``wait_changed()`` is the same news for a task; ``generation`` counts changes.
    """

    def __init__(
        self,
        directory: Path,
        *,
        on_change: Callable[[], None] | None = None,
        on_transition: Callable[[Transition], None] | None = None,
        watch: WatchMode = "auto",
        poll_interval: float = POLL_INTERVAL,
        ping_interval: float = PING_INTERVAL,
        max_attempts: int = MAX_ATTEMPTS,
        pinger: Pinger | None = None,
        listening: Listening = tcp_listening,
        listener_owned: Callable[[InstanceRecord], bool] = listener_is_ours,
        pid_alive: Callable[[int], bool] = _pid_alive,
        wait_exit: WaitExit = wait_process_exit,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.directory = directory
        self.generation = 0
        self._on_change = on_change
        self._on_transition = on_transition
        self._watch = watch
        self._poll_interval = poll_interval
        self._listener_owned = listener_owned
        self._pid_alive = pid_alive
        self._clock = clock
        self._checks = Checks(
            listener_ours=self.listener_ours,
            listening=listening,
            ping=pinger or McpPinger(),
            wait_exit=wait_exit,
            sleep=sleep,
            ping_interval=ping_interval,
            max_attempts=max_attempts,
        )
        self._entries: dict[str, Tracker] = {}  # by file name
        # Files that failed validation, with their signature: logged once, not every rescan.
        self._skipped: dict[str, Signature] = {}
        self._changed = anyio.Event()
        self._dirty = anyio.Event()
        self._scanned = anyio.Event()  # set after the first scan
        self._tg: anyio.abc.TaskGroup | None = None

    # -- what the hub reads -----------------------------------------------------------------

    def instances(self) -> list[InstanceRecord]:
        """The ACTIVE instances, oldest first."""
        active = [e.record for e in self._entries.values() if e.state is InstanceState.ACTIVE]
        return sorted(active, key=lambda r: (r.started_at, r.id))

    def get(self, instance_id: str) -> InstanceRecord | None:
        """The ACTIVE instance with this id, if there is one."""
        entry = self._entries.get(f"{instance_id}{SUFFIX}")
        if entry is None or entry.state is not InstanceState.ACTIVE:
            return None
        return entry.record

    def state(self, instance_id: str) -> InstanceState | None:
        """The tracked state of any instance (None once it is gone)."""
        entry = self._entries.get(f"{instance_id}{SUFFIX}")
        return None if entry is None else entry.state

    async def settle(self) -> None:
        """Wait until the first scan is done and every file it found has had its first
        check (listed if it answered). Callers bound the wait: a check may take a ping's
        timeout, and nothing is awaited without ``run()``."""
        await self._scanned.wait()
        for entry in list(self._entries.values()):
            await entry.checked.wait()

    async def wait_changed(self, since: int | None = None) -> int:
        """Wait until ``generation`` differs from ``since`` (by default: for the next change
        of ``instances()``) and return it. Passing the last value seen loses no change."""
        if since is None or since == self.generation:
            await self._changed.wait()
        return self.generation

    # -- running ----------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Watch until cancelled. Reports started after the first scan (whose instances are
        then still being checked: they appear through ``on_change``)."""
        mode = self._watch
        try:
            ensure_registry_dir(self.directory)
        except (OSError, ConfigError) as exc:
            logger.warning("registry %s unusable (%s); polling for it", self.directory, exc)
            mode = "poll"
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                self._rescan()
                self._scanned.set()
                tg.start_soon(self._rescan_loop)
                tg.start_soon(self._periodic_rescan)
                tg.start_soon(self._watch_loop, mode)
                task_status.started()
                await anyio.sleep_forever()
            finally:
                self._tg = None

    async def _watch_loop(self, mode: WatchMode) -> None:
        await watch_directory(
            self.directory, self._mark_dirty, mode=mode, poll_interval=self._poll_interval
        )

    def _mark_dirty(self) -> None:
        self._dirty.set()  # not a bound ``set``: the event is replaced after each rescan

    async def _periodic_rescan(self) -> None:
        while True:
            await anyio.sleep(RESCAN_INTERVAL)
            self._mark_dirty()

    async def _rescan_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            self._rescan()

    def _rescan(self) -> None:
        seen: dict[str, Signature] = {}
        try:
            with os.scandir(self.directory) as listing:
                for item in listing:
                    if item.name.startswith(".") or not item.name.endswith(SUFFIX):
                        continue  # temporary files of a writer, and anything not a record
                    if len(seen) >= MAX_INSTANCES:
                        logger.warning(
                            "more than %d registry files; ignoring the rest", MAX_INSTANCES
                        )
                        break
                    try:
                        info = item.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    seen[item.name] = (info.st_ino, info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            pass  # no directory yet: no instances
        except OSError as exc:
            logger.warning("cannot list registry %s: %s", self.directory, exc)
            return
        for name in [n for n in self._entries if n not in seen]:
            self._forget(self._entries[name], "file removed")
        self._skipped = {n: sig for n, sig in self._skipped.items() if seen.get(n) == sig}
        for name, signature in seen.items():
            if name in self._skipped:
                continue
            entry = self._entries.get(name)
            if entry is not None and entry.signature == signature:
                continue
            record = read_record(self.directory / name)
            if entry is not None:
                if record == entry.record:
                    entry.signature = signature
                    continue
                self._forget(entry, "file replaced")
            if record is None:
                self._skipped[name] = signature
                continue
            self._track(name, record, signature)

    def _track(self, name: str, record: InstanceRecord, signature: Signature) -> None:
        entry = Tracker(name, record, signature, self.directory, self._checks, self._on_state)
        self._entries[name] = entry
        if not self._pid_alive(record.pid):
            entry.die(f"pid {record.pid} is gone")
            entry.checked.set()
            return
        entry.set_state(InstanceState.STARTING, f"registered by pid {record.pid}")
        if self._tg is not None:
            self._tg.start_soon(entry.supervise)

    def _forget(self, entry: Tracker, reason: str) -> None:
        entry.scope.cancel()
        entry.checked.set()
        if entry.state not in (None, InstanceState.DEAD):
            entry.set_state(InstanceState.DEAD, reason)
        if self._entries.get(entry.name) is entry:
            del self._entries[entry.name]

    # -- each instance's checks and changes ---------------------------------------------------

    def listener_ours(self, record: InstanceRecord) -> bool:
        """Whether the listener on ``record``'s port is our uid's now; logged when it is not.
        The hub asks again before each connection to it (the last ping may be seconds old)."""
        if self._listener_owned(record):
            return True
        logger.warning(
            "instance %s (%s): port %d is not listened on by this user; skipped",
            record.id,
            record.name,
            record.port,
        )
        return False

    def _on_state(
        self, entry: Tracker, old: InstanceState | None, new: InstanceState, reason: str
    ) -> None:
        """Log ``entry``'s change of state, and tell whoever follows the list."""
        was_listed = old is InstanceState.ACTIVE
        record = entry.record
        logger.info(
            "instance %s (%s, %s): %s -> %s: %s",
            record.id,
            record.name,
            record.url,
            old.value if old else "new",
            new.value,
            reason,
        )
        if self._on_transition is not None:
            self._on_transition(Transition(record.id, old, new, reason, self._clock()))
        if was_listed != (new is InstanceState.ACTIVE):
            self.generation += 1
            self._changed.set()
            self._changed = anyio.Event()
            if self._on_change is not None:
                self._on_change()
