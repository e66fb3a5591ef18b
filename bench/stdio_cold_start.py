"""Cold start of the stdio hub: ``bastion stdio`` with three upstreams, until it answers.

The clock starts just before the process is spawned; the ``initialize`` line (2025-11-25)
is written to stdin right after the spawn (the pipe holds it while the hub imports). Two
figures per hub spawn:

* initialize: until the ``initialize`` answer line has been read;
* tools: then ``notifications/initialized`` and ``tools/list`` go out at once, and the
  clock runs until a ``tools/list`` answer lists a tool of every upstream (a list that
  misses some is asked again on ``notifications/tools/list_changed``, or after 100 ms);
  that is when the upstreams are up.

Cases, interleaved round by round (the order rotating) after one unrecorded warm-up round:

* hub x3: ``bastion stdio -c hub.yaml``, three upstreams ``one``, ``two``, ``three``, each a
  ``bastion fixture --stdio`` child;
* hub x0: the same hub with no upstreams (what the hub costs by itself);
* fixture: ``bastion fixture --stdio`` answering ``initialize`` (the baseline: one plain
  server);
* floor: ``python -c pass``, spawn to exit.

A hub is then stopped the way a desktop client does it (stdin closed; the hub stops its
children); what is still running after 10 s is killed.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import INITIALIZE, row, tree_state

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python")
BASTION = str(BIN / "bastion")
UPSTREAMS = ("one", "two", "three")
TIMEOUT_S = 30.0  # per spawn
REPOLL_S = 0.1  # ask tools/list again after this long without a list_changed
GOAL_MS = 100.0

INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


class SpawnFailed(RuntimeError):
    pass


class Lines:
    """Newline-delimited JSON from a child's stdout, each read bounded by a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.buf = bytearray()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ)

    def next(self, deadline: float) -> dict[str, Any] | None:
        """The next message; None if ``deadline`` passes first (perf_counter time)."""
        while b"\n" not in self.buf:
            left = deadline - time.perf_counter()
            if left <= 0 or not self.sel.select(left):
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise SpawnFailed(f"stdout closed, exit code {self.proc.wait()}")
            self.buf += chunk
        end = self.buf.index(b"\n")
        raw = bytes(self.buf[:end])
        del self.buf[: end + 1]
        message: dict[str, Any] = json.loads(raw)
        return message

    def close(self) -> None:
        self.sel.close()


