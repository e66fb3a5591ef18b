"""``bastion sandbox exec``: run one command in the sandbox exactly as the workspace would.

Output is passed through as it arrives. The exit status is the command's (128 + N for a
death by signal N), ``EXIT_LIMIT`` when a limit stopped it (and stderr says which), and
``EXIT_SETUP`` when it could not be started in the sandbox at all (nothing ran).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = ["EXIT_LIMIT", "EXIT_SETUP", "run_sandbox_exec"]

EXIT_LIMIT: Final = 124  # as timeout(1): a limit stopped the command
EXIT_SETUP: Final = 125  # the sandbox could not run it

_WHY: Final = {
    "timeout": "the wall-clock timeout of {wall:g} s was reached",
    "cpu": "the CPU time limit of {cpu} s was reached",
    "memory": "the memory limit of {memory} was reached",
    "output": "the output limit of {output} was reached",
    "disk": "the disk quota or file size limit was reached",
    "cancelled": "it was cancelled",
}


def _size(n: int | None) -> str:
    if n is None:
        return "unlimited"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


def _environment(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:  # NAME alone passes our own value through, explicitly
            if name not in os.environ:
                continue
            value = os.environ[name]
        env[name] = value
    return env


def run_sandbox_exec(
    workspace: str,
    command: Sequence[str],
    *,
    profile: str = "default",
    timeout: float | None = 30.0,
    backend: str = "bubblewrap",
    network: Sequence[str] = (),
    env: Sequence[str] = (),
    cwd: str = ".",
) -> int:
    import anyio

    from bastion.sandbox import ExecSpec, NetworkPolicy, Sandbox, SandboxError
    from bastion.sandbox.limits import BackendName

    argv = list(command[1:] if command[:1] == ["--"] else command)
    if not argv:
        print("bastion sandbox exec: give a command after --", file=sys.stderr)
        return EXIT_SETUP
    out, err = sys.stdout.buffer, sys.stderr.buffer

    async def main() -> int:
        chosen: BackendName = backend  # type: ignore[assignment]  # argparse checked choices
        with Sandbox(chosen) as sandbox:
            spec = ExecSpec(
                workspace=Path(workspace),
                argv=tuple(argv),
                cwd=cwd,
                env=_environment(env),
                profile=profile,
                timeout=timeout,
                network=NetworkPolicy(allow=tuple(network)),
                capture_bytes=0,  # everything is printed as it comes; nothing to keep
            )
            async with sandbox.start(spec) as execution:
                async for chunk in execution.chunks():
                    sink = out if chunk.stream == "stdout" else err
                    sink.write(chunk.data)
                    sink.flush()
                result = await execution.wait()
        if result.limit != "none":
            limits = result.limits
            why = _WHY[result.limit].format(
                wall=limits.wall_seconds,
                cpu=limits.cpu_seconds,
                memory=_size(limits.memory_bytes),
                output=_size(limits.output_bytes),
            )
            print(f"bastion sandbox: stopped: {why} ({result.limit})", file=sys.stderr)
            return EXIT_LIMIT
        if result.signal is not None:
            return 128 + result.signal
        return result.exit_code if result.exit_code is not None else EXIT_SETUP

    try:
        return anyio.run(main)
    except SandboxError as exc:
        print(f"bastion sandbox: cannot run: {exc.detail or exc.message}", file=sys.stderr)
        return EXIT_SETUP
