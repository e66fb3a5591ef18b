"""Cold-start latency over stdio: spawn a server, send one request, time until its answer line.

The clock starts just before the process is spawned; the request line is written to stdin
right after the spawn (a pipe buffers it while the server imports), and the clock stops when
one complete response line has been read from stdout. The process is then killed. Cases:

* bastion/initialize, bastion/discover: the ``.venv/bin/bastion fixture --stdio`` console
  script, as a desktop client would spawn it, answering ``initialize`` (2025-11-25) and a
  stateless ``server/discover`` (2026-07-28);
* sdk/initialize, sdk/discover: ``bench/sdk_stdio_server.py``, a one-tool official-SDK
  ``MCPServer`` (discover only if the SDK answers it with a result);
* floor: ``python -c pass``, spawn to exit: the interpreter's own start-up.

Runs are interleaved round by round (the order rotates each round) so machine noise spreads
over every case; one unrecorded warm-up round goes first so no case pays for cold caches.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _common import INITIALIZE, row

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python")
BASTION = str(BIN / "bastion")
SDK_SERVER = str(ROOT / "bench" / "sdk_stdio_server.py")
TIMEOUT_S = 20.0  # per spawn; a server that takes longer is reported as failed

DISCOVER: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "server/discover",
    "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
        }
    },
}


@dataclass
class Case:
    name: str
    argv: list[str]
    request: dict[str, Any] | None  # None: no exchange, time spawn to exit (the floor)
    samples: list[float] = field(default_factory=list)


class SpawnFailed(RuntimeError):
    pass


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    """Read stdout until the first newline, bounded by ``deadline`` (perf_counter time)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.perf_counter()
            if left <= 0 or not sel.select(left):
                raise SpawnFailed("no response line before the timeout")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise SpawnFailed(f"stdout closed, exit code {proc.wait()}")
            buf += chunk
    return bytes(buf[: buf.index(b"\n")])


def run_once(case: Case) -> tuple[float, dict[str, Any] | None]:
    """One spawn; returns seconds to answer (or to exit, for the floor) and the answer."""
    line = None if case.request is None else json.dumps(case.request).encode() + b"\n"
    started = time.perf_counter()
    proc = subprocess.Popen(
        case.argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        assert proc.stdin is not None
        if line is None:
            proc.wait(TIMEOUT_S)
            return time.perf_counter() - started, None
        proc.stdin.write(line)
        proc.stdin.flush()
        answer = _read_line(proc, started + TIMEOUT_S)
        elapsed = time.perf_counter() - started
        return elapsed, json.loads(answer)
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def answers(case: Case) -> tuple[bool, str]:
    """Whether the case gets a result (not an error) for its request; with a short reason."""
    try:
        _, reply = run_once(case)
    except SpawnFailed as exc:
        return False, str(exc)
    if reply is None:
        return True, "exited"
    if "result" in reply:
        return True, "result"
    return False, f"error {reply.get('error')}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="recorded runs per case")
    args = parser.parse_args()
    started = time.perf_counter()

    bastion_init = Case("bastion/initialize", [BASTION, "fixture", "--stdio"], INITIALIZE)
    bastion_disc = Case("bastion/discover", [BASTION, "fixture", "--stdio"], DISCOVER)
    sdk_init = Case("sdk/initialize", [PYTHON, SDK_SERVER], INITIALIZE)
    sdk_disc = Case("sdk/discover", [PYTHON, SDK_SERVER], DISCOVER)
    floor = Case("floor (-c pass)", [PYTHON, "-c", "pass"], None)
    cases = [bastion_init, sdk_init, bastion_disc, sdk_disc, floor]

    print(f"startup benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"python {sys.version.split()[0]}, mcp {version('mcp')}, {os.cpu_count()} CPUs, "
        f"{args.runs} runs per case after 1 warm-up round; times in ms"
    )
    for case in list(cases):
        ok, why = answers(case)  # doubles as the warm-up round
        if not ok:
            print(f"skipping {case.name}: {why}")
            cases.remove(case)
    if bastion_init not in cases or sdk_init not in cases:
        print("cannot compare without both initialize cases")
        return 0

    for i in range(args.runs):
        shift = i % len(cases)
        for case in cases[shift:] + cases[:shift]:
            case.samples.append(run_once(case)[0])

    base = statistics.median(floor.samples) * 1e3 if floor in cases else 0.0
    print()
    header = f"{'case':<18} {'median':>8} {'min':>8} {'max':>8} {'above floor':>11}"
    print(header)
    print("-" * len(header))
    for case in cases:
        print(row(case.name, case.samples, base))

    def med(case: Case) -> float:
        return statistics.median(case.samples) * 1e3

    print("\nratios SDK / Bastion (medians; 'net' subtracts the floor from both):")
    for sdk, ours in ((sdk_init, bastion_init), (sdk_disc, bastion_disc)):
        if sdk in cases and ours in cases:
            net = (med(sdk) - base) / (med(ours) - base)
            ratio = med(sdk) / med(ours)
            print(f"  {sdk.name:<15} / {ours.name:<18} {ratio:5.2f}x   net {net:5.2f}x")
    print(f"\ntook {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
