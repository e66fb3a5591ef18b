"""Sandbox launch overhead and output streaming throughput, beside baselines from the same run.

Launch (median of ``--runs`` spawns each, rounds interleaved with a rotating order, one
unrecorded warm-up round):

* ``true``: plain ``/usr/bin/true``, spawn to exit (the floor);
* ``bwrap minimal``: ``bwrap --ro-bind /usr /usr ... true``, no uid drop, no seccomp;
* ``api``: ``Sandbox.run(ExecSpec(argv=("true",)))`` in one event loop: the full sandbox
  (launcher chain, uid drop, rlimits, cgroups created and removed, seccomp) without any
  interpreter start;
* ``python -c pass``: the interpreter's own start-up, which the CLI pays before anything;
* ``cli``: ``bastion sandbox exec --workspace WS -- true``, as a script would run it.

Throughput: ``head -c 100000000 /dev/zero`` read to the end in 64 KiB chunks, plain (a
subprocess pipe read in Python) against the sandbox API (``chunks()``, profile ``build``)
and the CLI (its stdout read by the same loop).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
from _common import row, tree_state

from bastion.sandbox import ExecSpec, Sandbox

ROOT = Path(__file__).resolve().parent.parent
BASTION = str(ROOT / ".venv" / "bin" / "bastion")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
PAYLOAD = 100_000_000
CHUNK = 64 * 1024


def spawn(argv: list[str]) -> Callable[[], float]:
    def once() -> float:
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    return once


def read_all(argv: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, bufsize=0)
    assert proc.stdout is not None
    total = 0
    while data := proc.stdout.read(CHUNK):
        total += len(data)
    proc.wait()
    return time.perf_counter() - start, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    options = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="bastion-bench-", dir="/tmp"))
    workspace.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(workspace, 65534, 65534)
    bwrap = shutil.which("bwrap") or "bwrap"
    minimal = [bwrap, "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib",
               "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
               "--unshare-all", "--die-with-parent", "/usr/bin/true"]  # fmt: skip
    sandbox = Sandbox()
    api_portal = anyio.from_thread.start_blocking_portal()
    portal = api_portal.__enter__()
    spec = ExecSpec(workspace=workspace, argv=("true",))

    def api() -> float:
        start = time.perf_counter()
        result = portal.call(sandbox.run, spec)
        assert result.exit_code == 0, result
        return time.perf_counter() - start

    cases: dict[str, Callable[[], float]] = {
        "true": spawn(["/usr/bin/true"]),
        "bwrap minimal": spawn(minimal),
        "api": api,
        "python -c pass": spawn([PYTHON, "-c", "pass"]),
        "cli": spawn([BASTION, "sandbox", "exec", "--workspace", str(workspace), "--", "true"]),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(options.runs + 1):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            elapsed = cases[name]()
            if round_:
                samples[name].append(elapsed)

    head = ["head", "-c", str(PAYLOAD), "/dev/zero"]
    plain_s, plain_n = read_all(head)

    async def through_api() -> tuple[float, int]:
        start = time.perf_counter()
        total = 0
        big = ExecSpec(workspace=workspace, argv=tuple(head), profile="build", capture_bytes=0)
        async with sandbox.start(big) as execution:
            async for chunk in execution.chunks():
                total += len(chunk.data)
            result = await execution.wait()
        assert result.limit == "none", result.limit
        return time.perf_counter() - start, total

    api_s, api_n = portal.call(through_api)
    cli_s, cli_n = read_all(
        [BASTION, "sandbox", "exec", "--workspace", str(workspace), "--profile", "build", "--",
         *head]
    )  # fmt: skip
    api_portal.__exit__(None, None, None)
    sandbox.close()
    shutil.rmtree(workspace, ignore_errors=True)

    print(f"sandbox benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {tree_state()}")
    print(f"{'case (ms)':<18} {'median':>8} {'min':>8} {'max':>8} {'above true':>11}")
    print("-" * 57)
    floor = statistics.median(samples["true"]) * 1e3
    for name in names:
        print(row(name, samples[name], floor))
    med = {name: statistics.median(values) for name, values in samples.items()}
    print(f"\nratios (medians): cli / true {med['cli'] / med['true']:.0f}x, "
          f"api / true {med['api'] / med['true']:.1f}x, "
          f"bwrap minimal / true {med['bwrap minimal'] / med['true']:.1f}x; "
          f"cli - python start = {(med['cli'] - med['python -c pass']) * 1e3:.0f} ms")  # fmt: skip
    print(f"\nstreaming {PAYLOAD / 1e6:.0f} MB ({'head -c ... /dev/zero'})")
    for name, seconds, total in (("plain pipe", plain_s, plain_n),
                                 ("sandbox api", api_s, api_n),
                                 ("sandbox cli", cli_s, cli_n)):  # fmt: skip
        assert total == PAYLOAD, (name, total)
        print(f"  {name:<12} {seconds * 1e3:8.0f} ms  {total / seconds / 1e6:8.0f} MB/s")
    print(f"  ratio sandbox api / plain: {plain_s / api_s:.2f}x of plain throughput; "
          f"cli: {plain_s / cli_s:.2f}x")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
