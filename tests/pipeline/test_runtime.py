"""The gateway's security runtime (``Security``) wires its parts from the configuration."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest

from bastion.config import parse_config
from bastion.errors import PeerError
from bastion.gateway.gateway import Gateway
from bastion.pipeline import AuthorizeStage
from bastion.pipeline.runtime import Security
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import Era
from tests.pipeline.support import app_with_tools, guarded, policy, principal
from tests.pipeline.test_approvals import POLICY

pytestmark = pytest.mark.anyio


async def test_tc6_ad3_a_waiting_calls_preview_masks_the_configured_audit_fields(
    tmp_path: Path,
) -> None:
    """AD-3, TC-6: the preview an admin sees of a waiting call goes through the audit
    redactor as configured: a field named in ``audit.redact_fields`` is masked there too."""
    config = parse_config(
        f"""\
servers: {{}}
audit: {{db: {tmp_path / "audit.db"}, redact_fields: [ticket]}}
guard: {{pins: {{db_path: {tmp_path / "pins.db"}}}}}
""",
        {},
    )
    security = Security(
        config, Gateway(config, {}, sealer=RequestStateSealer([secrets.token_bytes(32)]))
    )
    try:
        rules = policy(POLICY)
        stages = [AuthorizeStage(lambda: rules, security.approvals)]
        app = app_with_tools("ops__deploy", calls=[])
        async with guarded(app, stages, principal("alice", "dev"), Era.MODERN) as client:
            with pytest.raises(PeerError):
                await client.call_tool("ops__deploy", {"ticket": "T-4711", "cmd": "deploy"})
    finally:
        security.screens.close()
    [waiting] = security.approvals.pending()
    assert "deploy" in waiting.arguments_preview
    assert "T-4711" not in waiting.arguments_preview


def test_az1_the_gateway_warns_of_a_principal_glob_that_can_match_no_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """AZ-1: ``principals: [bob]`` can never apply (key bob is ``apikey:bob``); the gateway
    loads the file and logs a warning naming the rule and the id forms."""
    file = tmp_path / "policy.yaml"
    file.write_text(
        "roles: {dev: {}}\nrules:\n"
        "  - {id: no-bob, effect: deny, principals: [bob], tools: [fx__simple]}\n"
    )
    config = parse_config(
        f"""\
servers: {{}}
policy: {{file: {file}}}
audit: {{db: {tmp_path / "audit.db"}}}
guard: {{pins: {{db_path: {tmp_path / "pins.db"}}}}}
""",
        {},
    )
    with caplog.at_level(logging.WARNING, logger="bastion.policy.principal_ids"):
        security = Security(
            config, Gateway(config, {}, sealer=RequestStateSealer([secrets.token_bytes(32)]))
        )
    security.screens.close()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{file}: rules[0].principals[0] 'bob' can never match" in warning
    assert "apikey:<key name>" in warning
