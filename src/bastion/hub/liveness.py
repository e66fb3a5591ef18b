"""Is an instance alive? Its process, its port and its MCP endpoint, each asked separately.

A file says an instance exists; only these checks say it can be used. Each check is bounded
by a named timeout and answers True or False: a hostile or broken instance can make a check
fail, never raise into the hub. ``wait_process_exit`` uses a pidfd where Linux has one, so a
killed instance leaves at once, and polls the pid elsewhere.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlsplit

import anyio

from bastion.client import ClientSession
from bastion.transport.http_client import HttpClientStream

if TYPE_CHECKING:
    from bastion.hub.registry import InstanceRecord

__all__ = [
    "CONNECT_TIMEOUT",
    "PING_TIMEOUT",
    "McpPinger",
    "Pinger",
    "pid_alive",
    "tcp_listening",
    "wait_process_exit",
]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 1.0  # seconds for a loopback TCP connect; more means it is not there
PING_TIMEOUT: Final = 3.0  # seconds for an MCP answer; a busy instance may be slow, not dead
PID_POLL_INTERVAL: Final = 0.25  # seconds between pid checks where there is no pidfd


class Pinger(Protocol):
    async def __call__(self, record: InstanceRecord) -> bool: ...


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists (it may belong to another user)."""
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another uid
    except OverflowError:
        return False
    return True


async def wait_process_exit(pid: int) -> None:
    """Return once process ``pid`` has exited."""
    pidfd_open = getattr(os, "pidfd_open", None)
    fd = -1
    if pidfd_open is not None:
        try:
            fd = pidfd_open(pid)
        except ProcessLookupError:
            return
        except OSError:
            fd = -1  # old kernel or seccomp: poll instead
    if fd >= 0:
        try:
            await anyio.wait_readable(fd)  # a pidfd becomes readable when the process exits
        finally:
            os.close(fd)
        return
    while pid_alive(pid):
        await anyio.sleep(PID_POLL_INTERVAL)


async def tcp_listening(record: InstanceRecord) -> bool:
    """True when the instance's port accepts a TCP connection."""
    host = urlsplit(record.url).hostname or "127.0.0.1"
    with anyio.move_on_after(CONNECT_TIMEOUT):
        try:
            stream = await anyio.connect_tcp(host, record.port)
        except OSError:
            return False
        await stream.aclose()
        return True
    return False


class McpPinger:
    """Asks the instance for ``server/discover`` (falling back to ``initialize`` for a
    2025-11-25 server) over a fresh connection; True when it answers in time."""

    def __init__(self, timeout: float = PING_TIMEOUT) -> None:
        self.timeout = timeout

    async def __call__(self, record: InstanceRecord) -> bool:
        headers = {}
        if record.credential is not None:
            headers["authorization"] = f"Bearer {record.credential}"
        with anyio.move_on_after(self.timeout):
            try:
                async with (
                    HttpClientStream(record.url, headers=headers) as stream,
                    ClientSession(stream, request_timeout=self.timeout) as session,
                ):
                    await session.connect()
            except Exception:  # whatever the instance does wrong is a failed ping, not ours
                logger.debug("instance %s did not answer a ping", record.id, exc_info=True)
                return False
            return True
        logger.debug("instance %s did not answer within %.1fs", record.id, self.timeout)
        return False
