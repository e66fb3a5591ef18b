"""The hub reaches an instance that requires credentials (issue 5: "the credential a local
client needs"): ``bastion serve`` with API keys lends the hub a key of role ``local`` through
its 0600 registry entry, and revokes it when it stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest

from bastion.hub.registry import default_registry_dir
from bastion.protocol.jsonrpc import Notification
from bastion.protocol.versions import Era
from tests.hub.test_hub_e2e import hub, until
from tests.support import BASTION, free_port, serve_in

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def keys(db: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        [str(BASTION), "keys", "list", "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


async def test_hub_uses_the_key_an_authenticated_instance_lends_it(tmp_path: Path) -> None:
    port = free_port()
    project = tmp_path / "secured"
    project.mkdir()
    config = project / "bastion.yaml"
    db = tmp_path / "keys.db"
    config.write_text(
        f"""
servers:
  fixture: {{command: {sys.executable}, args: ["-m", "bastion", "fixture", "--stdio"], prefix: ""}}
auth:
  resource: http://127.0.0.1:{port}/mcp
  api_keys: {{db: {db}}}
"""
    )
    heard: list[Notification] = []
    with anyio.fail_after(60), serve_in(project, port, config):
        async with hub(heard, Era.LEGACY) as s:
            rows = await until(s, lambda r: len(r) == 1, within=10)
            assert rows[0]["name"] == "secured"
            # The instance really refuses a caller without the credential (AU-1) ...
            async with httpx.AsyncClient() as http:
                refused = await http.post(
                    f"http://127.0.0.1:{port}/mcp",
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={"accept": "application/json, text/event-stream"},
                )
            assert refused.status_code == 401
            # ... and the hub, holding the lent key, connects and calls through it.
            connected = await s.call_tool("instances_connect", {"instance": "secured"})
            assert not connected.get("isError"), connected
            out = await s.call_tool("secured__test_simple_text", {})
            assert out["content"][0]["text"]
            # Only the user can read the entry that holds the key.
            [entry] = default_registry_dir(os.environ).glob("*.json")
            assert entry.stat().st_mode & 0o077 == 0
            lent = [k for k in keys(db) if str(k["name"]).startswith("hub-local-")]
            assert len(lent) == 1
            assert lent[0]["roles"] == ["local"]
            assert lent[0].get("revoked_at") is None
    # A clean stop revokes the lent key.
    [after] = [k for k in keys(db) if str(k["name"]).startswith("hub-local-")]
    assert after.get("revoked_at") is not None


def test_au5_a_killed_gateways_lent_key_is_revoked_by_the_next_one(tmp_path: Path) -> None:
    """A gateway killed before it could revoke the key it lent the hub (role ``local``,
    valid for days) leaves it active; the next gateway on the same key database revokes
    it before lending its own."""
    db = tmp_path / "keys.db"
    project = tmp_path / "secured"
    project.mkdir()
    config = project / "bastion.yaml"

    def lent() -> list[dict[str, object]]:
        return (
            [k for k in keys(db) if str(k["name"]).startswith("hub-local-")] if db.exists() else []
        )

    def write(port: int) -> None:
        config.write_text(
            f"servers: {{}}\nauth:\n  resource: http://127.0.0.1:{port}/mcp\n"
            f"  api_keys: {{db: {db}}}\n"
        )

    first_port = free_port()
    write(first_port)
    with serve_in(project, first_port, config) as first:
        deadline = time.monotonic() + 30
        while not lent():
            assert time.monotonic() < deadline, "the first gateway lent no key"
            time.sleep(0.1)
        first.kill()  # no chance to revoke its key
        first.wait()
    [orphan] = lent()
    assert orphan.get("revoked_at") is None
    second_port = free_port()
    write(second_port)
    with serve_in(project, second_port, config):
        deadline = time.monotonic() + 30
        while len(lent()) < 2:
            assert time.monotonic() < deadline, "the second gateway lent no key"
            time.sleep(0.1)
        by_name = {k["name"]: k for k in lent()}
        assert by_name[orphan["name"]].get("revoked_at") is not None
        [live] = [k for name, k in by_name.items() if name != orphan["name"]]
        assert live.get("revoked_at") is None
