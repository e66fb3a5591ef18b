"""The bubblewrap backend, run for real: what other host users can see of a command's
environment, and read-only paths that must stay read-only however the command renames
their parents. SECURITY.md: IN-5/MCP01 (no secrets), IN-4 (confinement).
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from bastion.sandbox import SANDBOX_GID, SANDBOX_UID, ExecSpec, Sandbox, SandboxError
from bastion.sandbox.limits import BackendName
from tests.sandbox.conftest import host_processes_matching

pytestmark = pytest.mark.anyio

MARKER = "sk-live-marker-7f3e9a1c"


@pytest.mark.parametrize("backend", ["bubblewrap", "none"])
async def test_env_values_are_in_no_argv_of_the_launch(
    workspace: Path, backend: BackendName
) -> None:
    # With ``none`` every step execs the next: the chain's argv are visible only briefly.
    spec = ExecSpec(workspace=workspace, argv=("true",), env={"API_TOKEN": MARKER})
    with Sandbox(backend) as sandbox:
        async with sandbox.planned(spec) as launch:
            assert not [arg for arg in launch.plan.argv if MARKER in arg]


def test_an_env_value_with_a_nul_byte_is_refused(workspace: Path) -> None:
    with pytest.raises(SandboxError, match="NUL"):  # it would split into two bwrap arguments
        ExecSpec(workspace=workspace, argv=("true",), env={"A": "x\0--bind\0/\0/workspace/h"})


@pytest.mark.parametrize("backend", ["bubblewrap", "none"])
async def test_env_values_never_appear_in_a_host_command_line(
    workspace: Path, backend: BackendName
) -> None:
    # IN-5: /proc/PID/cmdline is readable by every local user; an upstream's API token
    # given as env must reach the command without ever being in any process's argv.
    spec = ExecSpec(
        workspace=workspace,
        argv=("sh", "-c", 'echo "token=$API_TOKEN"; exec sleep 5'),
        env={"API_TOKEN": MARKER},
    )
    with Sandbox(backend) as sandbox:
        async with sandbox.start(spec) as execution:
            seen = b""
            with anyio.fail_after(10):
                async for chunk in execution.chunks():
                    seen += chunk.data
                    if b"\n" in seen:
                        break
            leaking = host_processes_matching(MARKER)
            execution.cancel()
    assert seen == f"token={MARKER}\n".encode()
    assert leaking == []


@pytest.mark.parametrize("backend", ["bubblewrap", "none"])
async def test_env_is_exactly_the_allow_list(workspace: Path, backend: BackendName) -> None:
    with Sandbox(backend) as sandbox:
        result = await sandbox.run(
            ExecSpec(workspace=workspace, argv=("env",), env={"API_TOKEN": MARKER})
        )
    lines = result.stdout.decode().splitlines()
    names = sorted(line.split("=", 1)[0] for line in lines)
    expected = ["API_TOKEN", "HOME", "LANG", "PATH", "TMPDIR"]
    if backend == "bubblewrap":
        expected.insert(4, "PWD")  # bwrap's own, after --chdir
    assert names == expected
    assert f"API_TOKEN={MARKER}" in lines


def _owned_by_sandbox_user(root: Path) -> None:
    if os.geteuid() != 0:
        return
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(os.path.join(directory, name), SANDBOX_UID, SANDBOX_GID)


async def test_a_readonly_path_survives_renaming_its_parents(workspace: Path) -> None:
    # IN-4: the read-only bind moves with a renamed parent; a fresh copy put back in its
    # place must not be writable through to the host.
    locked = workspace / "conf" / "deep" / "locked"
    locked.mkdir(parents=True)
    (locked / "rules.txt").write_text("original\n")
    _owned_by_sandbox_user(workspace)
    attacks = (
        "mv conf conf.old",
        "mv conf/deep conf/deep.old",
        "rm -rf conf",
        "rmdir conf/deep/locked",
    )
    script = "; ".join(
        f"{attack} 2>/dev/null; mkdir -p conf/deep/locked; "
        "echo TAMPERED > conf/deep/locked/rules.txt 2>/dev/null"
        for attack in attacks
    )
    script += "; echo x > conf/free.txt; cat conf/deep/locked/rules.txt"
    with Sandbox() as sandbox:
        result = await sandbox.run(
            ExecSpec(
                workspace=workspace,
                argv=("sh", "-c", script),
                readonly_paths=("conf/deep/locked",),
            )
        )
    assert result.stdout == b"original\n", result.stderr
    assert (locked / "rules.txt").read_text() == "original\n"
    assert (workspace / "conf" / "free.txt").exists()  # the parents stay writable
    assert not (workspace / "conf.old").exists() and not (workspace / "conf/deep.old").exists()
