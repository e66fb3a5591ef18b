"""SECURITY.md 2.9, audit: AD-1 (what is recorded), AD-2 (tamper evidence, checked with the
CLI), AD-3 (secrets redacted before writing), read back with ``bastion audit export`` and
``bastion audit verify`` from the database a real ``bastion serve`` writes. AD-4 (audit
read access over the admin API) waits for the admin API."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import LEGACY, Gateway, answer_of, bearer, run_cli

pytestmark = pytest.mark.e2e


def records(gw: Gateway) -> list[dict[str, Any]]:
    return [entry["record"] for entry in gw.audit_export()]


def wait_for(gw: Gateway, predicate: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Records matching ``predicate`` once at least one is committed."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in records(gw) if predicate(r)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def alice_id(gw: Gateway) -> str:
    return gw.keys["alice"].split("_")[1]


# -- AD-1 -------------------------------------------------------------------------------------


def test_ad1_authentication_failures_are_recorded_without_the_credential(gw: Gateway) -> None:
    wrong = gw.keys["alice"][:-3] + "zzz"
    assert gw.call(bearer(wrong), "fx__echo", {"text": "x"}).status_code == 401
    assert gw.call({}, "fx__echo", {"text": "x"}).status_code == 401
    failures = wait_for(gw, lambda r: r["kind"] == "authentication"
                        and r["credential_id"] == f"apikey:{alice_id(gw)}")  # fmt: skip
    assert failures
    record = failures[-1]
    assert record["decision"] == "deny"
    assert record["outcome"] == "unknown"
    assert record["method"] == "POST /mcp"
    assert record["detail"]["peer"] == "127.0.0.1"
    missing = wait_for(gw, lambda r: r["kind"] == "authentication" and r["outcome"] == "missing")
    assert missing and missing[-1]["credential_id"] is None


def test_ad1_a_jwt_header_nested_past_the_parser_limit_is_a_recorded_failure(
    gw: Gateway,
) -> None:
    deep = base64.urlsafe_b64encode(b"[" * 1100 + b"]" * 1100).rstrip(b"=").decode()
    response = gw.call(bearer(deep + ".e30.c2ln"), "fx__echo", {"text": "x"})
    assert response.status_code == 401
    failures = wait_for(gw, lambda r: r["kind"] == "authentication"
                        and r["outcome"] == "malformed")  # fmt: skip
    assert failures and failures[-1]["decision"] == "deny"


def test_ad1_the_recorded_peer_is_the_connecting_address_not_a_forwarded_one(
    gw: Gateway,
) -> None:
    wrong = gw.keys["bob"][:-3] + "xyz"
    headers = {**bearer(wrong), "x-forwarded-for": "198.51.100.23", "x-real-ip": "198.51.100.24"}
    assert gw.call(headers, "fx__echo", {"text": "x"}).status_code == 401
    bob = gw.keys["bob"].split("_")[1]
    failures = wait_for(gw, lambda r: r["kind"] == "authentication"
                        and r["credential_id"] == f"apikey:{bob}")  # fmt: skip
    assert failures and failures[-1]["detail"]["peer"] == "127.0.0.1"


def test_ad1_allow_and_deny_decisions_are_recorded_in_full(gw: Gateway) -> None:
    alice = gw.auth("alice")
    session = gw.initialize(alice)
    allowed = {"name": "fx__echo", "arguments": {"text": "ad1"}}
    assert "result" in answer_of(gw.legacy(alice, session, "tools/call", allowed, 4242))
    denied = gw.call(alice, "rec__forbidden", {"marker": "ad1"})
    assert answer_of(denied)["error"]["code"] == -32003

    allow = wait_for(gw, lambda r: r["request_id"] == 4242 and r["target"] == "fx__echo")
    assert allow, "the allowed call was not audited"
    record = allow[-1]
    assert record["kind"] == "request"
    assert record["principal"] == "apikey:alice"
    assert record["credential_id"] == f"apikey:{alice_id(gw)}"
    assert record["method"] == "tools/call"
    assert record["decision"] == "allow"
    assert record["rule_id"] == "dev-tools"
    assert record["outcome"] == "ok"
    assert record["latency_ms"] > 0
    assert record["session"] and session not in record["session"]  # a digest, not the id

    deny = wait_for(gw, lambda r: r["target"] == "rec__forbidden"
                    and r["principal"] == "apikey:alice")  # fmt: skip
    assert deny
    record = deny[-1]
    assert record["decision"] == "deny"
    assert record["rule_id"] == "default-deny"
    assert record["outcome"] == "-32003"
    assert record["method"] == "tools/call"
    assert record["credential_id"] == f"apikey:{alice_id(gw)}"
    assert record["latency_ms"] >= 0


def test_ad1_a_method_the_gateway_does_not_have_is_recorded_as_a_refusal(gw: Gateway) -> None:
    """AD-1: a caller probing for methods leaves a trace. A method MCP does not have, and one
    of the other protocol era (``ping`` is 2025-11-25 only), are answered -32601 and audited
    as refusals of that principal; a method name of 10,000 characters is cut to the record's
    name bound, with its digest."""
    bob = gw.auth("bob")
    long_name = "probe/" + "x" * 10_000
    for method in ("admin/dumpSecrets", "ping", long_name):
        assert answer_of(gw.modern(bob, method))["error"]["code"] == -32601

    def probes() -> list[dict[str, Any]]:
        return [
            r for r in records(gw) if r["principal"] == "apikey:bob" and r["outcome"] == "-32601"
        ]

    deadline = time.monotonic() + 5
    while len(probes()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    found = {r["method"][:40]: r for r in probes()}
    assert set(found) == {"admin/dumpSecrets", "ping", long_name[:40]}, list(found)
    for record in found.values():
        assert record["kind"] == "request"
        assert record["decision"] == "deny"
        assert record["target"] is None
    cut = found[long_name[:40]]["method"]
    assert len(cut) <= 512
    assert hashlib.sha256(long_name.encode()).hexdigest() in cut


def test_ad1_policy_file_edits_are_recorded_loaded_or_refused(gw: Gateway) -> None:
    """AD-1: a policy changed by editing its file is audited like one set through the admin
    API: loaded (rule count, digest of the file) or refused (why; the old one stays)."""
    original = gw.policy_file.read_text()

    def reloads() -> list[dict[str, Any]]:
        records = [line["record"] for line in gw.audit_export()]
        return [r for r in records if r.get("method") == "policy.reload"]

    before = len(reloads())
    edited = original + "  - {id: extra-rule, effect: deny, roles: [dev], tools: [fx__none]}\n"
    try:
        gw.policy_file.write_text(edited)
        deadline = time.monotonic() + 10
        while len(reloads()) < before + 1:
            assert time.monotonic() < deadline, "the edit was not audited"
            time.sleep(0.2)
        gw.policy_file.write_text("rules: [")  # broken: refused, and audited as such
        while len(reloads()) < before + 2:
            assert time.monotonic() < deadline + 10, "the broken edit was not audited"
            time.sleep(0.2)
    finally:
        gw.policy_file.write_text(original)
    loaded, refused = reloads()[before : before + 2]
    assert (loaded["kind"], loaded["outcome"], loaded["decision"]) == ("policy", "ok", "allow")
    assert loaded["target"] == str(gw.policy_file)
    assert loaded["detail"]["sha256"] == hashlib.sha256(edited.encode()).hexdigest()
    assert loaded["detail"]["rules"] == original.count("- id:") + 1
    assert (refused["outcome"], refused["decision"]) == ("invalid", "deny")
    assert "policy.yaml" in refused["detail"]["error"]
    # The refused file changed nothing: the running policy is still the edited one.
    assert answer_of(gw.call(gw.auth("alice"), "fx__echo", {"text": "x"}))["result"]


def test_ad1_jwt_principals_are_recorded_by_issuer_and_subject(gw: Gateway) -> None:
    token = gw.issuer.token(sub="ad1-jwt")
    gw.call(bearer(token), "fx__echo", {"text": "x"})
    found = wait_for(gw, lambda r: (r["principal"] or "").endswith("#ad1-jwt"))
    assert found and found[-1]["credential_id"] == found[-1]["principal"]
    assert token not in json.dumps(records(gw))


def test_ad1_the_store_never_holds_a_key(gw: Gateway) -> None:
    dump = b"".join(p.read_bytes() for p in gw.audit_db.parent.glob("audit.db*"))
    for key in gw.keys.values():
        assert key.split("_", 2)[2].encode() not in dump


def test_ad1_se2_another_principals_use_of_a_session_is_recorded_AD1_SE2(gw: Gateway) -> None:
    """AD-1, SE-2: bob names alice's live 2025-11-25 session in a POST and a DELETE. He is
    answered as for an unknown id (404) and alice's session lives on; the audit log now
    says who tried (bob, his credential, the request, the JSON-RPC id) on which session (the
    digest alice's own records carry, never the id). Nothing was recorded before."""
    alice, bob = gw.auth("alice"), gw.auth("bob")
    session = gw.initialize(alice)
    unknown = "0" * len(session)
    for sid in (session, unknown):
        refused = gw.legacy(bob, sid, "tools/list", request_id="se2-foreign-post")
        assert refused.status_code == 404, refused.text
        headers = {**bob, "mcp-session-id": sid, "mcp-protocol-version": LEGACY}
        assert gw.client.delete(gw.url, headers=headers).status_code == 404
    assert answer_of(gw.legacy(alice, session, "tools/list"))["result"]["tools"]

    def foreign() -> list[dict[str, Any]]:
        return [r for r in records(gw) if r["outcome"] == "foreign-session"]

    deadline = time.monotonic() + 10  # the DELETE, a second later, in the window's summary
    while len(foreign()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    first, summary = foreign()
    assert (first["kind"], first["decision"]) == ("request", "deny")
    assert first["principal"] == "apikey:bob"
    assert first["credential_id"] == "apikey:" + gw.keys["bob"].split("_")[1]
    assert (first["method"], first["request_id"]) == ("POST /mcp", "se2-foreign-post")
    mine = [r for r in records(gw) if r["principal"] == "apikey:alice"]
    assert first["session"] in {r["session"] for r in mine}  # alice's session, as she has it
    assert summary["principal"] == "apikey:bob" and summary["session"] == first["session"]
    assert summary["detail"]["attempts"] == [{"method": "DELETE /mcp", "target": None, "count": 1}]
    assert session not in json.dumps(records(gw))


def test_ad1_an_admin_creating_a_key_is_recorded_with_what_the_key_may_do_AD1(
    gw: Gateway,
) -> None:
    """AD-1: ``POST /api/v1/keys`` is recorded with the new key's name, roles, expiry and
    break-glass flag (the detail was empty), never its secret; so is its revocation."""
    root = gw.auth("root")
    spec = {"name": "ad1-audited-bot", "roles": ["dev"], "expires_in": 600}
    created = gw.client.post(f"{gw.base}/api/v1/keys", json=spec, headers=root)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert gw.client.delete(f"{gw.base}/api/v1/keys/{key['id']}", headers=root).status_code == 204
    written = {
        r["method"]: r
        for r in records(gw)
        if r["kind"] == "admin" and r["method"] in ("keys.create", "keys.revoke")
        and r["target"] == key["id"]
    }  # fmt: skip
    described = {
        "name": "ad1-audited-bot",
        "roles": ["dev"],
        "expiresAt": key["expires_at"],
        "breakGlass": False,
    }
    assert written["keys.create"]["detail"] == {"key": described}
    assert written["keys.revoke"]["detail"] == {
        "revoked": [{"id": key["id"], **described}],
        "count": 1,
    }
    assert created.json()["secret"] not in json.dumps(records(gw))


# -- AD-2 -------------------------------------------------------------------------------------


def _snapshot(gw: Gateway, tmp_path: Path) -> Path:
    """A consistent copy of the live audit database (and its public key) to tamper with."""
    copy = tmp_path / "audit.db"
    source = sqlite3.connect(f"file:{gw.audit_db}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    shutil.copy(gw.audit_db.with_suffix(".pub"), copy.with_suffix(".pub"))
    return copy


def _tamper(db: Path, statement: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute(statement)
    finally:
        conn.close()


def _verify(db: Path) -> Any:
    return run_cli("audit", "verify", "--db", str(db), check=False)


def test_ad2_the_live_log_verifies(gw: Gateway) -> None:
    gw.call(gw.auth("alice"), "fx__echo", {"text": "ad2"})
    done = _verify(gw.audit_db)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok:")


def test_ad2_the_append_only_triggers_refuse_edits(gw: Gateway, tmp_path: Path) -> None:
    copy = _snapshot(gw, tmp_path)
    conn = sqlite3.connect(copy)
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("UPDATE records SET record = json_set(record, '$.decision', 'allow')")
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("DELETE FROM records")
    conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE records SET record = json_set(record, '$.decision', 'allow') "
        "WHERE seq = (SELECT min(seq) FROM records WHERE record LIKE '%\"deny\"%')",
        "UPDATE records SET record = json_set(record, '$.principal', 'apikey:mallory') "
        "WHERE seq = 3",
        "DELETE FROM records WHERE seq = 2",
        "DELETE FROM records WHERE seq = (SELECT max(seq) FROM records)",
    ],
)
def test_ad2_edits_past_the_triggers_are_caught(
    gw: Gateway, tmp_path: Path, statement: str
) -> None:
    gw.call(gw.auth("alice"), "rec__forbidden", {})  # at least one deny to rewrite
    wait_for(gw, lambda r: r["decision"] == "deny")
    copy = _snapshot(gw, tmp_path)
    assert _verify(copy).returncode == 0
    _tamper(copy, statement)
    done = _verify(copy)
    assert done.returncode == 1, done.stdout
    assert "TAMPERED" in done.stdout


# -- AD-3 -------------------------------------------------------------------------------------


def test_ad3_secrets_in_arguments_and_targets_are_not_stored(gw: Gateway) -> None:
    github = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    password = "hunter2-ad3-plain"
    assert "result" in answer_of(gw.call(gw.auth("alice"), "fx__echo", {"text": f"token {github}"}))
    # Fields echo's schema does not name are refused before the upstream (IN-3); the
    # refusal is audited too, and must not store them either.
    extra = {"text": "x", "password": password, "config": {"api_key": "ad3-nested-key-value"}}
    assert answer_of(gw.call(gw.auth("alice"), "fx__echo", extra))["error"]["code"] == -32602
    uri = "fx+test://static-text?access_token=ad3-uri-secret-value"
    gw.modern(gw.auth("root"), "resources/read", {"uri": uri})
    found = wait_for(gw, lambda r: "access_token" in (r["target"] or ""))
    assert found, "the resource read was not audited"
    assert "ad3-uri-secret-value" not in found[-1]["target"]
    dump = json.dumps(records(gw))
    for secret in (github, password, "ad3-nested-key-value", "ad3-uri-secret-value"):
        assert secret not in dump
    raw = b"".join(p.read_bytes() for p in gw.audit_db.parent.glob("audit.db*"))
    for secret in (github, password, "ad3-nested-key-value", "ad3-uri-secret-value"):
        assert secret.encode() not in raw


def test_ad3_secrets_in_request_ids_methods_and_refused_paths_are_not_stored_AD3(
    gw: Gateway,
) -> None:
    """AD-3: a JSON-RPC id ``Bearer <hex>``, a method holding a GitHub token and the path of
    a refused request holding an OpenAI key (in the ``authentication`` record's ``method``;
    once whole, once cut at its 128 characters mid-key) were stored as sent; every name and
    id is now redacted like the detail, and before any cut."""
    alice = gw.auth("alice")
    hex_secret = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928"
    github = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
    openai = "sk-proj-" + "ad3pathsecretabcdefghijklmnop0123"
    answer = answer_of(gw.modern(alice, "tools/list", request_id=f"Bearer {hex_secret}"))
    assert "result" in answer
    assert answer_of(gw.modern(alice, f"tools/{github}"))["error"]["code"] == -32601
    for pad in ("", "p" * 99 + "/"):  # the cut at 128 characters falls inside the key
        path = f"/api/v1/{pad}{openai}"
        refused = gw.client.post(gw.base + path, content=b"{}", headers=bearer("wrong"))
        assert refused.status_code == 401
    stored = wait_for(gw, lambda r: r["kind"] == "authentication"
                      and "/api/v1/pppp" in r["method"])  # fmt: skip
    assert stored and stored[-1]["method"].startswith("POST /api/v1/" + "p" * 99 + "/")
    found = wait_for(gw, lambda r: str(r["request_id"]).startswith("Bearer "))
    assert found and found[-1]["request_id"] == "Bearer [REDACTED]"
    probed = wait_for(gw, lambda r: r["method"].startswith("tools/") and r["outcome"] == "-32601")
    assert probed and probed[-1]["method"] == "tools/[REDACTED]"
    dump = json.dumps(records(gw))
    raw = b"".join(p.read_bytes() for p in gw.audit_db.parent.glob("audit.db*"))
    for secret in (hex_secret, github, openai, openai[:15]):
        assert secret not in dump
        assert secret.encode() not in raw


def test_tc4_ad3_in5_secrets_after_a_percent_escape_are_masked_in_the_result_IN5(
    gw: Gateway,
) -> None:
    """TC-4, IN-5, AD-3 (red team round 14): a result carrying an encoded callback URL
    (``#access_token%3Dghp_...``) and an encoded header (``Bearer%20<credential>``) came back
    to the client as sent: the hex digit of the escape glued onto the key, so no pattern
    matched. Both are now masked, the call's audit record names the finding, and neither
    secret is in the audit database or the gateway's log."""
    github = "ghp_" + "P1e2R3c4E5n6T7e8N9c0O1d2E3d4T5o6K7e8"
    basic = "Zm9vOmJhcjEyMzQ1"
    text = (
        f"see https://app.example/cb#access_token%3D{github}&state=1"
        f" and Authorization%3A%20Bearer%20{basic}"
    )
    answer = answer_of(gw.call(gw.auth("alice"), "fx__echo", {"text": text}))
    assert answer["result"]["content"][0]["text"] == (
        "see https://app.example/cb#access_token%3D[REDACTED]&state=1"
        " and Authorization%3A%20Bearer%20[REDACTED]"
    )
    masked = {"count": 1, "kind": "secret"}
    found = wait_for(gw, lambda r: r["target"] == "fx__echo"
                     and masked in r["detail"].get("findings", []))  # fmt: skip
    assert found, "the masking was not audited"
    raw = b"".join(p.read_bytes() for p in gw.audit_db.parent.glob("audit.db*"))
    for secret in (github, basic):
        assert secret not in json.dumps(records(gw))
        assert secret.encode() not in raw
        assert secret not in gw.log_file.read_text(errors="replace")


def test_ad1_an_admins_reads_are_recorded_in_bounded_numbers_AD1(gw: Gateway) -> None:
    """AD-1: reading the keys or the audit log is an authorization decision too, recorded
    with who read what (an audit query with its filters). A dashboard polling the API is
    recorded in bounded numbers (DS-4): the first read of each second written, the others
    counted in that window's summary, so the counts add up to every read."""
    spec = {"name": "ad1-reader", "roles": ["admin"], "expires_in": 600}
    created = gw.client.post(f"{gw.base}/api/v1/keys", json=spec, headers=gw.auth("root"))
    assert created.status_code == 201, created.text
    reader = bearer(created.json()["secret"])  # a principal of this test's own
    query = gw.client.get(
        f"{gw.base}/api/v1/audit", params={"method": "keys.list", "limit": 5}, headers=reader
    )
    assert query.status_code == 200
    reads = 40
    for _ in range(reads):
        assert gw.client.get(f"{gw.base}/api/v1/keys", headers=reader).status_code == 200

    def by_reader(method: str) -> list[dict[str, Any]]:
        return [
            r
            for r in records(gw)
            if r["kind"] == "admin"
            and r["method"] == method
            and r["principal"] == "apikey:ad1-reader"
        ]

    def listed() -> list[dict[str, Any]]:
        return by_reader("keys.list")

    deadline = time.monotonic() + 10  # the last window's summary, once it ends
    while sum(r["detail"].get("repeated", 1) for r in listed()) < reads:
        assert time.monotonic() < deadline, listed()
        time.sleep(0.2)
    written = listed()
    assert sum(r["detail"].get("repeated", 1) for r in written) == reads
    assert len(written) < reads / 2  # bounded: not one record per read
    assert {(r["decision"], r["outcome"]) for r in written} == {("allow", "ok")}
    (asked,) = by_reader("audit.query")
    assert {"method": "keys.list", "limit": 5, "sinceSeq": 0}.items() <= asked["detail"].items()
