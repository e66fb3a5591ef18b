"""Helpers the benchmark scripts share (they run as ``python bench/<script>.py``, so this
module is importable as ``_common``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The first request a 2025-11-25 client sends, as the start-up benchmarks send it.
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}


def tree_state() -> str:
    """The commit measured, and whether ``src/`` differs from it."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], check=False, cwd=ROOT, capture_output=True)
        return done.stdout.decode().strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "src")
    except OSError:
        return "unknown"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}"


def row(name: str, samples: list[float], floor: float, *, width: int = 18) -> str:
    """One table line: median, min, max and median above ``floor`` (all in ms)."""
    values = [s * 1e3 for s in samples]
    med = statistics.median(values)
    return (
        f"{name:<{width}} {med:>8.0f} {min(values):>8.0f} {max(values):>8.0f} {med - floor:>11.0f}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CpuSplit:
    """``--pin split``: the load generator on one CPU, every server on another (when there
    are two or more); ``pin`` is False otherwise and nothing is pinned."""

    def __init__(self, mode: str) -> None:
        self.cpus = sorted(os.sched_getaffinity(0))
        self.pin = mode == "split" and len(self.cpus) >= 2
        self.load_cpu = self.cpus[0] if self.pin else None
        self.server_cpu = self.cpus[1] if self.pin else None

    def server_affinity(self) -> None:
        """A ``preexec_fn``: run this server child on the server CPU."""
        if self.server_cpu is not None:
            os.sched_setaffinity(0, {self.server_cpu})


def add_load_options(parser: argparse.ArgumentParser, *, rounds: int) -> None:
    """The options every load benchmark takes: ``--rounds``, ``--seconds``, ``--pin``."""
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"rounds per cell (default {rounds})"
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="seconds per target per round (default 2)"
    )
    parser.add_argument(
        "--pin",
        choices=("split", "none"),
        default="split",
        help="split: load generator on one CPU, servers on another (default); none: no pinning",
    )


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux: ``/proc/PID/task/*/children``), e.g. the
    fixture a gateway runs; /readyz names them only on a gateway without auth."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


def stop_servers(procs: list[subprocess.Popen[bytes]], children: list[int]) -> None:
    """SIGTERM every server (SIGKILL after 10 s), then kill any fixture child left over
    (the gateways stop their children; this is a backstop)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in children:
        with contextlib.suppress(OSError):
            if b"fixture" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
