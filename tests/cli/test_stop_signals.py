"""A stop signal (SIGTERM, SIGINT) to a running gateway, with real processes: every call the
upstream already received keeps its audit record (AD-1), ``cancelled`` when the stop cut
it, and the log still verifies; on `bastion stdio`, `bastion hub` and `bastion serve`
alike. `bastion serve` stops within its bound though a client holds a GET stream open."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from bastion.transport.base import DRAIN_TIMEOUT
from tests.support import BASTION, PYTHON, free_port, stop_process, wait_for_port

pytestmark = pytest.mark.e2e

UPSTREAMS = Path(__file__).resolve().parent.parent / "gateway" / "upstreams"
LEGACY = "2025-11-25"


def upstream_config(tmp_path: Path, audit_db: Path) -> tuple[Path, Path]:
    """A config whose upstream ``up`` notes every tool call it receives (in the file
    returned second) and never answers ``wait``; the audit log in ``audit_db``."""
    calls = tmp_path / "upstream-calls.txt"
    config = tmp_path / "bastion.yaml"
    up = {"command": PYTHON, "args": [str(UPSTREAMS / "record_calls.py"), str(calls)]}
    config.write_text(json.dumps({"servers": {"up": up}, "audit": {"db": str(audit_db)}}))
    return config, calls


def wait_until_received(calls: Path, tool: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (calls.exists() and tool in calls.read_text().split()):
        assert time.monotonic() < deadline, f"the upstream never received {tool}"
        time.sleep(0.02)


def audited_calls(db: Path) -> list[dict[str, Any]]:
    """The tools/call records of ``db`` (``bastion audit export``), after it verifies."""
    return [r for r in audited(db) if r.get("method") == "tools/call"]


def audited(db: Path) -> list[dict[str, Any]]:
    """Every record of ``db`` (``bastion audit export``), after it verifies."""
    verify = subprocess.run(
        [str(BASTION), "audit", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    export = subprocess.run(
        [str(BASTION), "audit", "export", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [json.loads(line)["record"] for line in export.stdout.splitlines() if line]


class StdioClient:
    """A `bastion stdio` or `bastion hub` process, spoken to one JSON line at a time."""

    def __init__(self, argv: list[str], stderr: IO[bytes], **options: Any) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, **options
        )
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(json.loads(line))

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
        self.proc.stdin.flush()

    def ask(self, request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.send({"id": request_id, "method": method, "params": params})
        deadline = time.monotonic() + 30
        while True:
            answer = self._answers.get(timeout=max(0.01, deadline - time.monotonic()))
            if answer.get("id") == request_id and ("result" in answer or "error" in answer):
                return answer

    def start_session(self, tool: str) -> None:
        """Initialize, then wait until ``tool`` is listed (upstreams start beside)."""
        hello = {"name": "t", "version": "1"}
        params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": hello}
        assert "result" in self.ask(0, "initialize", params)
        self.send({"method": "notifications/initialized"})
        deadline = time.monotonic() + 30
        for request_id in range(1, 10_000):
            listed = self.ask(request_id, "tools/list", {})["result"]["tools"]
            if tool in [t["name"] for t in listed]:
                return
            assert time.monotonic() < deadline, f"{tool} never listed: {listed}"
            time.sleep(0.1)

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=DRAIN_TIMEOUT + 10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stdio_stopped_mid_call_keeps_the_calls_audit_record_AD1(
    tmp_path: Path, sig: signal.Signals
) -> None:
    db = tmp_path / "audit.db"
    config, calls = upstream_config(tmp_path, db)
    with (tmp_path / "stderr.log").open("wb") as stderr:
        client = StdioClient([str(BASTION), "-vv", "stdio", "-c", str(config)], stderr)
        client.start_session("up__wait")
        echoed = client.ask(50, "tools/call", {"name": "up__echo", "arguments": {"text": "a"}})
        assert echoed["result"]["content"][0]["text"] == "a"
        client.send({"id": 51, "method": "tools/call", "params": {"name": "up__wait"}})
        wait_until_received(calls, "wait")
        assert client.stop(sig) == 0
    log = (tmp_path / "stderr.log").read_text()
    assert "AuditUnavailable" not in log, log[-3000:]
    outcomes = [(r["request_id"], r["target"], r["outcome"]) for r in audited_calls(db)]
    assert outcomes == [(50, "up__echo", "ok"), (51, "up__wait", "cancelled")]


def test_hub_stopped_mid_call_keeps_the_calls_audit_record_AD1(tmp_path: Path) -> None:
    data_home, state_home, project = tmp_path / "data", tmp_path / "state", tmp_path / "proj"
    project.mkdir()
    env = {**os.environ, "XDG_DATA_HOME": str(data_home), "XDG_STATE_HOME": str(state_home)}
    config, calls = upstream_config(tmp_path, tmp_path / "serve-audit.db")
    port = free_port()
    serve = subprocess.Popen(
        [str(BASTION), "serve", "-c", str(config), "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        with (tmp_path / "hub.log").open("wb") as stderr:
            hub = StdioClient([str(BASTION), "hub", "--connect", "proj"], stderr, env=env)
            hub.start_session("proj__up__wait")
            hub.send({"id": 60, "method": "tools/call", "params": {"name": "proj__up__wait"}})
            wait_until_received(calls, "wait")
            assert hub.stop(signal.SIGTERM) == 0
    finally:
        stop_process(serve, grace=DRAIN_TIMEOUT + 5)
    hub_calls = audited_calls(state_home / "bastion" / "audit.db")
    assert [(r["request_id"], r["target"], r["outcome"]) for r in hub_calls][-1:] == [
        (60, "proj__up__wait", "cancelled")
    ]


def test_serve_stops_within_its_bound_and_records_the_call_it_cut_AD1(tmp_path: Path) -> None:
    """The old gateway waited for ever for a client's GET stream to close (and for every call
    in flight); it now gives them DRAIN_TIMEOUT, then cuts them, each cut call recorded."""
    db = tmp_path / "audit.db"
    config, calls = upstream_config(tmp_path, db)
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    argv = [str(BASTION), "serve", "--no-register", "-c", str(config), "--port", str(port)]
    with (tmp_path / "serve.log").open("wb") as stderr:
        serve = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for_port(port)
        deadline = time.monotonic() + 30
        while httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the upstream never became ready"
            time.sleep(0.05)
        session = _legacy_session(url)
        threading.Thread(target=_hold_get_stream, args=(url, session), daemon=True).start()
        call = {"jsonrpc": "2.0", "id": 70, "method": "tools/call", "params": {"name": "up__wait"}}
        threading.Thread(target=_post_quietly, args=(url, session, call), daemon=True).start()
        wait_until_received(calls, "wait")
        started = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=DRAIN_TIMEOUT + 10) == 0
        assert time.monotonic() - started < DRAIN_TIMEOUT + 5
    finally:
        stop_process(serve)
    log = (tmp_path / "serve.log").read_text()
    assert "Exception in ASGI application" not in log, log[-3000:]
    outcomes = [(r["request_id"], r["target"], r["outcome"]) for r in audited_calls(db)]
    assert outcomes == [(70, "up__wait", "cancelled")]


def _legacy_session(url: str) -> dict[str, str]:
    """The headers of a new 2025-11-25 session."""
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": LEGACY}
    hello = {"name": "t", "version": "1"}
    init = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": hello}
    body = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}
    answer = httpx.post(url, headers=headers, json=body, timeout=30)
    headers["mcp-session-id"] = answer.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx.post(url, headers=headers, json=note, timeout=30).status_code == 202
    return headers


def _hold_get_stream(url: str, headers: dict[str, str]) -> None:
    """Keep the session's GET stream open until the gateway ends it."""
    with (
        contextlib.suppress(httpx.HTTPError),
        httpx.stream("GET", url, headers=headers, timeout=60) as events,
    ):
        for _ in events.iter_bytes():
            pass


def _post_quietly(url: str, headers: dict[str, str], body: dict[str, Any]) -> None:
    with contextlib.suppress(httpx.HTTPError):  # cut by the stop
        httpx.post(url, headers=headers, json=body, timeout=60)
