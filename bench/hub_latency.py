"""The hub's start and the latency it adds, each beside a baseline in the same run.

1. Spawn to the answer to ``initialize`` over stdio: ``bastion hub`` against the official
   Python SDK's minimal server (``bench/sdk_stdio_server.py``) and the bare interpreter,
   rounds interleaved, medians (seed 003: < 100 ms; the SDK takes ~0.5 s and more here).
2. A proxied ``tools/call``: one client calling ``echo`` on a running ``bastion serve``
   (the built-in fixture) through the hub (``<instance>__echo`` over the hub's stdio)
   against calling the same instance directly over HTTP, sequential calls, alternating
   blocks; median and p99 of each and the difference (seed: < 200 ms; aim: < 2 ms).

Everything runs on loopback in a private ``XDG_DATA_HOME``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from _common import INITIALIZE, free_port

from bastion.client import ClientSession
from bastion.transport.http_client import HttpClientStream
from bastion.transport.stdio import StdioChild

ROOT = Path(__file__).resolve().parent.parent
BASTION = str(ROOT / ".venv" / "bin" / "bastion")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
INIT = json.dumps(INITIALIZE).encode() + b"\n"


def spawn_to_answer(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(INIT)
    proc.stdin.flush()
    line = proc.stdout.readline()
    elapsed = (time.perf_counter() - started) * 1e3
    proc.kill()
    proc.wait()
    if b'"result"' not in line:
        raise RuntimeError(f"{argv[-1]}: no initialize result: {line[:200]!r}")
    return elapsed


def startup(runs: int, env: dict[str, str]) -> None:
    cases = {
        "bastion hub": [BASTION, "hub"],
        "sdk server (baseline)": [PYTHON, str(ROOT / "bench" / "sdk_stdio_server.py")],
    }
    times: dict[str, list[float]] = {name: [] for name in [*cases, "python -c pass"]}
    for argv in cases.values():
        spawn_to_answer(argv, env)  # warm-up, unrecorded
    for r in range(runs):
        order = list(cases.items())
        order = order[r % len(order) :] + order[: r % len(order)]
        for name, argv in order:
            times[name].append(spawn_to_answer(argv, env))
        started = time.perf_counter()
        subprocess.run([PYTHON, "-c", "pass"], check=True)
        times["python -c pass"].append((time.perf_counter() - started) * 1e3)
    print(f"spawn -> initialize answer, ms (median of {runs})")
    for name, values in times.items():
        print(f"  {name:<24} median {statistics.median(values):6.0f}  min {min(values):6.0f}")
    hub = statistics.median(times["bastion hub"])
    sdk = statistics.median(times["sdk server (baseline)"])
    print(f"  sdk / hub {sdk / hub:.1f}x; goal < 100 ms: {'met' if hub < 100 else 'MISSED'}")


async def call_latency(calls: int, blocks: int, env: dict[str, str]) -> None:
    port = free_port()
    project = Path(env["XDG_DATA_HOME"]) / "benchproject"
    project.mkdir()
    config = project / "bastion.yaml"  # the fixture, as by default, with no rate limit
    config.write_text(
        f"servers:\n  fixture: {{command: {BASTION}, args: [fixture, --stdio], prefix: ''}}\n"
        "limits:\n  per_principal: {rate: 1000000, burst: 1000000}\n"
    )
    serve = subprocess.Popen(
        [BASTION, "serve", "--port", str(port), "-c", str(config)],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        hub_env = {"PATH": env["PATH"], "XDG_DATA_HOME": env["XDG_DATA_HOME"]}
        async with (
            HttpClientStream(url) as http,
            ClientSession(http) as direct,
            StdioChild([BASTION, "hub"], env=hub_env) as child,
            ClientSession(child) as hub,
        ):
            with anyio.fail_after(30):
                while True:
                    try:
                        await direct.connect()
                        break
                    except Exception:  # not listening yet
                        await anyio.sleep(0.05)
                await hub.connect()
                while True:
                    rows = (await hub.call_tool("instances_list", {}))["structuredContent"]
                    if rows["instances"]:
                        break
                    await anyio.sleep(0.05)
                connected = await hub.call_tool("instances_connect", {"instance": "benchproject"})
            tool = connected["structuredContent"]["prefix"] + "echo"
            samples: dict[str, list[float]] = {"direct": [], "hub": []}
            for b in range(blocks + 1):
                for name, session, name_of_tool in (("direct", direct, "echo"), ("hub", hub, tool)):
                    for _ in range(calls):
                        started = time.perf_counter()
                        out = await session.call_tool(name_of_tool, {"text": "x"})
                        if b:  # block 0 warms up
                            samples[name].append((time.perf_counter() - started) * 1e3)
                        if out["content"][0]["text"] != "x":
                            raise RuntimeError(f"bad answer: {out}")
    finally:
        serve.terminate()
        serve.wait(10)
    print(f"\nproxied tools/call, one client, {calls * blocks} calls each, ms")
    quantiles = {}
    for name, values in samples.items():
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        quantiles[name] = (statistics.median(values), p99)
        print(f"  {name:<8} p50 {quantiles[name][0]:6.2f}  p99 {p99:6.2f}")
    added = quantiles["hub"][0] - quantiles["direct"][0]
    print(
        f"  added by the hub: p50 {added:+.2f} ms; goal < 2 ms: {'met' if added < 2 else 'MISSED'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="start-up rounds (default 10)")
    parser.add_argument("--calls", type=int, default=200, help="calls per block (default 200)")
    parser.add_argument("--blocks", type=int, default=5, help="alternating blocks (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bastion-hub-bench-") as tmp:
        env = dict(os.environ, XDG_DATA_HOME=tmp, XDG_STATE_HOME=tmp)
        startup(args.runs, env)
        asyncio.run(call_latency(args.calls, args.blocks, env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
