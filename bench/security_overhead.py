"""Security overhead: ``tools/call`` through ``bastion serve`` with the security pipeline on
vs the same gateway with it off, in the same run.

Three gateways, each fronting its own ``bastion fixture --stdio`` child (``fx``), measured in
alternating rounds (the order rotating each round, so noise spreads over all three):

* off: ``bench/_plain_gateway.py``, the gateway ``run_serve`` builds minus ``Security``
  (every connection the bare ``gateway.connection()``, the HTTP face serving the local user);
  Bastion has no switch for this, on purpose.
* on, no audit: ``bastion serve --no-register`` with the whole pipeline except the audit log:
  API-key authentication (the ``Authorization`` header, a key from ``bastion keys create``),
  a policy file that allows the tool (so the engine decides, not the built-in policy), rate
  limits per principal, per tool and global plus a concurrency cap, all too high ever to
  refuse (so the limiter still runs), the guard's schema validation (arguments and output),
  result sanitising and tool pinning.
* on: the same with the audit log on (its own SQLite file in the run's temp dir).

Every call is the stateless 2026-07-28 ``tools/call`` of ``fx__echo`` (JSON answer); every
target gets the same request bytes, ``Authorization`` header included (the plain gateway
ignores it). Clients: 1 and 16 closed-loop clients, each on its own keep-alive connection,
driven by ``gateway_latency.py``'s load generator (prebuilt requests, minimal HTTP/1.1
parser). With two or more CPUs the load generator is pinned to one CPU and every gateway
and fixture to another. Gateway CPU per call comes from ``/proc``.

Then, in-process (``--micro-calls``, 0 to skip): the composed pipeline handler, as the
gateway builds it, around a stub MCP layer that returns the fixture's real answer at once,
vs the stub called bare; stages added one at a time (outermost first) to price each, and
the API-key authentication the HTTP face runs before them. This isolates the pipeline's own
CPU per request from HTTP and scheduling noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import anyio
import msgspec
from _common import CpuSplit, add_load_options, child_pids, free_port, stop_servers, tree_state
from gateway_latency import BASTION, Target, http_call, http_get, pct, run_phase, wait_until

from bastion.config import load_config
from bastion.gateway import Gateway
from bastion.pipeline.pipeline import Pipeline
from bastion.pipeline.runtime import Security
from bastion.protocol.jsonrpc import Request
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import Era
from bastion.session.peer import Call
from bastion.transport._http_asgi import Headers
from bastion.transport.http_run import event_loop_options

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLIENTS = (1, 16)
GOAL_CLIENTS = 16
GOAL_P50_MS = 1.0
# The open-loop cells' offered rates: these fractions of the 'on' gateway's closed-loop
# throughput at GOAL_CLIENTS clients, the same rate to every gateway (--open-load).
OPEN_LOADS = (0.5,)
PACED_CALLS = 400  # the in-process audit check at a modest rate
PACE_S = 0.0025
TOOL = "fx__echo"
KEY_ARGS = ("--name", "bench", "--role", "bench")
HUGE = {"rate": 1e9, "burst": 1_000_000_000}  # a limit that never refuses

POLICY = """\
version: 1
roles:
  bench: {description: the benchmark's API key}
  viewer: {description: read-only}
rules:
  - id: handshake
    effect: allow
    roles: [bench, viewer]
    methods: [initialize, ping, "notifications/*", tools/list]
  - id: bench-fx
    effect: allow
    roles: [bench]
    tools: ["fx__*"]
  - id: no-secret-echo
    effect: deny
    roles: [bench]
    tools: [fx__echo]
    when:
      args:
        text: {glob: "*password*"}
"""


def gateway_config(tmp: Path, name: str, *, security: bool, audit: bool) -> Path:
    config: dict[str, Any] = {
        "servers": {"fx": {"command": BASTION, "args": ["fixture", "--stdio"]}},
    }
    if security:
        config |= {
            "auth": {
                "resource": "https://127.0.0.1/mcp",
                "api_keys": {"db": str(tmp / "keys.db")},
            },
            "policy": {"file": str(tmp / "policy.yaml")},
            "limits": {
                "per_principal": HUGE,
                "per_tool": HUGE,
                "global": HUGE,
                "tools": [{"match": "fx__*", "max_concurrent": 100_000}],
            },
            "guard": {"pins": {"db_path": str(tmp / f"{name}-pins.db")}},
            "audit": {"db": str(tmp / f"{name}-audit.db")} if audit else {"enabled": False},
        }
    path = tmp / f"{name}.json"  # JSON is YAML
    path.write_bytes(msgspec.json.encode(config))
    return path


@dataclass
class Gw:
    label: str
    target: Target


# -- main -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_options(parser, rounds=5)
    parser.add_argument(
        "--no-open", action="store_true", help="skip the open-loop cells at 16 clients"
    )
    parser.add_argument(
        "--open-load",
        type=float,
        action="append",
        help="an open-loop cell at this fraction of the 'on' gateway's capacity (repeatable; "
        "default 0.5)",
    )
    parser.add_argument(
        "--no-http", action="store_true", help="skip the HTTP part (only the in-process one)"
    )
    parser.add_argument(
        "--micro-calls",
        type=int,
        default=20_000,
        help="calls per in-process measurement (default 20000; 0 skips the in-process part)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bastion-secbench-") as name:
        tmp = Path(name)
        env = {**os.environ, "XDG_STATE_HOME": str(tmp / "state")}
        key = prepare(tmp, env)
        if not args.no_http:
            asyncio.run(http_bench(args, tmp, env, key))
        if args.micro_calls > 0:
            anyio.run(micro_bench, args, tmp, env, key, backend_options=event_loop_options())
    print(f"\ntook {time.perf_counter() - started:.1f} s")
    return 0


# -- over HTTP ----------------------------------------------------------------------------


async def http_bench(args: argparse.Namespace, tmp: Path, env: dict[str, str], key: str) -> None:
    split = CpuSplit(args.pin)
    cpus, pin, load_cpu, server_cpu = split.cpus, split.pin, split.load_cpu, split.server_cpu
    server_affinity = split.server_affinity

    print(f"security overhead benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"python {sys.version.split()[0]}, bastion {tree_state()}, {os.cpu_count()} CPUs "
        f"(load generator, gateways and fixtures share them)"
    )
    if pin:
        print(
            f"pinning: load generator on CPU {load_cpu}; gateways and their fixtures on "
            f"CPU {server_cpu}"
        )
    else:
        print("pinning: none")

    auth = {"Authorization": f"Bearer {key}"}
    procs: list[subprocess.Popen[bytes]] = []
    children: list[int] = []
    try:
        gateways: list[Gw] = []
        for label, name, security, audit in (
            ("off", "off", False, False),
            ("on, no audit", "noaudit", True, False),
            ("on", "on", True, True),
        ):
            config = gateway_config(tmp, name, security=security, audit=audit)
            target = launch(
                label,
                config,
                tmp / f"{name}.log",
                plain=not security,
                env=env,
                auth=auth,
                affinity=server_affinity,
                started=(procs, children),
            )
            gateways.append(Gw(label, target))
        if pin:
            os.sched_setaffinity(0, {load_cpu})
        print(
            f"each cell: {args.rounds} rounds x {args.seconds:.1f} s per gateway, the gateways "
            f"interleaved (order rotating); closed loop: N clients, one call in flight each"
        )

        targets = [g.target for g in gateways]
        for target in targets:  # warm-up, unrecorded
            await run_phase(target, 16, 0.5)
        closed = [t.fresh() for t in targets]
        for clients in CLIENTS:
            await rounds(closed, clients, args)
        opened: list[tuple[float, float, list[Target]]] = []  # (load, rate, targets)
        on = closed[-1]
        capacity = on.calls[GOAL_CLIENTS] / on.seconds[GOAL_CLIENTS]
        for load in [] if args.no_open else (args.open_load or OPEN_LOADS):
            cell = [t.fresh() for t in targets]
            await rounds(cell, GOAL_CLIENTS, args, GOAL_CLIENTS / (load * capacity))
            opened.append((load, load * capacity, cell))
        report(closed, opened)
    finally:
        stop_servers(procs, children)
        if pin:
            os.sched_setaffinity(0, set(cpus))


def prepare(tmp: Path, env: dict[str, str]) -> str:
    """Write the benchmark's policy file into ``tmp`` and make its API key with
    ``bastion keys create`` (in ``tmp/keys.db``); the key."""
    (tmp / "policy.yaml").write_text(POLICY)
    made = subprocess.run(
        [BASTION, "keys", "create", "--db", str(tmp / "keys.db"), *KEY_ARGS],
        check=True,
        capture_output=True,
        env=env,
    )
    return made.stdout.decode().strip().splitlines()[-1]


def launch(
    label: str,
    config: Path,
    log: Path,
    *,
    plain: bool,
    env: dict[str, str],
    auth: dict[str, str],
    affinity: Callable[[], None],
    started: tuple[list[subprocess.Popen[bytes]], list[int]],
) -> Target:
    """Start one gateway on ``config`` (``plain``: ``bench/_plain_gateway.py``, else
    ``bastion serve``), wait until it is ready, check that one ``TOOL`` call succeeds, and
    return its target (gateway and fixture pids, for CPU). The process and its fixture's pid
    are added to ``started`` (for ``stop_servers``) as soon as they exist."""
    procs, children = started
    port = free_port()
    if plain:
        argv = [PYTHON, str(ROOT / "bench" / "_plain_gateway.py"), str(config), str(port)]
    else:
        argv = [BASTION, "serve", "-c", str(config), "--port", str(port), "--no-register"]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115 - closed with the process
        cwd=ROOT,
        env=env,
        preexec_fn=affinity,  # noqa: PLW1509 - no threads here
    )
    procs.append(proc)
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, label, proc, log)
    status, body = http_call(port, TOOL, auth)
    if status != 200 or b'"error"' in body:
        raise RuntimeError(f"{label}: HTTP {status} {body[:300]!r}")
    [child] = child_pids(proc.pid)  # the fixture (/readyz says nothing once auth is on)
    children.append(child)
    pids = {"gateway": proc.pid, "fixture": child}
    return Target(label, port=port, tool=TOOL, headers=auth, pids=pids)


async def rounds(
    targets: list[Target], clients: int, args: argparse.Namespace, interval: float | None = None
) -> None:
    """``args.rounds`` rounds of every target, the order rotating each round."""
    for r in range(args.rounds):
        shift = r % len(targets)
        for target in targets[shift:] + targets[:shift]:
            await run_phase(target, clients, args.seconds, interval)


def report(closed: list[Target], opened: list[tuple[float, float, list[Target]]]) -> None:
    print(
        "\nlatency ms (write to last byte; open loop: from when the call was due), throughput "
        "calls/s,\nCPU µs per call (all calls of the cell); added = this row minus the off "
        "row, ratio = this row / the off row"
    )
    header = (
        f"{'clients':<11} {'gateway':<13} {'p50':>6} {'p99':>6} {'calls/s':>7} | "
        f"{'gw CPU':>6} {'fixture':>7} | {'added p50':>9} {'p99':>6} {'CPU':>5} | "
        f"{'p50 ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for clients in CLIENTS:
        cell_rows(f"{clients} closed", closed, clients)
    for load, _, cell in opened:
        cell_rows(f"{GOAL_CLIENTS} open {load:.0%}", cell, GOAL_CLIENTS)
    cells = [("closed loop", closed)]
    cells += [(f"open loop at {load:.0%}", cell) for load, _, cell in opened]
    for name, targets in cells:
        on, off = targets[-1], targets[0]
        s, o = sorted(on.samples[GOAL_CLIENTS]), sorted(off.samples[GOAL_CLIENTS])
        added = pct(s, 0.5) - pct(o, 0.5)
        verdict = "met" if added < GOAL_P50_MS else "MISSED"
        print(
            f"goal at {GOAL_CLIENTS} clients, {name}: security adds < {GOAL_P50_MS:g} ms "
            f"at p50: {verdict} ({added:+.2f} ms)"
        )
    for load, rate, _ in opened:
        print(
            f"open loop at {load:.0%}: {GOAL_CLIENTS} clients, each call due on a fixed "
            f"schedule, {rate:.0f} calls/s in all (= {load:.0%} of the 'on' gateway's "
            f"closed-loop throughput at {GOAL_CLIENTS} clients), the same rate to every gateway"
        )
    print(
        "closed loop: with N clients always waiting, latency ~ N / throughput, so at 16 "
        "clients the\nadded latency is mostly the added gateway CPU per call, queued behind "
        "the other clients."
    )


def cell_rows(name: str, targets: list[Target], clients: int) -> None:
    off = targets[0]
    o = sorted(off.samples[clients])
    o50, o99 = pct(o, 0.5), pct(o, 0.99)
    o_cpu = off.cpu[clients]["gateway"] / max(1, len(o)) * 1e6
    for t in targets:
        s = sorted(t.samples[clients])
        n = max(1, len(s))
        p50, p99 = pct(s, 0.5), pct(s, 0.99)
        thr = t.calls[clients] / t.seconds[clients]
        gw_cpu = t.cpu[clients]["gateway"] / n * 1e6
        fx_cpu = t.cpu[clients]["fixture"] / n * 1e6
        line = (
            f"{name:<11} {t.name:<13} {p50:>6.2f} {p99:>6.2f} {thr:>7.0f} | "
            f"{gw_cpu:>6.0f} {fx_cpu:>7.0f} | "
        )
        if t is off:
            line += f"{'':>9} {'':>6} {'':>5} | {'':>9}"
        else:
            line += (
                f"{p50 - o50:>+9.2f} {p99 - o99:>+6.2f} {gw_cpu - o_cpu:>+5.0f} | "
                f"{p50 / o50:>8.2f}x"
            )
        if t.errors[clients]:
            line += f"  ({t.errors[clients]} failed calls)"
        print(line)


# -- in-process: the pipeline's own CPU ------------------------------------------------


class StubInner:
    """What ``GuardedConnection`` wraps: answers every call at once with a fresh copy of
    ``result`` (decoded each time, as an upstream's answer is)."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.encoded = msgspec.json.encode(result)
        self.client_capabilities: dict[str, Any] = {}

    def era_of(self, call: Any) -> Any:
        return Era.MODERN

    def serve_as(self, caller: tuple[str, str]) -> None:
        """The real connection binds requestState and cache scope to the caller: nothing
        to do for a stub."""

    async def __call__(self, call: Any) -> Any:
        return msgspec.json.decode(self.encoded)


async def micro_bench(args: argparse.Namespace, tmp: Path, env: dict[str, str], key: str) -> None:
    os.environ["XDG_STATE_HOME"] = env["XDG_STATE_HOME"]
    config = load_config(gateway_config(tmp, "micro", security=True, audit=True), os.environ)
    gateway = Gateway(config, os.environ, sealer=RequestStateSealer([b"k" * 32]))
    security = Security(config, gateway)
    n = args.micro_calls
    params = {
        "name": TOOL,
        "arguments": {"text": "x"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    }
    call = Call(cast(Any, None), Request(id=1, method="tools/call", params=params))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "client": ("127.0.0.1", 40000),
        "headers": [(b"authorization", f"Bearer {key}".encode())],
    }
    async with anyio.create_task_group() as tg:
        await tg.start(security.run)
        tg.start_soon(gateway.run)
        with anyio.fail_after(30):
            while not gateway.ready() or TOOL not in gateway.app.tools:
                await anyio.sleep(0.02)
        result = await gateway.connection()(call)  # the fixture's real answer
        assert isinstance(result, dict)
        stub = StubInner(result)
        http_auth = security.http_authenticator()
        principal = await http_auth.authenticate(Headers(scope), scope)
        stages = security.pipeline.stages
        log = security.audit
        assert log is not None

        async def measure(fn: Any, audited: bool) -> float:
            """CPU µs per call, best of 5 batches; an audited batch waits for its records
            to be committed (the writer thread's CPU is counted too)."""
            best = float("inf")
            for _ in range(5):
                seq = log.seq
                t0 = time.process_time()
                for _ in range(n // 5):
                    await fn()
                if audited:
                    with anyio.fail_after(30):
                        while log.seq < seq + n // 5:
                            await anyio.sleep(0.0005)
                best = min(best, (time.process_time() - t0) / (n // 5) * 1e6)
            return best

        async def bare() -> None:
            await stub(call)

        async def authenticate() -> None:
            await http_auth.authenticate(Headers(scope), scope)

        for _ in range(2000):  # warm-up
            await bare()
        rows: list[tuple[str, float, str]] = [("bare stub call", await measure(bare, False), "")]
        previous = rows[0][1]
        for k in range(len(stages) + 1):
            guarded = Pipeline(stages[:k]).guard(cast(Any, stub), principal)

            async def through(guarded: Any = guarded) -> None:
                await guarded(call)

            for _ in range(2000):
                await through()
            cost = await measure(through, any(s.name == "audit" for s in stages[:k]))
            what = "+ GuardedConnection" if k == 0 else f"+ {stages[k - 1].name}"
            rows.append((what, cost, f"{cost - previous:+.1f}"))
            previous = cost
        auth_cost = await measure(authenticate, False)

        async def paced(guarded: Any) -> float:
            """CPU µs per call of PACED_CALLS calls, one every PACE_S seconds, all committed."""
            seq = log.seq
            t0 = time.process_time()
            for _ in range(PACED_CALLS):
                await guarded(call)
                await anyio.sleep(PACE_S)
            with anyio.fail_after(30):
                while log.seq < seq + PACED_CALLS and audited:
                    await anyio.sleep(0.0005)
            return (time.process_time() - t0) / PACED_CALLS * 1e6

        # The audit log at a modest rate, as over HTTP at a few hundred calls/s: the records
        # of one commit interval share a commit (group commit), cold caches between calls.
        assert stages[0].name == "audit"
        audited = False
        paced_bare = await paced(Pipeline(()).guard(cast(Any, stub), principal))
        audited = True
        paced_audit = await paced(Pipeline(stages[:1]).guard(cast(Any, stub), principal))
        tg.cancel_scope.cancel()

    full = rows[-1][1] - rows[0][1]
    print(
        f"\nin-process, CPU µs per call (best of 5 batches of {n // 5}): the composed pipeline "
        f"around a stub\nMCP layer answering the fixture's echo result at once (stages added "
        f"outermost first)"
    )
    print(f"{'':<22} {'µs/call':>8} {'step':>7}")
    for what, cost, step in rows:
        print(f"{what:<22} {cost:>8.1f} {step:>7}")
    print(f"{'authenticate (API key)':<22} {auth_cost:>8.1f}  (the HTTP face, before the stages)")
    back_to_back = rows[2][1] - rows[1][1]
    print(
        f"audit at one call every {PACE_S * 1e3:g} ms (group commit): "
        f"{paced_audit - paced_bare:+.1f} µs per call (back to back: {back_to_back:+.1f})"
    )
    print(
        f"pipeline total: {full + auth_cost:.1f} µs per call (stages {full:.1f} + "
        f"authentication {auth_cost:.1f}), audit writer thread included"
    )


if __name__ == "__main__":
    sys.exit(main())
