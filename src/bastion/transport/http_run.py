"""Running a Streamable HTTP app on a socket with uvicorn (httptools), secure defaults included.

The socket is bound here, before uvicorn starts, so callers learn the real port (``port=0``
picks a free one) and readiness is reported through ``task_status`` only once the socket
is listening. ``event_loop_options`` picks uvloop where it is installed (the HTTP entry
points run on it; the stdio ones keep asyncio, which starts faster).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import socket
import ssl
from typing import Any, Final

import anyio
import uvicorn
from anyio.abc import TaskStatus

from bastion.transport.http_protocol import MAX_HEADER_BYTES, BoundedHttpToolsProtocol
from bastion.transport.http_server import HttpSettings, StreamableHttpApp

__all__ = ["MAX_HEADER_BYTES", "event_loop_options", "serve_http"]

logger = logging.getLogger(__name__)

KEEP_ALIVE_TIMEOUT: Final = 15  # seconds an idle keep-alive connection is kept
MAX_CONNECTIONS: Final = 4096  # beyond this uvicorn answers 503


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
    sock.listen(1024)
    sock.setblocking(False)
    return sock


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
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        limit_concurrency=MAX_CONNECTIONS,
        server_header=False,
        date_header=False,
    )
    server = uvicorn.Server(config)
    # Signals are the application's to handle (it has children to stop first); uvicorn's
    # own capture would re-raise SIGTERM after serve() and kill us before that cleanup.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    scheme = "https" if settings.tls_cert_file else "http"
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
            sock.close()
