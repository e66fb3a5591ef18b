"""The admin API (``/api/v1``) of a real ``bastion serve`` with real keys (AZ-6, AD-4): who
may call what, the key lifecycle on the gateway's own key database (a revoked key is refused
on ``/mcp`` at once and its session ends), policy changes that apply without a restart (a bad
policy changes nothing), audit verification, admin writes in the audit log, upstreams.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bastion.admin.routes import OPENAPI_PATH, ROUTES
from tests.pipeline.live import MALICIOUS, Gateway, policy_text, serve, wait_until
from tests.support import BASTION, ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

KEYS = {"alice": ("dev",), "admin": ("admin",), "aud": ("auditor",)}
DEV_TOOLS = ["fx__echo"]
SERVERS = f"""\
  fx:
    command: {BASTION}
    args: [fixture, --stdio]
  evil:
    command: {sys.executable}
    args: {json.dumps(MALICIOUS[1:])}
    cwd: {ROOT}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serve(tmp_path_factory.mktemp("admin"), SERVERS, policy_text(DEV_TOOLS), KEYS) as gateway:
        yield gateway


def _as(gw: Gateway, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if who is not None:
        headers["authorization"] = f"Bearer {gw.credential(who)}"
    return httpx.request(method, f"{gw.base}{path}", headers=headers, timeout=15, **kwargs)


def _documented() -> list[tuple[str, str]]:
    """Every documented operation but the public OpenAPI document, with a made-up id."""
    return [
        (route.method, route.path.replace("{id}", "k_nope"))
        for route in ROUTES
        if route.path != OPENAPI_PATH
    ]


UNKNOWN = [("GET", "/api/v1/nope"), ("DELETE", "/api/v1/policies"), ("POST", "/api/v1/")]


def test_az6_ad4_anonymous_401_with_resource_metadata(gw: Gateway) -> None:
    """AZ-6/AD-4: no credential (or a bad one) gets 401 with a ``WWW-Authenticate`` naming
    the RFC 9728 metadata, on every route and on unknown paths; no body."""
    for method, path in [*_documented(), *UNKNOWN]:
        refused = _as(gw, None, method, path, content=b"{garbage")
        assert refused.status_code == 401, (method, path)
        challenge = refused.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge
        assert f"{gw.base}/.well-known/oauth-protected-resource" in challenge
        assert refused.content == b""
    bad = _as(gw, "bst_000000000000_not-a-real-key", "GET", "/api/v1/keys")
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
    assert _as(gw, None, "GET", OPENAPI_PATH).status_code == 200  # public


def test_az6_ad4_dev_is_forbidden_everywhere_admin_is_not(gw: Gateway) -> None:
    """AZ-6: role dev gets 403 on every documented route (writes with garbage bodies too,
    decided before routing and body validation) and on unknown paths. AD-4: the audit reads
    are for admin or auditor only."""
    for method, path in [*_documented(), *UNKNOWN]:
        refused = _as(
            gw, "alice", method, path, content=b"{garbage", headers={"content-type": "text/plain"}
        )
        assert refused.status_code == 403, (method, path, refused.text)
        assert "insufficient_scope" in refused.headers["www-authenticate"]
        assert refused.content == b""
    reads = [
        ("GET", "/api/v1/keys"),
        ("GET", "/api/v1/policies"),
        ("GET", "/api/v1/approvals"),
        ("GET", "/api/v1/audit"),
        ("POST", "/api/v1/audit/verify"),
        ("GET", "/api/v1/upstreams"),
    ]
    for method, path in reads:
        assert _as(gw, "admin", method, path).status_code == 200, (method, path)
    assert _as(gw, "admin", "GET", "/api/v1/nope").status_code == 404  # routed only for admins
    # The auditor reads the audit log and nothing else.
    assert _as(gw, "aud", "GET", "/api/v1/audit").status_code == 200
    assert _as(gw, "aud", "POST", "/api/v1/audit/verify").status_code == 200
    assert _as(gw, "aud", "GET", "/api/v1/keys").status_code == 403
    assert _as(gw, "aud", "PUT", "/api/v1/policies").status_code == 403

    def refused() -> set[str]:
        """The actions of alice's refusals: a flood of them is counted in summaries (DS-3)."""
        actions: set[str] = set()
        for r in gw.audit():
            if r["kind"] == "admin" and r["principal"] == "apikey:alice":
                assert r["outcome"] == "forbidden"
                actions |= {r["method"], *(a["method"] for a in r["detail"].get("attempts", []))}
        return actions

    wanted = {"keys.create", "policies.set", "keys.list"}
    wait_until(lambda: refused() >= wanted, timeout=10, step=0.5)


def test_keys_lifecycle_through_the_api_on_the_real_key_db(gw: Gateway) -> None:
    """A key created through the API works on /mcp; revoked, it is refused at once (401)
    and its 2025-11-25 session is gone."""
    created = gw.admin("POST", "/keys", json={"name": "ci-bot", "roles": ["dev"]})
    assert created.status_code == 201, created.text
    body = created.json()
    key_id, secret = body["key"]["id"], body["secret"]
    assert secret.startswith(body["key"]["prefix"]) and body["key"]["roles"] == ["dev"]
    listed = gw.admin("GET", "/keys").json()["keys"]
    assert {k["name"] for k in listed} >= {"alice", "admin", "ci-bot"}
    assert secret not in json.dumps(listed)

    works = gw.modern(secret, "tools/call", {"name": "fx__echo", "arguments": {"text": "hi"}})
    assert works.status_code == 200 and works.json()["result"]["content"][0]["text"] == "hi"
    session = gw.session(secret)
    assert "result" in session.call("fx__echo", {"text": "in session"})

    revoked = gw.admin("DELETE", f"/keys/{key_id}")
    assert revoked.status_code == 204
    refused = gw.modern(secret, "tools/list")
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    after = session.request("tools/list")
    assert after.status_code in (401, 404)
    # Gone, not merely refused to this request: no credential brings the session back.
    ghost = dict(session.headers, authorization=f"Bearer {gw.keys['alice']}")
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    assert httpx.post(gw.mcp, json=listing, headers=ghost, timeout=15).status_code == 404
    assert gw.admin("DELETE", f"/keys/{key_id}").status_code in (204, 404)
    assert gw.admin("DELETE", "/keys/k_nope").status_code == 404

    writes = [
        (r["method"], r["target"], r["outcome"], r["principal"])
        for r in gw.audit()
        if r["kind"] == "admin" and r["target"] == key_id
    ]
    assert ("keys.create", key_id, "ok", "apikey:admin") in writes
    assert ("keys.revoke", key_id, "ok", "apikey:admin") in writes
    assert all(secret not in json.dumps(r) for r in gw.audit())


def test_se3_revoking_a_key_ends_its_open_session_stream(gw: Gateway) -> None:
    """SE-3 ("sessions end when their credential is revoked"): a 2025-11-25 client that
    holds its standalone GET stream open and sends nothing more must lose it when an admin
    revokes its key, without first presenting the revoked key again."""
    created = gw.admin("POST", "/keys", json={"name": "listener", "roles": ["dev"]}).json()
    session = gw.session(created["secret"])
    ended = threading.Event()

    def hold_stream() -> None:
        headers = {**session.headers, "accept": "text/event-stream"}
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(30, read=None)) as client,
                client.stream("GET", gw.mcp, headers=headers) as stream,
            ):
                for _ in stream.iter_lines():
                    pass
        except httpx.HTTPError:
            pass
        ended.set()

    worker = threading.Thread(target=hold_stream, daemon=True)
    worker.start()
    try:
        assert not ended.wait(1.0), "the GET stream did not stay open"
        assert gw.admin("DELETE", f"/keys/{created['key']['id']}").status_code == 204
        assert ended.wait(5), "the revoked key's session stream is still open"
    finally:
        if not ended.is_set():
            session.request("ping")  # presenting the revoked key ends the session
            ended.wait(10)
        worker.join(5)


