"""The authorize and audit stages in front of a real server app (AZ-1, AZ-2, AZ-4, TC-6, AD-1)."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from bastion._types import JSONObject
from bastion.audit.log import AuditLog
from bastion.client import ClientHandlers
from bastion.errors import PeerError
from bastion.pipeline import ApprovalGate, AuditStage, AuthorizeStage
from bastion.pipeline.authorize import reauthorize
from bastion.pipeline.listens import OpenListens
from bastion.policy import Policy
from bastion.protocol import types as t
from bastion.protocol.versions import Era
from bastion.server.context import ToolContext
from bastion.server.registry import ServerApp
from tests.pipeline.support import (
    MemorySink,
    app_with_tools,
    audit_records,
    guarded,
    policy,
    principal,
    raw_guarded,
)
from tests.server.raw import INITIALIZE, MODERN_META

pytestmark = pytest.mark.anyio

ERAS = [Era.LEGACY, Era.MODERN]

POLICY = """
version: 1
roles:
  dev: {}
  ops: {}
rules:
  - id: handshake
    effect: allow
    roles: [dev, ops]
    methods: [initialize, ping, "notifications/*", tools/list, server/discover]
  - id: dev-files
    effect: allow
    roles: [dev]
    tools: ["files__*"]
  - id: no-secrets
    effect: deny
    roles: [dev]
    tools: [files__read]
    when:
      args:
        path: {glob: "**/.env"}
  - id: ops-danger
    effect: allow
    roles: [ops]
    tools: [github__delete_repo, workspace__run_command]
security:
  tools:
    github__delete_repo: {level: high, approval: human}
    workspace__run_command: {level: high, step_up: {recent_auth: 10m}}
