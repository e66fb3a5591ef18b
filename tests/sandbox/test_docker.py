"""The Docker backend. No Docker daemon can run on these machines (the CLI is installed,
the engine is not), so this tests what can be tested without one: detection refuses
with the engine's own reason (and the sandbox never falls back), the ``docker run``
line it would execute carries every isolation flag, and the command's environment
reaches the engine without its values in any command line (SECURITY.md IN-5/MCP01).
The detection runs the real ``docker`` CLI against the absent engine; the plan is a pure
function. Where the environment's way to the engine matters, the exact argv and
environment Bastion spawns are run: once by a fake ``docker`` CLI that records what it
was given, once by the real CLI talking to a fake engine on a unix socket that records
the container it is asked to create (both stand in because no Docker daemon exists on
these machines)."""

from __future__ import annotations

import json
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from bastion.sandbox import PROFILES, Sandbox, SandboxError, SandboxUnavailable
from bastion.sandbox._runtime import RuntimeFiles
from bastion.sandbox.backend import LaunchPlan, LaunchRequest, base_environment
from bastion.sandbox.docker import ENV_FILE_LINE_MAX, DockerBackend
from tests.sandbox.conftest import LAUNCHER_SECRET, SECRET_VALUE

TOKEN = "sk-live-docker-marker-5c2e8d17"


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
        f"--env-file {runtime.root}/abc123.env",
        "--name bastion-abc123",
    ):
        assert flags in line, flags
    assert "--env" not in argv and not [arg for arg in argv if "CI=1" in arg]  # IN-5
    assert plan.env == {}  # the docker CLI gets nothing of ours either
    assert plan.cleanup is not None  # `docker rm -f` after the command, even when killed


def _request(workspace: Path, runtime: RuntimeFiles, env: dict[str, str]) -> LaunchRequest:
    return LaunchRequest(
        execution_id="e5",
        workspace=workspace,
        cwd=".",
        argv=("server", "--stdio"),
        env=base_environment(egress=False) | env,
        limits=PROFILES["upstream"].limits,
        runtime=runtime,
    )


