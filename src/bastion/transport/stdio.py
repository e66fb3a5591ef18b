"""stdio transports: our own stdin/stdout as a server face, and a spawned child as a client face.

Messages are newline-delimited JSON with a line cap (``LineFramer``); a client's last line
that it ends without a newline is still read at EOF (a child's is not: a crash leaves half a
line). When our stdout breaks (the client closed its end), the server face stops reading
too: nothing more could be answered. A child runs in its own process group with an
allow-listed environment; its stderr is read line by line into our log through the caller's
``stderr_filter`` (which masks its credentials), never interpreted. Closing a child
escalates: close its stdin, then SIGTERM the process group, then SIGKILL, each step with a
bounded wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

import anyio
import anyio.abc
import anyio.to_thread

from bastion._log_counts import LogCounter
from bastion.errors import BastionError
from bastion.protocol.codec import MessageDecoder, encode, unreadable
from bastion.protocol.jsonrpc import Message
from bastion.transport.lines import DEFAULT_MAX_LINE, OVERSIZED, LineFramer

__all__ = [
    "CHILD_ENV_ALLOWLIST",
    "StdioChild",
    "StdioServerStream",
    "child_environment",
]

logger = logging.getLogger(__name__)

READ_CHUNK: Final = 64 * 1024
CLOSE_STDIN_GRACE: Final = 2.0  # seconds a well-behaved server needs to exit on EOF
TERM_GRACE: Final = 2.0  # seconds between SIGTERM and SIGKILL
STDERR_LINE_MAX: Final = 8 * 1024  # longer stderr lines are cut in the log
UNREADABLE_LOG_INTERVAL: Final = 10.0  # seconds between warnings of a child's unreadable lines

# What a child may inherit from our environment (everything else, our secrets included,
# stays with us). Per-server variables are added explicitly by configuration.
CHILD_ENV_ALLOWLIST: Final = (
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LOGNAME",
    "PATH",
    "SHELL",
    "TERM",
    "TMPDIR",
    "TZ",
    "USER",
    "SYSTEMROOT",
    "VIRTUAL_ENV",
)


def child_environment(
    base: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {k: base[k] for k in CHILD_ENV_ALLOWLIST if k in base}
    env.update(extra or {})
    return env


class _Framed:
    """Shared read side: chunks in, decoded messages (or frame errors) out."""

    # Whether a last line the peer did not end with a newline is read at EOF: yes from a
    # client (its last request), no from a child (half a line is what a crash leaves).
    read_unterminated_last_line = False

    def __init__(self, max_line: int, decoder: MessageDecoder) -> None:
        self._framer = LineFramer(max_line)
        self._decoder = decoder
        self._ready: list[bytes] = []
        self._ended = False

    async def _read_chunk(self) -> bytes:
        raise NotImplementedError

    async def receive(self) -> Message | BastionError:
        while not self._ready:
            if self._ended:
                raise anyio.EndOfStream
            chunk = await self._read_chunk()
            if chunk:
                self._ready.extend(self._framer.feed(chunk))
            else:
                self._ended = True
                if self.read_unterminated_last_line:
                    self._ready.extend(self._framer.finish())
        line = self._ready.pop(0)
        if line is OVERSIZED:
            error = unreadable(
                f"line exceeds {self._framer.max_line} bytes", self._framer.oversized_head()
            )
            self._unreadable(error)
            return error
        try:
            return self._decoder.decode(line)
        except BastionError as exc:
            self._unreadable(exc)
            return exc

    def _unreadable(self, error: BastionError) -> None:
        """A line could not be read as a message (the caller answers it)."""


class StdioServerStream(_Framed):
    """Our process's stdin/stdout (the face desktop clients talk to).

    Pipes, sockets and terminals use the event loop directly; anything else (a regular
    file, as with ``< requests.jsonl > answers.jsonl``) falls back to a worker thread.
    """

    read_unterminated_last_line = True

    def __init__(
        self,
        read: Callable[[], Awaitable[bytes]],
        write: Callable[[bytes], Awaitable[None]],
        *,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        super().__init__(max_line, MessageDecoder(max_bytes=max_line))
        self._read = read
        self._write = write
        self._lock = anyio.Lock()
        self._broken = False

    @classmethod
    async def open(
        cls, *, max_line: int = DEFAULT_MAX_LINE, unread: bytes = b""
    ) -> StdioServerStream:
        """Our stdin/stdout; ``unread`` is input already read from stdin (by the fast
        start) that must be handled first."""
        loop = asyncio.get_running_loop()
        stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
        try:
            reader = asyncio.StreamReader(limit=READ_CHUNK)
            await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader),
                os.fdopen(stdin, "rb", 0, closefd=False),
            )

            async def read() -> bytes:
                return await reader.read(READ_CHUNK)
        except ValueError:

            async def read() -> bytes:
                return await anyio.to_thread.run_sync(os.read, stdin, READ_CHUNK)

        try:
            transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, os.fdopen(stdout, "wb", 0, closefd=False)
            )
            writer = asyncio.StreamWriter(transport, protocol, None, loop)

            async def write(data: bytes) -> None:
                writer.write(data)
                await writer.drain()
        except ValueError:

            async def write(data: bytes) -> None:
                await anyio.to_thread.run_sync(_write_all, stdout, data)

        stream = cls(read, write, max_line=max_line)
        if unread:
            stream._ready.extend(stream._framer.feed(unread))
        return stream

    async def _read_chunk(self) -> bytes:
        if self._broken:
            raise anyio.BrokenResourceError("stdout is closed: nothing could be answered")
        return await self._read()

    async def send(self, message: Message) -> None:
        """Write one message.

        Raises:
            anyio.BrokenResourceError: the reader of our stdout is gone (then ``receive``
                raises it too, so the connection ends instead of serving unanswerable calls).
        """
        async with self._lock:
            if self._broken:
                raise anyio.BrokenResourceError("stdout is closed")
            try:
                await self._write(encode(message) + b"\n")
            except OSError as exc:  # EPIPE, ECONNRESET: the client closed its end
                self._broken = True
                raise anyio.BrokenResourceError("stdout is closed") from exc

    async def aclose(self) -> None:
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class StdioChild(_Framed):
    """A spawned MCP server on stdio (the client face towards a local upstream).

    Use as ``async with StdioChild(argv) as child:``; leaving the block stops the child.
    ``pass_fds`` are descriptors the child inherits (under the same numbers).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        max_line: int = DEFAULT_MAX_LINE,
        name: str = "",
        pass_fds: Sequence[int] = (),
        stderr_filter: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(max_line, MessageDecoder(max_bytes=max_line))
        if not argv:
            raise ValueError("argv must not be empty")
        self.argv = list(argv)
        self.name = name or os.path.basename(self.argv[0])
        self._env = dict(env) if env is not None else child_environment(os.environ)
        self._cwd = cwd
        self._pass_fds = tuple(pass_fds)
        self._stderr_filter = stderr_filter
        self._unread = LogCounter(UNREADABLE_LOG_INTERVAL)
        self._process: anyio.abc.Process | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._send_lock = anyio.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def __aenter__(self) -> StdioChild:
        self._process = await anyio.open_process(
            self.argv,
            env=self._env,
            cwd=self._cwd,
            start_new_session=True,
            pass_fds=self._pass_fds,
        )
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._pump_stderr)
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        with anyio.CancelScope(shield=True):
            await self.aclose()  # bounded: the escalation has its own deadlines
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(*exc_info)  # type: ignore[arg-type]

    async def _read_chunk(self) -> bytes:
        assert self._process is not None and self._process.stdout is not None
        try:
            return await self._process.stdout.receive(READ_CHUNK)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return b""

    def _unreadable(self, error: BastionError) -> None:
        """Logged, at most once per ``UNREADABLE_LOG_INTERVAL`` with a count of the rest."""
        if (unread := self._unread.count()) is not None:
            logger.warning(
                "upstream %s sent %d message(s) that could not be read; the last: %s",
                self.name,
                unread,
                error,
            )

    async def send(self, message: Message) -> None:
        assert self._process is not None and self._process.stdin is not None
        async with self._send_lock:
            await self._process.stdin.send(encode(message) + b"\n")

    async def _pump_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        framer = LineFramer(STDERR_LINE_MAX)
        try:
            async for chunk in self._process.stderr:
                for line in framer.feed(chunk):
                    if line is OVERSIZED:
                        text = "<line too long>"
                    else:
                        text = line.decode("utf-8", "replace")
                        if self._stderr_filter is not None:
                            text = self._stderr_filter(text)
                    logger.info("[%s stderr] %s", self.name, text)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def aclose(self) -> None:
        """Stop the child: close stdin, then SIGTERM its group, then SIGKILL (bounded)."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                await process.stdin.aclose()
        with anyio.move_on_after(CLOSE_STDIN_GRACE):
            await process.wait()
            return
        for sig, grace in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, TERM_GRACE)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            with anyio.move_on_after(grace):
                await process.wait()
                return
        logger.warning("child %s (pid %d) did not exit after SIGKILL", self.name, process.pid)