"""
TOOLS = ("files__read", "files__write", "github__delete_repo", "workspace__run_command")


def fixed(text: str = POLICY) -> Policy:
    return policy(text)


@pytest.mark.parametrize("era", ERAS)
async def test_denied_call_never_reaches_the_tool_and_is_audited(tmp_path: Path, era: Era) -> None:
    """AZ-4: a denied call is answered -32003 and the tool never runs; AD-1: both the
    allowed and the denied call are recorded with principal, decision and rule id."""
    calls: list[str] = []
    app = app_with_tools(*TOOLS, calls=calls)
    db = tmp_path / "audit.db"
    rules = fixed()
    async with AuditLog(db) as log:
        stages = [AuditStage(log), AuthorizeStage(lambda: rules)]
        async with guarded(app, stages, principal("alice", "dev"), era) as client:
            ok = await client.call_tool("files__read", {"path": "src/app.py"})
            assert ok["content"][0]["text"] == "files__read ran"
            with pytest.raises(PeerError) as refused:
                await client.call_tool("files__read", {"path": "app/.env"})
            assert refused.value.peer_code == -32003
            assert refused.value.peer_message == "Denied by policy"
            with pytest.raises(PeerError) as not_granted:
                await client.call_tool("github__delete_repo", {})
            assert not_granted.value.peer_code == -32003
        await log.flush()
    assert calls == ["files__read"]
    records = [r for r in audit_records(db) if r.method == "tools/call"]
    assert [(r.target, r.decision, r.rule_id, r.outcome) for r in records] == [
        ("files__read", "allow", "dev-files", "ok"),
        ("files__read", "deny", "no-secrets", "-32003"),
        ("github__delete_repo", "deny", "default-deny", "-32003"),
    ]
    assert {r.principal for r in records} == {"alice"}
    assert {r.credential_id for r in records} == {"key:alice"}
    assert all(r.session and "session-1" not in r.session for r in records)  # a digest only


@pytest.mark.parametrize("era", ERAS)
async def test_lists_show_only_what_the_caller_may_call(era: Era) -> None:
    """AZ-2: tools/list is filtered by the same decisions as calls."""
    rules = fixed()
    app = app_with_tools(*TOOLS)
    stages = [AuthorizeStage(lambda: rules)]
    async with guarded(app, stages, principal("alice", "dev"), era) as client:
        names = {tool["name"] for tool in await client.list_tools()}
    assert names == {"files__read", "files__write"}
    async with guarded(app, stages, principal("olga", "ops"), era) as client:
        names = {tool["name"] for tool in await client.list_tools()}
    assert names == {"github__delete_repo", "workspace__run_command"}


async def test_a_caller_without_roles_is_denied_everything() -> None:
    """AZ-1: deny by default, from the first request (the handshake included)."""
    rules = fixed()
    stages = [AuthorizeStage(lambda: rules)]
    who = principal("mallory")
    for era in ERAS:
        async with guarded(app_with_tools(*TOOLS), stages, who, era, connect=False) as client:
            with pytest.raises(PeerError) as refused:
                await client.connect()
            assert refused.value.peer_code == -32003


async def test_policy_is_decided_per_request_so_a_reload_applies_at_once() -> None:
    """AZ-1: evaluated per request, not once per session."""
    current = [fixed()]
    app = app_with_tools(*TOOLS)
    async with guarded(
        app, [AuthorizeStage(lambda: current[0])], principal("alice", "dev")
    ) as client:
        await client.call_tool("files__write", {})
        current[0] = fixed(POLICY.replace('tools: ["files__*"]', "tools: [files__read]"))
        with pytest.raises(PeerError):
            await client.call_tool("files__write", {})
        names = {tool["name"] for tool in await client.list_tools()}
    assert names == {"files__read"}


async def test_step_up_requires_a_recent_authentication() -> None:
    """Seed 004 security levels: a high tool with step_up refuses a stale authentication."""
    rules = fixed()
    app = app_with_tools(*TOOLS)
    stages = [AuthorizeStage(lambda: rules)]
    stale = principal("olga", "ops", authenticated_at=time.time() - 3600)
    async with guarded(app, stages, stale) as client:
        with pytest.raises(PeerError) as refused:
            await client.call_tool("workspace__run_command", {})
    assert refused.value.peer_code == -32003
    assert refused.value.peer_message == "Recent authentication required"
    fresh = principal("olga", "ops", authenticated_at=time.time() - 5)
    async with guarded(app, stages, fresh) as client:
        result = await client.call_tool("workspace__run_command", {})
    assert result["content"][0]["text"] == "workspace__run_command ran"


@pytest.mark.parametrize("method", ["api-key", "break-glass", "mtls", "jwt"])
async def test_az5_a_credential_without_an_authentication_time_never_passes_step_up(
    method: str,
) -> None:
    """AZ-5: an API key, break-glass key or mTLS service account proves possession, not a
    recent sign-in (nor does a JWT with neither ``auth_time`` nor ``iat``): step-up refuses."""
    rules = fixed()
    app = app_with_tools(*TOOLS)
    undated = principal("olga", "ops", method=method, authenticated_at=None)
    async with guarded(app, [AuthorizeStage(lambda: rules)], undated) as client:
        with pytest.raises(PeerError) as refused:
            await client.call_tool("workspace__run_command", {})
    assert refused.value.peer_code == -32003
    assert refused.value.peer_message == "Recent authentication required"


async def test_human_approval_through_elicitation() -> None:
    """TC-6: a 2025-11-25 client that can elicit is asked; yes runs the call, no refuses it."""
    rules = fixed()
    calls: list[str] = []
    app = app_with_tools(*TOOLS, calls=calls)
    stages = [AuthorizeStage(lambda: rules, ApprovalGate())]
    asked: list[str] = []
    answer = {"approve": True}

    async def elicit(params: dict[str, object]) -> dict[str, object]:
        asked.append(str(params["message"]))
        return {"action": "accept", "content": dict(answer)}

    handlers = ClientHandlers(elicitation=elicit)
    async with guarded(app, stages, principal("olga", "ops"), Era.LEGACY, handlers) as client:
        await client.call_tool("github__delete_repo", {"repo": "old"})
        answer["approve"] = False
        with pytest.raises(PeerError) as refused:
            await client.call_tool("github__delete_repo", {"repo": "prod"})
    assert refused.value.peer_message == "Approval declined"
    assert calls == ["github__delete_repo"]
    assert asked == [
        'Allow olga to run github__delete_repo with {"repo":"old"}?',
        'Allow olga to run github__delete_repo with {"repo":"prod"}?',
    ]


async def test_tc6_the_human_asked_sees_the_arguments_redacted_and_the_audit_their_digest() -> None:
    """TC-6, AD-1, AD-3: a yes reads differently for different arguments (the approver is
    not asked blind), a secret among them is masked, and the run's audit detail carries the
    digest of the arguments that were approved."""
    rules = fixed()
    app = app_with_tools(*TOOLS)
    sink = MemorySink()
    key = b"test-authorize-arguments-key-32bytes"
    stages = [AuditStage(sink), AuthorizeStage(lambda: rules, ApprovalGate(key=key))]
    asked: list[str] = []

    async def elicit(params: dict[str, object]) -> dict[str, object]:
        asked.append(str(params["message"]))
        return {"action": "accept", "content": {"approve": True}}

    arguments = {"repo": "old", "token": "ghp_" + "a" * 36}
    handlers = ClientHandlers(elicitation=elicit)
    async with guarded(app, stages, principal("olga", "ops"), Era.LEGACY, handlers) as client:
        await client.call_tool("github__delete_repo", arguments)
    [message] = asked
    assert message.startswith('Allow olga to run github__delete_repo with {"repo":"old",')
    assert "ghp_" + "a" * 36 not in message
    [record] = [r for r in sink.records if r.method == "tools/call"]
    canonical = msgspec.json.encode(arguments, order="sorted")
    digest = hmac.new(key, canonical, hashlib.sha256).hexdigest()
    assert record.detail == {"approvedBy": "elicitation", "arguments_hmac": digest}


async def test_tc6_admin_approval_never_asks_the_calling_client() -> None:
    """TC-6: ``approval: admin`` is for calls the caller's own client must not approve: a
    client that can elicit is not asked, the call waits for an admin through the API."""
    rules = fixed(
        POLICY.replace("{level: high, approval: human}", "{level: high, approval: admin}")
    )
    calls: list[str] = []
    gate = ApprovalGate()
    app = app_with_tools(*TOOLS, calls=calls)
    asked: list[object] = []

    async def elicit(params: dict[str, object]) -> dict[str, object]:
        asked.append(params)
        return {"action": "accept", "content": {"approve": True}}

    handlers = ClientHandlers(elicitation=elicit)
    stages = [AuthorizeStage(lambda: rules, gate)]
    async with guarded(app, stages, principal("olga", "ops"), Era.LEGACY, handlers) as client:
        with pytest.raises(PeerError) as refused:
            await client.call_tool("github__delete_repo", {"repo": "old"})
        assert refused.value.peer_message == "Approval required"
        assert gate.decide(refused.value.peer_data["approvalId"], approve=True, by="admin:root")
        await client.call_tool("github__delete_repo", {"repo": "old"})
    assert (asked, calls) == ([], ["github__delete_repo"])


async def test_human_approval_by_an_admin_for_a_client_that_cannot_elicit() -> None:
    """TC-6: otherwise the call waits for an admin; the approved retry runs once."""
    rules = fixed()
    calls: list[str] = []
    gate = ApprovalGate()
    app = app_with_tools(*TOOLS, calls=calls)
    stages = [AuthorizeStage(lambda: rules, gate)]
    async with guarded(app, stages, principal("olga", "ops"), Era.MODERN) as client:
        with pytest.raises(PeerError) as first:
            await client.call_tool("github__delete_repo", {"repo": "old"})
        assert first.value.peer_message == "Approval required"
        approval_id = first.value.peer_data["approvalId"]
        assert [p.id for p in gate.pending()] == [approval_id]
        with pytest.raises(PeerError):  # still pending: refused again, same id
            await client.call_tool("github__delete_repo", {"repo": "old"})
        assert gate.decide(approval_id, approve=True, by="admin:root") is not None
        with pytest.raises(PeerError):  # the approval covers these arguments only
            await client.call_tool("github__delete_repo", {"repo": "prod"})
        await client.call_tool("github__delete_repo", {"repo": "old"})
        with pytest.raises(PeerError):  # one approval, one call
            await client.call_tool("github__delete_repo", {"repo": "old"})
    assert calls == ["github__delete_repo"]


async def test_an_approval_keeps_its_request_time_and_the_retry_window_runs_from_the_decision() -> (
    None
):
    """TC-6: ``created`` stays when the call was asked for; the ``ttl`` for the retry starts
    at the decision; a decided entry is still found by ``get`` (so deciding it again is a
    conflict, not "no such approval") until it expires."""
    now = [1000.0]
    rules = fixed()
    gate = ApprovalGate(ttl=60.0, wall_clock=lambda: now[0])
    app = app_with_tools(*TOOLS, calls=[])
    stages = [AuthorizeStage(lambda: rules, gate)]
    async with guarded(app, stages, principal("olga", "ops"), Era.MODERN) as client:
        with pytest.raises(PeerError) as first:
            await client.call_tool("github__delete_repo", {"repo": "old"})
        approval_id = first.value.peer_data["approvalId"]
        now[0] += 50.0  # decided late in the window
        decided = gate.decide(approval_id, approve=True, by="admin:root")
        assert decided is not None
        assert (decided.created, decided.decided_at) == (1000.0, 1050.0)
        assert gate.decide(approval_id, approve=False, by="admin:root") is None  # not pending
        now[0] += 50.0  # 100 s after the request, 50 s after the decision: still usable
        assert gate.get(approval_id) is decided
        await client.call_tool("github__delete_repo", {"repo": "old"})
        assert gate.get(approval_id) is None  # used: gone


# -- subscriptions/listen (2026-07-28): each URI decided as its resources/subscribe -----------

NOTES_POLICY = """
version: 1
roles:
  dev: {}
