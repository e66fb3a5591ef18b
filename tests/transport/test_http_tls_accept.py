"""``serve_http`` over TLS (``http_tls_accept``, DS-2): a connection that never completes its
TLS handshake is closed by the request-head deadline (not the loop's 60 s), the handshake
and the first request head share that one deadline, and a connection counts toward
``max_connections`` from its accept: with the cap taken by connections still in their
handshake, one more is closed at once, before its handshake; at the cap a request is
answered 503 as on plain HTTP. Served by ``serve_http`` in a portal thread, on asyncio and
on uvloop, with ``HEAD_TIMEOUT`` shortened."""

from __future__ import annotations

import functools
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.from_thread import start_blocking_portal

from bastion.auth.principal import Principal
from bastion.transport import http_protocol
from bastion.transport.base import McpConnection
from bastion.transport.http_run import serve_http
from bastion.transport.http_server import HttpSettings, StreamableHttpApp
from bastion.transport.settings import HttpLimits
from tests.auth.support import self_signed

HEAD_TIMEOUT = 2.0  # stands in for http_protocol.HEAD_TIMEOUT
CAP = 3  # max_connections
SLACK = 3.0  # a loaded machine's delay, on top of HEAD_TIMEOUT
PARTIAL_CLIENT_HELLO = bytes.fromhex("16030100")  # a handshake record header, then nothing


@dataclass(frozen=True)
class _Tls:
    port: int
    context: ssl.SSLContext  # a client's, trusting the server's certificate

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def handshake(self, sock: socket.socket) -> ssl.SSLSocket:
        return self.context.wrap_socket(sock, server_hostname="127.0.0.1")

    def healthz(self) -> int:
        url = f"https://127.0.0.1:{self.port}/healthz"
        return httpx.get(url, verify=self.context, timeout=5).status_code


def _no_mcp(principal: Principal, session: str | None) -> McpConnection:
    raise AssertionError("only /healthz is asked")


@contextmanager
def _serving(backend: str, tmp_path: Path) -> Iterator[_Tls]:
    """``serve_http`` over TLS on ``backend`` until the block ends (then a graceful stop)."""
    cert, key, _ = self_signed(tmp_path)
    settings = HttpSettings(
        port=0,
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        limits=HttpLimits(max_connections=CAP, keep_alive_timeout=60),
    )
    app = StreamableHttpApp(_no_mcp, settings, probes={"/healthz": lambda: (200, b"{}")})
    options = {"use_uvloop": True} if backend == "uvloop" else {}
    with start_blocking_portal("asyncio", options) as portal:
        stop = portal.call(anyio.Event)
        served, port = portal.start_task(functools.partial(serve_http, app, stop=stop))
        try:
            yield _Tls(port, ssl.create_default_context(cafile=str(cert)))
        finally:
            portal.call(stop.set)
            served.result(timeout=20)


@pytest.fixture(params=["asyncio", "uvloop"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(http_protocol, "HEAD_TIMEOUT", HEAD_TIMEOUT)
    return str(request.param)


@pytest.fixture
def tls(backend: str, tmp_path: Path) -> Iterator[_Tls]:
    with _serving(backend, tmp_path) as served:
        yield served


def _closed_after(sock: socket.socket, timeout: float) -> tuple[bytes, float | None]:
    """What arrives until the server closes ``sock``, and after how many seconds (None: still
    open after ``timeout``)."""
    started = time.monotonic()
    data = b""
    while (left := started + timeout - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except (ConnectionResetError, ssl.SSLError):
            return data, time.monotonic() - started
        if not chunk:
            return data, time.monotonic() - started
        data += chunk
    return data, None


# -- DS-2: the handshake has the request head's deadline ----------------------------------------


def test_ds2_a_tls_connection_that_never_completes_its_handshake_is_closed_in_time(
    tls: _Tls,
) -> None:
    """A socket that sends nothing and one that sends part of a ClientHello are both closed
    HEAD_TIMEOUT after they connected (they were kept 60 s, the loop's default)."""
    silent, partial = tls.connect(), tls.connect()
    partial.sendall(PARTIAL_CLIENT_HELLO)
    try:
        for sock in (silent, partial):
            _, elapsed = _closed_after(sock, HEAD_TIMEOUT + SLACK)
            assert elapsed is not None, "a connection in its handshake was never cut off"
        assert _closed_after(silent, 0.1)[1] is not None
    finally:
        silent.close()
        partial.close()


def test_ds2_the_handshake_and_the_first_head_share_one_deadline(tls: _Tls) -> None:
    """A client that waits before its handshake has only what is left of HEAD_TIMEOUT for its
    request head (408): the deadline counts from the connection, not from the handshake."""
    waited = 1.6
    sock = tls.connect()
    time.sleep(waited)
    with tls.handshake(sock) as secured:
        answer, elapsed = _closed_after(secured, HEAD_TIMEOUT + SLACK)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert elapsed is not None and elapsed < HEAD_TIMEOUT - waited + 1.0, elapsed


# -- DS-2: max_connections counts connections from their accept ---------------------------------


def test_ds2_connections_in_their_handshake_count_toward_max_connections(tls: _Tls) -> None:
    """CAP sockets that never start their handshake take every place: one more TLS client is
    closed at once (not served, not left waiting); with CAP - 1 of them, its request is
    answered 503, as plain HTTP answers it; once they close, it is served."""
    idle = [tls.connect() for _ in range(CAP)]
    try:
        time.sleep(0.3)  # accepted
        started = time.monotonic()
        with pytest.raises(OSError):  # ssl.SSLEOFError or a reset, depending on timing
            tls.handshake(tls.connect()).close()
        assert time.monotonic() - started < 1.0
        idle.pop().close()
        time.sleep(0.3)  # the server sees it leave
        assert tls.healthz() == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert tls.healthz() == 200


def test_ds2_a_failed_handshake_gives_its_place_back_at_once(tls: _Tls) -> None:
    """Connections whose handshake fails (plain HTTP sent to the TLS port) leave the count as
    soon as it fails, not at the deadline."""
    for _ in range(CAP * 2):
        with tls.connect() as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            _closed_after(sock, 2.0)
    assert tls.healthz() == 200


def test_ds2_stopping_closes_the_connections_still_in_their_handshake(
    backend: str, tmp_path: Path
) -> None:
    """A graceful stop does not wait for handshakes that were never going to happen: it
    closes their sockets and returns at once."""
    with _serving(backend, tmp_path) as tls:
        sock = tls.connect()
        assert tls.healthz() == 200  # the idle one has been accepted meanwhile
        started = time.monotonic()
    try:
        assert time.monotonic() - started < 2.0
        assert _closed_after(sock, 2.0)[1] is not None
    finally:
        sock.close()
