"""Fault tolerance of ``bastion serve``: an upstream that crashes mid-call, hangs, writes
garbage, cannot start, or floods notifications costs its own callers an error (never a
hang), and never the other upstreams' service or the gateway's life or memory."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from bastion.client import ClientSession
from bastion.errors import PeerError
from bastion.protocol.versions import Era
from bastion.transport.http_client import HttpClientStream
from tests.support import BASTION, PYTHON, free_port, wait_for_port

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

UPSTREAMS = Path(__file__).parent / "upstreams"
GOOD: dict[str, Any] = {"command": str(BASTION), "args": ["fixture", "--stdio"]}
CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001
UPSTREAM_UNAVAILABLE = -32004
Upstreams = dict[str, dict[str, Any]]  # /readyz "upstreams", by server name


def script(name: str, *args: str, **options: Any) -> dict[str, Any]:
    """A server entry running one of the misbehaving upstreams in ``upstreams/``."""
    return {"command": PYTHON, "args": [str(UPSTREAMS / name), *args], **options}


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path
    pids: set[int] = field(default_factory=set)  # every upstream pid /readyz has shown

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (a gateway's upstreams)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def run_gateway(
    tmp_path: Path, servers: Upstreams, *, ready: bool = True, verbose: bool = False
) -> Iterator[Gateway]:
    """``bastion [-v] serve`` on ``servers`` as a real process (stderr kept in a file); waits
    for ``/readyz`` 200 when ``ready``. Upstreams it leaves behind are killed afterwards."""
    config = tmp_path / "bastion.yaml"
    config.write_text(json.dumps({"servers": servers}))  # JSON is YAML
    port = free_port()
    log = tmp_path / "gateway.log"
    argv = [str(BASTION), *(["-v"] if verbose else []), "serve", "-c", str(config)]
    argv += ["--port", str(port)]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    gateway = Gateway(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_for_port(port)
        deadline = time.monotonic() + 30
        while ready and httpx.get(f"{gateway.base}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, f"not ready after 30s:\n{gateway.stderr()}"
            time.sleep(0.02)
        yield gateway
    finally:
        gateway.pids |= _children(proc.pid)
        _stop(proc)
        # test_stopping_the_gateway_stops_its_upstreams checks that the gateway does this.
        for pid in filter(_alive, gateway.pids):
            os.kill(pid, signal.SIGKILL)


async def upstreams(http: httpx.AsyncClient, gateway: Gateway) -> tuple[int, Upstreams]:
    """The ``/readyz`` status code and its upstream entries by server name."""
    response = await http.get(f"{gateway.base}/readyz")
    entries = {u["server"]: u for u in response.json()["upstreams"]}
    gateway.pids.update(u["pid"] for u in entries.values() if u["pid"])
    return response.status_code, entries


async def wait_until(
    http: httpx.AsyncClient,
    gateway: Gateway,
    predicate: Callable[[Upstreams], bool],
    what: str,
    timeout: float = 10.0,
) -> Upstreams:
    entries: Upstreams = {}
    with anyio.move_on_after(timeout):
        while True:
            _, entries = await upstreams(http, gateway)
            if predicate(entries):
                return entries
            await anyio.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout}s: {entries}\n{gateway.stderr()}")


@asynccontextmanager
async def connected(url: str, **options: Any) -> AsyncIterator[ClientSession]:
    async with HttpClientStream(url) as stream, ClientSession(stream, **options) as session:
        with anyio.fail_after(10):
            await session.connect()
            if session.log_level is not None and session.era is Era.LEGACY:
                await session.request("logging/setLevel", {"level": session.log_level})
        yield session


async def echo(session: ClientSession, tool: str, text: str, *, within: float = 2.0) -> float:
    """Call an ``echo`` tool, check the answer, return how long it took (at most ``within``)."""
    start = time.monotonic()
    with anyio.fail_after(within):
        out = await session.call_tool(tool, {"text": text})
    assert out["content"][0]["text"] == text, out
    return time.monotonic() - start


ERAS = pytest.mark.parametrize(
    "era", [Era.LEGACY, Era.MODERN], ids=["legacy_client", "modern_client"]
)


@ERAS
async def test_crash_mid_call_fails_fast_then_restarts(tmp_path: Path, era: Era) -> None:
    servers = {"good": GOOD, "broken": script("crash_on_call.py")}
    with run_gateway(tmp_path, servers) as gw:
        async with httpx.AsyncClient(timeout=5) as http, connected(gw.url, era=era) as s:
            await echo(s, "broken__echo", "before")
            _, before = await upstreams(http, gw)

            start = time.monotonic()
            with pytest.raises(PeerError) as crashed, anyio.fail_after(5):
                await s.call_tool("broken__crash")
            assert time.monotonic() - start < 1.0, "the caller waited on a dead upstream"
            assert crashed.value.peer_code in (CONNECTION_CLOSED, UPSTREAM_UNAVAILABLE)

            assert await echo(s, "good__echo", "still here") < 1.0
            # Until it is back, calls to it fail fast (or are served, if it already is).
            start = time.monotonic()
            try:
                with anyio.fail_after(5):
                    await s.call_tool("broken__echo", {"text": "meanwhile"})
            except PeerError as exc:
                assert exc.peer_code == UPSTREAM_UNAVAILABLE
            assert time.monotonic() - start < 1.0

            restarts = before["broken"]["restarts"]
            after = await wait_until(
                http,
                gw,
                lambda u: u["broken"]["state"] == "ready" and u["broken"]["restarts"] > restarts,
                "broken upstream restarted",
            )
            assert after["broken"]["pid"] != before["broken"]["pid"]
            assert after["good"]["restarts"] == 0
            await echo(s, "broken__echo", "after")
            assert (await http.get(f"{gw.base}/readyz")).status_code == 200


@ERAS
async def test_hung_call_times_out_while_others_are_served(tmp_path: Path, era: Era) -> None:
    servers = {"good": GOOD, "broken": script("hang_on_call.py", request_timeout=1)}
    outcome: list[tuple[float, object]] = []
    with run_gateway(tmp_path, servers) as gw:
        async with httpx.AsyncClient(timeout=5) as http, connected(gw.url, era=era) as s:

            async def hang() -> None:
                start = time.monotonic()
                try:
                    with anyio.fail_after(10):
                        result: object = await s.call_tool("broken__hang")
                except (PeerError, TimeoutError) as exc:
                    result = exc
                outcome.append((time.monotonic() - start, result))

            async with anyio.create_task_group() as tg:
                tg.start_soon(hang)
                await anyio.sleep(0.05)  # let the hanging call go out first
                for i in range(5):
                    await echo(s, "good__echo", f"good {i}", within=0.5)
                    await echo(s, "broken__echo", f"same upstream {i}", within=0.5)
                served_meanwhile = not outcome
            await echo(s, "broken__echo", "after", within=1)
            _, entries = await upstreams(http, gw)

    assert served_meanwhile, "the hung call ended before the others were served"
    [(elapsed, error)] = outcome
    assert isinstance(error, PeerError), f"not a JSON-RPC error after {elapsed:.2f}s: {error!r}"
    assert error.peer_code == REQUEST_TIMEOUT
    assert 0.8 <= elapsed <= 2.5, elapsed
    assert entries["broken"]["state"] == "ready"
    assert entries["broken"]["restarts"] == 0


async def test_timed_out_calls_do_not_use_up_the_upstream(tmp_path: Path) -> None:
    # A 2026-07-28 client on a 2025-11-25 upstream: calls go through the gateway's bounded
    # lot of parked calls (256 per upstream). Calls that timed out must leave it.
    servers = {"broken": script("hang_on_call.py", request_timeout=0.3)}
    with run_gateway(tmp_path, servers) as gw:
        async with connected(gw.url, era=Era.MODERN) as s:

            async def hang() -> None:
                with contextlib.suppress(PeerError), anyio.fail_after(10):
                    await s.call_tool("broken__hang")

            async with anyio.create_task_group() as tg:
                for _ in range(260):  # at most 100 at a time: httpx's connection pool
                    tg.start_soon(hang)
            # None is in flight any more.
            try:
                with anyio.fail_after(5):
                    after: object = await s.call_tool("broken__echo", {"text": "still usable"})
            except PeerError as exc:
                after = exc
    assert not isinstance(after, PeerError), f"{after.peer_code} {after.peer_message}"
    assert isinstance(after, dict)
    assert after["content"][0]["text"] == "still usable", after


@ERAS
async def test_garbage_on_stdout_is_survived(tmp_path: Path, era: Era) -> None:
    received = tmp_path / "received.jsonl"
    servers = {"good": GOOD, "broken": script("garbage_stdout.py", str(received))}
    with run_gateway(tmp_path, servers) as gw:
        async with httpx.AsyncClient(timeout=5) as http, connected(gw.url, era=era) as s:
            for i in range(3):  # each answer comes after garbage and a 4 MiB+ line
                await echo(s, "broken__echo", f"through {i}", within=5)
                await echo(s, "good__echo", f"good {i}", within=1)
            code, entries = await upstreams(http, gw)
            healthz = (await http.get(f"{gw.base}/healthz")).status_code
        assert gw.proc.poll() is None
    assert (code, healthz) == (200, 200)
    assert entries["broken"]["restarts"] == 0, entries["broken"]

    sent = [json.loads(line) for line in received.read_bytes().splitlines() if line.strip()]
    answers = [m for m in sent if "method" not in m]
    for message in answers:
        if message.get("id") is None:  # what the gateway made of a line it could not use
            assert message["error"]["code"] in (-32700, -32600), message
    assert not [m for m in answers if m.get("id") == 987654], "answered a stray response"
    unknown = [m for m in answers if m.get("id") == "garbage-req"]
    assert unknown, "an unknown request from the upstream got no answer"
    assert all(m["error"]["code"] == -32601 for m in unknown), unknown


@pytest.mark.parametrize("flag", ["--bad-progress", "--bad-log-level"])
async def test_malformed_notifications_during_a_call_are_survived(
    tmp_path: Path, flag: str
) -> None:
    # A 2025-11-25 client that wants progress and logs: both are relayed to it, mid-call.
    servers = {"broken": script("garbage_stdout.py", str(tmp_path / "received.jsonl"), flag)}
    with run_gateway(tmp_path, servers) as gw:

        async def on_progress(params: dict[str, Any]) -> None:
            return None

        async with (
            httpx.AsyncClient(timeout=5) as http,
            connected(gw.url, era=Era.LEGACY, log_level="debug") as s,
        ):
            try:
                with anyio.fail_after(5):
                    out: object = await s.call_tool(
                        "broken__echo", {"text": "answer"}, on_progress=on_progress
                    )
            except PeerError as exc:
                out = exc
            _, entries = await upstreams(http, gw)
    assert isinstance(out, dict), f"the call failed: {out!r}; upstream: {entries['broken']}"
    assert out["content"][0]["text"] == "answer"
    assert entries["broken"]["restarts"] == 0, entries["broken"]


async def test_upstream_that_cannot_start(tmp_path: Path) -> None:
    servers = {"good": GOOD, "dead": script("exit_at_start.py")}
    seen: dict[int, float] = {}  # dead's restart count -> when /readyz first showed it
    codes: set[int] = set()
    states: set[str] = set()
    errors: set[str | None] = set()
    latencies: list[float] = []  # of calls to the healthy upstream meanwhile
    with run_gateway(tmp_path, servers, ready=False, verbose=True) as gw:
        async with httpx.AsyncClient(timeout=5) as http, connected(gw.url) as s:
            await wait_until(http, gw, lambda u: u["good"]["state"] == "ready", "good ready")
            stop = anyio.Event()

            async def keep_calling() -> None:
                while not stop.is_set():
                    latencies.append(await echo(s, "good__echo", "up", within=1))
                    await anyio.sleep(0.1)

            async def watch() -> None:
                with anyio.fail_after(20):  # 0.5 + 1 + 2 + 4 s of backoff, then the circuit
                    while True:
                        code, entries = await upstreams(http, gw)
                        dead = entries["dead"]
                        codes.add(code)
                        states.add(dead["state"])
                        if dead["restarts"]:
                            errors.add(dead["lastError"])
                        seen.setdefault(dead["restarts"], time.monotonic())
                        if dead["state"] == "circuit-open":
                            break
                        await anyio.sleep(0.02)
                # Circuit open: no attempt for a while (it stays open 30 s).
                quiet_until = time.monotonic() + 1.0
                while time.monotonic() < quiet_until:
                    code, entries = await upstreams(http, gw)
                    codes.add(code)
                    seen.setdefault(entries["dead"]["restarts"], time.monotonic())
                    states.add(entries["dead"]["state"])
                    await anyio.sleep(0.05)
                stop.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_calling)
                tg.start_soon(watch)
        log = gw.stderr()

    assert codes == {503}
    assert "ready" not in states, states
    assert max(seen) == 5, f"circuit open after {max(seen)} failures, not 5: {seen}"
    # Backoff 0.5 s doubling: between failures n-1 and n the wait is 0.5 * 2**(n-2) (plus a
    # start that fails at once). Timed where /readyz was seen changing to both counts.
    gaps = {n: seen[n] - seen[n - 1] for n in seen if n - 2 in seen}
    assert len(gaps) >= 3, seen
    for n, gap in gaps.items():
        expected = 0.5 * 2 ** (n - 2)
        assert 0.8 * expected <= gap <= expected + 1.0, (n, gap, gaps)
    assert latencies, "no call to the healthy upstream was made"
    assert max(latencies) < 1.0
    # Why it is down, for whoever reads /readyz or the log: the child exited at once, and
    # what it said on stderr (README: "child stderr into our log").
    assert "fatal: no API key configured" in log, "the child's stderr is not in the -v log"
    assert None not in errors, errors
    assert all(re.search("clos|exit", str(e), re.IGNORECASE) for e in errors), errors


async def test_up4_an_upstreams_last_error_shows_no_credentials_or_internal_urls(
    tmp_path: Path,
) -> None:
    """UP-4, IN-5: ``/readyz`` is public and shows why an upstream is down, in words the
    upstream chose; they are cleaned like an upstream error: its own configured secrets
    (the token in its environment) masked exactly, known token shapes masked, internal URLs
    replaced, and the same in the log."""
    secret = "q7Zp2Lx9Vw4Nk8Rt3Bs6"  # no known token shape: only the configuration knows it
    servers = {"leaky": script("leaky_init_error.py", env={"API_TOKEN": secret})}
    with run_gateway(tmp_path, servers, ready=False) as gw:
        async with httpx.AsyncClient() as http:
            entries = await wait_until(
                http, gw, lambda u: bool(u["leaky"]["lastError"]), "a last error"
            )
        log = gw.stderr()
    reason = entries["leaky"]["lastError"]
    assert "cannot start with key [REDACTED]" in reason and "[internal URL]" in reason
    for leaked in (secret, "ghp_", "10.0.0.5"):
        assert leaked not in reason and leaked not in log


def _rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _written(pid: int) -> int:
    """Bytes ``pid`` has written so far (to its stdout, for the flooding upstream)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError(f"no wchar for {pid}")