rules:
  - id: handshake
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", subscriptions/listen]
  - id: dev-notes
    effect: allow
    roles: [dev]
    resources: ["note://public"]
"""


def notes_app(subscribed: list[str]) -> ServerApp:
    app = ServerApp("notes", "1.0")

    async def read(ctx: ToolContext, uri: str, vars: dict[str, str]) -> list[dict[str, object]]:
        return [{"uri": uri, "text": "note"}]

    for uri in ("note://public", "note://secret"):
        app.add_resource(t.Resource(uri=uri, name=uri[7:]), read, subscribable=True)

    async def hook(uri: str, on: bool) -> None:
        subscribed.append(f"{'+' if on else '-'}{uri}")

    app.subscription_hook = hook
    return app


def listen(uris: list[Any]) -> dict[str, Any]:
    return {"notifications": {"resourceSubscriptions": uris}}


@pytest.mark.parametrize(
    "refused",
    ["note://secret", "note://public/../secret", "note://%2fpublic", "file:///etc/shadow"],
)
async def test_az1_listen_is_refused_like_subscribe_for_a_uri_policy_does_not_allow(
    refused: Any,
) -> None:
    """A listen naming one URI the caller may not subscribe to is refused as a whole with
    the code resources/subscribe gets (invalid names included), nothing is subscribed
    upstream, and the audit record names the refused URI."""
    subscribed: list[str] = []
    sink = MemorySink()
    rules = policy(NOTES_POLICY)
    stages = [AuditStage(sink), AuthorizeStage(lambda: rules)]
    async with raw_guarded(notes_app(subscribed), stages, principal("alice", "dev")) as c:
        await c.call("initialize", INITIALIZE, 1)
        await c.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        legacy = await c.call("resources/subscribe", {"uri": refused}, 2)
        modern = await c.modern("subscriptions/listen", listen(["note://public", refused]), 3)
    assert legacy["error"]["code"] == -32003
    assert modern["error"] == legacy["error"]
    assert subscribed == []
    record = sink.records[-1]
    assert (record.method, record.decision, record.outcome) == (
        "subscriptions/listen",
        "deny",
        "-32003",
    )
    assert record.target == refused


async def test_in1_listen_is_refused_like_subscribe_for_a_uri_that_is_not_a_string() -> None:
    """IN-1: a URI of another JSON type is invalid params (-32602) before any policy, for
    resources/subscribe and a listen naming it alike; nothing is subscribed (both were
    answered -32003 Denied by policy, as if well formed)."""
    subscribed: list[str] = []
    rules = policy(NOTES_POLICY)
    stages = [AuthorizeStage(lambda: rules)]
    async with raw_guarded(notes_app(subscribed), stages, principal("alice", "dev")) as c:
        await c.call("initialize", INITIALIZE, 1)
        await c.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        legacy = await c.call("resources/subscribe", {"uri": 7}, 2)
        modern = await c.modern("subscriptions/listen", listen(["note://public", 7]), 3)
    assert legacy["error"]["code"] == -32602
    assert modern["error"]["code"] == -32602
    assert subscribed == []


async def test_az1_listen_to_allowed_uris_is_acknowledged_and_subscribed() -> None:
    subscribed: list[str] = []
    rules = policy(NOTES_POLICY)
    async with raw_guarded(
        notes_app(subscribed), [AuthorizeStage(lambda: rules)], principal("alice", "dev")
    ) as c:
        await c.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "subscriptions/listen",
                "params": {**listen(["note://public"]), "_meta": MODERN_META},
            }
        )
        ack = await c.recv()
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        with anyio.fail_after(5):
            while not subscribed:
                await anyio.sleep(0)
        assert subscribed == ["+note://public"]
    assert subscribed == ["+note://public", "-note://public"]  # undone when the stream ends


# -- an open listen stream is re-authorized (AU-5, SE-3) ----------------------------------------

LISTEN_REQUEST = {
    "jsonrpc": "2.0",
    "id": "L",
    "method": "subscriptions/listen",
    "params": {**listen(["note://public"]), "_meta": MODERN_META},
}


@pytest.mark.parametrize("change", ["policy", "credential"])
async def test_au5_an_open_listen_ends_when_its_caller_may_no_longer_hold_it(change: str) -> None:
    """A listen stream outlives the decision taken when it opened: when the policy stops
    allowing one of its URIs, or the caller's credential lapses (revoked, expired), it ends
    with -32003, its upstream subscriptions are undone and the end is audited."""
    subscribed: list[str] = []
    sink, listens = MemorySink(), OpenListens()
    current = [policy(NOTES_POLICY)]
    stages = [AuditStage(sink), AuthorizeStage(lambda: current[0], listens=listens)]
    alice = principal("alice", "dev")
    async with raw_guarded(notes_app(subscribed), stages, alice) as c:
        await c.send(LISTEN_REQUEST)
        assert (await c.recv())["method"] == "notifications/subscriptions/acknowledged"
        while not subscribed:
            await anyio.sleep(0)
        assert reauthorize(listens, current[0], time.time(), lambda p: False) == 0  # stays open
        if change == "policy":
            current[0] = policy(NOTES_POLICY.replace("note://public", "note://other"))
            assert reauthorize(listens, current[0], time.time()) == 1
        else:
            assert reauthorize(listens, current[0], time.time(), lambda p: p is alice) == 1
        ended = await c.recv()
        assert not listens.snapshot()
    assert ended == {
        "jsonrpc": "2.0",
        "id": "L",
        "error": {"code": -32003, "message": "Subscription no longer authorized"},
    }
    assert subscribed == ["+note://public", "-note://public"]
    record = sink.records[-1]
    assert (record.method, record.outcome) == ("subscriptions/listen", "-32003")
    if change == "policy":
        assert (record.decision, record.target) == ("deny", "note://public")
        assert record.detail["ended"] == "no longer allowed by the policy"
    else:
        assert record.detail["ended"] == "credential lapsed"


async def test_ds3_one_principal_holds_a_bounded_number_of_listen_streams() -> None:
    """Each open listen stream holds a connection: past its share, a principal's next one
    is refused -32005 (429 on HTTP) while another principal still opens its own."""
    listens = OpenListens(per_principal=2)
    rules = policy(NOTES_POLICY)
    stages = [AuthorizeStage(lambda: rules, listens=listens)]
    app = notes_app([])
    async with raw_guarded(app, stages, principal("alice", "dev")) as alice:
        for n in (1, 2):
            await alice.send({**LISTEN_REQUEST, "id": f"L{n}"})
            assert (await alice.recv())["method"] == "notifications/subscriptions/acknowledged"
        await alice.send({**LISTEN_REQUEST, "id": "L3"})
        refused = await alice.recv()
        assert (refused["id"], refused["error"]["code"]) == ("L3", -32005)
        assert refused["error"]["data"]["retryAfter"] > 0
        async with raw_guarded(app, stages, principal("bob", "dev")) as bob:
            await bob.send(LISTEN_REQUEST)
            assert (await bob.recv())["method"] == "notifications/subscriptions/acknowledged"


async def test_ds4_a_refused_listen_stream_is_tallied_under_its_own_limit() -> None:
    """A listen refused for its principal's share of streams names the limit ``listens``
    in its audit record (and so its refusal tally), not the request rate's."""
    sink = MemorySink()
    listens = OpenListens(per_principal=1)
    rules = policy(NOTES_POLICY)
    stages = [AuditStage(sink), AuthorizeStage(lambda: rules, listens=listens)]
    async with raw_guarded(notes_app([]), stages, principal("alice", "dev")) as alice:
        await alice.send({**LISTEN_REQUEST, "id": "L1"})
        assert (await alice.recv())["method"] == "notifications/subscriptions/acknowledged"
        await alice.send({**LISTEN_REQUEST, "id": "L2"})
        assert (await alice.recv())["error"]["code"] == -32005
    refused = [r for r in sink.records if r.outcome == "-32005"]
    assert [r.detail.get("limit") for r in refused] == ["listens"]


