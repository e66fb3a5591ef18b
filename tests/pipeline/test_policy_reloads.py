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


async def test_in1_ad1_a_bad_date_in_the_file_is_refused_audited_and_polling_goes_on(
    tmp_path: Path,
) -> None:
    """Red-team u: ``description: 2024-02-30`` in a replaced policy file raised a ValueError
    out of the poll, which ended ``Security.run`` and with it the whole gateway. Now the
    reload is refused and audited with why (the line named), the old policy stays, and a
    later good file is still picked up."""
    security = _security(tmp_path)
    path = tmp_path / "policy.yaml"
    bad = V2.replace("tools: [srv__tool]", "tools: [srv__tool], description: 2024-02-30")

    def reloads() -> list[tuple[str, object]]:
        records = audit_records(tmp_path / "audit.db")
        return [(r.outcome, r.detail) for r in records if r.method == "policy.reload"]

    refused: list[list[str]] = []

    def fixed_after_refusal() -> bool:
        if not refused and any(outcome == "invalid" for outcome, _ in reloads()):
            refused.append(_ids(security))
            path.write_text(V3)
        return _ids(security) == ["v3"]

    path.write_text(bad)
    await _run_until(security, fixed_after_refusal)
    assert refused == [["v1"]]  # the bad file was never in force
    outcomes = reloads()
    assert [outcome for outcome, _ in outcomes] == ["invalid", "ok"]
    error = outcomes[0][1]["error"]  # type: ignore[index]
    assert error.startswith("policy.yaml:3:") and "'2024-02-30' is not a valid timestamp" in error


async def test_in1_ad1_a_poll_that_fails_unexpectedly_is_audited_once_and_polling_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The poll itself never raises: a failure nobody foresaw (here, reading the file) keeps
    the policy in force, is logged and audited once while it repeats, and the next poll
    that works applies the new file."""
    security = _security(tmp_path)
    store = security.policy_store
    assert store is not None
    check = store.check
    failures: list[int] = []

    def check_failing_thrice() -> Loaded | None:
        if len(failures) < 3:
            failures.append(1)
            raise OSError("disk on fire")
        return check()

    store.check = check_failing_thrice  # type: ignore[method-assign]
    (tmp_path / "policy.yaml").write_text(V2)
    await _run_until(security, lambda: _ids(security) == ["v2", "v2b"])
    records = audit_records(tmp_path / "audit.db")
    reloads = [(r.outcome, r.detail) for r in records if r.method == "policy.reload"]
    assert reloads[0] == (
        "invalid",
        {"error": f"{tmp_path / 'policy.yaml'}: cannot be reloaded (OSError: disk on fire)"},
    )
    assert [outcome for outcome, _ in reloads] == ["invalid", "ok"]
    said = [r for r in caplog.records if "disk on fire" in r.getMessage()]
    assert len(said) == 1 and said[0].exc_info is not None  # once, with its traceback
