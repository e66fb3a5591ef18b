"""A ``bastion serve`` over HTTPS (a self-signed certificate, no upstream) with a small
``max_connections``, for the DS-2 tests of the TLS handshake's deadline and of connections
counted from accept; and the socket checks they use."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.auth.support import self_signed
from tests.security.conftest import start_serve
from tests.support import free_port, stop_process


@dataclass(frozen=True)
class TlsGateway:
    port: int
    context: ssl.SSLContext  # a client's, trusting the gateway's certificate

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def healthz(self) -> int:
        url = f"https://127.0.0.1:{self.port}/healthz"
        return httpx.get(url, verify=self.context, timeout=5).status_code


@contextlib.contextmanager
def serving_https(tmp: Path, max_connections: int) -> Iterator[TlsGateway]:
    cert, key, _ = self_signed(tmp)
    port = free_port()
    config = tmp / "bastion.yaml"
    config.write_text(
        f"gateway:\n  port: {port}\n  tls: {{cert_file: {cert}, key_file: {key}}}\n"
        f"  http: {{max_connections: {max_connections}}}\nservers: {{}}\n"
        f"auth: {{resource: https://127.0.0.1:{port}/mcp, api_keys: {{db: {tmp / 'keys.db'}}}}}\n"
        f"audit: {{db: {tmp / 'audit.db'}}}\n"
    )
    proc = start_serve(config, port, tmp / "serve.log")
    gateway = TlsGateway(port, ssl.create_default_context(cafile=str(cert)))
    try:
        assert served_within(gateway, 60, proc), (tmp / "serve.log").read_text()
        yield gateway
    finally:
        stop_process(proc, grace=15)


def served_within(
    gateway: TlsGateway, seconds: float, proc: subprocess.Popen[bytes] | None = None
) -> bool:
    """Whether ``/healthz`` answers 200 within ``seconds`` (and ``proc`` keeps running)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        with contextlib.suppress(httpx.HTTPError):
            if gateway.healthz() == 200:
                return True
        time.sleep(0.1)
    return False


def still_open(sock: socket.socket) -> bool:
    """Whether the server has neither closed nor reset ``sock`` (nothing is expected on it)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        sock.setblocking(True)
