"""``bastion serve`` as users run it: with no configuration it fronts the built-in fixture;
``bastion servers list`` reports each upstream; replicas keep serving when one dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support import BASTION, free_port, gateway_http_server

pytestmark = pytest.mark.e2e

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def call(url: str, tool: str, args: dict[str, object]) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": args, "_meta": META},
    }
    return httpx.post(
        url,
        json=body,
        timeout=10,
        headers={
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2026-07-28",
            "mcp-method": "tools/call",
            "mcp-name": tool,
        },
    )


def servers_list(base: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BASTION), "servers", "list", "--url", base, *extra],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_default_serve_fronts_the_fixture_and_reports_it() -> None:
    port = free_port()
    with gateway_http_server(None, port) as url:
        answer = call(url, "echo", {"text": "first run"})
        assert answer.json()["result"]["content"][0]["text"] == "first run"
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        listed = servers_list(base)
        assert listed.returncode == 0, listed.stderr
        assert "fixture" in listed.stdout and "ready" in listed.stdout
        rows = json.loads(servers_list(base, "--json").stdout)
        assert rows[0]["server"] == "fixture" and rows[0]["pid"] > 0
    gone = servers_list(f"http://127.0.0.1:{free_port()}")
    assert gone.returncode != 0 and "cannot reach" in gone.stderr


def test_replicas_share_the_load_and_cover_for_each_other(tmp_path: Path) -> None:
    cfg = tmp_path / "bastion.yaml"
    cfg.write_text(
        f"servers:\n  fx:\n    command: {BASTION}\n    args: [fixture, --stdio]\n    replicas: 2\n"
    )
    port = free_port()
    with gateway_http_server(cfg, port) as url:
        base = f"http://127.0.0.1:{port}"
        rows = httpx.get(f"{base}/readyz").json()["upstreams"]
        pids = sorted(r["pid"] for r in rows)
        assert len(pids) == 2 and pids[0] != pids[1]
        os.kill(pids[0], signal.SIGKILL)
        # Calls keep succeeding: the dead replica leaves the rotation once noticed (a call
        # already routed to it fails; the gateway does not replay calls, they may not be
        # idempotent).
        deadline = time.monotonic() + 10
        served = 0
        while served < 20 and time.monotonic() < deadline:
            reply = call(url, "fx__echo", {"text": "still here"}).json()
            if "result" in reply:
                served += 1
        assert served == 20
        # ...and the dead one comes back.
        while time.monotonic() < deadline:
            rows = httpx.get(f"{base}/readyz").json()["upstreams"]
            if all(r["state"] == "ready" for r in rows) and pids[0] not in {r["pid"] for r in rows}:
                break
            time.sleep(0.1)
        assert {r["state"] for r in rows} == {"ready"}
        assert sum(r["restarts"] for r in rows) == 1


@pytest.mark.parametrize("setting", ["audit", "pins"])
def test_au5_serve_refuses_a_database_every_user_may_write(tmp_path: Path, setting: str) -> None:
    """AU-5, AZ-6: whoever may write the audit or pin database may rewrite the record or
    approve a tool; ``bastion serve`` says so and exits before it listens."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    db = shared / "x.db"
    private = tmp_path / "private"
    audit = db if setting == "audit" else private / "audit.db"
    pins = db if setting == "pins" else private / "pins.db"
    config = tmp_path / "bastion.yaml"
    config.write_text(
        f"gateway: {{port: {free_port()}}}\nservers: {{}}\naudit: {{db: {audit}}}\n"
        f"guard: {{pins: {{db_path: {pins}}}}}\n"
    )
    done = subprocess.run(
        [str(BASTION), "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
    )
    assert done.returncode == 78, done.stderr
    assert f"chmod go-w {shared}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not db.exists()


def test_in1_serve_refuses_a_config_with_a_date_yaml_cannot_hold(tmp_path: Path) -> None:
    """Red-team u: ``args: [2024-02-30]`` in ``bastion.yaml`` made ``bastion serve -c`` print a
    traceback and exit 1; it is a configuration error naming the file and line (exit 78)."""
    config = tmp_path / "bastion.yaml"
    config.write_text(
        f"gateway: {{port: {free_port()}}}\nservers:\n  x: {{command: echo, args: [2024-02-30]}}\n"
    )
    done = subprocess.run(
        [str(BASTION), "serve", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
    )
    assert done.returncode == 78, done.stderr
    assert f"bastion: {config}:3:29: '2024-02-30' is not a valid timestamp" in done.stderr
    assert "Traceback" not in done.stderr
