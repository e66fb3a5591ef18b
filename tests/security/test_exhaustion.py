"""SECURITY.md 2.6, resource exhaustion: DS-1 (body caps), DS-2 (read deadlines, outbound
timeouts; over HTTPS the handshake's deadline and connections counted from accept), DS-4
(``/healthz`` under load, bounded memory) against a real ``bastion serve``. DS-3 (rate
limits) is shown in tests/pipeline/test_threats_e2e.py, VT-4 (10,000 connections) and the
configurable limits in tests/security/test_load.py; here, DS-3 on the listen streams one
principal may hold open."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bastion.pipeline.listens import MAX_LISTENS_PER_PRINCIPAL
from bastion.transport.http_protocol import HEAD_TIMEOUT
from tests.security.conftest import (
    JWT_ADMINS,
    MODERN,
    REQUEST_TIMEOUT,
    Gateway,
    answer_of,
    bearer,
    raw_http,
)
from tests.security.tls_gateway import TlsGateway, served_within, serving_https, still_open

pytestmark = pytest.mark.e2e

MAX_BODY = 4 * 1024 * 1024  # HttpSettings.max_body
TLS_CAP = 4  # the HTTPS gateway's max_connections


def _post_head(gw: Gateway, *lines: str, auth: bool = True) -> bytes:
    head = [
        "POST /mcp HTTP/1.1",
        f"Host: 127.0.0.1:{gw.port}",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        *lines,
    ]
    if auth:
        head.append(f"Authorization: Bearer {gw.keys['alice']}")
    return ("\r\n".join(head) + "\r\n\r\n").encode()


# -- DS-1 body caps ------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [True, False])
def test_ds1_declared_oversized_body_is_refused_before_it_is_read(gw: Gateway, auth: bool) -> None:
    """Only the head is sent: the answer must come without waiting for 5 MiB of body, and
    the connection must close (with or without a credential: the cap holds before auth)."""
    head = _post_head(gw, f"Content-Length: {5 * 1024 * 1024}", auth=auth)
    started = time.monotonic()
    answer = raw_http(gw.port, head, timeout=5)
    assert answer.status == (413 if auth else 401)
    assert answer.closed
    assert time.monotonic() - started < 3


def test_ds1_chunked_body_over_the_cap_is_413(gw: Gateway) -> None:
    chunk = b"[" * (512 * 1024)
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    parts = [_post_head(gw, "Transfer-Encoding: chunked")] + [framed] * 10 + [b"0\r\n\r\n"]
    answer = raw_http(gw.port, *parts, timeout=10)
    assert answer.status == 413
    assert answer.closed


def test_ds1_chunked_body_without_credential_is_never_read(gw: Gateway) -> None:
    chunk = b"x" * (1024 * 1024)
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    parts = [_post_head(gw, "Transfer-Encoding: chunked", auth=False)] + [framed] * 8
    answer = raw_http(gw.port, *parts, timeout=10)
    assert answer.status == 401
    assert answer.closed


# -- DS-2 read deadlines and outbound timeouts ------------------------------------------------


def _answered_then_empty_line(gw: Gateway) -> socket.socket:
    """A keep-alive connection after one unauthenticated answer, then one empty line: the
    line cancels the keep-alive timer and starts no request (llhttp skips it)."""
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % gw.port)
    answer = b""
    while not answer.endswith(b"\r\n0\r\n\r\n"):  # the whole chunked answer
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    sock.sendall(b"\r\n")
    return sock


def test_ds2_a_request_head_must_arrive_in_time(gw: Gateway) -> None:
    """Slowloris: a connection that sends nothing, one that trickles half a head byte by
    byte, and one that sends an empty line after an answer are all cut off after
    HEAD_TIMEOUT (never held for the keep-alive time or longer). All run at once, so the
    test waits HEAD_TIMEOUT once."""
    silent = socket.create_connection(("127.0.0.1", gw.port))
    trickle = socket.create_connection(("127.0.0.1", gw.port))
    started = time.monotonic()
    trickle.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
    idle = _answered_then_empty_line(gw)
    socks = (("silent", silent), ("trickle", trickle), ("empty-line", idle))
    closed: dict[str, float] = {}
    answers: dict[str, bytes] = {name: b"" for name, _ in socks}
    try:
        for _, sock in socks:
            sock.setblocking(False)
        while len(closed) < len(socks) and time.monotonic() - started < HEAD_TIMEOUT + 4:
            time.sleep(0.25)
            for name, sock in socks:
                if name in closed:
                    continue
                try:
                    if name == "trickle":
                        sock.sendall(b"a")  # one byte every 250 ms: it must not help
                    chunk = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                answers[name] += chunk
                if not chunk:
                    closed[name] = time.monotonic() - started
    finally:
        for _, sock in socks:
            sock.close()
    assert set(closed) == set(answers), "a half-open request was never cut off"
    for name, elapsed in closed.items():
        assert HEAD_TIMEOUT - 1 <= elapsed < HEAD_TIMEOUT + 4, (name, elapsed)
        assert answers[name] == b"" or answers[name].startswith(b"HTTP/1.1 408"), answers[name]


@pytest.fixture(scope="module")
def tls_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    with serving_https(tmp_path_factory.mktemp("tls-limits"), TLS_CAP) as gateway:
        yield gateway


def test_ds2_a_tls_handshake_must_complete_in_time(tls_gw: TlsGateway) -> None:
    """Slowloris before TLS: a connection to the HTTPS port that sends nothing, and one that
    sends part of a ClientHello, are cut off after HEAD_TIMEOUT, as a plain HTTP connection
    without a head is (they were kept 60 s, the event loop's default handshake timeout)."""
    silent, partial = tls_gw.connect(), tls_gw.connect()
    started = time.monotonic()
    partial.sendall(bytes.fromhex("16030100"))  # a handshake record header, then nothing
    closed: dict[str, float] = {}
    try:
        for name, sock in (("silent", silent), ("partial", partial)):
            sock.settimeout(max(0.1, started + HEAD_TIMEOUT + 4 - time.monotonic()))
            try:
                said = sock.recv(4096)
            except TimeoutError:
                continue
            except ConnectionResetError:
                said = b""
            assert said == b""  # closed, and nothing said: there is no TLS yet
            closed[name] = time.monotonic() - started
    finally:
        silent.close()
        partial.close()
    assert set(closed) == {"silent", "partial"}, "a connection in its handshake was kept"
    for name, elapsed in closed.items():
        assert HEAD_TIMEOUT - 1 <= elapsed < HEAD_TIMEOUT + 4, (name, elapsed)


def test_ds2_https_connections_count_toward_max_connections_from_accept(
    tls_gw: TlsGateway,
) -> None:
    """``max_connections`` (TLS_CAP) taken by sockets that never start their handshake: a
    TLS client is refused at once (closed before its handshake: no HTTP answer can come
    before it; before, it was served beside them while idle sockets piled up past the cap
    and the open-file limit). With one place left, its request is 503, as on plain HTTP;
    once they close, it is served."""
    assert served_within(tls_gw, 5)  # nothing left from another test
    time.sleep(0.5)  # nor from that request: its connection closing
    idle = [tls_gw.connect() for _ in range(TLS_CAP)]
    try:
        time.sleep(0.5)  # accepted
        assert all(still_open(sock) for sock in idle)
        started = time.monotonic()
        with pytest.raises(httpx.ConnectError):
            tls_gw.healthz()
        assert time.monotonic() - started < 2
        idle.pop().close()
        time.sleep(0.5)  # the gateway sees it leave
        assert tls_gw.healthz() == 503
    finally:
        for sock in idle:
            sock.close()
    assert served_within(tls_gw, 2)


def test_ds2_outbound_calls_time_out(gw: Gateway) -> None:
    """The recording upstream's ``sleepy`` answers after a minute; the configured
    ``request_timeout`` ends the call first, with an error and not a hung client."""
    started = time.monotonic()
    response = gw.call(gw.auth("root"), "rec__sleepy", {})
    elapsed = time.monotonic() - started
    assert elapsed < REQUEST_TIMEOUT + 5
    assert "error" in answer_of(response) or answer_of(response)["result"].get("isError")
    assert "too late" not in response.text


# -- DS-4 health under load, bounded memory ------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_ds4_healthz_stays_responsive_under_mcp_load(gw: Gateway) -> None:
    stop = threading.Event()
    calls = [0]

    def hammer() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                client.post(
                    gw.url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "fx__echo", "arguments": {"text": "load"},
                                     "_meta": {"io.modelcontextprotocol/protocolVersion":
                                               "2026-07-28",
                                               "io.modelcontextprotocol/clientCapabilities": {}}}},
                    headers={**gw.auth("alice"), "accept": "application/json, text/event-stream",
                             "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call",
                             "mcp-name": "fx__echo"},
                )  # fmt: skip
                calls[0] += 1

    workers = [threading.Thread(target=hammer) for _ in range(12)]
    for worker in workers:
        worker.start()
    latencies = []
    try:
        time.sleep(0.3)
        with httpx.Client(timeout=10) as probe:
            for _ in range(20):
                started = time.monotonic()
                response = probe.get(gw.base + "/healthz")
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200
                assert response.json() == {"status": "ok"}
                time.sleep(0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert calls[0] > 20  # the load was real
    assert max(latencies) < 1.0, latencies


def test_ds4_memory_stays_bounded_under_body_and_nesting_attacks(gw: Gateway) -> None:
    before = _rss_kib(gw.proc.pid)
    deep = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":' + b"[" * (MAX_BODY - 200)
    wide = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"' + b"x" * (MAX_BODY - 200)
    with httpx.Client(timeout=30) as client:
        for body in [deep, wide] * 8:
            response = client.post(
                gw.url,
                content=body,
                headers={**gw.auth("alice"), "content-type": "application/json",
                         "accept": "application/json, text/event-stream"},
            )  # fmt: skip
            assert response.status_code == 400
    assert gw.client.get(gw.base + "/healthz").status_code == 200
    grown_mib = (_rss_kib(gw.proc.pid) - before) / 1024
    assert grown_mib < 64, grown_mib


def test_ds4_ad5_metrics_report_process_rss_and_no_secrets(gw: Gateway) -> None:
    """DS-4: Prometheus metrics include the process RSS; AD-5: no secret, key or principal
    appears in them (labels carry states only)."""
    gw.call(gw.auth("alice"), "fx__echo", {"text": "warm up"})
    response = httpx.get(f"{gw.base}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = {
        line.split(" ")[0]: line.split(" ")[1]
        for line in response.text.splitlines()
        if line and not line.startswith("#")
    }
    rss = int(values["process_resident_memory_bytes"])
    assert abs(rss / 1024 - _rss_kib(gw.proc.pid)) < 64 * 1024  # the gateway's own RSS
    assert float(values["process_cpu_seconds_total"]) > 0
    assert values['bastion_upstream_replicas{state="ready"}'] == "2"
    # the collector's figures (full collections are generation 2): counts and pause times
    for generation in "012":
        assert int(values[f'python_gc_collections_total{{generation="{generation}"}}']) >= 0
        paused = float(values[f'bastion_gc_pause_seconds_total{{generation="{generation}"}}'])
        longest = float(values[f'bastion_gc_pause_seconds_max{{generation="{generation}"}}'])
        assert 0 <= longest <= paused
    for secret in (*gw.keys.values(), "alice", "apikey:", "Bearer"):
        assert secret not in response.text


def test_ds3_one_principal_holds_a_bounded_number_of_listen_streams(gw: Gateway) -> None:
    """Each open ``subscriptions/listen`` stream holds a connection: past its share a
    principal's next is 429 with Retry-After (-32005), while another principal opens its own."""
    headers = {
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "subscriptions/listen",
    }
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }

    def listen(client: httpx.Client, who: dict[str, str], n: int) -> httpx.Response:
        body = {
            "jsonrpc": "2.0",
            "id": f"listen-{n}",
            "method": "subscriptions/listen",
            "params": {"notifications": {"toolsListChanged": True}, "_meta": meta},
        }
        return stack.enter_context(
            client.stream("POST", gw.url, json=body, headers={**headers, **who})
        )

    def acknowledged(lines: Iterator[str]) -> bool:
        return "acknowledged" in next(line for line in lines if line.startswith("data:"))

    root = gw.auth("root")
    other_admin = bearer(gw.issuer.token(sub="olga", roles=[JWT_ADMINS]))
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(httpx.Client(timeout=10))
        held = []  # the line iterators: dropping one would close its stream
        for n in range(MAX_LISTENS_PER_PRINCIPAL):
            lines = listen(client, root, n).iter_lines()
            held.append(lines)
            assert acknowledged(lines)
        refused = listen(client, root, MAX_LISTENS_PER_PRINCIPAL)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert '"code":-32005' in refused.read().decode()
        other = listen(client, other_admin, 0)
        assert other.status_code == 200 and acknowledged(other.iter_lines())
