"""``bastion fixture``: serve the conformance fixture over stdio or Streamable HTTP."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from bastion.server.connection import ServerConnection

__all__ = ["run_fixture"]


def run_fixture(*, stdio: bool, host: str, port: int | None, legacy_only: bool = False) -> int:
    from bastion.fixture import build_fixture_app
    from bastion.protocol.request_state import RequestStateSealer
    from bastion.server.connection import ServerConnection

    app = build_fixture_app()
    # requestState keys live as long as the process: a restart invalidates pending rounds.
    sealer = RequestStateSealer([secrets.token_bytes(32)])

    def connection() -> ServerConnection:
        return ServerConnection(app, sealer, modern=not legacy_only)

    if stdio:
        anyio.run(_serve_stdio, connection)
        return 0
    from bastion.cli.signals import on_stop_signal
    from bastion.transport.http_run import event_loop_options, serve_http
    from bastion.transport.http_server import HttpSettings, StreamableHttpApp

    if port is None:
        print("bastion fixture: --port is required without --stdio", file=sys.stderr)
        return 2
    http_app = StreamableHttpApp(
        lambda _who, _sid: connection(), HttpSettings(host=host, port=port)
    )

    async def _run() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(on_stop_signal, stop.set)
            await serve_http(http_app, stop=stop)
            tg.cancel_scope.cancel()

    anyio.run(_run, backend_options=event_loop_options())
    return 0


async def _serve_stdio(connection_factory: Callable[[], ServerConnection]) -> None:
    from bastion.transport.base import serve_stream
    from bastion.transport.stdio import StdioServerStream

    stream = await StdioServerStream.open()
    await serve_stream(stream, connection_factory())
