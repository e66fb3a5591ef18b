"""Running a Streamable HTTP app on a socket with uvicorn (httptools), secure defaults included.

The socket is bound here, before uvicorn starts, so callers learn the real port (``port=0``
picks a free one) and readiness is reported through ``task_status`` only once the socket
is listening. ``event_loop_options`` picks uvloop where it is installed (the HTTP entry
points run on it; the stdio ones keep asyncio, which starts faster). ``fit_open_files``
raises the process's open-file limit so that ``max_connections`` client sockets fit beside
the gateway's own files (many systems start processes with a soft limit of 1024). Proxy
headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are never read: the client address the
failed-auth throttle counts and the audit log records is the connection's peer. With TLS,
``http_tls_accept.HttpsServer`` accepts instead of uvicorn's listener, so that a connection
counts toward ``max_connections`` from its accept and its handshake has a deadline (DS-2).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import resource
import socket
import ssl
from typing import Any, Final

import anyio
import uvicorn
from anyio.abc import TaskStatus

from bastion.transport.http_protocol import MAX_HEADER_BYTES, BoundedHttpToolsProtocol
from bastion.transport.http_server import HttpSettings, StreamableHttpApp
from bastion.transport.http_tls_accept import HttpsServer

__all__ = ["MAX_HEADER_BYTES", "event_loop_options", "fit_open_files", "serve_http"]

logger = logging.getLogger(__name__)

BACKLOG: Final = 4096  # connections waiting to be accepted (the kernel caps it at somaxconn)
# Files kept beside client sockets: upstream pipes and sockets, databases, logs, the listener.
RESERVED_FILES: Final = 256


def event_loop_options() -> dict[str, object]:
    """``anyio.run`` backend options: uvloop when it is installed (not on Windows)."""
    return {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}


async def _exit_when(stop: anyio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True  # uvicorn closes connections and runs lifespan shutdown


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only for
    # sockets that say so; without it every answer waited ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def fit_open_files(max_connections: int) -> int:
    """Raise the soft open-file limit (as far as the hard one allows) to fit
    ``max_connections`` client sockets plus ``RESERVED_FILES``; the connection cap that fits,
    with a warning when that is less than asked (a socket past the limit would fail
    ``accept`` and starve the gateway's own files)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    want = max_connections + RESERVED_FILES
    if soft != unlimited and soft < want:
        raised = want if hard == unlimited else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == unlimited or soft >= want:
        return max_connections
    fits = max(1, soft - RESERVED_FILES)
    logger.warning(
        "the open-file limit (%d) fits %d connections, not max_connections %d: "
        "raise the hard limit (ulimit -Hn, LimitNOFILE=) to serve more",
        soft,
        fits,
        max_connections,
    )
    return fits


def _tls_options(settings: HttpSettings) -> dict[str, Any]:
    if settings.tls_cert_file is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": settings.tls_cert_file,
        "ssl_keyfile": settings.tls_key_file,
    }
    if settings.tls_client_ca_file is not None:
        options["ssl_ca_certs"] = settings.tls_client_ca_file
        required = settings.tls_client_cert == "required"
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return options


async def serve_http(
    app: StreamableHttpApp,
    *,
    stop: anyio.Event | None = None,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``stop`` is set (a graceful shutdown) or until cancelled;
    reports the bound port once listening."""
    settings = app.settings
    connections = fit_open_files(settings.limits.max_connections)
    sock = bind_socket(settings.host, settings.port)
    port = sock.getsockname()[1]
    app.set_port(port)
    config = uvicorn.Config(
        app,
        **_tls_options(settings),
        lifespan="on",
        log_config=None,
        access_log=False,
        http=BoundedHttpToolsProtocol,
        ws="none",
        # The client address is the TCP peer (AU-8, AD-1): uvicorn would otherwise take it,
        # and the scheme, from X-Forwarded-* sent by any loopback client.
        proxy_headers=False,
        timeout_keep_alive=settings.limits.keep_alive_timeout,
        limit_concurrency=connections,
        server_header=False,
        date_header=False,
    )
    tls = settings.tls_cert_file is not None
    server = HttpsServer(config, connections) if tls else uvicorn.Server(config)
    # Signals are the application's to handle (it has children to stop first); uvicorn's
    # own capture would re-raise SIGTERM after serve() and kill us before that cleanup.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    scheme = "https" if tls else "http"
    logger.info("listening on %s://%s:%d%s", scheme, settings.host, port, settings.path)
    task_status.started(port)
    try:
        async with anyio.create_task_group() as tg:
            if stop is not None:
                tg.start_soon(_exit_when, stop, server)
            await server.serve(sockets=[sock])
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            server.should_exit = True
            if isinstance(server, HttpsServer):
                server.stop_accepting()  # before its socket closes, when cancelled mid-serve
            sock.close()
