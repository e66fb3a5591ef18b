"""How fast does a new instance reach ``Discovery.instances()``? (seed 003 asks < 50 ms)

A real ``bastion fixture --port`` serves MCP; each round writes a registry file for it (as
``bastion serve`` does, atomically) into a private directory and times, from the moment the
rename returned, (a) the file being noticed (STARTING) and (b) the instance being listed
(ACTIVE: port connected, ``server/discover`` answered). Then the file is removed and the
instance must leave the list. The OS watcher (inotify through watchfiles) and 250 ms polling
run side by side, rounds interleaved so noise spreads evenly.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
import anyio

from bastion.hub import Discovery, InstanceRecord, InstanceState, Transition, write_record
from bastion.hub.watcher import WatchMode

MODES: tuple[WatchMode, ...] = ("notify", "poll")


class Probe:
    def __init__(self, directory: Path, mode: WatchMode) -> None:
        self.seen: dict[str, float] = {}
        self.hub = Discovery(
            directory, watch=mode, clock=time.perf_counter, on_transition=self._on_transition
        )

    def _on_transition(self, transition: Transition) -> None:
        if transition.new is InstanceState.STARTING:
            self.seen[transition.instance_id] = transition.at

    async def round(self, url: str, pid: int) -> tuple[float, float]:
        record = InstanceRecord.create(name="bench", url=url, project="/", pid=pid)
        generation = self.hub.generation
        path = write_record(self.hub.directory, record)
        appeared = time.perf_counter()
        with anyio.fail_after(10):
            generation = await self.hub.wait_changed(generation)
        listed = time.perf_counter() - appeared
        assert [r.id for r in self.hub.instances()] == [record.id]
        path.unlink()
        with anyio.fail_after(10):
            await self.hub.wait_changed(generation)
        return self.seen[record.id] - appeared, listed


def stats(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1e3 for s in samples)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"{name:<16} {statistics.median(ms):>8.1f} {ms[0]:>8.1f} {p90:>8.1f} {ms[-1]:>8.1f}"


async def measure(url: str, pid: int, rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    results: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        probes = {m: Probe(Path(tmp) / m / "instances", m) for m in MODES}
        async with anyio.create_task_group() as tg:
            for probe in probes.values():
                await tg.start(probe.hub.run)
            await probes["notify"].round(url, pid)  # warm-up: imports, first connection
            await probes["poll"].round(url, pid)
            for n in range(rounds):
                order = MODES if n % 2 == 0 else MODES[::-1]
                for mode in order:
                    seen, listed = await probes[mode].round(url, pid)
                    results[mode][0].append(seen)
                    results[mode][1].append(listed)
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    port = _common.free_port()
    bastion = Path(sys.executable).parent / "bastion"
    fixture = subprocess.Popen(
        [str(bastion), "fixture", "--port", str(port)], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        results = anyio.run(measure, f"http://127.0.0.1:{port}/mcp", fixture.pid, args.rounds)
    finally:
        fixture.terminate()
        fixture.wait(timeout=10)
    print(f"hub discovery, {args.rounds} rounds per mode, tree {_common.tree_state()}")
    print(f"{'ms from rename':<16} {'median':>8} {'min':>8} {'p90':>8} {'max':>8}")
    for mode in MODES:
        seen, listed = results[mode]
        print(stats(f"{mode}/seen", seen))
        print(stats(f"{mode}/listed", listed))
    ratio = statistics.median(results["poll"][1]) / statistics.median(results["notify"][1])
    print(f"poll/notify ratio of median time to listed: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
