"""SECURITY.md VT-4 (many connections on loopback: every one answered, memory bounded and
given back) and the configurable face limits of DS-1 (body cap) and DS-2 (body deadline,
idle keep-alive, max connections), each against its own real ``bastion serve`` with API
keys, the policy file and the audit log on.

Latency under load is measured, not asserted: ``bench/connections.py`` (see bench/README.md).
"""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.security.conftest import (
    MODERN,
    answer_of,
    create_key,
    start_serve,
    wait_ready,
    write_config,
)
from tests.support import free_port, stop_process

pytestmark = pytest.mark.e2e

HELD = 10_000  # seed 004: 10,000 concurrent connections
BATCH = 500
RSS_PER_CONNECTION = 32 * 1024  # bytes; measured ~12 KiB (bench/connections.py)
SMALL_BODY = 2048
SMALL_KEEP_ALIVE = 1
SMALL_BODY_TIMEOUT = 1.0
SMALL_CONNECTIONS = 40
BURST = 20
RACERS = 200  # concurrent calls racing for the burst, each on its own connection


@dataclass
class Served:
    port: int
    key: str  # alice's API key
    bob: str  # bob's
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _serve(tmp: Path, http: str, limits: str | None = None) -> Iterator[Served]:
    port = free_port()
    servers = f"""\
  fx:
    command: {sys.executable}
    args: ["-m", "bastion", "fixture", "--stdio"]
    prefix: "fx__"
"""
    config = write_config(tmp, port, servers=servers)
    text = config.read_text().replace(f"  port: {port}\n", f"  port: {port}\n  http: {http}\n", 1)
    if limits is not None:
        text = text.replace("limits: {per_principal: {rate: 100000, burst: 100000}}", limits)
        assert limits in text
    config.write_text(text)
    key = create_key(tmp / "keys.db", "alice", "dev")
    bob = create_key(tmp / "keys.db", "bob", "dev")
    proc = start_serve(config, port, tmp / "serve.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, tmp / "serve.log")
        yield Served(port=port, key=key, bob=bob, proc=proc, log=tmp / "serve.log")
    finally:
        stop_process(proc, grace=15)


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The default limits, but idle connections kept long enough for the whole test."""
    _fit_files(HELD + 512)
    yield from _serve(tmp_path_factory.mktemp("roomy"), "{keep_alive_timeout: 600}")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    limits = (
        f"{{max_body: {SMALL_BODY}, body_timeout: {SMALL_BODY_TIMEOUT}, "
        f"keep_alive_timeout: {SMALL_KEEP_ALIVE}, max_connections: {SMALL_CONNECTIONS}}}"
    )
    yield from _serve(tmp_path_factory.mktemp("small"), limits)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A per-principal bucket of BURST calls that refills one call a minute."""
    limits = f"limits: {{per_principal: {{rate: 1, per: minute, burst: {BURST}}}}}"
    yield from _serve(tmp_path_factory.mktemp("limited"), "{}", limits)


def _fit_files(needed: int) -> None:
    """This process opens the client ends: raise its open-file limit (CI runs as root, so
    the hard limit may be raised too; elsewhere the test fails, saying why)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed or soft == resource.RLIM_INFINITY:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError) as exc:
            pytest.fail(f"VT-4 needs {needed} open files; the hard limit is {hard}: {exc}")
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _body(request_id: int = 1, text: str = "x") -> bytes:
    return msgspec.json.encode(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {
                "name": "fx__echo",
                "arguments": {"text": text},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MODERN,
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        }
    )


def _headers(key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "fx__echo",
        "Authorization": f"Bearer {key}",
    }


def _call(port: int, key: str, request_id: int = 1) -> bytes:
    """One whole HTTP/1.1 request: a stateless ``tools/call`` of ``fx__echo``."""
    body = _body(request_id)
    head = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in _headers(key).items())
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Client(asyncio.Protocol):
    """One keep-alive connection: ``ask`` writes a request and resolves with (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def ask(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buf += data
        parsed = _parse_response(self.buf)
        if parsed is not None and self.answer is not None and not self.answer.done():
            self.answer.set_result(parsed)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("closed"))


def _parse_response(buf: bytearray) -> tuple[int, bytes] | None:
    """(status, body) of the whole response at the start of ``buf``, consumed; None while
    it is incomplete. Bodies come with ``Content-Length`` or chunked."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    status = int(lines[0].split()[1])
    if "content-length" in fields:
        stop = end + 4 + int(fields["content-length"])
        if len(buf) < stop:
            return None
        body = bytes(buf[end + 4 : stop])
        del buf[:stop]
        return status, body
    body, pos = b"", end + 4
    while True:  # chunked
        size_end = buf.find(b"\r\n", pos)
        if size_end < 0:
            return None
        size = int(buf[pos:size_end], 16)
        if len(buf) < size_end + 2 + size + 2:
            return None
        if size == 0:
            del buf[: size_end + 4]
            return status, body
        body += bytes(buf[size_end + 2 : size_end + 2 + size])
        pos = size_end + 2 + size + 2


async def _open(port: int, count: int) -> list[Client]:
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    for first in range(0, count, BATCH):
        made = await asyncio.gather(
            *(
                loop.create_connection(Client, "127.0.0.1", port)
                for _ in range(min(BATCH, count - first))
            )
        )
        clients += [client for _, client in made]
    return clients


async def _call_each(clients: list[Client], port: int, key: str) -> list[tuple[int, bytes]]:
    answers: list[tuple[int, bytes]] = []
    for first in range(0, len(clients), BATCH):
        batch = clients[first : first + BATCH]
        answers += await asyncio.gather(
            *(c.ask(_call(port, key, first + i)) for i, c in enumerate(batch))
        )
    return answers


def _close(clients: list[Client]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.close()


def _rss(base: str) -> int:
    page = httpx.get(f"{base}/metrics", timeout=10).text
    line = next(x for x in page.splitlines() if x.startswith("process_resident_memory_bytes "))
    return int(line.split()[1])


def _echoed(body: bytes, request_id: int) -> bool:
    answer = msgspec.json.decode(body)
    return bool(answer.get("id") == request_id and "result" in answer)


# -- VT-4: 10,000 connections --------------------------------------------------------------


def test_vt4_ten_thousand_connections_are_each_answered_and_memory_is_bounded(
    roomy: Served,
) -> None:
    """VT-4 (seed 004: 10,000 concurrent connections): 10,000 clients connect and stay
    connected; each makes an authenticated, authorized, audited ``tools/call`` and gets its
    own answer; ``/healthz`` answers while they are held; the gateway's memory grows by a
    bounded amount per connection and is reused by a second wave of 10,000 (no leak)."""

    async def waves() -> tuple[list[int], list[int]]:
        before = _rss(roomy.base)
        sizes: list[int] = []
        for _ in range(2):
            clients = await _open(roomy.port, HELD)
            try:
                answers = await _call_each(clients, roomy.port, roomy.key)
                assert [status for status, _ in answers] == [200] * HELD
                assert all(_echoed(body, i) for i, (_, body) in enumerate(answers))
                assert all(not c.closed.done() for c in clients)  # all still connected
                health = await asyncio.to_thread(httpx.get, f"{roomy.base}/healthz", timeout=5)
                assert health.status_code == 200
                sizes.append(_rss(roomy.base))
            finally:
                _close(clients)
            await asyncio.sleep(1.0)
        return [before], sizes

    (before,), (first, second) = asyncio.run(waves())
    assert first - before < HELD * RSS_PER_CONNECTION, (before, first)
    # The second wave reuses what the first gave back (allocators keep freed pages).
    assert second - first < HELD * RSS_PER_CONNECTION // 4, (first, second)


# -- DS-1 and DS-2 limits from the configuration ------------------------------------------


def test_ds1_the_configured_body_cap_applies(small: Served) -> None:
    """DS-1: ``gateway.http.max_body`` (2048 bytes here) is the cap: a call under it is
    served, one over it is refused with 413."""
    fits, over = _body(text="a" * 100), _body(text="a" * SMALL_BODY)
    assert len(fits) < SMALL_BODY < len(over)
    with httpx.Client(base_url=small.base, headers=_headers(small.key), timeout=10) as client:
        served = client.post("/mcp", content=fits)
        assert served.status_code == 200, served.text
        assert "a" * 100 in answer_of(served)["result"]["content"][0]["text"]
        assert client.post("/mcp", content=over).status_code == 413


def test_ds2_a_body_slower_than_the_configured_deadline_is_408(small: Served) -> None:
    """DS-2: ``gateway.http.body_timeout`` (1 s here): a client that declares a body and
    sends only part of it is answered 408 once the deadline passes, and disconnected."""
    request = _call(small.port, small.key)
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        sock.sendall(request[:-10])  # the head and all but the last 10 bytes of the body
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert SMALL_BODY_TIMEOUT - 0.2 <= waited < SMALL_BODY_TIMEOUT + 5


def test_ds2_an_idle_keep_alive_connection_is_closed_after_the_configured_time(
    small: Served,
) -> None:
    """DS-2: ``gateway.http.keep_alive_timeout`` (1 s here): after one answered call, an idle
    connection is closed by the gateway within a few seconds; a busy one is not."""
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        sock.sendall(_call(small.port, small.key))
        buf = bytearray()
        while (answer := _parse_response(buf)) is None:  # the whole answer, maybe in parts
            chunk = sock.recv(65536)
            assert chunk, bytes(buf[:200])
            buf += chunk
        assert answer[0] == 200, answer
        assert not buf  # nothing after it
        started = time.monotonic()
        sock.settimeout(SMALL_KEEP_ALIVE + 5)
        assert sock.recv(65536) == b""  # the gateway closed it
        assert SMALL_KEEP_ALIVE - 0.2 <= time.monotonic() - started < SMALL_KEEP_ALIVE + 5


def test_ds2_connections_past_the_configured_maximum_are_refused(small: Served) -> None:
    """DS-2: ``gateway.http.max_connections`` (40 here): with 40 connections held, a request
    on one more is answered 503; once they close, new connections are served again."""

    async def run() -> tuple[int, int]:
        clients = await _open(small.port, SMALL_CONNECTIONS)
        try:
            extra = await _open(small.port, 1)
            status, _ = await extra[0].ask(_call(small.port, small.key))
            _close(extra)
        finally:
            _close(clients)
        await asyncio.sleep(0.5)
        again = await _open(small.port, 1)
        try:
            after, _ = await again[0].ask(_call(small.port, small.key))
        finally:
            _close(again)
        return status, after

    refused, served = asyncio.run(run())
    assert refused == 503
    assert served == 200


def test_ds2_bad_limits_in_the_configuration_are_refused(tmp_path: Path) -> None:
    """DS-1/DS-2: a limit out of range stops ``bastion serve`` at start, naming the field."""
    port = free_port()
    config = write_config(tmp_path, port, servers="  {}")
    text = config.read_text().replace("servers:\n  {}\n", "servers: {}\n")
    text = text.replace(f"  port: {port}\n", f"  port: {port}\n  http: {{max_body: 10}}\n", 1)
    config.write_text(text)
    proc = start_serve(config, port, tmp_path / "serve.log")
    try:
        assert proc.wait(30) != 0
    finally:
        stop_process(proc)
    log = (tmp_path / "serve.log").read_text()
    assert "max_body" in log, log


def test_vt4_ds3_the_rate_limit_admits_exactly_the_burst_under_concurrency(
    limited: Served,
) -> None:
    """VT-4, DS-3: 200 calls from one principal, on 200 connections, all in flight at once
    against a bucket of 20: exactly 20 are served and 180 refused with 429 (none admitted
    twice by a race); another principal's calls are not throttled by it."""

    async def race() -> tuple[list[int], list[int]]:
        alice_clients = await _open(limited.port, RACERS)
        bob_clients = await _open(limited.port, 5)
        try:
            asked = [
                c.ask(_call(limited.port, limited.key, i)) for i, c in enumerate(alice_clients)
            ]
            alice = [status for status, _ in await asyncio.gather(*asked)]
            bobs = await asyncio.gather(
                *(c.ask(_call(limited.port, limited.bob)) for c in bob_clients)
            )
        finally:
            _close(alice_clients + bob_clients)
        return alice, [status for status, _ in bobs]

    alice, bobs = asyncio.run(race())
    assert (alice.count(200), alice.count(429)) == (BURST, RACERS - BURST), sorted(set(alice))
    assert bobs == [200] * 5
