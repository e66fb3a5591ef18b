"""The Docker backend. No Docker daemon can run on these machines (the CLI is installed,
the engine is not), so this tests what can be tested without one: detection refuses
with the engine's own reason (and the sandbox never falls back), and the ``docker run``
line it would execute carries every isolation flag. Nothing here is mocked: the detection
runs the real ``docker`` CLI against the absent engine; the plan is a pure function."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bastion.sandbox import PROFILES, Sandbox, SandboxUnavailable
from bastion.sandbox._runtime import RuntimeFiles
from bastion.sandbox.backend import LaunchRequest, base_environment
from bastion.sandbox.docker import DockerBackend


def test_without_an_engine_docker_is_refused_with_the_reason() -> None:
    assert shutil.which("docker"), "this machine image ships the docker CLI"
    with pytest.raises(SandboxUnavailable) as refused:
        DockerBackend().check()
    assert "no Docker engine" in refused.value.detail
    with pytest.raises(SandboxUnavailable):
        Sandbox("docker")  # refused at construction, never downgraded to another backend


def test_the_docker_run_line_isolates_like_bubblewrap(workspace: Path) -> None:
    runtime = RuntimeFiles(65534, 65534)
    try:
        (workspace / "locked").mkdir()
        request = LaunchRequest(
            execution_id="abc123",
            workspace=workspace,
            cwd="src",
            argv=("pytest", "-q"),
            env=base_environment(egress=False) | {"CI": "1"},
            limits=PROFILES["strict"].limits,
            runtime=runtime,
            readonly=(workspace / "locked",),
        )
        plan = DockerBackend(image="python:3.11-slim").plan(request)
    finally:
        runtime.close()
    argv = plan.argv
    line = " ".join(argv)
    assert argv[1:3] == ["run", "--rm"] and argv[-3:] == ["python:3.11-slim", "pytest", "-q"]
    for flags in (
        "--network none",
        "--read-only",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        "--user 65534:65534",
        f"--memory {256 * 1024 * 1024} --memory-swap {256 * 1024 * 1024}",
        "--pids-limit 64",
        "--ulimit cpu=10:10",
        "--ulimit nofile=256:256",
        "--workdir /workspace/src",
        f"--mount type=bind,source={workspace},target=/workspace",
        f"--mount type=bind,source={workspace}/locked,target=/workspace/locked,readonly",
        "--env CI=1",
        "--name bastion-abc123",
    ):
        assert flags in line, flags
    assert plan.env == {}  # the docker CLI gets nothing of ours either
    assert plan.cleanup is not None  # `docker rm -f` after the command, even when killed
