"""A small HTTP/1.1 client for one upstream MCP endpoint: h11 framing over anyio streams.

The gateway talks to each HTTP upstream through one ``HttpWire``: a pool of kept-alive
connections to the endpoint's origin (TLS for ``https``), at most ``max_connections`` of
them, handed out last-in first-out. It does only what the MCP client face needs (a request
with a body, a status, headers and a body read as it arrives) and so costs a fraction of a
general client per request: no per-request URL parsing, no redirect or auth flows, and an
idle connection is checked with one zero-timeout ``poll`` instead of scanning the pool.

Waits are bounded by the callers (every MCP request has its own timeout, and a stream of
server messages may rightly stay quiet for hours); connecting has ``connect_timeout``.
A request that fails on a reused connection before any byte of an answer arrived (the
server closed it while it sat idle) is sent once more on a fresh connection. The
``ConnectChecks`` are asked of each new connection (never of a reused one): ``before``
it is made (when it says no, the connection is not made and the request fails with
``HttpFailure``), and ``after`` once the TCP connection is up, before any byte is sent on it
(before the TLS handshake too), with its local and remote addresses: a check made before
connecting cannot see who took the port since, this one sees the socket that answered.
When it says no, the connection is closed unused and the request fails the same way.
"""

from __future__ import annotations

import select
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11
from anyio.streams.tls import TLSStream

from bastion._types import NO_CHECKS, ConnectChecks

__all__ = ["HttpFailure", "HttpWire", "WireResponse"]

CHUNK: Final = 65536
MAX_HEADER_BYTES: Final = 64 * 1024
IDLE_LIMIT_S: Final = 60.0  # an idle connection older than this is closed, not reused


