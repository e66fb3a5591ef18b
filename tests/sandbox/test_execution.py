"""The async API the workspace's ``run_command`` uses: streaming while the command runs,
cancellation of the whole tree, limits named in the result, refusals of bad specs."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from bastion.sandbox import (
    CgroupSupport,
    ExecSpec,
    Limits,
    OutputChunk,
    Profile,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
)
from bastion.sandbox.launcher import tool
from tests.sandbox.conftest import host_processes_matching

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
SMALL = Profile(
    name="small",
    limits=Limits(
        wall_seconds=10,
        cpu_seconds=1,
        memory_bytes=128 * MiB,
        processes=32,
        output_bytes=256 * 1024,
    ),
)


async def test_output_streams_while_the_command_runs(workspace: Path) -> None:
    # The command waits for a file the test writes only after it has seen the first line:
    # the run can only finish if chunks arrive while the command is still running.
    script = "echo first; while [ ! -e go ]; do sleep 0.01; done; echo second >&2"
    seen: list[OutputChunk] = []
    with Sandbox() as sandbox:
        spec = ExecSpec(workspace=workspace, argv=("sh", "-c", script), timeout=10)
        async with sandbox.start(spec) as execution:
            async for chunk in execution.chunks():
                seen.append(chunk)
                if chunk.data == b"first\n":
                    assert execution.running
                    (workspace / "go").touch()
            result = await execution.wait()
    assert seen == [OutputChunk("stdout", b"first\n"), OutputChunk("stderr", b"second\n")]
    assert result.exit_code == 0 and result.limit == "none" and result.ok
    assert result.stdout == b"first\n" and result.stderr == b"second\n"
    assert result.backend == "bubblewrap"
    assert {"bubblewrap", "seccomp", "rlimits"} <= set(result.enforced)


async def test_cancel_kills_the_whole_tree_at_once(workspace: Path) -> None:
    script = "setsid sleep 34.1111 & (sleep 34.2222 &); echo ready; sleep 34.3333"
    with Sandbox() as sandbox:
        spec = ExecSpec(workspace=workspace, argv=("sh", "-c", script), timeout=30)
        async with sandbox.start(spec) as execution:
            seen: list[bytes] = []
            async for chunk in execution.chunks():
                seen.append(chunk.data)
                if len(seen) > 1:
                    # Killed a moment before its shell, the last sleep may get a "Killed"
                    # line from the shell in: output still on its way is passed on.
                    continue
                assert chunk.data == b"ready\n"
                # The three sleeps, and the shell and bwrap whose command lines hold them.
                assert len(host_processes_matching("sleep 34.")) >= 3
                execution.cancel()
            with anyio.fail_after(5):
                result = await execution.wait()
    assert result.limit == "cancelled" and result.signal == 9 and result.exit_code is None
    assert result.duration < 5
    assert host_processes_matching("sleep 34.") == []
    assert set(seen[1:]) <= {b"Killed\n"}


async def test_a_cancelled_caller_takes_the_tree_with_it_even_without_cgroups(
    workspace: Path,
) -> None:
    """The MCP cancel arrives as a cancelled task: no cgroup to fall back on here."""
    script = "setsid sleep 36.1111 & echo ready; sleep 36.2222"
    with Sandbox(cgroups=CgroupSupport(version=0)) as sandbox:
        spec = ExecSpec(workspace=workspace, argv=("sh", "-c", script), timeout=30)
        with anyio.move_on_after(5) as scope:
            async with sandbox.start(spec) as execution:
                async for _chunk in execution.chunks():
                    scope.cancel()  # the caller gives up while the command runs
                await execution.wait()
        assert scope.cancelled_caught
        with anyio.fail_after(5):
            result = await execution.wait()
    assert result.limit == "cancelled"
    for _ in range(50):
        if not host_processes_matching("sleep 36."):
            break
        await anyio.sleep(0.05)
    assert host_processes_matching("sleep 36.") == []


async def test_leaving_the_block_early_stops_the_command(workspace: Path) -> None:
    with Sandbox() as sandbox:
        spec = ExecSpec(workspace=workspace, argv=("sleep", "35.5"), timeout=30)
        with anyio.fail_after(5):
            async with sandbox.start(spec):
                pass
    assert host_processes_matching("sleep 35.5") == []


async def test_limits_are_named_in_the_result(workspace: Path) -> None:
    with Sandbox() as sandbox:
        cpu = await sandbox.run(
            ExecSpec(workspace=workspace, argv=("python3", "-c", "while 1: pass"), profile=SMALL)
        )
        timeout = await sandbox.run(
            ExecSpec(workspace=workspace, argv=("sleep", "9"), profile=SMALL, timeout=0.5)
        )
        output = await sandbox.run(
            ExecSpec(workspace=workspace, argv=("yes",), profile=SMALL, capture_bytes=1000)
        )
        memory = await sandbox.run(
            ExecSpec(
                workspace=workspace,
                argv=("python3", "-c", "b = b'x' * (512 * 1024 * 1024)"),
                profile=SMALL,
            )
        )
    assert (cpu.limit, cpu.signal) == ("cpu", 24)  # SIGXCPU
    assert timeout.limit == "timeout" and 0.5 <= timeout.duration < 3
    assert output.limit == "output" and output.output_bytes > 256 * 1024
    assert len(output.stdout) == 1000 and output.stdout_truncated
    assert memory.limit == "memory" and memory.signal == 9
    assert timeout.limits.wall_seconds == 0.5 and cpu.limits.cpu_seconds == 1


async def test_cgroup_limits_in_force_are_reported(workspace: Path) -> None:
    with Sandbox() as sandbox:
        result = await sandbox.run(ExecSpec(workspace=workspace, argv=("true",)))
        support = sandbox.cgroups
    # This host has cgroup v1 memory and pids controllers (v2 has only hugetlb).
    assert support.version in (1, 2)
    expected = {f"cgroup-v{support.version}-memory", f"cgroup-v{support.version}-pids"}
    assert expected <= set(result.enforced)


async def test_readonly_paths_inside_the_workspace(workspace: Path) -> None:
    (workspace / "locked").mkdir()
    (workspace / "locked" / "f").write_text("keep")
    with Sandbox() as sandbox:
        result = await sandbox.run(
            ExecSpec(
                workspace=workspace,
                argv=("sh", "-c", "echo x > locked/f; echo x > locked/g; echo x > free"),
                readonly_paths=("locked",),
            )
        )
    assert b"Read-only file system" in result.stderr
    assert (workspace / "locked" / "f").read_text() == "keep"
    assert not (workspace / "locked" / "g").exists() and (workspace / "free").exists()


def test_bad_specs_are_refused() -> None:
    with pytest.raises(SandboxError):
        ExecSpec(workspace=Path("/tmp"), argv=())
    with pytest.raises(SandboxError):
        ExecSpec(workspace=Path("/tmp"), argv=("true",), cwd="/etc")
    with pytest.raises(SandboxError):
        ExecSpec(workspace=Path("/tmp"), argv=("true",), cwd="a/../../b")
    with pytest.raises(SandboxError):
        ExecSpec(workspace=Path("/tmp"), argv=("true",), env={"A=B": "c"})
    with pytest.raises(SandboxError):
        Sandbox("chroot")  # type: ignore[arg-type]
    with pytest.raises(SandboxUnavailable):
        tool("bastion-no-such-tool")


async def test_unknown_profile_and_missing_workspace_are_refused(workspace: Path) -> None:
    with Sandbox() as sandbox:
        with pytest.raises(SandboxError, match="unknown sandbox profile"):
            await sandbox.run(ExecSpec(workspace=workspace, argv=("true",), profile="fast"))
        with pytest.raises(SandboxError, match="does not exist"):
            await sandbox.run(ExecSpec(workspace=workspace / "nope", argv=("true",)))


async def test_sandbox_none_warns_at_every_start(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bastion.sandbox")
    with Sandbox("none") as sandbox:
        assert "UNSANDBOXED" in caplog.text
        caplog.clear()
        for _ in range(2):
            result = await sandbox.run(ExecSpec(workspace=workspace, argv=("pwd",)))
            assert result.stdout == f"{workspace}\n".encode()
    warnings = [r for r in caplog.records if "UNSANDBOXED" in r.getMessage()]
    assert len(warnings) == 2
