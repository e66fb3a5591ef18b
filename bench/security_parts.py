"""Security parts: what each part of the pipeline adds to a served ``tools/call``, over HTTP.

``security_overhead.py`` prices the pipeline as a whole; this one takes it apart. Every
variant is a real gateway process fronting its own ``bastion fixture --stdio`` child, driven
by the same 16 closed-loop clients in interleaved rounds (order rotating), and priced by its
gateway CPU per call (from ``/proc``) minus the plain gateway's:

* off, off (2nd process): ``bench/_plain_gateway.py`` twice; their difference is the
  process-to-process spread, the noise floor of every other row;
* skeleton: ``bastion serve`` with the pipeline's frame only: the local user (no ``auth``),
  an allow-all policy file, the rate limits (never refusing), no audit log and the guard off;
* skeleton + one part: API-key authentication (the ``Authorization`` header checked against
  ``bastion keys create``'s key), schema validation, result sanitising, the audit log;
* on: everything, as ``security_overhead.py``'s "on" gateway.

The parts' steps need not add up to "on": each is priced alone beside the same skeleton,
and the whole touches more code per request than any part (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from _common import CpuSplit, add_load_options, stop_servers, tree_state
from gateway_latency import Target, run_phase
from security_overhead import gateway_config, launch, prepare

CLIENTS = 16
ALLOW_ALL = """\
version: 1
roles: {bench: {description: the benchmark's API key}}
rules:
  - {id: all, effect: allow, principals: ["*"], methods: ["**"]}
"""

Change = Callable[[dict[str, Any], Path], None]


def _skeleton(config: dict[str, Any], tmp: Path) -> None:
    config.pop("auth")
    config["audit"] = {"enabled": False}
    config["guard"] = {
        "schemas": {"enabled": False},
        "sanitise": {"enabled": False},
        "pins": {"enabled": False},
    }
    config["policy"] = {"file": str(tmp / "allow-all.yaml")}


def _plus(part: Change) -> Change:
    def change(config: dict[str, Any], tmp: Path) -> None:
        _skeleton(config, tmp)
        part(config, tmp)

    return change


def _keys(config: dict[str, Any], tmp: Path) -> None:
    config["auth"] = {"resource": "https://127.0.0.1/mcp", "api_keys": {"db": str(tmp / "keys.db")}}


def _schemas(config: dict[str, Any], tmp: Path) -> None:
    config["guard"]["schemas"] = {"enabled": True}


def _sanitise(config: dict[str, Any], tmp: Path) -> None:
    config["guard"]["sanitise"] = {"enabled": True}


def _audit(config: dict[str, Any], tmp: Path) -> None:
    config["audit"] = {"db": str(tmp / "parts-audit.db")}


def _unchanged(config: dict[str, Any], tmp: Path) -> None:
    pass


# (label, change to the full "on" configuration; None: the plain gateway)
VARIANTS: list[tuple[str, Change | None]] = [
    ("off", None),
    ("off (2nd process)", None),
    ("skeleton", _skeleton),
    ("+ API-key auth", _plus(_keys)),
    ("+ schemas", _plus(_schemas)),
    ("+ sanitise", _plus(_sanitise)),
    ("+ audit log", _plus(_audit)),
    ("on", _unchanged),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_options(parser, rounds=6)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bastion-parts-") as name:
        tmp = Path(name)
        env = {**os.environ, "XDG_STATE_HOME": str(tmp / "state")}
        key = prepare(tmp, env)
        (tmp / "allow-all.yaml").write_text(ALLOW_ALL)
        asyncio.run(measure(args, tmp, env, key))
    print(f"\ntook {time.perf_counter() - started:.1f} s")
    return 0


def write_config(tmp: Path, index: int, change: Change | None) -> Path:
    if change is None:
        return gateway_config(tmp, f"plain{index}", security=False, audit=False)
    full = msgspec.json.decode(gateway_config(tmp, "full", security=True, audit=True).read_bytes())
    config = copy.deepcopy(full)
    change(config, tmp)
    if config.get("guard", {}).get("pins", {}).get("db_path"):
        config["guard"]["pins"]["db_path"] = str(tmp / f"v{index}-pins.db")
    if config.get("audit", {}).get("db"):
        config["audit"]["db"] = str(tmp / f"v{index}-audit.db")
    path = tmp / f"v{index}.json"
    path.write_bytes(msgspec.json.encode(config))
    return path


async def measure(args: argparse.Namespace, tmp: Path, env: dict[str, str], key: str) -> None:
    split = CpuSplit(args.pin)
    print(f"security parts benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"python {sys.version.split()[0]}, bastion {tree_state()}, {os.cpu_count()} CPUs")
    auth = {"Authorization": f"Bearer {key}"}
    procs: list[subprocess.Popen[bytes]] = []
    children: list[int] = []
    targets: list[Target] = []
    try:
        for index, (label, change) in enumerate(VARIANTS):
            target = launch(
                label,
                write_config(tmp, index, change),
                tmp / f"v{index}.log",
                plain=change is None,
                env=env,
                auth=auth,
                affinity=split.server_affinity,
                started=(procs, children),
            )
            targets.append(target)
        if split.pin:
            os.sched_setaffinity(0, {split.load_cpu})
        for target in targets:  # warm-up, unrecorded
            await run_phase(target, CLIENTS, 0.5)
        targets = [t.fresh() for t in targets]
        for r in range(args.rounds):
            shift = r % len(targets)
            for target in targets[shift:] + targets[:shift]:
                await run_phase(target, CLIENTS, args.seconds)
        report(targets, args)
    finally:
        stop_servers(procs, children)
        if split.pin:
            os.sched_setaffinity(0, set(split.cpus))


def report(targets: list[Target], args: argparse.Namespace) -> None:
    def cpu(t: Target) -> float:
        return t.cpu[CLIENTS]["gateway"] / max(1, t.calls[CLIENTS]) * 1e6

    off = cpu(targets[0])
    skeleton = cpu(next(t for t in targets if t.name == "skeleton"))
    print(
        f"\n{CLIENTS} closed-loop clients, {args.rounds} rounds x {args.seconds:g} s per "
        f"gateway, interleaved; gateway CPU µs per call; added = minus 'off', step = minus "
        f"'skeleton'"
    )
    header = f"{'gateway':<20} {'calls/s':>8} {'gw CPU':>7} {'added':>7} {'step':>7}"
    print(header)
    print("-" * len(header))
    for t in targets:
        value = cpu(t)
        step = f"{value - skeleton:+7.0f}" if t.name.startswith("+ ") else ""
        rate = t.calls[CLIENTS] / t.seconds[CLIENTS]
        line = f"{t.name:<20} {rate:>8.0f} {value:>7.0f} {value - off:>+7.0f} {step:>7}"
        if t.errors[CLIENTS]:
            line += f"  ({t.errors[CLIENTS]} failed calls)"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