def _spawn(argv: list[str], plan: LaunchPlan) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` the way the sandbox spawns a plan: exactly ``plan.env``, from ``/``."""
    return subprocess.run(argv, env=plan.env, cwd="/", capture_output=True, timeout=30, check=False)


_FAKE_DOCKER = """#!{python}
import json, os, sys
record = {{"argv": sys.argv, "environ": open("/proc/self/environ", "rb").read().decode()}}
if "--env-file" in sys.argv:
    path = sys.argv[sys.argv.index("--env-file") + 1]
    with open(path, "rb") as handle:
        record["env_file"] = handle.read().decode()
    record["env_file_mode"] = os.stat(path).st_mode & 0o7777
with open({record!r}, "w") as out:
    json.dump(record, out)
"""


def test_env_values_reach_the_docker_cli_in_no_argv(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IN-5: /proc/PID/cmdline is readable by every local user; an upstream's API token
    must reach the docker CLI some other way, and nothing of Bastion's own environment
    may go along with it. A fake ``docker`` CLI, run with exactly the rest of the argv
    and the environment Bastion spawns, records them: no Docker daemon exists on these
    machines for the real one to talk to."""
    monkeypatch.setenv(LAUNCHER_SECRET, SECRET_VALUE)
    fake, record = tmp_path / "docker", tmp_path / "record.json"
    fake.write_text(_FAKE_DOCKER.format(python=sys.executable, record=str(record)))
    fake.chmod(0o755)
    runtime = RuntimeFiles(65534, 65534)
    try:
        request = _request(workspace, runtime, {"API_TOKEN": TOKEN})
        plan = DockerBackend().plan(request)
        done = _spawn([str(fake), *plan.argv[1:]], plan)
        assert done.returncode == 0, done.stderr
        assert plan.cleanup is not None
        plan.cleanup()  # the command is gone (docker rm -f answers: no engine)
        left = sorted(p.name for p in runtime.root.iterdir() if p.name.endswith(".env"))
    finally:
        runtime.close()
    seen: dict[str, Any] = json.loads(record.read_text())
    assert not [arg for arg in seen["argv"] if TOKEN in arg]
    assert seen["environ"] == ""  # the docker CLI's environment stays what it was: empty
    assert "--env" not in seen["argv"]  # which forwards nothing of ours by name either
    lines = seen["env_file"].splitlines()[1:]  # after the comment line
    assert lines == [f"{name}={value}" for name, value in request.env.items()]
    assert seen["env_file_mode"] == 0o600  # readable by Bastion's own user only
    assert SECRET_VALUE not in json.dumps(seen)
    assert left == []  # removed once the command is gone


class _FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Answers the docker CLI's ping and records the container it is asked to create
    (then refuses it: nothing runs here)."""

    daemon_threads = True

    def __init__(self, path: str) -> None:
        self.created: list[dict[str, Any]] = []
        super().__init__(path, _EngineHandler)


class _EngineHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FakeEngine

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Api-Version", "1.45")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._answer(200)

    def do_GET(self) -> None:
        self._answer(200, b"OK")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0].endswith("/containers/create"):
            self.server.created.append(json.loads(body))
        self._answer(500, b'{"message": "fake engine: nothing runs here"}')

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _fake_engine() -> Iterator[tuple[str, _FakeEngine]]:
    directory = tempfile.mkdtemp(prefix="bastion-engine-")  # short: a unix socket path
    engine = _FakeEngine(os.path.join(directory, "docker.sock"))
    thread = threading.Thread(target=engine.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"unix://{directory}/docker.sock", engine
    finally:
        engine.shutdown()
        engine.server_close()
        shutil.rmtree(directory, ignore_errors=True)


def test_the_real_docker_cli_asks_for_exactly_the_allow_listed_env(workspace: Path) -> None:
    """The real docker CLI reads the env file as meant: the container it asks a fake
    engine for (no Docker daemon exists on these machines) has exactly these values."""
    # The values the env file must carry unchanged: spaces, quotes, '=', '#', backslashes.
    env = {
        "API_TOKEN": TOKEN,
        "SPACED": "  a value  ",
        "QUOTED": "'single' \"double\" $HOME \\n",
        "EQUALS": "a=b==c",
        "HASH": "#not a comment",
        "EMPTY": "",
        "UNICODE": "cl\u00e9-\u2603",
        "LONGEST": "y" * (ENV_FILE_LINE_MAX - len("LONGEST=")),  # docker's own limit
    }
    runtime = RuntimeFiles(65534, 65534)
    try:
        plan = DockerBackend().plan(_request(workspace, runtime, env))
        with _fake_engine() as (host, engine):
            done = _spawn([plan.argv[0], "--host", host, *plan.argv[1:]], plan)
    finally:
        runtime.close()
    assert not [arg for arg in plan.argv if TOKEN in arg]
    assert b"fake engine" in done.stderr, done.stderr
    [created] = engine.created
    expected = base_environment(egress=False) | env
    assert created["Env"] == [f"{name}={value}" for name, value in expected.items()]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PEM", "-----BEGIN KEY-----\nabc\n-----END KEY-----"),  # one line each, no escapes
        ("CR", "abc\r"),  # a final CR would be dropped with the line's end
        ("NUL", "abc\0def"),
        ("TWO WORDS", "v4lue-marker"),  # docker refuses a name with a space
        ("#HIDDEN", "v4lue-marker"),  # a comment line: docker would drop it silently
        ("LONG", "x" * (ENV_FILE_LINE_MAX - len("LONG=") + 1)),  # docker would fail
    ],
)
def test_env_the_docker_env_file_cannot_carry_is_refused(
    workspace: Path, name: str, value: str
) -> None:
    runtime = RuntimeFiles(65534, 65534)
    try:
        with pytest.raises(SandboxError) as refused:
            DockerBackend().plan(_request(workspace, runtime, {name: value}))
        left = [p.name for p in runtime.root.iterdir() if p.name.endswith(".env")]
    finally:
        runtime.close()
    assert name in refused.value.detail
    assert value not in refused.value.detail
    assert left == []