def test_policy_changes_apply_without_a_restart_and_a_bad_one_changes_nothing(
    gw: Gateway,
) -> None:
    """PUT /api/v1/policies: a dev's new grant works on the next call; an invalid policy is
    refused 400 and the running one (and the file) stay as they were."""
    before = gw.admin("GET", "/policies").json()
    assert gw.tools("alice").keys() == {"fx__echo"}
    assert gw.call("alice", "fx__test_simple_text", {})["error"]["code"] == -32003

    wider = policy_text([*DEV_TOOLS, "fx__test_simple_text"])
    put = gw.admin(
        "PUT", "/policies", content=wider.encode(), headers={"content-type": "application/yaml"}
    )
    assert put.status_code == 200, put.text
    version = put.json()["version"]
    assert version != before["version"] and put.json()["rules"] == before["rules"]
    ran = gw.call("alice", "fx__test_simple_text", {})
    assert "result" in ran, ran
    assert gw.policy.read_text() == wider

    for bad, kind in (
        (b"version: 1\nrules:\n  - effect: sometimes\n", "application/yaml"),
        (b"{not json", "application/json"),
        (b"version: 1\nversion: 1\n", "application/yaml"),
    ):
        refused = gw.admin("PUT", "/policies", content=bad, headers={"content-type": kind})
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["error"]
    still = gw.admin("GET", "/policies").json()
    assert still["version"] == version and still["policy"] == wider
    assert "result" in gw.call("alice", "fx__test_simple_text", {})

    put_back = gw.admin(
        "PUT",
        "/policies",
        content=before["policy"].encode(),
        headers={"content-type": "application/yaml"},
    )
    assert put_back.status_code == 200
    assert gw.call("alice", "fx__test_simple_text", {})["error"]["code"] == -32003
    sets = [
        (r["outcome"], r["target"])
        for r in gw.audit()
        if r["kind"] == "admin"
        and r["method"] == "policies.set"
        and r["principal"] == "apikey:admin"
    ]
    assert ("ok", version) in sets
    assert [outcome for outcome, _ in sets if outcome != "ok"] == ["invalid_policy"] * 3


