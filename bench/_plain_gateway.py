"""``bastion serve`` without the security pipeline: the baseline of ``security_overhead.py``.

Usage: ``python bench/_plain_gateway.py CONFIG PORT``. Built exactly as ``run_serve`` builds
the gateway (``src/bastion/cli/gateway.py``): the same ``Gateway``, ``StreamableHttpApp``,
``/healthz`` and ``/readyz`` probes, the same collector settings (``tune_collector``),
``serve_http`` on the same event loop, minus
``Security``: every connection is the bare ``gateway.connection()``, and the HTTP face
serves the local user (the app's default ``LocalAuth``). Bastion has no switch for this on
purpose; it exists only here, to measure what the pipeline costs.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import anyio
import msgspec

from bastion.cli.signals import on_stop_signal
from bastion.config import load_config
from bastion.gateway import Gateway
from bastion.gateway.collector import tune_collector
from bastion.protocol.request_state import RequestStateSealer
from bastion.transport.http_run import event_loop_options, serve_http
from bastion.transport.http_server import HttpSettings, StreamableHttpApp


def main() -> int:
    config = load_config(Path(sys.argv[1]), os.environ)
    settings = HttpSettings(host="127.0.0.1", port=int(sys.argv[2]))
    gateway = Gateway(config, os.environ, sealer=RequestStateSealer([secrets.token_bytes(32)]))

    def healthz() -> tuple[int, bytes]:
        return 200, b'{"status":"ok"}'

    def readyz() -> tuple[int, bytes]:
        ready = gateway.ready()
        body = msgspec.json.encode({"ready": ready, "upstreams": gateway.status()})
        return (200 if ready else 503), body

    app = StreamableHttpApp(
        lambda _who, _sid: gateway.connection(),
        settings,
        probes={"/healthz": healthz, "/readyz": readyz},
    )

    async def run() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(on_stop_signal, stop.set)
            tg.start_soon(gateway.run)
            await serve_http(app, stop=stop)
            tg.cancel_scope.cancel()  # then the upstreams are stopped

    tune_collector()
    anyio.run(run, backend_options=event_loop_options())
    return 0


if __name__ == "__main__":
    sys.exit(main())