# -- completion refs (AZ-1) ---------------------------------------------------------------------

COMPLETION_POLICY = """
version: 1
roles: {dev: {}}
rules:
  - {id: dev-all, effect: allow, roles: [dev], methods: ["**"]}
  - {id: no-template, effect: deny, roles: [dev], resources: ["srv+test://template/**"]}
"""
TEMPLATE = "srv+test://template/{id}/data"


def completing(refs: list[JSONObject]) -> ServerApp:
    """An app whose completion handler notes every ref it is asked about."""
    app = ServerApp("upstream", "1.0")

    async def complete(
        ctx: ToolContext, ref: JSONObject, argument: JSONObject, context: JSONObject
    ) -> JSONObject:
        refs.append(ref)
        return {"values": ["42"], "total": 1, "hasMore": False}

    app.completion = complete
    return app


@pytest.mark.parametrize(
    "ref",
    [
        {"type": "ref/Resource", "uri": TEMPLATE},
        {"uri": TEMPLATE},
        {"type": "ref/prompt ", "name": "x", "uri": TEMPLATE},
        {"type": "ref/resource"},
        {"type": "ref/prompt", "uri": TEMPLATE},
    ],
)
async def test_az1_a_completion_ref_spelled_off_the_spec_is_refused_before_policy(
    ref: JSONObject,
) -> None:
    """AZ-1: a deny on a resource holds for its completions however the ref's type is
    spelled: a ref not exactly ``ref/resource``/``ref/prompt`` with its uri/name is refused
    -32602 before the policy (so a method-wide allow cannot let it through), the upstream is
    never asked, and the refusal is audited as a deny; the spec spelling is denied by the
    rule."""
    asked: list[JSONObject] = []
    sink = MemorySink()
    rules = policy(COMPLETION_POLICY)
    stages = [AuditStage(sink), AuthorizeStage(lambda: rules)]
    params = {"ref": ref, "argument": {"name": "id", "value": "1"}}
    spec = {**params, "ref": {"type": "ref/resource", "uri": TEMPLATE}}
    async with raw_guarded(completing(asked), stages, principal("alice", "dev")) as c:
        await c.call("initialize", INITIALIZE, 1)
        odd = await c.call("completion/complete", params, 2)
        denied = await c.call("completion/complete", spec, 3)
    assert odd.get("error", {}).get("code") == -32602, (odd, asked)
    assert denied["error"]["code"] == -32003
    assert asked == []
    odd_record, denied_record = sink.records[-2:]
    assert (odd_record.method, odd_record.decision, odd_record.outcome) == (
        "completion/complete",
        "deny",
        "-32602",
    )
    assert (denied_record.decision, denied_record.rule_id) == ("deny", "no-template")


async def test_az1_a_completion_ref_of_the_spec_is_decided_on_its_target() -> None:
    asked: list[JSONObject] = []
    rules = policy(COMPLETION_POLICY)
    params = {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": ""}}
    async with raw_guarded(
        completing(asked), [AuthorizeStage(lambda: rules)], principal("alice", "dev")
    ) as c:
        await c.call("initialize", INITIALIZE, 1)
        answer = await c.call("completion/complete", params, 2)
    assert answer["result"]["completion"]["values"] == ["42"]
    assert asked == [{"type": "ref/prompt", "name": "p"}]
