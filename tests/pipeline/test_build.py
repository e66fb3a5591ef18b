"""The stage list ``build_stages`` makes from a configuration, in front of a real server app
over the in-memory transport (DS-3, AD-1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.audit.log import AuditLog
from bastion.config.load import parse_config
from bastion.errors import PeerError
from bastion.pipeline import ApprovalGate
from bastion.pipeline.build import build_stages
from bastion.protocol.versions import Era
from tests.pipeline.support import app_with_tools, audit_records, guarded, policy, principal

pytestmark = pytest.mark.anyio

POLICY = """
version: 1
roles:
  dev: {}
rules:
  - id: handshake
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", tools/list, server/discover]
  - id: dev-files
    effect: allow
    roles: [dev]
    tools: ["files__*"]
"""
CONFIG = "limits:\n  per_principal: {rate: 5, per: minute, burst: 5}\n"


@pytest.mark.parametrize("era", [Era.LEGACY, Era.MODERN])
async def test_ds3_denied_calls_are_charged_to_the_principal_bucket(
    tmp_path: Path, era: Era
) -> None:
    """DS-3: a flood of calls the policy denies is rate-limited like any flood (-32005 with
    retryAfter once the principal's bucket is empty, so at most the burst is audited as a
    denial); every answer is still audited (the refusals by the limit as the first and a
    count); another principal is not throttled by it."""
    config = parse_config(CONFIG, {})
    app = app_with_tools("files__read", "github__delete_repo")
    rules = policy(POLICY)
    db = tmp_path / "audit.db"
    async with AuditLog(db) as log:
        stages = build_stages(config, app, lambda: rules, ApprovalGate(), log)
        codes: list[int] = []
        async with guarded(app, stages, principal("alice", "dev"), era) as client:
            for n in range(20):  # connect() used one token (discover or initialize)
                with pytest.raises(PeerError) as refused:
                    await client.call_tool("github__delete_repo", {"n": n})
                codes.append(refused.value.peer_code)
            with pytest.raises(PeerError) as allowed_but_limited:
                await client.call_tool("files__read", {})
        async with guarded(app, stages, principal("bob", "dev"), era) as client:
            ok = await client.call_tool("files__read", {})
        await log.flush()
    assert codes == [-32003] * 4 + [-32005] * 16
    assert allowed_but_limited.value.peer_code == -32005
    assert allowed_but_limited.value.peer_data["retryAfter"] >= 1
    assert ok["content"][0]["text"] == "files__read ran"
    records = [r for r in audit_records(db) if r.method == "tools/call"]
    # The refusals by the limit: the first one, then their count in one summary (DS-4),
    # written when its window ends or at the latest when the log closes.
    summaries = [
        (r.principal, r.outcome, r.detail["refused"]) for r in records if "refused" in r.detail
    ]
    assert summaries == [("alice", "-32005", 16)]
    assert [(r.principal, r.outcome) for r in records if "refused" not in r.detail] == [
        *[("alice", "-32003")] * 4,
        ("alice", "-32005"),
        ("bob", "ok"),
    ]
    assert {r.detail.get("limit") for r in records if r.outcome == "-32005"} == {"principal"}
