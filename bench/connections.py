"""Many connections: 10,000 clients holding keep-alive connections to one ``bastion serve``
with the whole security pipeline on (SECURITY.md VT-4; seed 004 asks for 10,000 concurrent
connections and a p99 under 100 ms).

One gateway fronts its ``bastion fixture --stdio`` child with every security part on, as
``security_overhead.py``'s "on" gateway (API keys, policy, rate limits, guard, audit log),
plus ``gateway.http.keep_alive_timeout`` raised so that the idle clients are not closed
during the run. Three phases, A-B-A, so that drift shows:

1. baseline: 16 closed-loop clients, ``--rounds`` x ``--seconds``: p50, p99, calls/s;
2. held: ``--connections`` more clients connect (in batches) and each makes one call (all
   must succeed); then each calls again every ``--every`` seconds from a random offset
   (open loop, the trickle) while the 16 clients run the same rounds. With ``--sessions``
   each held client first opens a 2025-11-25 session (``initialize``, then
   ``notifications/initialized``) and makes its calls in it (answers come as SSE), with
   ``gateway.sessions.max_sessions`` raised to fit;
3. baseline again, after the held connections have closed.

``--soak M`` keeps the held connections and their trickle for M more minutes after phase 2's
rounds, the 16 clients busy for the first ``SOAK_BUSY_S`` seconds of each minute, and prints
a line a minute: the gateway's RSS, its full collections so far, and that minute's trickle
and busy p99. Memory that grows minute after minute is a leak the short phases cannot show.

Reported: the gateway's RSS before, with and after the held connections (KiB per
connection), its full garbage collections during the held rounds (from ``/metrics``), the
16 clients' p50 and p99 in each phase and the held / baseline ratio, and
the trickle's own latencies and failures. The load generator is one process on its own CPU
(``--pin split``), so it is itself a limit: its CPU share is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from _common import INITIALIZE, CpuSplit, add_load_options, stop_servers, tree_state
from gateway_latency import (
    HttpClient,
    Phase,
    Target,
    http_get,
    http_request,
    pct,
    run_phase,
)
from security_overhead import gateway_config, launch, prepare

from bastion.transport.http_run import fit_open_files

CLIENTS = 16
BATCH = 500  # connections opened at once (the listen backlog is larger)
KEEP_ALIVE = 900  # seconds; the run must not lose its idle clients to the keep-alive timer
GOAL_P99_MS = 100.0
SOAK_BUSY_S = 20.0  # of each soak minute, the 16 clients' share
LEGACY = "2025-11-25"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_options(parser, rounds=4)
    parser.add_argument("--connections", type=int, default=10_000, help="held (10,000)")
    parser.add_argument(
        "--every", type=float, default=60.0, help="seconds between a held client's calls (60)"
    )
    parser.add_argument(
        "--sessions", action="store_true", help="held clients call in 2025-11-25 sessions"
    )
    parser.add_argument(
        "--soak", type=float, default=0.0, help="minutes to hold on after the held rounds (0)"
    )
    args = parser.parse_args()
    sockets = args.connections + CLIENTS  # this process holds the client ends
    if fit_open_files(sockets) < sockets:
        sys.exit(f"the open-file hard limit is too low for {sockets} connections (ulimit -Hn)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bastion-conns-") as name:
        tmp = Path(name)
        env = {**os.environ, "XDG_STATE_HOME": str(tmp / "state")}
        key = prepare(tmp, env)
        asyncio.run(measure(args, tmp, env, key))
    print(f"\ntook {time.perf_counter() - started:.1f} s")
    return 0


def _config(tmp: Path, args: argparse.Namespace) -> Path:
    path = gateway_config(tmp, "on", security=True, audit=True)
    config = msgspec.json.decode(path.read_bytes())
    config["gateway"] = {"http": {"keep_alive_timeout": KEEP_ALIVE}}
    if args.sessions:
        config["gateway"]["sessions"] = {"max_sessions": args.connections + 1000}
    path.write_bytes(msgspec.json.encode(config))
    return path


def full_collections(port: int) -> tuple[int, float]:
    """The gateway's full collections so far and the seconds they paused (``/metrics``)."""
    count, paused = 0, 0.0
    for line in http_get(port, "/metrics")[1].decode().splitlines():
        if line.startswith('python_gc_collections_total{generation="2"}'):
            count = int(line.split()[-1])
        elif line.startswith('bastion_gc_pause_seconds_total{generation="2"}'):
            paused = float(line.split()[-1])
    return count, paused


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _post(port: int, body: bytes, headers: dict[str, str]) -> bytes:
    head = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def legacy_call(port: int, session: str, auth: dict[str, str]) -> bytes:
    """A 2025-11-25 ``tools/call`` of ``fx__echo`` inside ``session``."""
    body = msgspec.json.encode(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "fx__echo", "arguments": {"text": "x"}},
        }
    )
    return _post(port, body, _legacy_headers(auth, session))


