"""The egress filter: an HTTP CONNECT proxy on a unix socket, allow-listed by domain.

A sandbox with network access reaches nothing but this socket (bound into it; its own
network namespace has no route out). The proxy accepts only ``CONNECT host:port``, checks
the host against the allow-list (exact names, or ``*.suffix`` for subdomains; ports 443
and 80 unless the entry names one), resolves the name itself and refuses addresses that
are internal (loopback, private, shared, link-local, ULA, multicast: SSRF, UP-3) unless
told otherwise. Denials
are answered 403 and logged; nothing else is read from a refused client.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

import anyio
import anyio.abc
from anyio.abc import TaskStatus

__all__ = ["EgressProxy", "Resolver", "parse_allow_entry"]

logger = logging.getLogger(__name__)

HEAD_MAX: Final = 8 * 1024  # a CONNECT request head is one short line and a few headers
HEAD_TIMEOUT: Final = 10.0  # seconds a client has to send its request head
CONNECT_TIMEOUT: Final = 10.0  # seconds to reach an allowed upstream
DEFAULT_PORTS: Final = frozenset({80, 443})
RELAY_CHUNK: Final = 64 * 1024

Resolver = Callable[[str, int], Awaitable[list[str]]]

# Where an allowed name must never lead (UP-3): this host, its networks, cloud metadata.
_INTERNAL: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
    )
)  # fmt: skip


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _INTERNAL)


def parse_allow_entry(entry: str) -> tuple[str, frozenset[int]]:
    """``"pypi.org"`` -> ("pypi.org", {80, 443}); ``"*.x.org:8443"`` -> ("*.x.org", {8443}).

    Raises:
        ValueError: an empty or malformed entry.
    """
    host, sep, port = entry.strip().lower().rpartition(":")
    if not sep or not port.isdigit():
        host, ports = entry.strip().lower(), DEFAULT_PORTS
    else:
        ports = frozenset({int(port)})
    host = host.rstrip(".")
    label = host.removeprefix("*.")
    if not label or any(c in label for c in "*/ @") or not 0 < min(ports) <= max(ports) < 65536:
        raise ValueError(f"not a domain allow-list entry: {entry!r}")
    return host, ports


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class EgressProxy:
    """Serve ``run(path)`` for one sandbox; ``allow`` as in ``NetworkPolicy.allow``."""

    def __init__(
        self,
        allow: Sequence[str],
        *,
        resolve: Resolver | None = None,
        allow_private: bool = False,
    ) -> None:
        self._rules = [parse_allow_entry(entry) for entry in allow]
        self._resolve = resolve or _system_resolve
        self._allow_private = allow_private

    def allowed(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        for pattern, ports in self._rules:
            if port not in ports:
                continue
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False

    async def run(
        self, path: Path, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        listener = await anyio.create_unix_listener(path)
        path.chmod(0o666)  # the sandbox user connects to it; only its sandbox can see it
        async with listener:
            task_status.started()
            await listener.serve(self._handle)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            try:
                head, rest = await self._read_head(client)
                target = self._check(head)
            except (_Refused, anyio.EndOfStream, anyio.BrokenResourceError, TimeoutError) as exc:
                status = exc.status if isinstance(exc, _Refused) else 400
                await _answer(client, status)
                return
            host, port = target
            try:
                upstream = await self._connect(host, port)
            except _Refused as exc:
                await _answer(client, exc.status)
                return
            async with upstream:
                await client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    await upstream.send(rest)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_relay, client, upstream, tg.cancel_scope)
                    tg.start_soon(_relay, upstream, client, tg.cancel_scope)

    async def _read_head(self, client: anyio.abc.SocketStream) -> tuple[bytes, bytes]:
        buffer = b""
        with anyio.fail_after(HEAD_TIMEOUT):
            while b"\r\n\r\n" not in buffer:
                if len(buffer) > HEAD_MAX:
                    raise _Refused(431, "request head too large")
                buffer += await client.receive(HEAD_MAX)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        return head, rest

    def _check(self, head: bytes) -> tuple[str, int]:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, _, remainder = request_line.partition(" ")
        authority = remainder.partition(" ")[0]
        if method != "CONNECT":
            raise _Refused(405, f"method {method[:16]!r}")
        host, sep, port_text = authority.rpartition(":")
        host = host.strip("[]")
        if not sep or not port_text.isdigit() or not host:
            raise _Refused(400, "malformed CONNECT target")
        port = int(port_text)
        if not self.allowed(host, port):
            logger.warning("sandbox egress: denied %s:%d (not in the allow-list)", host[:253], port)
            raise _Refused(403, "not allowed")
        return host, port

    async def _connect(self, host: str, port: int) -> anyio.abc.SocketStream:
        try:
            with anyio.fail_after(CONNECT_TIMEOUT):
                addresses = await self._resolve(host, port)
        except (OSError, TimeoutError) as exc:
            raise _Refused(502, "cannot resolve") from exc
        usable = [a for a in addresses if self._allow_private or not _internal(a)]
        if not usable:
            logger.warning("sandbox egress: denied %s (resolves to an internal address)", host)
            raise _Refused(403, "internal address")
        for address in usable:
            try:
                with anyio.fail_after(CONNECT_TIMEOUT):
                    return await anyio.connect_tcp(address, port)
            except (OSError, TimeoutError):
                continue
        raise _Refused(502, "cannot connect")


class _Refused(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


_REASONS: Final = {
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
}


async def _answer(client: anyio.abc.SocketStream, status: int) -> None:
    line = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Length: 0\r\n\r\n"
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await client.send(line.encode())


async def _relay(
    source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, scope: anyio.CancelScope
) -> None:
    try:
        while True:
            data = await source.receive(RELAY_CHUNK)
            await sink.send(data)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    try:
        await sink.send_eof()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        scope.cancel()
