"""Accepting HTTPS connections: each counts toward ``max_connections`` from the moment it is
accepted, and its TLS handshake must end within the request-head deadline (DS-2).

uvicorn hands a TLS listener to ``loop.create_server``, which gives a handshake 60 s (the
loop's default) and tells the HTTP protocol of a connection only once its handshake is over:
until then uvicorn does not count it, so idle sockets that never send a ClientHello were
neither limited nor timed, and enough of them ran the process out of file descriptors.
``HttpsServer`` is uvicorn's server with its own accept loop instead (``TlsAcceptor``):

* a connection accepted while ``max_connections`` are open (handshakes included) is closed
  at once, before its handshake: a TLS client cannot be answered 503 before it, and the
  open-file limit raised to fit ``max_connections`` is never passed by client sockets;
* otherwise its HTTP protocol enters uvicorn's connection count at accept (so a request
  once the cap is reached is answered 503 as on plain HTTP), and the handshake runs with
  ``ssl_handshake_timeout`` ``HEAD_TIMEOUT``; the head timer then counts from the accept,
  so handshake and request head together take at most ``HEAD_TIMEOUT`` (408 past it);
* a handshake that fails or times out removes the connection from the count.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import uvicorn

from bastion._log_counts import LogCounter
from bastion.transport import http_protocol
from bastion.transport.http_protocol import BoundedHttpToolsProtocol

if TYPE_CHECKING:
    from uvicorn.server import Protocols

__all__ = ["HttpsServer", "TlsAcceptor"]

logger = logging.getLogger(__name__)

ACCEPTS_PER_WAKE: Final = 128  # connections taken from the backlog per readiness callback
ACCEPT_RETRY_DELAY: Final = 1.0  # seconds without accepting once out of files (as asyncio)
REFUSAL_LOG_INTERVAL: Final = 10.0  # seconds between warnings about refused connections
# The client left (or a firewall refused it) before its connection was accepted: take the next.
_CLIENT_GONE: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class TlsAcceptor:
    """Accepts on ``listener`` (bound, listening, non-blocking), admits connections while
    fewer than ``cap`` are in ``connections`` (uvicorn's set, which the protocols leave on
    ``connection_lost``), and runs their TLS handshakes."""

    def __init__(
        self,
        listener: socket.socket,
        context: ssl.SSLContext,
        new_protocol: Callable[[], BoundedHttpToolsProtocol],
        connections: set[Protocols],
        cap: int,
    ) -> None:
        self._listener = listener
        self._context = context
        self._new_protocol = new_protocol
        self._connections = connections
        self._cap = cap
        self._loop = asyncio.get_running_loop()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._resume: asyncio.TimerHandle | None = None
        self._accepting = False
        self._refusals = LogCounter(REFUSAL_LOG_INTERVAL, self._loop.time)

    def start(self) -> None:
        self._accepting = True
        self._loop.add_reader(self._listener.fileno(), self._accept_ready)

    def stop(self) -> None:
        """Stop accepting and abort the handshakes in progress (their sockets close)."""
        if self._accepting:
            self._accepting = False
            self._loop.remove_reader(self._listener.fileno())
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        for task in self._handshakes:
            task.cancel()

    async def aclose(self) -> None:
        self.stop()
        if self._handshakes:
            await asyncio.gather(*self._handshakes, return_exceptions=True)

    def _accept_ready(self) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _CLIENT_GONE:
                    continue
                # Out of files or memory (EMFILE, ENOBUFS...): the connection stays in the
                # backlog, so retrying at once would spin.
                logger.error("accepting failed (%s); retrying in %.0f s", exc, ACCEPT_RETRY_DELAY)
                self._pause()
                return
            self._admit(conn)

    def _pause(self) -> None:
        if self._accepting:
            self._accepting = False
            self._loop.remove_reader(self._listener.fileno())
            self._resume = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._resume = None
        self.start()

    def _admit(self, conn: socket.socket) -> None:
        if len(self._connections) >= self._cap:
            conn.close()
            self._refused()
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        protocol = self._new_protocol()
        protocol.count_head_time_from(self._loop.time())
        self._connections.add(protocol)
        task = self._loop.create_task(self._handshake(conn, protocol))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, protocol: BoundedHttpToolsProtocol) -> None:
        done = False
        try:
            await self._loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self._context,
                ssl_handshake_timeout=http_protocol.HEAD_TIMEOUT,
            )
            done = True
        except Exception as exc:  # timed out, reset, not TLS, a refused client certificate
            logger.debug("TLS handshake failed: %r", exc)
        finally:
            if not done:  # the loop closed the socket; the protocol never saw a connection
                self._connections.discard(protocol)

    def _refused(self) -> None:
        if (refused := self._refusals.count()) is not None:
            logger.warning(
                "max_connections (%d) reached: %d HTTPS connection(s) closed before the handshake",
                self._cap,
                refused,
            )


class HttpsServer(uvicorn.Server):
    """uvicorn's server for a TLS ``config``, accepting on the sockets given to ``serve``
    through a ``TlsAcceptor`` each, at most ``cap`` connections at once."""

    def __init__(self, config: uvicorn.Config, cap: int) -> None:
        super().__init__(config)
        self._cap = cap
        self._acceptors: list[TlsAcceptor] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan; no listener of uvicorn's own
        context = self.config.ssl
        if context is None:
            raise ValueError("HttpsServer needs a TLS configuration")
        loop = asyncio.get_running_loop()

        def new_protocol() -> BoundedHttpToolsProtocol:
            return BoundedHttpToolsProtocol(
                config=self.config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=loop,
            )

        connections = self.server_state.connections
        for listener in sockets or []:
            acceptor = TlsAcceptor(listener, context, new_protocol, connections, self._cap)
            acceptor.start()
            self._acceptors.append(acceptor)

    def stop_accepting(self) -> None:
        for acceptor in self._acceptors:
            acceptor.stop()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for acceptor in self._acceptors:
            await acceptor.aclose()
        await super().shutdown(sockets=sockets)
