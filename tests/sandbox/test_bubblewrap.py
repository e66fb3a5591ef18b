"""The bubblewrap backend, run for real: what other host users can see of a command's
environment, read-only paths that must stay read-only however the command renames their
parents, and bind sources swapped for symlinks after the checks, before bwrap starts.
SECURITY.md: IN-5/MCP01 (no secrets), IN-4 (confinement).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from bastion.sandbox import SANDBOX_GID, SANDBOX_UID, ExecSpec, Sandbox, SandboxError
from bastion.sandbox.backend import LaunchPlan, LaunchRequest
from bastion.sandbox.bubblewrap import BubblewrapBackend
from bastion.sandbox.limits import BackendName
from tests.sandbox.conftest import host_processes_matching, make_workspace

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


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory elsewhere on the host, reachable and writable by the sandbox user."""
    path = make_workspace("bastion-outside-")
    (path / "marker.txt").write_text("not yours\n")
    (path / "locked").mkdir()
    _owned_by_sandbox_user(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _swap_after_plan(monkeypatch: pytest.MonkeyPatch, victim: Path, target: Path) -> Path:
    """Once Bastion has checked the spec and built bwrap's argv, and before bwrap starts,
    ``victim`` is moved aside and a symlink to ``target`` put in its place (what another
    sandbox on the same workspace could do). Returns where the original now is."""
    moved = victim.with_name(victim.name + ".moved")
    plan = BubblewrapBackend.plan

    def swapping(self: BubblewrapBackend, request: LaunchRequest) -> LaunchPlan:
        planned = plan(self, request)
        victim.rename(moved)
        victim.symlink_to(target)
        return planned

    monkeypatch.setattr(BubblewrapBackend, "plan", swapping)
    return moved


async def test_a_workspace_swapped_for_a_symlink_before_bwrap_starts_is_still_mounted(
    workspace: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # IN-4: bwrap binds what Bastion checked (by descriptor), not whatever the path names
    # by the time it starts.
    (workspace / "original.txt").write_text("mine\n")
    _owned_by_sandbox_user(workspace)
    moved = _swap_after_plan(monkeypatch, workspace, outside)
    try:
        with Sandbox() as sandbox:
            result = await sandbox.run(
                ExecSpec(workspace=workspace, argv=("sh", "-c", "ls; echo x > written.txt"))
            )
        assert result.stdout == b"original.txt\n", result.stderr
        assert (moved / "written.txt").exists()
        assert sorted(p.name for p in outside.iterdir()) == ["locked", "marker.txt"]
    finally:
        workspace.unlink()
        moved.rename(workspace)


async def test_a_bound_directory_swapped_for_a_symlink_is_never_its_target(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # IN-4: ``data`` is bound read-write (the parent of a read-only path). Swapped for
    # ``../tmp``, which names a host directory next to the workspace and, inside, the
    # sandbox's own /tmp (so bwrap finds where to mount it), it must not bring that host
    # directory into the sandbox.
    root, outside = workspace, workspace / "tmp"
    workspace = root / "ws"
    (workspace / "data" / "locked").mkdir(parents=True)
    (workspace / "data" / "plain.txt").write_text("mine\n")
    (outside / "locked").mkdir(parents=True)
    (outside / "marker.txt").write_text("not yours\n")
    _owned_by_sandbox_user(root)
    moved = _swap_after_plan(monkeypatch, workspace / "data", Path("../tmp"))
    with Sandbox() as sandbox:
        result = await sandbox.run(
            ExecSpec(
                workspace=workspace,
                argv=("sh", "-c", "ls data; echo x > data/written.txt"),
                readonly_paths=("data/locked",),
            )
        )
    assert b"marker" not in result.stdout
    # The original directory, or nothing: bwrap finds the mount point is not what it bound.
    assert result.stdout in (b"", b"locked\nplain.txt\n"), result.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["locked", "marker.txt"]
    assert {p.name for p in moved.iterdir()} <= {"locked", "plain.txt", "written.txt"}


async def test_the_command_holds_no_descriptor_of_a_host_path(workspace: Path) -> None:
    # The bind sources reach bwrap as open descriptors: bwrap alone may have them.
    (workspace / "conf" / "locked").mkdir(parents=True)
    _owned_by_sandbox_user(workspace)
    script = (
        "import json, os\nd, seen = '/proc/self/fd', []\nfor n in os.listdir(d):\n"
        "    try: seen.append(os.readlink(f'{d}/{n}'))\n    except OSError: pass\n"
        "print(json.dumps(seen))"
    )
    with Sandbox() as sandbox:
        result = await sandbox.run(
            ExecSpec(
                workspace=workspace,
                argv=("python3", "-c", script),
                readonly_paths=("conf/locked",),
            )
        )
    assert result.ok, result.stderr
    targets = json.loads(result.stdout)
    assert targets and all(t.startswith(("pipe:", "/dev/", "/proc/")) for t in targets), targets


async def test_a_path_bound_more_than_once_is_bound_each_time(workspace: Path) -> None:
    # The workspace itself (".") and a path named twice: bwrap closes each descriptor
    # after its bind, so every bind needs one of its own.
    (workspace / "conf").mkdir()
    (workspace / "conf" / "rules.txt").write_text("original\n")
    _owned_by_sandbox_user(workspace)
    script = "echo x > top.txt; echo x > conf/rules.txt; cat conf/rules.txt"
    with Sandbox() as sandbox:
        result = await sandbox.run(
            ExecSpec(
                workspace=workspace,
                argv=("sh", "-c", script),
                readonly_paths=(".", "conf", "conf"),
            )
        )
    assert result.stdout == b"original\n", result.stderr
    assert b"Read-only file system" in result.stderr
    assert sorted(p.name for p in workspace.iterdir()) == ["conf"]