class HttpFailure(Exception):
    """The upstream could not be reached, or broke the HTTP exchange; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Connection:
    stream: anyio.abc.ByteStream
    fd: int
    h11: h11.Connection
    idle_since: float = 0.0

    def reusable(self, now: float) -> bool:
        """Still good for another request: idle recently, and nothing (not even EOF) waiting."""
        if now - self.idle_since > IDLE_LIMIT_S:
            return False
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return not poller.poll(0)


class WireResponse:
    """Status, lower-cased headers, and the body as it arrives."""

    __slots__ = ("_conn", "_done", "_owner", "headers", "status")

    def __init__(
        self, owner: HttpWire, conn: _Connection, status: int, headers: dict[str, str]
    ) -> None:
        self._owner = owner
        self._conn = conn
        self._done = False
        self.status = status
        self.headers = headers

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; ends with the message (or raises HttpFailure)."""
        while not self._done:
            event = await self._owner._next_event(self._conn)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._done = True
            else:
                raise HttpFailure("ConnectionClosed")

    async def read(self, limit: int) -> bytes:
        """The whole body, or its first ``limit`` bytes and then no more (the rest is dropped)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    @property
    def complete(self) -> bool:
        return self._done


class HttpWire:
    def __init__(
        self,
        url: str,
        *,
        max_connections: int,
        connect_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        checks: ConnectChecks = NO_CHECKS,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._authority = parts.netloc.rpartition("@")[2].encode()  # never send userinfo
        self._target = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode()
        self._ssl = ssl_context
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._checks = checks
        self._idle: list[_Connection] = []
        self._open = 0
        self._slot_freed: anyio.Event | None = None
        self._closed = False

    @asynccontextmanager
    async def request(
        self, method: str, headers: Mapping[str, str], body: bytes = b""
    ) -> AsyncIterator[WireResponse]:
        """Send one request; yields once the status and headers are in.

        Leaving the block early (or on an error, or cancelled) closes the connection
        unless the whole answer was read; a finished one goes back to the pool.
        """
        try:
            wire_headers = [(b"host", self._authority)]
            wire_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            if body or method in ("POST", "PUT", "PATCH"):
                wire_headers.append((b"content-length", str(len(body)).encode()))
            request = h11.Request(method=method, target=self._target, headers=wire_headers)
        except (UnicodeEncodeError, h11.LocalProtocolError) as exc:
            raise HttpFailure("InvalidRequest") from exc  # e.g. a configured header value
        conn, response = await self._exchange(request, body)
        try:
            yield response
        except BaseException:
            await self._discard(conn)
            raise
        if (
            response.complete
            and conn.h11.our_state is conn.h11.their_state is h11.DONE
            and not self._closed
        ):
            self._release(conn)
        else:
            await self._discard(conn)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._discard(conn)

    # -- internals -------------------------------------------------------------------------

    async def _exchange(
        self, request: h11.Request, body: bytes
    ) -> tuple[_Connection, WireResponse]:
        for _attempt in range(2):
            conn, reused = await self._checkout()
            try:
                payload = conn.h11.send(request) or b""
                if body:
                    payload += conn.h11.send(h11.Data(data=body)) or b""
                payload += conn.h11.send(h11.EndOfMessage()) or b""
                await conn.stream.send(payload)
                event = await self._next_event(conn)
                while isinstance(event, h11.InformationalResponse):
                    event = await self._next_event(conn)
            except HttpFailure:
                await self._discard(conn)
                if reused:
                    continue  # closed by the server while idle: once more on a new one
                raise
            except BaseException:
                await self._discard(conn)
                raise
            if not isinstance(event, h11.Response):
                await self._discard(conn)
                if reused and isinstance(event, h11.ConnectionClosed):
                    continue
                raise HttpFailure("ConnectionClosed")
            headers = {
                name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers
            }
            return conn, WireResponse(self, conn, event.status_code, headers)
        raise HttpFailure("ConnectionClosed")

    async def _next_event(self, conn: _Connection) -> h11.Event:
        while True:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpFailure("RemoteProtocolError") from exc
            if event is h11.PAUSED:
                raise HttpFailure("RemoteProtocolError")  # we never pipeline: cannot happen
            if event is not h11.NEED_DATA:
                assert isinstance(event, h11.Event)
                return event
            try:
                data = await conn.stream.receive(CHUNK)
            except (anyio.EndOfStream, anyio.IncompleteRead):
                data = b""
            except (OSError, anyio.BrokenResourceError, ssl.SSLError) as exc:
                raise HttpFailure(type(exc).__name__) from exc
            conn.h11.receive_data(data)

    async def _checkout(self) -> tuple[_Connection, bool]:
        if self._closed:
            raise HttpFailure("ClientClosed")
        while True:
            now = time.monotonic()
            while self._idle:
                conn = self._idle.pop()
                if conn.reusable(now):
                    return conn, True
                await self._discard(conn)
            if self._open < self._max:
                break
            if self._slot_freed is None:
                self._slot_freed = anyio.Event()
            await self._slot_freed.wait()
        self._open += 1
        try:
            return await self._connect(), False
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    async def _connect(self) -> _Connection:
        before, after = self._checks
        if before is not None and not await before():
            raise HttpFailure("ConnectCheckFailed")
        tcp: anyio.abc.SocketStream | None = None
        try:
            with anyio.fail_after(self._connect_timeout):
                tcp = await anyio.connect_tcp(self._host, self._port)
                raw = tcp.extra(anyio.abc.SocketAttribute.raw_socket)  # noqa: S610
                # Who answered, asked before the first byte (the TLS hello included) is sent.
                if after is not None and not await after(
                    raw.getsockname()[:2], raw.getpeername()[:2]
                ):
                    raise HttpFailure("ConnectCheckFailed")
                stream: anyio.abc.ByteStream = tcp
                if self._tls:
                    context = self._ssl or ssl.create_default_context()
                    stream = await TLSStream.wrap(
                        stream, hostname=self._host, ssl_context=context, standard_compatible=False
                    )
        except BaseException as exc:
            if tcp is not None:
                await anyio.aclose_forcefully(tcp)
            if isinstance(exc, TimeoutError):
                raise HttpFailure("ConnectTimeout") from exc
            if isinstance(exc, (OSError, ssl.SSLError, anyio.BrokenResourceError)):
                raise HttpFailure(type(exc).__name__) from exc
            raise
        machine = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        return _Connection(stream, raw.fileno(), machine)

    def _release(self, conn: _Connection) -> None:
        """Back to the pool: a connection whose exchange ended cleanly."""
        conn.h11.start_next_cycle()
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake()

    async def _discard(self, conn: _Connection) -> None:
        self._open -= 1
        self._wake()
        await anyio.aclose_forcefully(conn.stream)

    def _wake(self) -> None:
        if self._slot_freed is not None:
            self._slot_freed.set()
            self._slot_freed = None
