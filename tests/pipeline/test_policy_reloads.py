"""A running gateway's policy file reloads (``Security`` polling, audited by
``policy_reloads``) against ``PUT /api/v1/policies`` and edits made during a compile."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from bastion.admin.policy_file import FilePolicies
from bastion.config import parse_config
from bastion.gateway.gateway import Gateway
from bastion.pipeline.runtime import Security
from bastion.policy.store import Loaded
from bastion.protocol.request_state import RequestStateSealer
from tests.pipeline.support import audit_records

pytestmark = pytest.mark.anyio

RULE = "  - {id: %s, effect: allow, roles: [dev], tools: [srv__tool]}\n"
V1 = "roles: {dev: null}\nrules:\n" + RULE % "v1"
V2 = "roles: {dev: null}\nrules:\n" + RULE % "v2" + RULE % "v2b"
V3 = "roles: {dev: null}\nrules:\n" + RULE % "v3"


def _security(tmp_path: Path) -> Security:
    policy = tmp_path / "policy.yaml"
    policy.write_text(V1)
    config = parse_config(
        f"""\
servers: {{}}
policy: {{file: {policy}, reload_interval: 0.02}}
audit: {{db: {tmp_path / "audit.db"}}}
""",
        {},
    )
    return Security(
        config, Gateway(config, {}, sealer=RequestStateSealer([secrets.token_bytes(32)]))
    )


async def _run_until(security: Security, done: Callable[[], bool]) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(security.run)
        with anyio.fail_after(10):
            while not done():
                await anyio.sleep(0.02)
        await anyio.sleep(0.1)  # a few more polls
        tg.cancel_scope.cancel()


def _ids(security: Security) -> list[str]:
    assert security.policy_store is not None
    return [rule.id for rule in security.policy_store.current.rules]


async def test_a_poll_compiled_before_a_put_does_not_undo_it(tmp_path: Path) -> None:
    """Red-team t14: a hand edit (V2) was being compiled by the poller when an admin PUT
    V3; the stale V2 was applied afterwards, and stayed until the next poll noticed the file.
    Now V3, once PUT, is the policy in force at every later moment."""
    security = _security(tmp_path)
    store = security.policy_store
    assert store is not None
    check, apply = store.check, store.apply
    in_force: list[list[str]] = []

    def check_during_a_put() -> Loaded | None:
        loaded = check()
        if loaded is not None and not in_force:  # compiled from V2: now the admin PUTs V3
            anyio.from_thread.run(FilePolicies(store).put, V3)
            in_force.append(_ids(security))
        return loaded

    def apply_and_note(loaded: Loaded) -> object:
        result = apply(loaded)
        in_force.append(_ids(security))
        return result

    store.check = check_during_a_put  # type: ignore[method-assign]
    store.apply = apply_and_note  # type: ignore[method-assign]
    (tmp_path / "policy.yaml").write_text(V2)
    await _run_until(security, lambda: len(in_force) >= 2)
    assert in_force[0] == ["v3"]
    assert all(ids == ["v3"] for ids in in_force), in_force
    reloads = [r for r in audit_records(tmp_path / "audit.db") if r.method == "policy.reload"]
    assert reloads == []  # the dropped V2 was never loaded, so never audited as loaded


async def test_ad1_a_reload_audits_the_digest_of_what_it_compiled(tmp_path: Path) -> None:
    """Red-team t14: the audit record of a reload carried the sha-256 of the file as it was
    when recorded, which an edit after the compile had already changed."""
    security = _security(tmp_path)
    store = security.policy_store
    assert store is not None
    check = store.check
    edited: list[bool] = []

    def check_then_edit() -> Loaded | None:
        loaded = check()
        if loaded is not None and not edited:  # V2 compiled; the file changes again
            (tmp_path / "policy.yaml").write_text(V3 + "# later\n")
            edited.append(True)
        return loaded

    store.check = check_then_edit  # type: ignore[method-assign]
    (tmp_path / "policy.yaml").write_text(V2)
    await _run_until(security, lambda: bool(edited))
    reloads = [r for r in audit_records(tmp_path / "audit.db") if r.method == "policy.reload"]
    assert reloads[0].outcome == "ok"
    assert reloads[0].detail == {"rules": 2, "sha256": hashlib.sha256(V2.encode()).hexdigest()}