def _legacy_headers(auth: dict[str, str], session: str | None = None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": LEGACY,
        **auth,
    }
    if session is not None:
        headers["Mcp-Session-Id"] = session
    return headers


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One whole chunked answer (head, body) from ``reader``."""
    head = await reader.readuntil(b"\r\n\r\n")
    body = await reader.readuntil(b"0\r\n\r\n")
    return head, body


async def open_session(port: int, auth: dict[str, str]) -> str:
    """``initialize`` and ``notifications/initialized`` on a connection of their own; the
    new session's id."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_post(port, msgspec.json.encode(INITIALIZE), _legacy_headers(auth)))
        head, _ = await _answer(reader)
        found = [x for x in head.split(b"\r\n") if x.lower().startswith(b"mcp-session-id:")]
        if not head.startswith(b"HTTP/1.1 200") or not found:
            raise RuntimeError(f"initialize refused: {head[:200]!r}")
        session = found[0].split(b":", 1)[1].strip().decode()
        note = msgspec.json.encode({"jsonrpc": "2.0", "method": "notifications/initialized"})
        writer.write(_post(port, note, _legacy_headers(auth, session)))
        head, _ = await _answer(reader)
        if not head.startswith(b"HTTP/1.1 202"):
            raise RuntimeError(f"initialized refused: {head[:200]!r}")
        return session
    finally:
        writer.close()


