"""IN-3, DS-4, UP-4 against a real ``bastion serve`` fronting an upstream whose tool schemas
make jsonschema validation exponential (``tests.guard.upstreams.schemabomb``: red team S).

Before, the gateway pinned such a tool on first use and validated every call's arguments
(``inputSchema``) and every result (``outputSchema``) synchronously on its event loop:
one call froze /healthz and every other client for 12 s or more. Now the schema is refused
when compiled, so the tool is held (schema-unusable), calls to it are refused at once,
and the gateway answers everyone else meanwhile; an ordinary recursive schema on the same
upstream is still served and validated.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pipeline.live import Gateway, audit_export, policy_text, serve, wait_until
from tests.support import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SERVERS = f"""\
  bomb:
    command: {sys.executable}
    args: [-m, tests.guard.upstreams.schemabomb]
    cwd: {ROOT}
"""
KEYS = {"alice": ("dev",), "admin": ("admin",)}
INVALID_PARAMS = -32602
BOMBS = ("bomb__lookup", "bomb__report")
PROMPT = 3.0  # seconds; before the fix /healthz waited for a whole validation (12 s+)


def _calls_in_flight(gw: Gateway) -> tuple[dict[str, Any], list[threading.Thread]]:
    """Both bomb tools called as alice, each from its own thread."""
    answers: dict[str, Any] = {}

    def call(tool: str, arguments: dict[str, Any]) -> None:
        try:
            answers[tool] = gw.call("alice", tool, arguments)
        except httpx.TimeoutException:
            answers[tool] = "timed out"

    threads = [
        threading.Thread(target=call, args=("bomb__lookup", {"x": "hi"})),
        threading.Thread(target=call, args=("bomb__report", {})),
    ]
    for thread in threads:
        thread.start()
    return answers, threads


def _healthz_seconds(gw: Gateway) -> float:
    started = time.monotonic()
    answer = httpx.get(f"{gw.base}/healthz", timeout=120)
    assert answer.status_code == 200
    return time.monotonic() - started


def test_in3_ds4_a_tool_whose_schema_explodes_is_held_and_the_gateway_stays_responsive(
    tmp_path: Path,
) -> None:
    with serve(tmp_path, SERVERS, policy_text(["bomb__*"]), KEYS) as gw:
        answers, threads = _calls_in_flight(gw)
        time.sleep(0.3)
        waited = _healthz_seconds(gw)
        for thread in threads:
            thread.join(timeout=60)
        assert waited < PROMPT, f"/healthz took {waited:.1f}s while the calls validated"
        for tool in BOMBS:
            assert answers[tool]["error"]["code"] == INVALID_PARAMS  # held: no such tool

        listed = gw.tools("alice")
        assert "bomb__tree" in listed
        assert not set(BOMBS) & set(listed) and not set(BOMBS) & set(gw.tools("admin"))
        tree = {"root": {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}}
        echoed = gw.call("alice", "bomb__tree", tree)["result"]["content"][0]["text"]
        assert json.loads(echoed) == tree
        wrong = gw.call("alice", "bomb__tree", {"root": {"children": [{"name": 1}]}})
        assert wrong["error"]["code"] == INVALID_PARAMS

        held = {a["tool"]: a for a in gw.admin("GET", "/approvals").json()["approvals"]}
        assert {"lookup", "report"} <= set(held)
        assert gw.admin("GET", "/audit", params={"limit": "1"}).status_code == 200
        outcomes = {
            r["target"]: r["outcome"]
            for r in audit_export(gw.audit_db)
            if r["kind"] == "pin" and r["method"] == "pin.held"
        }
        assert outcomes == {"lookup": "schema-unusable", "report": "schema-unusable"}

        # An admin who approves them anyway gets tools that fail at once, never a freeze.
        for tool in ("lookup", "report"):
            approved = gw.admin("POST", f"/approvals/{held[tool]['id']}/approve")
            assert approved.status_code == 200, approved.text
        wait_until(lambda: set(BOMBS) <= set(gw.tools("alice")))
        answers, threads = _calls_in_flight(gw)
        time.sleep(0.3)
        waited = _healthz_seconds(gw)
        for thread in threads:
            thread.join(timeout=60)
        assert waited < PROMPT, f"/healthz took {waited:.1f}s while the calls validated"
        assert answers["bomb__lookup"]["error"]["code"] == INVALID_PARAMS
        assert answers["bomb__lookup"]["error"]["message"] == "Tool unavailable"
        report = answers["bomb__report"]["result"]
        assert report["isError"] is True and "structuredContent" not in report
