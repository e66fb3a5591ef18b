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
A stop (``stop`` set) is graceful for ``DRAIN_TIMEOUT`` seconds, then what is still served
is cancelled.

The TLS files grant power: whoever may change the certificate and key impersonates the
gateway, and whoever may change the client CAs mints client certificates. ``check_tls_files``
refuses any of them that a user other than root or the gateway's own could change
(``bastion._file_trust``), and a key that a group (other than a user private group) or
every user may read; ``bastion serve`` asks it before anything starts (``with_tls_files``:
exit 78), and ``serve_http`` again before uvicorn loads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import importlib.util
import logging
import math
import resource
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import uvicorn
from anyio.abc import TaskStatus

from bastion._file_trust import change_refused, read_refused
from bastion.errors import ConfigError
from bastion.transport.base import DRAIN_TIMEOUT
from bastion.transport.http_protocol import MAX_HEADER_BYTES, BoundedHttpToolsProtocol
from bastion.transport.http_server import HttpSettings, StreamableHttpApp
from bastion.transport.http_tls_accept import HttpsServer

if TYPE_CHECKING:
    from bastion.config.model import TlsSettings

__all__ = [
    "MAX_HEADER_BYTES",
    "check_tls_files",
    "event_loop_options",
    "fit_open_files",
    "serve_http",
    "with_tls_files",
]

logger = logging.getLogger(__name__)

BACKLOG: Final = 4096  # connections waiting to be accepted (the kernel caps it at somaxconn)
# Files kept beside client sockets: upstream pipes and sockets, databases, logs, the listener.
RESERVED_FILES: Final = 256
CUT_UNWIND_TIMEOUT: Final = 2.0  # seconds the requests cut at the end of a stop get to end


def event_loop_options() -> dict[str, object]:
    """``anyio.run`` backend options: uvloop when it is installed (not on Windows)."""
    return {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}


class _CutAtStop(logging.Filter):
    """Drops uvicorn's traceback of a request it cancelled at the end of a graceful stop
    (``timeout_graceful_shutdown``): the cut is intended, and the audit log records it."""

    def __init__(self, server: uvicorn.Server) -> None:
        super().__init__()
        self._server = server

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (self._server.should_exit and isinstance(error, asyncio.CancelledError))


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
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(_cannot_bind(host, port, exc)) from exc
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def _cannot_bind(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use: stop what listens there, or choose another port"
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}"


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


def check_tls_files(settings: HttpSettings) -> None:
    """Refuse TLS files others could change, and a key others could read (see the module
    docstring); nothing without TLS.

    Raises:
        ConfigError: naming the file, the entry at fault and the command that fixes it.
    """
    if settings.tls_cert_file is None:
        return
    files = [
        (settings.tls_cert_file, "the TLS certificate (gateway.tls.cert_file)"),
        (settings.tls_key_file, "the TLS key (gateway.tls.key_file)"),
        (settings.tls_client_ca_file, "the client CAs (gateway.tls.client_ca)"),
    ]
    for name, what in files:
        if name is not None and (refused := change_refused(Path(name), what)) is not None:
            raise ConfigError(refused)
    if settings.tls_key_file is not None:
        key = Path(settings.tls_key_file)
        if (refused := read_refused(key, "the TLS key (gateway.tls.key_file)")) is not None:
            raise ConfigError(refused)


def with_tls_files(settings: HttpSettings, tls: TlsSettings) -> HttpSettings:
    """``settings`` serving HTTPS with the files of ``gateway.tls``, once ``check_tls_files``
    has passed them.

    Raises:
        ConfigError: as ``check_tls_files``.
    """
    settings = dataclasses.replace(
        settings,
        tls_cert_file=tls.cert_file,
        tls_key_file=tls.key_file,
        tls_client_ca_file=tls.client_ca,
        tls_client_cert=tls.client_cert,
    )
    check_tls_files(settings)
    return settings


def _tls_options(settings: HttpSettings) -> dict[str, Any]:
    if settings.tls_cert_file is None:
        return {}
    check_tls_files(settings)
    options: dict[str, Any] = {
        "ssl_certfile": settings.tls_cert_file,
        "ssl_keyfile": settings.tls_key_file,
    }
    if settings.tls_client_ca_file is not None:
        options["ssl_ca_certs"] = settings.tls_client_ca_file
        required = settings.tls_client_cert == "required"
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return options


def _load_tls_files(config: uvicorn.Config, sock: socket.socket) -> None:
    """Load ``config`` now (uvicorn would, once serving), so that a TLS certificate or key
    that cannot be used is a ``ConfigError`` naming the setting and the file (IN-1), said
    before the port is reported open; ``sock`` is closed then."""
    if config.ssl_certfile is None:
        return
    try:
        for setting, path in (("cert_file", config.ssl_certfile), ("key_file", config.ssl_keyfile)):
            try:
                open(path or "", "rb").close()  # only whether it opens: uvicorn reads it
            except OSError as exc:
                problem = f"cannot read {path}: {exc.strerror or exc}"
                raise ConfigError(f"gateway.tls.{setting}: {problem}") from exc
        try:
            config.load()
        except ssl.SSLError as exc:
            files = f"{config.ssl_certfile} and {config.ssl_keyfile}"
            reason = f" ({exc.reason})" if exc.reason else ""  # KEY_VALUES_MISMATCH, ...
            problem = f"not a PEM certificate and its private key{reason}"
            raise ConfigError(f"gateway.tls: {files}: {problem}") from exc
    except ConfigError:
        sock.close()
        raise


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
        # A stop waits for the answers in flight, but not for ever: an open GET stream or a
        # long call would hold it; past the bound, uvicorn cancels them (each audited).
        timeout_graceful_shutdown=math.ceil(DRAIN_TIMEOUT),
        limit_concurrency=connections,
        server_header=False,
        date_header=False,
    )
    _load_tls_files(config, sock)
    tls = settings.tls_cert_file is not None
    server = HttpsServer(config, connections) if tls else uvicorn.Server(config)
    # Signals are the application's to handle (it has children to stop first); uvicorn's
    # own capture would re-raise SIGTERM after serve() and kill us before that cleanup.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    scheme = "https" if tls else "http"
    logger.info("listening on %s://%s:%d%s", scheme, settings.host, port, settings.path)
    task_status.started(port)
    cut_at_stop = _CutAtStop(server)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(cut_at_stop)
    try:
        async with anyio.create_task_group() as tg:
            if stop is not None:
                tg.start_soon(_exit_when, stop, server)
            await server.serve(sockets=[sock])
            tg.cancel_scope.cancel()
        # uvicorn does not wait for the requests it cut at the end of a stop: they end here.
        with anyio.move_on_after(CUT_UNWIND_TIMEOUT):
            while server.server_state.tasks:
                await anyio.sleep(0.01)
    finally:
        uvicorn_log.removeFilter(cut_at_stop)
        with anyio.CancelScope(shield=True):
            server.should_exit = True
            if isinstance(server, HttpsServer):
                server.stop_accepting()  # before its socket closes, when cancelled mid-serve
            sock.close()
