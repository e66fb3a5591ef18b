"""``bastion stdio`` as a desktop client meets it, with real processes: a client that stops
reading its answers (DS-4), a last request without its newline, a client that closes its
end of our stdout (IN-5), and an upstream's stderr with its credentials in it (IN-5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from tests.support import BASTION

pytestmark = pytest.mark.e2e

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "desk", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def isolated(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"):
        place = tmp_path / name.lower()
        place.mkdir(mode=0o700, exist_ok=True)
        env[name] = str(place)
    return env


@contextmanager
def started(tmp_path: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``bastion ARGS`` with piped stdin/stdout and stderr in ``stderr.log``; killed (if
    still running) and its pipes closed when the block ends."""
    with (tmp_path / "stderr.log").open("wb") as stderr:
        gateway = subprocess.Popen(
            [str(BASTION), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=isolated(tmp_path),
            start_new_session=True,
        )
    try:
        yield gateway
    finally:
        if gateway.poll() is None:
            gateway.kill()
        gateway.wait(timeout=10)
        for pipe in (gateway.stdin, gateway.stdout):
            if pipe is not None:
                with suppress(OSError):
                    pipe.close()


def rss_mib(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_client_that_stops_reading_answers_holds_bounded_memory_DS4(tmp_path: Path) -> None:
    """The client keeps writing 50 KB requests and never reads stdout. The gateway stops
    reading once ``max_inflight`` (1,024) requests wait on their answers' writes, so the
    client's writes block and the gateway's memory stays bounded (before: it read on,
    one task per request, 700 MiB in 20 s)."""
    with started(tmp_path, "stdio") as gateway:
        assert gateway.stdin is not None and gateway.stdout is not None
        gateway.stdin.write(line(INIT) + line(INITIALIZED))
        gateway.stdin.flush()
        assert json.loads(gateway.stdout.readline())["id"] == 0
        time.sleep(0.5)
        before = rss_mib(gateway.pid)
        pad = "p" * 50_000
        sent = [0]

        def flood() -> None:
            stdin = gateway.stdin
            assert stdin is not None
            try:
                for i in range(1, 20_000):
                    ping = {"jsonrpc": "2.0", "id": i, "method": "ping"}
                    stdin.write(line({**ping, "params": {"_meta": {"pad": pad}}}))
                    stdin.flush()
                    sent[0] = i
            except OSError:
                pass  # the gateway was stopped

        threading.Thread(target=flood, daemon=True).start()
        deadline = time.monotonic() + 30
        stalled_at, last = time.monotonic(), -1
        while time.monotonic() < deadline and sent[0] < 19_999:
            time.sleep(0.5)
            if sent[0] != last:
                stalled_at, last = time.monotonic(), sent[0]
            elif time.monotonic() - stalled_at > 2:
                break
        grown = rss_mib(gateway.pid) - before
        assert sent[0] < 3_000, f"the gateway read on: {sent[0]} requests, +{grown:.0f} MiB"
        assert grown < 250, f"+{grown:.0f} MiB for {sent[0]} requests"


def test_a_last_request_without_its_newline_is_answered(tmp_path: Path) -> None:
    """The client's last line before EOF lacks its newline: it is still read and answered,
    not dropped without a word."""
    ping = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "ping"}).encode()
    out = subprocess.run(
        [str(BASTION), "stdio"],
        input=line(INIT) + line(INITIALIZED) + ping,
        capture_output=True,
        timeout=60,
        env=isolated(tmp_path),
        check=True,
    )
    answers = {a.get("id"): a for a in map(json.loads, out.stdout.splitlines())}
    assert answers[5] == {"jsonrpc": "2.0", "id": 5, "result": {}}


def test_a_client_closing_its_end_of_our_stdout_ends_the_gateway_cleanly_IN5(
    tmp_path: Path,
) -> None:
    """The client closes the read end of our stdout, then sends a call and EOF: the
    gateway stops serving and exits 0 with no traceback (before: exit 1 and a 60-line
    ExceptionGroup on stderr)."""
    call = {"name": "echo", "arguments": {"text": "nobody reads this"}}
    with started(tmp_path, "stdio") as gateway:
        assert gateway.stdin is not None and gateway.stdout is not None
        gateway.stdin.write(line(INIT) + line(INITIALIZED))
        gateway.stdin.flush()
        assert json.loads(gateway.stdout.readline())["id"] == 0
        gateway.stdout.close()
        request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}
        gateway.stdin.write(line(request))
        gateway.stdin.flush()
        time.sleep(1)
        gateway.stdin.close()
        assert gateway.wait(timeout=30) == 0
    stderr = (tmp_path / "stderr.log").read_text()
    assert "Traceback" not in stderr, stderr


def test_an_upstreams_stderr_is_logged_with_its_credentials_masked_IN5(tmp_path: Path) -> None:
    """An upstream writes its own configured token (and a recognised secret) to stderr:
    the gateway's log shows the line, masked, as results are."""
    token = "zq81-Plain-Token-Value-77"
    talker = (
        "import os, sys\n"
        "sys.stderr.write('starting with token ' + os.environ['API_TOKEN'] + "
        "' and key AKIAIOSFODNN7EXAMPLE\\n')\n"
        "sys.stderr.flush()\n"
        f"os.execv({str(BASTION)!r}, [{str(BASTION)!r}, 'fixture', '--stdio'])\n"
    )
    config = tmp_path / "bastion.yaml"
    config.write_text(
        json.dumps(
            {
                "servers": {
                    "up": {
                        "command": sys.executable,
                        "args": ["-c", talker],
                        "env": {"API_TOKEN": token},
                    }
                }
            }
        )
    )
    with started(tmp_path, "-v", "stdio", "-c", str(config)) as gateway:
        assert gateway.stdin is not None and gateway.stdout is not None
        gateway.stdin.write(line(INIT) + line(INITIALIZED))
        gateway.stdin.write(line({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        gateway.stdin.flush()
        answered: set[object] = set()
        while answered != {0, 1}:  # notifications may come between
            answered.add(json.loads(gateway.stdout.readline()).get("id", "note"))
            answered.discard("note")
        gateway.stdin.close()
        assert gateway.wait(timeout=30) == 0
    stderr = (tmp_path / "stderr.log").read_text()
    logged = [row for row in stderr.splitlines() if "starting with token" in row]
    assert logged, stderr
    assert token not in stderr
    assert "AKIAIOSFODNN7EXAMPLE" not in stderr
    assert "[REDACTED]" in logged[0]