@dataclass
class Case:
    name: str
    argv: list[str]
    kind: str  # "hub": initialize then tools; "init": initialize only; "floor": spawn to exit
    samples: list[float] = field(default_factory=list)
    tools: list[float] = field(default_factory=list)
    polls: int = 0  # tools/list requests beyond the first, over all recorded runs


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Close stdin (a client leaving) and let the hub stop its children; kill stragglers."""
    kids = descendants(proc.pid)
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    for pid in kids:
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            try:
                if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                    break  # a zombie: exited, not yet reaped by its (gone) parent
            except OSError:
                break
            time.sleep(0.02)
        try:
            if b"bastion" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if proc.stdout is not None:
        proc.stdout.close()


def has_all_tools(result: dict[str, Any]) -> bool:
    names = {t.get("name") for t in result.get("tools", []) if isinstance(t, dict)}
    return all(f"{u}__echo" in names for u in UPSTREAMS)


def run_once(case: Case) -> tuple[float, float | None, int]:
    """One spawn: (seconds to the initialize answer or exit, seconds to all tools, polls)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        case.argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert proc.stdin is not None
    if case.kind == "floor":
        proc.wait(TIMEOUT_S)
        return time.perf_counter() - started, None, 0
    lines = Lines(proc)
    try:
        proc.stdin.write(line(INITIALIZE))
        proc.stdin.flush()
        deadline = started + TIMEOUT_S
        answer = lines.next(deadline)
        initialized = time.perf_counter() - started
        if answer is None:
            raise SpawnFailed("no initialize answer before the timeout")
        if "result" not in answer:
            raise SpawnFailed(f"initialize failed: {answer.get('error')}")
        if case.kind != "hub":
            return initialized, None, 0
        proc.stdin.write(line(INITIALIZED))
        request_id = 2
        proc.stdin.write(line({"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}))
        proc.stdin.flush()
        polls = 0
        changed = False  # a list_changed arrived since the pending tools/list went out
        pending = True
        while True:
            wait_until = deadline if pending else min(deadline, time.perf_counter() + REPOLL_S)
            message = lines.next(wait_until)
            if time.perf_counter() >= deadline:
                raise SpawnFailed("the upstreams' tools did not show before the timeout")
            if message is not None and message.get("id") == request_id:
                if has_all_tools(message.get("result") or {}):
                    return initialized, time.perf_counter() - started, polls
                pending = False
            elif message is not None:
                changed |= message.get("method") == "notifications/tools/list_changed"
            if not pending and (changed or message is None):
                request_id += 1
                polls += 1
                changed, pending = False, True
                proc.stdin.write(line({"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}))
                proc.stdin.flush()
    finally:
        lines.close()
        stop(proc)


def ms(samples: list[float]) -> list[float]:
    return [s * 1e3 for s in samples]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="recorded runs per case")
    args = parser.parse_args()
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp:
        hub_cfg = Path(tmp) / "hub.yaml"
        hub_cfg.write_text(
            "servers:\n"
            + "".join(
                f"  {u}:\n    command: {BASTION}\n    args: [fixture, --stdio]\n" for u in UPSTREAMS
            )
        )
        empty_cfg = Path(tmp) / "empty.yaml"
        empty_cfg.write_text("servers: {}\n")

        hub = Case("hub x3 / initialize", [BASTION, "stdio", "-c", str(hub_cfg)], "hub")
        hub0 = Case("hub x0 / initialize", [BASTION, "stdio", "-c", str(empty_cfg)], "init")
        fixture = Case("fixture / initialize", [BASTION, "fixture", "--stdio"], "init")
        floor = Case("floor (-c pass)", [PYTHON, "-c", "pass"], "floor")
        cases = [hub, hub0, fixture, floor]

        print(f"stdio hub cold start benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, bastion {tree_state()}, "
            f"{args.runs} runs per case after 1 warm-up round; times in ms"
        )
        for case in list(cases):  # the warm-up round, and a check that each case answers
            try:
                run_once(case)
            except SpawnFailed as exc:
                print(f"skipping {case.name}: {exc}")
                cases.remove(case)
        if hub not in cases or fixture not in cases:
            print("cannot compare without the hub and the fixture")
            return 0

        for i in range(args.runs):
            shift = i % len(cases)
            for case in cases[shift:] + cases[:shift]:
                first, tools, polls = run_once(case)
                case.samples.append(first)
                if tools is not None:
                    case.tools.append(tools)
                case.polls += polls

    base = statistics.median(ms(floor.samples)) if floor in cases else 0.0
    print()
    header = f"{'case':<22} {'median':>8} {'min':>8} {'max':>8} {'above floor':>11}"
    print(header)
    print("-" * len(header))
    for case in cases:
        print(row(case.name, case.samples, base, width=22))
        if case.tools:
            print(row("hub x3 / all tools", case.tools, base, width=22))

    def med(samples: list[float]) -> float:
        return statistics.median(ms(samples))

    hub_ms, fx_ms = med(hub.samples), med(fixture.samples)
    print("\nratios (medians; 'net' subtracts the floor from both):")
    print(
        f"  hub x3 / fixture, initialize  {hub_ms / fx_ms:5.2f}x   "
        f"net {(hub_ms - base) / (fx_ms - base):5.2f}x"
    )
    if hub0 in cases:
        hub0_ms = med(hub0.samples)
        print(
            f"  hub x3 / hub x0, initialize   {hub_ms / hub0_ms:5.2f}x   "
            f"net {(hub_ms - base) / (hub0_ms - base):5.2f}x"
        )
    tools_ms = med(hub.tools)
    print(
        f"  all tools / hub initialize    {tools_ms / hub_ms:5.2f}x   "
        f"(+{tools_ms - hub_ms:.0f} ms until the three upstreams are up; "
        f"{hub.polls} extra tools/list over {args.runs} runs)"
    )
    verdict = "met" if hub_ms < GOAL_MS else "MISSED"
    print(
        f"\ngoal: hub answers initialize in < {GOAL_MS:.0f} ms: {verdict} "
        f"(median {hub_ms:.0f} ms; the interpreter alone takes {base:.0f} ms)"
    )
    print(f"\ntook {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