async def test_notification_flood(tmp_path: Path) -> None:
    servers = {"good": GOOD, "flood": script("flood_notifications.py")}
    with run_gateway(tmp_path, servers) as gw:
        # A 2025-11-25 client holds the standalone stream that list_changed goes out on.
        async with httpx.AsyncClient(timeout=5) as http, connected(gw.url, era=Era.LEGACY) as s:
            _, entries = await upstreams(http, gw)
            flood_pid = entries["flood"]["pid"]
            written = _written(flood_pid)
            baseline = peak = _rss(gw.proc.pid)
            worst = 0.0
            calls = 0
            until = time.monotonic() + 3.0
            while time.monotonic() < until:
                worst = max(worst, await echo(s, "good__echo", f"good {calls}"))
                worst = max(worst, await echo(s, "flood__echo", f"flood {calls}"))
                peak = max(peak, _rss(gw.proc.pid))
                calls += 1
                await anyio.sleep(0.05)
            flooded = _written(flood_pid) - written
            code, entries = await upstreams(http, gw)

        assert flooded > 8 * 1024 * 1024, f"only {flooded} bytes of notifications: no flood"
        assert worst < 1.0, f"a call took {worst:.2f}s during the flood"
        assert peak - baseline < 100 * 1024 * 1024, f"RSS grew from {baseline} to {peak}"
        assert code == 200, entries
        assert entries["good"]["restarts"] == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_stopping_the_gateway_stops_its_upstreams(
    tmp_path: Path, sig: signal.Signals
) -> None:
    # "stubborn" ignores the end of its stdin: only the gateway's SIGTERM/SIGKILL stops it.
    servers = {"good": GOOD, "stubborn": script("hang_on_call.py", "--linger")}
    with run_gateway(tmp_path, servers) as gw:
        async with httpx.AsyncClient(timeout=5) as http:
            _, entries = await upstreams(http, gw)
        pids = {name: entry["pid"] for name, entry in entries.items()}
        gw.proc.send_signal(sig)
        with anyio.fail_after(15):
            while gw.proc.poll() is None:
                await anyio.sleep(0.02)
        # Closing a child: stdin, 2 s, SIGTERM, 2 s, SIGKILL; allow a little more.
        deadline = time.monotonic() + 5
        while any(map(_alive, pids.values())) and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        left = {name: pid for name, pid in pids.items() if _alive(pid)}
        assert not left, f"still running after the gateway exited ({gw.proc.returncode}): {left}"
