"""DS-3 end to end: ``bastion serve`` with API keys mounts ``bastion workspace --stdio
--trust-gateway-principal`` as ``wk`` with ``pass_principal: true``, so each principal is
its own agent there: alice's runs use up alice's run bucket, not carol's, and the change log
says who did what. A client that names a principal itself in ``_meta`` is not believed: the
gateway sends the authenticated one. (That a server without ``pass_principal`` is told
nothing is shown with the recording upstream in tests/security/test_upstream.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.conftest import (
    META_CAPS,
    META_VERSION,
    MODERN,
    answer_of,
    create_key,
    start_serve,
    wait_ready,
)
from tests.support import BASTION, free_port, stop_process
from tests.workspace.support import make_root

pytestmark = pytest.mark.e2e

POLICY = """\
version: 1
roles:
  dev: {}
rules:
  - id: dev-all
    effect: allow
    roles: [dev]
    methods: ["**"]
"""
COMMANDS = 'rate: {per_minute: 1, burst: 2}\ndefault: {roles: {default: {allow: [["true"]]}}}\n'


@dataclass
class Gateway:
    url: str
    keys: dict[str, str]
    client: httpx.Client

    def call(self, who: str, tool: str, meta: dict[str, Any] | None = None, **args: Any) -> Any:
        """(isError, structuredContent, text) of a 2026-07-28 ``tools/call`` as ``who``."""
        params = {
            "name": tool,
            "arguments": args,
            "_meta": {META_VERSION: MODERN, META_CAPS: {}, **(meta or {})},
        }
        headers = {
            "authorization": f"Bearer {self.keys[who]}",
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": MODERN,
            "mcp-method": "tools/call",
            "mcp-name": tool,
        }
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
        response = self.client.post(self.url, content=json.dumps(body), headers=headers)
        answer = answer_of(response)
        assert "result" in answer, answer
        result = answer["result"]
        return (
            bool(result.get("isError")),
            result.get("structuredContent") or {},
            (result["content"][0]["text"]),
        )


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    assert shutil.which("bwrap"), "bwrap is missing: run scripts/bootstrap"
    base = make_root()
    port = free_port()
    (base / "commands.yaml").write_text(COMMANDS)
    (base / "policy.yaml").write_text(POLICY)
    keys = {who: create_key(base / "keys.db", who, "dev") for who in ("alice", "carol")}

    argv = ["workspace", "--root", str(base / "root"), "--stdio", "--trust-gateway-principal"]
    argv += ["--policy", str(base / "commands.yaml")]
    config = base / "bastion.yaml"
    config.write_text(
        f"gateway: {{port: {port}}}\n"
        f"servers:\n  wk:\n    command: {BASTION}\n    args: {json.dumps(argv)}\n"
        "    pass_principal: true\n"
        f"auth:\n  resource: http://127.0.0.1:{port}/mcp\n"
        f"  api_keys: {{db: {base / 'keys.db'}}}\n"
        f"policy: {{file: {base / 'policy.yaml'}}}\n"
        f"audit: {{db: {base / 'audit.db'}}}\n"
        "limits: {per_principal: {rate: 100000, burst: 100000}}\n"
    )
    proc: subprocess.Popen[bytes] = start_serve(config, port, base / "serve.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, base / "serve.log")
        with httpx.Client(timeout=30) as client:
            gateway = Gateway(f"http://127.0.0.1:{port}/mcp", keys, client)
            failed, _, why = gateway.call("carol", "wk__create_workspace", name="demo")
            assert not failed, why
            yield gateway
    finally:
        stop_process(proc, grace=15)
        shutil.rmtree(base, ignore_errors=True)


def test_one_principal_cannot_use_up_anothers_runs_DS3(gw: Gateway) -> None:
    for _ in range(2):
        failed, _, why = gw.call("alice", "wk__run_command", workspace="demo", argv=["true"])
        assert not failed, why
    failed, _, why = gw.call("alice", "wk__run_command", workspace="demo", argv=["true"])
    assert failed and "rate limit" in why
    failed, _, why = gw.call("carol", "wk__run_command", workspace="demo", argv=["true"])
    assert not failed, why
    # Each principal lists its own runs only (AZ-1).
    _, listed, _ = gw.call("carol", "wk__list_executions", workspace="demo")
    assert [r["agent"]["principal"] for r in listed["ended"]] == ["apikey:carol"]
    _, listed, _ = gw.call("alice", "wk__list_executions", workspace="demo")
    assert [r["agent"]["principal"] for r in listed["ended"]] == ["apikey:alice"] * 2


def test_changes_name_the_authenticated_principal_not_a_claimed_one_DS3(gw: Gateway) -> None:
    forged = {"io.bastion/principal": "apikey:carol"}
    failed, _, why = gw.call(
        "alice", "wk__write_file", forged, workspace="demo", path="a.txt", content="a"
    )
    assert not failed, why
    _, log, _ = gw.call("carol", "wk__list_changes", workspace="demo")
    writes = [c["agent"] for c in log["changes"] if c["op"] != "run"]
    alice = "apikey:alice"
    assert writes == [{"id": f"principal:{alice}", "name": alice, "principal": alice}]


def test_trusting_needs_stdio(tmp_path: Path) -> None:
    argv = ["workspace", "--root", str(tmp_path / "r"), "--port", "1"]
    done = subprocess.run(
        [str(BASTION), *argv, "--trust-gateway-principal"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "--trust-gateway-principal needs --stdio" in done.stderr


def test_one_principal_cannot_fill_the_shared_tables_DS3(gw: Gateway) -> None:
    """The red team's squat: member places of a team workspace, then workspaces."""
    failed, _, why = gw.call("carol", "wk__create_workspace", name="team")
    assert not failed, why
    joined = 0
    while not (answer := gw.call("alice", "wk__join_workspace", workspace="team", name="s"))[0]:
        joined += 1
    assert joined == 8 and "member places" in answer[2]
    failed, _, why = gw.call("carol", "wk__join_workspace", workspace="team", name="carol")
    assert not failed, why
    created = 0
    while not (answer := gw.call("alice", "wk__create_workspace", name=f"squat{created}"))[0]:
        created += 1
    assert created == 16 and "you already created 16" in answer[2]
    failed, _, why = gw.call("carol", "wk__create_workspace", name="carolproject")
    assert not failed, why