def test_audit_verify_and_admin_writes_are_audited(gw: Gateway) -> None:
    """AD-4: the hash chain of the live log verifies; admin actions are records of kind
    ``admin`` readable through the API's audit query."""
    verified = gw.admin("POST", "/audit/verify")
    assert verified.status_code == 200
    report = verified.json()
    assert report["ok"] is True and report["problems"] == [] and report["records"] > 0
    page = gw.admin("GET", "/audit", params={"method": "audit.verify", "limit": 10})
    assert page.status_code == 200
    entries = page.json()["records"]
    assert entries and all(e["record"]["kind"] == "admin" for e in entries)
    assert entries[-1]["record"]["principal"] == "apikey:admin"
    exported = [r for r in gw.audit() if r["kind"] == "admin" and r["method"] == "audit.verify"]
    assert exported and exported[-1]["outcome"] == "ok"


def test_upstreams_lists_every_server(gw: Gateway) -> None:
    answer = gw.admin("GET", "/upstreams")
    assert answer.status_code == 200
    rows = answer.json()["upstreams"]
    assert {r["server"] for r in rows} == {"fx", "evil"}
    assert all(r["state"] == "ready" for r in rows)


def test_a_held_definition_can_be_rejected(gw: Gateway) -> None:
    """TC-1 via the API: rejecting the poisoned ``add`` keeps it out (for good at this hash);
    the rejection is audited."""
    pending = wait_until(
        lambda: [
            a
            for a in gw.admin("GET", "/approvals").json()["approvals"]
            if a["principal"] == "upstream:evil" and a["tool"] == "add"
        ]
    )
    approval_id = pending[0]["id"]
    rejected = gw.admin("POST", f"/approvals/{approval_id}/reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["approval"]["status"] == "rejected"
    assert approval_id not in {a["id"] for a in gw.admin("GET", "/approvals").json()["approvals"]}
    assert "evil__add" not in gw.tools("admin")
    records = [r for r in gw.audit() if r["kind"] == "admin" and r["target"] == approval_id]
    assert [(r["method"], r["outcome"]) for r in records] == [("approvals.reject", "ok")]


def test_ad1_a_refused_credential_on_the_admin_api_is_audited_like_on_mcp(gw: Gateway) -> None:
    """AD-1: a revoked admin key refused on /api/v1 leaves the same ``authentication``
    record as on /mcp (credential id, reason, peer), never the secret."""
    created = gw.admin("POST", "/keys", json={"name": "old-admin", "roles": ["admin"]})
    assert created.status_code == 201, created.text
    key_id, secret = created.json()["key"]["id"], created.json()["secret"]
    assert gw.admin("DELETE", f"/keys/{key_id}").status_code == 204
    assert _as(gw, secret, "GET", "/api/v1/upstreams").status_code == 401
    assert gw.modern(secret, "tools/list").status_code == 401
    refusals = {
        r["method"].split(" ")[-1]: r
        for r in gw.audit()
        if r["kind"] == "authentication" and r["credential_id"] == f"apikey:{key_id}"
    }
    assert set(refusals) == {"/api/v1/upstreams", "/mcp"}
    on_api, on_mcp = refusals["/api/v1/upstreams"], refusals["/mcp"]
    assert on_api["outcome"] == on_mcp["outcome"] == "revoked"
    assert on_api["detail"] == on_mcp["detail"] == {"peer": "127.0.0.1"}
    assert all(secret not in json.dumps(r) for r in gw.audit())


def test_every_response_says_nosniff(gw: Gateway) -> None:
    """No browser guesses that a JSON or text answer is HTML: every response of the gateway
    (MCP endpoint, probes, metadata, admin API, errors) carries ``nosniff``."""
    answers = [
        _as(gw, "alice", "POST", "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        gw.modern("alice", "tools/list"),
        gw.modern(None, "tools/list"),
        _as(gw, None, "GET", "/healthz"),
        _as(gw, None, "GET", "/readyz"),
        _as(gw, None, "GET", "/metrics"),
        _as(gw, None, "GET", "/.well-known/oauth-protected-resource/mcp"),
        _as(gw, None, "GET", "/nope"),
        _as(gw, None, "GET", "/healthz", headers={"host": "evil.example"}),
        _as(gw, None, "GET", OPENAPI_PATH),
        _as(gw, None, "GET", "/api/v1/keys"),
        _as(gw, "admin", "GET", "/api/v1/keys"),
    ]
    for answer in answers:
        assert answer.headers.get("x-content-type-options") == "nosniff", (
            answer.request.url,
            answer.status_code,
        )
