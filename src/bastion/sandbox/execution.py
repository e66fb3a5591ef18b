"""One running command: stream its output, enforce the wall clock and the output cap,
cancel it, and say how it ended.

The process we spawn is the backend's top (bwrap, which is pid 1 of the command's pid
namespace and takes every process in it down when it dies). Killing is SIGKILL to its
process group plus the command's cgroup, so double-forked and ``setsid`` children go too.
Output chunks go to a bounded stream: a consumer that stops reading stalls the command
(backpressure), never our memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bastion.sandbox.cgroups import CommandCgroup
from bastion.sandbox.limits import Limits
from bastion.sandbox.spec import ExecResult, LimitReason, OutputChunk, StreamName

__all__ = ["Execution"]

logger = logging.getLogger(__name__)

READ_CHUNK: Final = 64 * 1024
CHUNK_BUFFER: Final = 64  # chunks in flight to a consumer before the command stalls
KILL_WAIT: Final = 5.0  # seconds for a SIGKILLed tree to be reaped
GONE_POLL: Final = 0.005  # seconds between checks that a killed tree has exited
DRAIN_GRACE: Final = 2.0  # seconds to read what is left in the pipes after the exit
_MAX_SIGNAL: Final = 64
# Free space below which a failed command's quota counts as exhausted ("disk" limit).
QUOTA_SLACK: Final = 1024 * 1024


class Execution:
    """A command started by ``Sandbox.start``.

    Iterate ``chunks()`` for output as it arrives (or don't: ``wait()`` drains it), call
    ``cancel()`` to kill the whole tree at once, ``await wait()`` for the ``ExecResult``.
    """

    def __init__(
        self,
        *,
        execution_id: str,
        process: anyio.abc.Process,
        limits: Limits,
        capture_bytes: int,
        cgroup: CommandCgroup | None,
        backend: str,
        enforced: tuple[str, ...],
        quota_root: Path | None,
        clock: Callable[[], float],
    ) -> None:
        self.id = execution_id
        self.pid = process.pid
        self.backend = backend
        self.limits = limits
        self.enforced = enforced
        self._process = process
        self._capture = capture_bytes
        self._cgroup = cgroup
        self._quota_root = quota_root
        self._clock = clock
        self._started = clock()
        self._reason: LimitReason | None = None
        self._kept: dict[StreamName, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._truncated: dict[StreamName, bool] = {"stdout": False, "stderr": False}
        self._total = 0
        self._send: MemoryObjectSendStream[OutputChunk]
        self._receive: MemoryObjectReceiveStream[OutputChunk]
        self._send, self._receive = anyio.create_memory_object_stream[OutputChunk](CHUNK_BUFFER)
        self._consumed = False
        self._done = anyio.Event()
        self._result: ExecResult | None = None
        self._doomed: set[int] = set()  # host pids of the tree when it was killed

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    async def chunks(self) -> AsyncIterator[OutputChunk]:
        """Output as it arrives, until the command's streams close. Iterate it once."""
        self._consumed = True
        async with self._receive:
            async for chunk in self._receive:
                yield chunk

    def cancel(self) -> None:
        """Kill the whole tree now; the result's ``limit`` is ``"cancelled"``."""
        self._kill("cancelled")

    async def wait(self) -> ExecResult:
        """The result, once the command and its output are done (drains unread output)."""
        if not self._consumed:
            self._consumed = True
            async with self._receive:
                async for _ in self._receive:
                    pass
        await self._done.wait()
        assert self._result is not None
        return self._result

    def _kill(self, reason: LimitReason) -> None:
        if self._reason is None and self.running:
            self._reason = reason
            logger.info("sandbox %s: stopping (%s)", self.id, reason)
        if self._process.returncode is None:
            # The tree as it is now: bwrap's inner processes are in sessions of their own,
            # out of reach of killpg, and die only when the pid namespace is torn down.
            self._doomed |= descendants(self._process.pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
            for pid in self._doomed:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if self._cgroup is not None:
            self._cgroup.kill()

    async def _until_gone(self) -> None:
        """Wait (bounded) until every process of a killed tree has exited, so that nothing
        of the command is left once its result is out."""
        with anyio.move_on_after(KILL_WAIT):
            while (self._cgroup is not None and self._cgroup.members()) or any(
                _alive(pid) for pid in self._doomed
            ):
                if self._cgroup is not None:
                    self._cgroup.kill()
                await anyio.sleep(GONE_POLL)

    async def run(self) -> None:
        """Supervise to the end (started by the sandbox in its task group)."""
        try:
            async with anyio.create_task_group() as tg:
                pumps_done = [anyio.Event(), anyio.Event()]
                tg.start_soon(self._pump, "stdout", self._process.stdout, pumps_done[0])
                tg.start_soon(self._pump, "stderr", self._process.stderr, pumps_done[1])
                with anyio.move_on_after(self.limits.wall_seconds):
                    await self._process.wait()
                if self._process.returncode is None:
                    self._kill("timeout")
                    with anyio.move_on_after(KILL_WAIT):
                        await self._process.wait()
                with anyio.move_on_after(DRAIN_GRACE):
                    for done in pumps_done:
                        await done.wait()
                tg.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            self._kill("cancelled")  # our caller went away: the whole tree goes with it
            raise
        finally:
            with anyio.CancelScope(shield=True):
                if self._process.returncode is None:
                    self._kill("cancelled")
                if self._cgroup is not None:
                    self._cgroup.kill()  # nothing outlives the command
                if self._doomed or self._cgroup is not None:
                    await self._until_gone()
                self._result = self._build_result()
                self._send.close()
                self._done.set()

    async def _pump(
        self, name: StreamName, stream: anyio.abc.ByteReceiveStream | None, done: anyio.Event
    ) -> None:
        if stream is None:
            done.set()
            return
        try:
            while True:
                try:
                    data = await stream.receive(READ_CHUNK)
                except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                    break
                await self._on_output(name, data)
        finally:
            done.set()

    async def _on_output(self, name: StreamName, data: bytes) -> None:
        room = self.limits.output_bytes - self._total
        self._total += len(data)
        if room <= 0:
            self._kill("output")  # beyond the cap: nothing more is passed on
            return
        if len(data) > room:
            data = data[:room]
            self._kill("output")
        kept = self._kept[name]
        keep = max(0, min(len(data), self._capture - len(kept)))
        kept += data[:keep]
        if keep < len(data):
            self._truncated[name] = True
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._send.send(OutputChunk(name, data))

    def _build_result(self) -> ExecResult:
        code = self._process.returncode
        exit_code: int | None = code
        sig: int | None = None
        if code is not None and code < 0:
            exit_code, sig = None, -code
        elif code is not None and 128 < code <= 128 + _MAX_SIGNAL:
            # bwrap, runsc and docker report a death by signal N as status 128 + N.
            exit_code, sig = None, code - 128
        if code is None:
            sig = signal.SIGKILL
        return ExecResult(
            exit_code=exit_code,
            signal=sig,
            limit=self._reason or self._limit_from_exit(exit_code, sig),
            stdout=bytes(self._kept["stdout"]),
            stderr=bytes(self._kept["stderr"]),
            stdout_truncated=self._truncated["stdout"],
            stderr_truncated=self._truncated["stderr"],
            output_bytes=self._total,
            duration=self.elapsed,
            backend=self.backend,
            limits=self.limits,
            enforced=self.enforced,
        )

    def _limit_from_exit(self, exit_code: int | None, sig: int | None) -> LimitReason:
        if self._cgroup is not None and self._cgroup.oom_killed():
            return "memory"
        if sig == signal.SIGXCPU:
            return "cpu"
        if sig == signal.SIGXFSZ:
            return "disk"
        if exit_code != 0 and self._quota_full():
            return "disk"
        return "none"

    def _quota_full(self) -> bool:
        if self._quota_root is None:
            return False
        try:
            stats = os.statvfs(self._quota_root)
        except OSError:
            return False
        # A write that failed for lack of space leaves less than one large write free.
        free = stats.f_bavail * stats.f_frsize
        total = stats.f_blocks * stats.f_frsize
        return free < max(QUOTA_SLACK, total // 100) or stats.f_favail == 0


def descendants(pid: int) -> set[int]:
    """Host pids of every process below ``pid`` (from the parent links in ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                # pid (comm) state ppid ...: comm may hold anything, so split after its ")".
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has exited: only its entry is left)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False
