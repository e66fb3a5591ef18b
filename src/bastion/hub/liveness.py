"""Is an instance alive? Its process, its port and its MCP endpoint, each asked separately;
and is whoever listens on its port one of our own processes?

A file says an instance exists; only these checks say it can be used. Each check is bounded
by a named timeout and answers True or False: a hostile or broken instance can make a check
fail, never raise into the hub. ``wait_process_exit`` uses a pidfd where Linux has one, so a
killed instance leaves at once, and polls the pid elsewhere. ``listener_is_ours`` reads
``/proc/net/tcp`` and ``/proc/net/tcp6`` (Linux): every LISTEN socket a connection to the
instance's loopback address and port could reach (that address, the wildcard, its IPv4-mapped
form) must belong to our uid, so another local user who binds the port of a stopped instance
never gets the hub's connection (nor its credential). That check is made before
connecting, so the port may change hands before the connection is made; ``peer_is_ours``
closes that gap once it is made: the socket at the other end of our connection (the
table's entry whose local end is our remote end and whose remote end is our local end: a
socket a listener accepted, or still holds in its queue, carries that listener's uid)
must be our uid's, and is asked before anything is sent (``connected_to_ours``: the hub's
connections to a mounted instance and each ping). Elsewhere there is no such table and
both checks are skipped (they answer True).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from bastion._types import ConnectChecks, SocketAddress
from bastion.client import ClientSession
from bastion.transport.http_client import HttpClientStream

if TYPE_CHECKING:
    from bastion.hub.registry import InstanceRecord

__all__ = [
    "CONNECT_TIMEOUT",
    "PING_TIMEOUT",
    "McpPinger",
    "Pinger",
    "connected_to_ours",
    "listener_is_ours",
    "listener_uids",
    "peer_is_ours",
    "peer_uid",
    "pid_alive",
    "tcp_listening",
    "wait_process_exit",
]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 1.0  # seconds for a loopback TCP connect; more means it is not there
PING_TIMEOUT: Final = 3.0  # seconds for an MCP answer; a busy instance may be slow, not dead
PID_POLL_INTERVAL: Final = 0.25  # seconds between pid checks where there is no pidfd
PROC_NET_TCP: Final = ("/proc/net/tcp", "/proc/net/tcp6")  # Linux's socket tables
_LISTEN: Final = "0A"  # the state column of a listening socket in those tables

ReadTable = Callable[[str], str | None]  # a /proc/net table's text; None when unreadable


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


def _read_table(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None  # no IPv6, or not Linux


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A /proc/net/tcp address: 32-bit words, each in the host's byte order."""
    raw = bytes.fromhex(hex_address)
    if sys.byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(raw)


def listener_uids(host: str, port: int, read: ReadTable = _read_table) -> set[int] | None:
    """The uids owning a LISTEN socket that a connection to ``host``:``port`` could reach
    (``host``, the wildcard, the IPv4-mapped form); None when no table could be read."""
    target = ipaddress.ip_address(host)
    reachable: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = {target}
    if isinstance(target, ipaddress.IPv4Address):
        reachable |= {
            ipaddress.IPv4Address(0),
            ipaddress.IPv6Address(0),
            ipaddress.IPv6Address(f"::ffff:{target}"),
        }
    else:
        reachable.add(ipaddress.IPv6Address(0))
    uids: set[int] = set()
    tables = [text for text in map(read, PROC_NET_TCP) if text is not None]
    if not tables:
        return None
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 8 or fields[3] != _LISTEN:
                continue
            address, _, hex_port = fields[1].partition(":")
            try:
                if int(hex_port, 16) == port and _address(address) in reachable:
                    uids.add(int(fields[7]))
            except ValueError:
                continue  # not a row we understand
    return uids


def listener_is_ours(record: InstanceRecord, read: ReadTable = _read_table) -> bool:
    """True when every socket listening on the instance's loopback port is our uid's (and
    there is one); True where the OS has no /proc/net tables (the check is Linux-only)."""
    if not sys.platform.startswith("linux"):
        return True
    host = urlsplit(record.url).hostname or "127.0.0.1"
    # ``localhost`` may resolve to either loopback address: every listener on both counts.
    hosts = ("127.0.0.1", "::1") if host == "localhost" else (host,)
    uids: set[int] = set()
    for each in hosts:
        try:
            found = listener_uids(each, record.port, read)
        except ValueError:
            return False  # not an address: the registry refuses such URLs anyway
        if found is None:
            logger.warning("cannot read %s; instance %s not reached", PROC_NET_TCP[0], record.id)
            return False
        uids |= found
    return uids == {os.getuid()}


def _endpoint(field: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """A table's ``address:port`` field; an IPv4-mapped IPv6 address as its IPv4 form."""
    address, _, hex_port = field.partition(":")
    return _plain(_address(address)), int(hex_port, 16)


def _plain(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


def peer_uid(
    local: SocketAddress, remote: SocketAddress, read: ReadTable = _read_table
) -> int | None:
    """The uid owning the other end of our TCP connection from ``local`` to ``remote``: the
    table entry whose local end is ``remote`` and whose remote end is ``local``, in any
    state; None when there is none (a peer on another host has none) or no table could be
    read."""
    ours = (_plain(ipaddress.ip_address(local[0])), local[1])
    theirs = (_plain(ipaddress.ip_address(remote[0])), remote[1])
    for text in map(read, PROC_NET_TCP):
        for line in (text or "").splitlines()[1:]:
            fields = line.split()
            try:
                if len(fields) >= 8 and (_endpoint(fields[1]), _endpoint(fields[2])) == (
                    theirs,
                    ours,
                ):
                    return int(fields[7])
            except ValueError:
                continue  # not a row we understand
    return None


def peer_is_ours(
    local: SocketAddress, remote: SocketAddress, read: ReadTable = _read_table
) -> bool:
    """True when the socket at the other end of our connection ``local`` -> ``remote`` is our
    uid's; True where the OS has no /proc/net tables (the check is Linux-only)."""
    if not sys.platform.startswith("linux"):
        return True
    try:
        uid = peer_uid(local, remote, read)
    except ValueError:
        return False  # not an IP address
    return uid == os.getuid()


async def connected_to_ours(local: SocketAddress, remote: SocketAddress) -> bool:
    """``peer_is_ours`` in a thread (reading /proc/net takes milliseconds), for a new
    connection's ``ConnectChecks.after``; logged when it is not."""
    if await anyio.to_thread.run_sync(peer_is_ours, local, remote):
        return True
    logger.warning(
        "the connection to %s port %d reached a socket not of this user; closed before"
        " anything was sent",
        remote[0],
        remote[1],
    )
    return False


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
    2025-11-25 server) over a fresh connection, sent only to a socket of our uid; True when
    it answers in time."""

    def __init__(self, timeout: float = PING_TIMEOUT) -> None:
        self.timeout = timeout

    async def __call__(self, record: InstanceRecord) -> bool:
        headers = {}
        if record.credential is not None:
            headers["authorization"] = f"Bearer {record.credential}"
        with anyio.move_on_after(self.timeout):
            try:
                async with (
                    HttpClientStream(
                        record.url, headers=headers, checks=ConnectChecks(after=connected_to_ours)
                    ) as stream,
                    ClientSession(stream, request_timeout=self.timeout) as session,
                ):
                    await session.connect()
            except Exception:  # whatever the instance does wrong is a failed ping, not ours
                logger.debug("instance %s did not answer a ping", record.id, exc_info=True)
                return False
            return True
        logger.debug("instance %s did not answer within %.1fs", record.id, self.timeout)
        return False