class Held:
    """The held connections: opened in batches, one call each, then the trickle."""

    def __init__(self, port: int, request: bytes, auth: dict[str, str] | None = None) -> None:
        self.port = port
        self.request = request
        self.auth = auth  # given: each client calls in a 2025-11-25 session of its own
        self.clients: list[HttpClient] = []
        self.transports: list[asyncio.BaseTransport] = []
        self.trickle = Phase(interval=None)
        self.waiters: list[asyncio.Future[None]] = []

    async def open(self, count: int) -> float:
        """Connect ``count`` clients and make one call on each; seconds taken."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        for first in range(0, count, BATCH):
            size = min(BATCH, count - first)
            if self.auth is None:
                requests = [self.request] * size
            else:
                auth = self.auth
                opened = [open_session(self.port, auth) for _ in range(size)]
                requests = [legacy_call(self.port, s, auth) for s in await asyncio.gather(*opened)]
            made = await asyncio.gather(
                *(
                    loop.create_connection(lambda r=r: HttpClient(r), "127.0.0.1", self.port)
                    for r in requests
                )
            )
            batch = [client for _, client in made]
            self.transports += [transport for transport, _ in made]
            self.clients += batch
            await asyncio.gather(*(client.call(None) for client in batch))
        return time.perf_counter() - started

    def start_trickle(self, every: float) -> None:
        self.trickle = Phase(interval=every, end=math.inf)
        for client in self.clients:
            waiter = client.call(self.trickle)
            waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
            self.waiters.append(waiter)

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


async def measure(args: argparse.Namespace, tmp: Path, env: dict[str, str], key: str) -> None:
    split = CpuSplit(args.pin)
    print(f"connections benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"python {sys.version.split()[0]}, bastion {tree_state()}, {os.cpu_count()} CPUs")
    auth = {"Authorization": f"Bearer {key}"}
    procs: list[subprocess.Popen[bytes]] = []
    children: list[int] = []
    try:
        target = launch(
            "on",
            _config(tmp, args),
            tmp / "on.log",
            plain=False,
            env=env,
            auth=auth,
            affinity=split.server_affinity,
            started=(procs, children),
        )
        assert target.port is not None
        if split.pin:
            os.sched_setaffinity(0, {split.load_cpu})
        gw = target.pids["gateway"]
        await run_phase(target, CLIENTS, 0.5)  # warm-up, unrecorded
        rss = {"before": rss_kib(gw)}
        phases: dict[str, Target] = {}

        async def rounds(label: str) -> None:
            phases[label] = target.fresh()
            own = time.process_time()
            wall = time.perf_counter()
            for _ in range(args.rounds):
                await run_phase(phases[label], CLIENTS, args.seconds)
            share = (time.process_time() - own) / (time.perf_counter() - wall)
            print(f"  {label}: done; load generator CPU {share:.0%} of its core")

        await rounds("baseline")
        held = Held(
            target.port,
            http_request(target.port, target.tool, auth),
            auth if args.sessions else None,
        )
        took = await held.open(args.connections)
        what = "a 2025-11-25 session and one call" if args.sessions else "one call"
        print(f"  opened {args.connections} connections, {what} each, in {took:.1f} s")
        rss["held"] = rss_kib(gw)
        held.start_trickle(args.every)
        await asyncio.sleep(1.0)
        collections = full_collections(target.port)
        await rounds("held")
        done = full_collections(target.port)
        gc = (done[0] - collections[0], done[1] - collections[1])
        rss["held, after the rounds"] = rss_kib(gw)
        if args.soak > 0:
            await soak(args.soak, target, held)
            rss["held, after the soak"] = rss_kib(gw)
        trickle = held.trickle
        held.close()
        await asyncio.sleep(2.0)
        rss["closed"] = rss_kib(gw)
        await rounds("baseline again")
        report(args, phases, rss, trickle, gc)
    finally:
        stop_servers(procs, children)
        if split.pin:
            os.sched_setaffinity(0, set(split.cpus))


async def soak(minutes: float, target: Target, held: Held) -> None:
    """A line a minute for ``minutes``: RSS, full collections, the trickle, the busy p99."""
    assert target.port is not None
    gw = target.pids["gateway"]
    print(f"  soak: {minutes:g} min, the {CLIENTS} clients busy {SOAK_BUSY_S:g} s a minute")
    print(
        f"  {'minute':>6} {'RSS MiB':>8} {'full GCs':>8} {'trickle':>8} {'failed':>6} "
        f"{'p99 ms':>7} {'busy calls':>10} {'busy p99':>8}"
    )
    for minute in range(1, math.ceil(minutes) + 1):
        started = time.perf_counter()
        seen, failed = len(held.trickle.latencies), held.trickle.errors
        busy = target.fresh()
        await run_phase(busy, CLIENTS, SOAK_BUSY_S)
        await asyncio.sleep(max(0.0, 60.0 - (time.perf_counter() - started)))
        trickle = sorted(held.trickle.latencies[seen:])
        samples = sorted(busy.samples[CLIENTS])
        print(
            f"  {minute:>6} {rss_kib(gw) / 1024:>8.1f} {full_collections(target.port)[0]:>8} "
            f"{len(trickle):>8} {held.trickle.errors - failed:>6} {pct(trickle, 0.99):>7.2f} "
            f"{busy.calls[CLIENTS]:>10} {pct(samples, 0.99):>8.2f}",
            flush=True,
        )


def report(
    args: argparse.Namespace,
    phases: dict[str, Target],
    rss: dict[str, int],
    trickle: Phase,
    gc: tuple[int, float],
) -> None:
    print(
        f"\n{CLIENTS} closed-loop clients, {args.rounds} rounds x {args.seconds:g} s per phase; "
        f"held: {args.connections} more connections, each calling every {args.every:g} s"
        f"{' in a 2025-11-25 session' if args.sessions else ''}"
    )
    header = f"{'phase':<16} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'failed':>6}"
    print(header)
    print("-" * len(header))
    for label, t in phases.items():
        samples = sorted(t.samples[CLIENTS])
        rate = t.calls[CLIENTS] / t.seconds[CLIENTS]
        print(
            f"{label:<16} {rate:>8.0f} {pct(samples, 0.5):>7.2f} {pct(samples, 0.99):>7.2f} "
            f"{t.errors[CLIENTS]:>6}"
        )
    base = sorted(phases["baseline"].samples[CLIENTS] + phases["baseline again"].samples[CLIENTS])
    held = sorted(phases["held"].samples[CLIENTS])
    print(
        f"held / baseline: p50 {pct(held, 0.5) / pct(base, 0.5):.2f}x, "
        f"p99 {pct(held, 0.99) / pct(base, 0.99):.2f}x"
    )
    answered = sorted(trickle.latencies)
    p50, p99 = pct(answered, 0.5), pct(answered, 0.99)
    print(
        f"the held clients' own calls while held: {len(answered)} answered, "
        f"{trickle.errors} failed, p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )
    print(f"gateway full collections while held: {gc[0]}, {gc[1] * 1e3:.0f} ms paused in all")
    print("gateway RSS: " + ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in rss.items()))
    per = (rss["held"] - rss["before"]) / max(1, args.connections)
    print(f"  {per:.1f} KiB per held connection")
    worst = max(pct(held, 0.99), pct(answered, 0.99))
    verdict = "met" if worst < GOAL_P99_MS else "MISSED"
    print(
        f"goal (seed 004): p99 under {GOAL_P99_MS:.0f} ms with {args.connections} connections "
        f"held: {verdict} ({worst:.1f} ms)"
    )


if __name__ == "__main__":
    sys.exit(main())
