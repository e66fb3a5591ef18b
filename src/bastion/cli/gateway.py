"""``bastion serve`` and ``bastion stdio``: the gateway over Streamable HTTP or stdio.

Without ``-c``, the gateway fronts the built-in conformance fixture (a stdio child, bare
names), so a fresh install shows something real. Secrets for ``requestState`` are generated
per process: a restart invalidates pending input rounds, which clients then restart. An audit
log the gateway will not write (``AuditStoreError``: its head or chain was changed) ends it
with that error's message (exit 78), not a traceback. On stdio, a fast-started session whose
``initialize`` the pipeline then refuses ends with exit 77.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
import warnings
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import msgspec

from bastion.audit.store import AuditStoreError
from bastion.cli.databases import refuse_unusable_databases
from bastion.cli.signals import on_stop_signal
from bastion.config import Config, ServerConfig, load_config
from bastion.errors import ConfigError
from bastion.gateway import Gateway
from bastion.pipeline.runtime import Security
from bastion.protocol.request_state import RequestStateSealer

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from bastion.cli.fast_start import EarlyStart

__all__ = ["default_config", "run_serve", "run_stdio", "serve_on_stdio"]

logger = logging.getLogger(__name__)

EXIT_REFUSED: Final = 77  # EX_NOPERM: the policy refused the fast-started initialize


def default_config() -> Config:
    fixture = ServerConfig(
        command=sys.executable, args=["-m", "bastion", "fixture", "--stdio"], prefix=""
    )
    return Config(servers={"fixture": fixture})


def _load(path: str | None) -> Config:
    config = default_config() if path is None else load_config(Path(path), os.environ)
    refuse_unusable_databases(config)
    return config


@contextlib.contextmanager
def _audit_refusal() -> Iterator[None]:
    """An ``AuditStoreError`` from the gateway's tasks, however deep in task groups, as a
    ``ConfigError`` (its message on stderr, exit 78)."""
    try:
        yield
    except BaseException as exc:
        refused = _find_audit_refusal(exc)
        if refused is None:
            raise
        raise ConfigError(refused.detail) from exc


def _find_audit_refusal(exc: BaseException) -> AuditStoreError | None:
    if isinstance(exc, AuditStoreError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find_audit_refusal(inner)
            if found is not None:
                return found
    return None


def _gateway(config: Config) -> Gateway:
    return Gateway(config, os.environ, sealer=RequestStateSealer([secrets.token_bytes(32)]))


@_audit_refusal()
def run_serve(
    path: str | None, host: str | None, port: int | None, *, register: bool = True
) -> int:
    from bastion.cli.hub_registry import serve_registration
    from bastion.gateway.collector import tune_collector
    from bastion.gateway.metrics import render_metrics
    from bastion.pipeline.admin_mount import admin_api
    from bastion.protocol.versions import SUPPORTED_VERSIONS
    from bastion.transport.http_run import event_loop_options, serve_http, with_tls_files
    from bastion.transport.http_server import HttpSettings, StreamableHttpApp

    config = _load(path)
    net = config.gateway
    settings = HttpSettings(
        host=host or net.host,
        port=net.port if port is None else port,
        allowed_hosts=tuple(net.allowed_hosts),
        allowed_origins=tuple(net.allowed_origins),
        sessions=net.sessions,
        limits=net.http,
    )
    if net.tls is not None:  # its files checked before anything starts (exit 78)
        settings = with_tls_files(settings, net.tls)
    gateway = _gateway(config)
    security = Security(config, gateway)
    security.check_bind(settings.host)
    if settings.host not in ("127.0.0.1", "::1", "localhost"):
        warnings.warn(f"listening on {settings.host}: reachable from other machines", stacklevel=1)

    def healthz() -> tuple[int, bytes]:
        return 200, b'{"status":"ok"}'

    # IN-5: the public probe names no upstream, pid or error once callers authenticate (the
    # admin API's /upstreams has them); without auth, the gateway is the local user's, on
    # loopback only (check_bind), and /readyz keeps them for `bastion servers list`.
    public_detail = config.auth is None

    def readyz() -> tuple[int, bytes]:
        checks = security.readiness()  # the client CRL: "ok" or why mTLS is refused
        ready = gateway.ready() and all(status == "ok" for status in checks.values())
        # The checks are fixed words ("ok", "expired", ...), never paths or upstream text.
        report = (
            {"ready": ready, "upstreams": gateway.status(), **checks}
            if public_detail
            else {"ready": ready, **checks}
        )
        return (200 if ready else 503), msgspec.json.encode(report)

    def metrics() -> tuple[int, bytes]:
        return 200, render_metrics(app.session_count, gateway.status(), collector)

    app = StreamableHttpApp(
        security.connection_factory(gateway.connection),
        settings,
        authenticator=security.http_authenticator(),
        probes={"/healthz": healthz, "/readyz": readyz, **security.public_probes()},
        text_probes={"/metrics": metrics},
        mounts={"/api/v1": admin_api(security)},
        on_foreign_session=security.foreign_sessions,
    )

    async def serve_until_stopped(
        stop: anyio.Event, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await serve_http(app, stop=stop, task_status=task_status)
        finally:
            stop.set()  # uvicorn may also end on its own (a failed startup)

    async def main() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(on_stop_signal, stop.set)
            await tg.start(security.run)
            if security.authenticator is not None:  # JWKS refreshes beside the requests
                await tg.start(security.authenticator.run)
            tg.start_soon(security.watch_sessions, app)
            tg.start_soon(gateway.run)
            async with anyio.create_task_group() as http:  # ends after the graceful shutdown
                bound = await http.start(serve_until_stopped, stop)
                # Announced once the socket listens; withdrawn before the graceful shutdown.
                with contextlib.ExitStack() as announce:
                    if register:
                        credential = announce.enter_context(security.hub_credential())
                        announce.enter_context(
                            serve_registration(
                                settings.host,
                                bound,
                                settings.path,
                                SUPPORTED_VERSIONS,
                                credential=credential,
                                scheme="https" if settings.tls_cert_file else "http",
                            )
                        )
                    await stop.wait()
            tg.cancel_scope.cancel()  # then the upstreams are stopped

    collector = tune_collector()
    anyio.run(main, backend_options=event_loop_options())
    return 0


def run_stdio(path: str | None, early: EarlyStart | None = None) -> int:
    config = _load(path)
    gateway = _gateway(config)
    return serve_on_stdio(gateway, early, security=Security(config, gateway))


@_audit_refusal()
def serve_on_stdio(
    gateway: Gateway,
    early: EarlyStart | None,
    beside: Sequence[Callable[..., Coroutine[Any, Any, None]]] = (),
    *,
    security: Security | None = None,
) -> int:
    """Serve ``gateway`` to one client on stdin/stdout until it leaves or a stop signal;
    ``beside`` are tasks run alongside (``tg.start``: each reports ``task_status`` first).
    With ``security``, every request runs through its pipeline as the local user. At the
    end of input, the calls in flight get ``DRAIN_TIMEOUT`` to finish; a stop signal cuts
    them at once."""
    from bastion.auth.local import local_principal
    from bastion.protocol.jsonrpc import ErrorObject
    from bastion.transport.base import DRAIN_TIMEOUT, McpConnection, MessageStream, serve_stream
    from bastion.transport.fast_started import FastStartedStream
    from bastion.transport.stdio import StdioServerStream

    refused: list[ErrorObject] = []

    async def main() -> None:
        stream: MessageStream = await StdioServerStream.open(unread=early.unread if early else b"")
        serving = anyio.CancelScope()
        async with anyio.create_task_group() as tg:

            def stop() -> None:
                # AD-1: the client is served no more (input unread, its calls in flight cut:
                # each recorded `cancelled`), then the audit log closes, then the upstreams;
                # all of it within DRAIN_TIMEOUT, as after the end of input.
                serving.cancel()
                tg.cancel_scope.deadline = anyio.current_time() + DRAIN_TIMEOUT

            def end_refused_session(error: ErrorObject) -> None:
                refused.append(error)
                stop()

            if early is not None and early.answered is not None:
                # The fast start's initialize is served again (authorized, audited); a
                # refusal ends the session it opened (AZ-1, AD-1).
                stream = FastStartedStream(stream, early.answered, end_refused_session)
            tg.start_soon(on_stop_signal, stop)
            inner = gateway.connection()
            if early is not None and early.version is not None:
                inner.adopt_initialize(early.version, early.client_capabilities or {})
            connection: McpConnection = inner
            if security is not None:
                await tg.start(security.run)
                connection = security.guard(inner, local_principal())
            tg.start_soon(gateway.run)
            for task in beside:
                await tg.start(task)
            # Clients get answers at once; upstream tools arrive with list_changed.
            with serving:
                await serve_stream(stream, connection)
            tg.cancel_scope.cancel()

    anyio.run(main)
    if refused:
        print(
            f"bastion: this session's initialize was refused ({refused[0].message}); "
            "the session ended. `bastion audit tail` shows the record.",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    return 0
