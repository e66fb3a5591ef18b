"""The threats of SECURITY.md against a real ``bastion serve`` (API keys, a policy file,
private audit and pin databases) fronting real upstreams: the malicious fixture on stdio
(``evil``) and on HTTP with a static upstream credential (``evilhttp``), the conformance
fixture (``fx``) and an upstream whose tools claim to be read-only (``hinted``).

TC-1 poisoned definitions held, TC-2 rug pull held until an admin approves it, TC-3
shadowing held, TC-4/AD-3 results filtered and audited without the secrets, TC-5 hints never
loosen policy, TC-6 human approval through the admin API, UP-1 no client credential
upstream, IN-3 arguments checked against the schema before forwarding, DS-3 rate and
concurrency limits (429 + Retry-After on 2026-07-28, -32005 in a 2025-11-25 session).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.guard.upstreams.malicious import (
    AWS_KEY,
    GITHUB_TOKEN,
    INTERNAL_URL,
    PUBLIC_URL,
    WEATHER_AFTER,
    WEATHER_BEFORE,
)
from tests.pipeline.live import (
    MALICIOUS,
    Gateway,
    answer_of,
    malicious_http,
    policy_text,
    serve,
    wait_until,
)
from tests.support import BASTION, ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

DENIED = -32003
INVALID_PARAMS = -32602
RATE_LIMITED = -32005
APPROVAL_TOOL = "fx__echo"
SLOW_TOOL = "fx__test_streaming_elicitation"  # in flight until the client answers
WAIT_TOOL = "hinted__wait"  # in flight for as many seconds as it is told


def _servers(http_url: str, *, hinted: bool = True) -> str:
    lines = f"""\
  evil:
    command: {MALICIOUS[0]}
    args: {json.dumps(MALICIOUS[1:])}
    cwd: {ROOT}
  evilhttp:
    url: {http_url}
    headers: {{Authorization: "Bearer upstream-secret"}}
  fx:
    command: {BASTION}
    args: [fixture, --stdio]
"""
    if hinted:
        lines += f"""\
  hinted:
    command: {sys.executable}
    args: [-m, tests.pipeline.hinted]
    cwd: {ROOT}
"""
    return lines


DEV_TOOLS = [
    "evil__*",
    "evilhttp__*",
    APPROVAL_TOOL,
    SLOW_TOOL,
    "hinted__list_files",
    "hinted__calls",
    WAIT_TOOL,
]
APPROVAL = f"""\
security:
  tools:
    {APPROVAL_TOOL}: {{level: high, approval: human}}
"""
KEYS = {"alice": ("dev",), "bob": ("dev",), "admin": ("admin",)}


@pytest.fixture(scope="module")
def evil_http() -> Iterator[str]:
    with malicious_http() as url:
        yield url


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, evil_http: str) -> Iterator[Gateway]:
    limits = (
        f'limits:\n  tools: [{{match: "{SLOW_TOOL}", max_concurrent: 1}},'
        f' {{match: "{WAIT_TOOL}", max_concurrent: 1}}]\n'
    )
    with serve(
        tmp_path_factory.mktemp("threats"),
        _servers(evil_http),
        policy_text(DEV_TOOLS, APPROVAL),
        {**KEYS, "frank": ("dev",)},  # frank's key is revoked by a test
        extra=limits,
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, evil_http: str) -> Iterator[Gateway]:
    """A second gateway: five requests a minute per principal, results unfiltered (so
    what the upstream received is visible as it was)."""
    extra = "limits:\n  per_principal: {rate: 5, per: minute, burst: 5}\n"
    keys = {**KEYS, "carol": ("dev",), "dave": ("dev",), "erin": ("dev",)}
    with serve(
        tmp_path_factory.mktemp("limited"),
        _servers(evil_http, hinted=False),
        policy_text(DEV_TOOLS),
        keys,
        extra=extra,
        guard="  sanitise: {enabled: false}\n",
    ) as gateway:
        yield gateway


def _error(answer: dict[str, Any]) -> dict[str, Any]:
    assert "error" in answer, answer
    error: dict[str, Any] = answer["error"]
    return error


def _pins(gw: Gateway, server: str, tool: str) -> list[dict[str, Any]]:
    return [
        r
        for r in gw.audit()
        if r["kind"] == "pin" and r["principal"] == f"upstream:{server}" and r["target"] == tool
    ]


def _pending(gw: Gateway) -> dict[str, dict[str, Any]]:
    listed = gw.admin("GET", "/approvals")
    assert listed.status_code == 200, listed.text
    return {a["id"]: a for a in listed.json()["approvals"]}


# -- TC-1, TC-3: held at registration ------------------------------------------------------


@pytest.mark.parametrize("server", ["evil", "evilhttp"])
def test_tc1_poisoned_and_deep_schema_poisoned_tools_are_held(gw: Gateway, server: str) -> None:
    """TC-1: ``add`` (an <IMPORTANT> block in its description) and ``translate`` (poison only
    deep inside its inputSchema) never reach the catalog, calls to them fail like calls to
    unknown tools, and the audit log says why."""
    listed = gw.tools("alice")
    assert f"{server}__fetch_notes" in listed  # the server is up and listed
    for tool in ("add", "translate"):
        assert f"{server}__{tool}" not in listed
        assert f"{server}__{tool}" not in gw.tools("admin")  # held for everyone
        refused = gw.call("alice", f"{server}__{tool}", {"a": 1, "b": 2})
        assert _error(refused)["code"] == INVALID_PARAMS  # unknown tool, never forwarded
    [add] = [r for r in _pins(gw, server, "add") if r["method"] == "pin.held"]
    assert add["decision"] == "deny" and add["outcome"] == "new-poisoned"
    assert {"hidden-instruction", "sensitive-file"} <= {
        f["kind"] for f in add["detail"]["findings"]
    }
    [deep] = [r for r in _pins(gw, server, "translate") if r["method"] == "pin.held"]
    assert deep["outcome"] == "new-poisoned"
    paths = {f["path"] for f in deep["detail"]["findings"]}
    assert paths == {"$.inputSchema.properties.options.properties.style.description"}
    assert "exfiltration" in {f["kind"] for f in deep["detail"]["findings"]}
    held = {(a["principal"], a["tool"]) for a in _pending(gw).values()}
    assert {(f"upstream:{server}", "add"), (f"upstream:{server}", "translate")} <= held


def test_tc3_shadowing_tool_is_held(gw: Gateway) -> None:
    """TC-3: ``read_file`` says to use it instead of ``files__read_file``: held as
    shadowing on both faces of the malicious server, absent, and refused."""
    listed = gw.tools("alice")
    for server in ("evil", "evilhttp"):
        assert f"{server}__read_file" not in listed
        refused = gw.call("alice", f"{server}__read_file", {})
        assert _error(refused)["code"] == INVALID_PARAMS
        [held] = [r for r in _pins(gw, server, "read_file") if r["method"] == "pin.held"]
        assert held["outcome"] == "shadowing"
        kinds = {f["kind"] for f in held["detail"]["findings"]}
        assert "cross-server-reference" in kinds


def test_tc1_poisoned_prompts_resources_and_templates_are_held(gw: Gateway) -> None:
    """TC-1 beyond tools (red-team p2): a prompt, a resource and a template whose
    descriptions carry instructions for the model are not listed, cannot be got or read,
    and the audit log says why; the clean resource beside them still is."""

    def listed(method: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = answer_of(gw.modern("admin", method))["result"][key]
        return items

    assert "evil__summarise" not in {p["name"] for p in listed("prompts/list", "prompts")}
    uris = {r["uri"] for r in listed("resources/list", "resources")}
    assert "evil+note://deploy" in uris and "evil+note://lure" not in uris
    templates = listed("resources/templates/list", "resourceTemplates")
    assert not any("lure://" in t["uriTemplate"] for t in templates)
    got = answer_of(gw.modern("admin", "prompts/get", {"name": "evil__summarise"}))
    assert _error(got)["code"] == INVALID_PARAMS
    for uri in ("evil+note://lure", "evil+lure://1"):
        read = answer_of(
            gw.modern("admin", "resources/read", {"uri": uri}, headers={"mcp-name": uri})
        )
        assert _error(read)["code"] == INVALID_PARAMS, uri
    [prompt] = [r for r in _pins(gw, "evil", "summarise") if r["method"] == "pin.held"]
    assert prompt["decision"] == "deny" and prompt["outcome"] == "new-poisoned"
    assert prompt["detail"]["kind"] == "prompt"
    assert "hidden-instruction" in {f["kind"] for f in prompt["detail"]["findings"]}
    for target, kind in (("note://lure", "resource"), ("lure://{id}", "resource-template")):
        [held] = [r for r in _pins(gw, "evil", target) if r["method"] == "pin.held"]
        assert held["detail"]["kind"] == kind
        assert {"hidden-instruction", "sensitive-file", "exfiltration"} <= {
            f["kind"] for f in held["detail"]["findings"]
        }


# -- TC-2: rug pull -------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["evil", "evilhttp"])
def test_tc2_rug_pull_is_held_until_an_admin_approves(gw: Gateway, server: str) -> None:
    """TC-2: the fixture answers the first ``tools/list`` (the gateway's own, at start-up)
    with the honest ``weather`` and then swaps its description and announces
    ``list_changed``. The gateway pinned the honest one, must notice the change, hold it
    (gone from the list, calls refused) and audit the diff; an admin's approval through
    ``POST /api/v1/approvals/{id}/approve`` brings it back with the new description."""
    name = f"{server}__weather"

    def held_id() -> str | None:
        for approval_id, item in _pending(gw).items():
            if item["principal"] == f"upstream:{server}" and item["tool"] == "weather":
                return approval_id
        return None

    approval_id = wait_until(held_id, timeout=10)
    assert approval_id.startswith(f"tool:{server}:")
    assert name not in gw.tools("alice")
    assert _error(gw.call("alice", name, {}))["code"] == INVALID_PARAMS

    records = _pins(gw, server, "weather")
    [pinned] = [r for r in records if r["method"] == "pin.pinned"]
    assert pinned["detail"]["by"] == "trust-on-first-use"  # the honest first definition
    [held] = [r for r in records if r["method"] == "pin.held"]
    assert held["outcome"] == "changed" and held["decision"] == "deny"
    detail = held["detail"]
    assert detail["old_hash"] == pinned["detail"]["new_hash"]
    assert detail["changed"] == ["description"] and detail["diff_lines"] > 0
    assert approval_id == f"tool:{server}:{detail['new_hash']}"

    # A developer cannot approve it; an admin can.
    as_dev = httpx.post(
        f"{gw.api}/approvals/{approval_id}/approve",
        headers={"authorization": f"Bearer {gw.keys['alice']}"},
        timeout=15,
    )
    assert as_dev.status_code == 403
    approved = gw.admin("POST", f"/approvals/{approval_id}/approve")
    assert approved.status_code == 200, approved.text
    body = approved.json()["approval"]
    assert body["id"] == approval_id and body["status"] == "approved"
    assert body["decided_by"] == "apikey:admin"

    tool = wait_until(lambda: gw.tools("alice").get(name))
    assert tool["description"] == WEATHER_AFTER != WEATHER_BEFORE
    answer = gw.call("alice", name, {})
    assert answer["result"]["content"][0]["text"] == "ok"
    assert approval_id not in _pending(gw)
    audited = [
        r
        for r in gw.audit()
        if r["kind"] == "admin"
        and r["method"] == "approvals.approve"
        and r["target"] == approval_id
    ]
    assert [(r["principal"], r["outcome"]) for r in audited] == [("apikey:admin", "ok")]


# -- TC-4 / AD-3: results ------------------------------------------------------------------


def test_tc4_ad3_secrets_injection_and_invisible_characters_are_filtered(gw: Gateway) -> None:
    """TC-4/AD-3: ``fetch_notes`` returns an AWS key, a GitHub token, a PEM private key, a
    URL with a password, an injection and zero-width/tag characters. The client gets them
    masked, stripped and annotated; the audit record counts the findings, never the text."""
    answer = gw.call("alice", "evil__fetch_notes", {})
    result = answer["result"]
    text = result["content"][0]["text"]
    for secret in (AWS_KEY, GITHUB_TOKEN, "MIIEowIBAAKCAQEA", "BEGIN RSA PRIVATE KEY", "hunter2"):
        assert secret not in text
        assert secret not in json.dumps(result["structuredContent"])
    assert "aws: [REDACTED]" in text and "github: [REDACTED]" in text
    assert "postgres://admin:[REDACTED]@db.internal:5432/prod" in text
    assert not any(c in text for c in ("\u200b", "\u200d", "\u2062", "\U000e0041"))
    assert "files__delete_all. done" in text  # what was around the stripped characters
    assert text.startswith("[Bastion: untrusted output follows")
    assert text.endswith("[Bastion: end of untrusted output.]")
    assert result["structuredContent"]["password"] == "[REDACTED]"

    records = gw.audit()
    [call] = [
        r
        for r in records
        if r["kind"] != "pin" and r["method"] == "tools/call" and r["target"] == "evil__fetch_notes"
    ]
    assert call["principal"] == "apikey:alice" and call["decision"] == "allow"
    findings = {f["kind"]: f["count"] for f in call["detail"]["findings"]}
    assert findings["secret"] >= 1  # counted per string that held any
    assert findings["injection"] >= 1 and findings["invisible-character"] >= 1
    exported = json.dumps(records)
    for secret in (AWS_KEY, GITHUB_TOKEN, "MIIEowIBAAKCAQEA", "hunter2"):
        assert secret not in exported


def test_up4_upstream_errors_carry_no_credentials_or_internal_urls(gw: Gateway) -> None:
    """UP-4, IN-5: ``evil__fail`` answers a JSON-RPC error whose message and data hold a
    database URL with its password, a GitHub token, an AWS key and internal URLs. The client
    gets the code and the rest of the text, with those masked; the audit record counts them."""
    answer = gw.call("alice", "evil__fail", {})
    error = answer["error"]
    wire = json.dumps(error)
    for leaked in ("hunter2", GITHUB_TOKEN, AWS_KEY, INTERNAL_URL, "metrics.svc"):
        assert leaked not in wire, leaked
    assert error["code"] == -32000
    assert error["message"] == (
        "db failed: [internal URL] token=[REDACTED] key [REDACTED]; "  # db.internal: internal
        f"see [internal URL] and {PUBLIC_URL}"
    )
    assert error["data"] == {
        "internal": "[internal URL]",
        "secret": "[REDACTED]",
        "help": PUBLIC_URL,
    }
    [call] = [
        r
        for r in gw.audit()
        if r["kind"] != "pin" and r["method"] == "tools/call" and r["target"] == "evil__fail"
    ]
    assert {f["kind"] for f in call["detail"]["findings"]} == {"secret"}


def test_up4_upstream_errors_are_cleaned_with_result_filtering_off(limited: Gateway) -> None:
    """UP-4 holds even where ``guard.sanitise`` is off: errors are not results."""
    error = limited.call("dave", "evil__fail", {})["error"]
    for leaked in ("hunter2", GITHUB_TOKEN, AWS_KEY, INTERNAL_URL):
        assert leaked not in json.dumps(error), leaked


# -- TC-5: annotations ---------------------------------------------------------------------


def test_tc5_read_only_hint_never_loosens_policy(gw: Gateway) -> None:
    """TC-5: ``hinted__delete_all`` calls itself read-only and non-destructive; the policy
    does not grant it to role dev, so it is hidden and refused, and never ran."""
    listed = gw.tools("alice")
    assert "hinted__list_files" in listed
    assert "hinted__delete_all" not in listed
    assert gw.tools("admin")["hinted__delete_all"]["annotations"]["readOnlyHint"] is True
    refused = gw.call("alice", "hinted__delete_all", {"path": "/"})
    assert _error(refused)["code"] == DENIED
    counts = gw.call("alice", "hinted__calls", {})["result"]["structuredContent"]
    assert counts.get("delete_all", 0) == 0


# -- IN-3: arguments -----------------------------------------------------------------------


def test_in3_bad_arguments_are_refused_before_the_upstream(gw: Gateway) -> None:
    """IN-3: a wrong type, an unknown field or a missing required field is refused -32602
    (HTTP 400 on 2026-07-28) by the gateway; the upstream never runs the tool."""
    for arguments in ({"path": 5}, {"path": "/srv", "mode": "rw"}, {"depth": 1}):
        response = gw.modern(
            "alice", "tools/call", {"name": "hinted__list_files", "arguments": arguments}
        )
        assert response.status_code == 400
        assert _error(response.json())["code"] == INVALID_PARAMS, arguments
    counts = gw.call("alice", "hinted__calls", {})["result"]["structuredContent"]
    assert counts.get("list_files", 0) == 0
    good = gw.call("alice", "hinted__list_files", {"path": "/srv", "depth": 2})
    assert good["result"]["content"][0]["text"] == "list_files ran"
    counts = gw.call("alice", "hinted__calls", {})["result"]["structuredContent"]
    assert counts["list_files"] == 1


# -- UP-1: credentials upstream ------------------------------------------------------------


def test_up1_client_credentials_never_reach_the_upstream(gw: Gateway) -> None:
    """UP-1: alice calls ``echo_headers`` with her key, a cookie and a custom header; the
    upstream received an Authorization (the configured one; the result filter masks its
    value here, see the unfiltered gateway below), and none of alice's headers."""
    response = gw.modern(
        "alice",
        "tools/call",
        {"name": "evilhttp__echo_headers", "arguments": {}},
        headers={"cookie": "session=alice-cookie", "x-alice-marker": "alice-was-here"},
    )
    seen = response.json()["result"]["structuredContent"]
    assert "authorization" in seen
    dumped = json.dumps(seen)
    secret = gw.keys["alice"].split("_", 2)[2]
    assert gw.keys["alice"] not in dumped and secret not in dumped
    assert "cookie" not in seen and "alice-cookie" not in dumped
    assert "x-alice-marker" not in seen and "alice-was-here" not in dumped


def test_up1_upstream_sees_its_own_static_credential(limited: Gateway) -> None:
    """UP-1, unfiltered: the upstream got exactly ``Bearer upstream-secret``."""
    answer = limited.call("bob", "evilhttp__echo_headers", {})
    seen = answer["result"]["structuredContent"]
    assert seen["authorization"] == "Bearer upstream-secret"
    assert limited.keys["bob"] not in json.dumps(seen)


def test_up4_the_gateway_masks_its_own_upstream_credential(gw: Gateway) -> None:
    """UP-4, IN-5: ``evilhttp`` echoes the bare token of its configured ``Authorization:
    Bearer upstream-secret`` (no secret pattern knows it) in a result and in an error; the
    client gets it masked in both."""
    result = gw.call("alice", "evilhttp__echo_credential", {})["result"]
    assert "upstream-secret" not in json.dumps(result)
    assert result["content"][0]["text"] == "I was called with [REDACTED]"
    assert result["structuredContent"] == {"seen": "[REDACTED]"}
    error = gw.call("alice", "evilhttp__fail_credential", {})["error"]
    assert error["message"] == "refused credential [REDACTED]"
    assert error["data"] == {"got": "[REDACTED]"}


def test_up4_own_credential_masked_in_errors_with_result_filtering_off(limited: Gateway) -> None:
    """UP-4: errors are cleaned of the gateway's credential even where ``guard.sanitise`` is
    off (results are not: see test_up1_upstream_sees_its_own_static_credential)."""
    error = limited.call("dave", "evilhttp__fail_credential", {})["error"]
    assert "upstream-secret" not in json.dumps(error)
    assert error["message"] == "refused credential [REDACTED]"


# -- DS-3: rate and concurrency limits -----------------------------------------------------


def test_ds3_rate_limit_429_with_retry_after_and_per_principal(limited: Gateway) -> None:
    """DS-3: five requests a minute: alice's sixth stateless call is HTTP 429 with
    Retry-After and -32005 (data.retryAfter); bob is not throttled by alice's exhaustion."""
    for n in range(5):
        ok = limited.modern("alice", "tools/call", {"name": "fx__echo", "arguments": {"text": "x"}})
        assert ok.status_code == 200 and "result" in ok.json(), (n, ok.text)
    refused = limited.modern(
        "alice", "tools/call", {"name": "fx__echo", "arguments": {"text": "x"}}
    )
    assert refused.status_code == 429
    retry = int(refused.headers["retry-after"])
    assert 1 <= retry <= 60
    error = _error(refused.json())
    assert error["code"] == RATE_LIMITED and error["data"]["retryAfter"] == retry
    other = limited.call("bob", "fx__echo", {"text": "bob"})
    assert other["result"]["content"][0]["text"] == "bob"


def test_ds3_rate_limit_in_a_legacy_session_is_a_jsonrpc_error(limited: Gateway) -> None:
    """DS-3 on 2025-11-25: inside a session the refusal is a JSON-RPC error -32005 with
    retryAfter (the session itself stays)."""
    session = limited.session("carol")  # initialize is 1 of the 5 (a notification is not)
    responses = [
        session.request("tools/call", {"name": "fx__echo", "arguments": {"text": str(n)}})
        for n in range(5)
    ]
    answers = [answer_of(r) for r in responses]
    assert [("result" in a) for a in answers] == [True, True, True, True, False], answers
    refused = responses[4]
    assert refused.status_code == 200  # inside the session: a JSON-RPC error, not HTTP 429
    error = answers[4]["error"]
    assert error["code"] == RATE_LIMITED and error["data"]["retryAfter"] >= 1
    assert session.close() == 200  # the session itself was not harmed


def test_ds3_ds4_ad1_a_flood_over_the_limit_is_audited_in_bounded_counted_records(
    limited: Gateway,
) -> None:
    """DS-3, DS-4, AD-1: a flood of calls over erin's limit, each answered 429, writes her
    first refusal and one counted summary per window (not one record per refusal); the
    counts add up to every refusal, and the chain still verifies."""
    flood = 150
    echo = {"name": "fx__echo", "arguments": {"text": "x"}}
    for _ in range(5):
        assert limited.modern("erin", "tools/call", echo).status_code == 200
    started = time.monotonic()
    with httpx.Client(timeout=15) as client:
        sent = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "authorization": f"Bearer {limited.keys['erin']}",
            "mcp-protocol-version": "2026-07-28",
            "mcp-method": "tools/call",
            "mcp-name": "fx__echo",
        }
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {**echo, "_meta": meta},
        }
        statuses = [
            client.post(limited.mcp, json=body, headers=sent).status_code for _ in range(flood)
        ]
    elapsed = time.monotonic() - started
    assert statuses == [429] * flood

    def refusals() -> list[dict[str, Any]]:
        return [
            r
            for r in limited.audit()
            if r["principal"] == "apikey:erin" and r["outcome"] == str(RATE_LIMITED)
        ]

    def counted(records: list[dict[str, Any]]) -> int:
        return sum(int(r["detail"].get("refused", 1)) for r in records)

    # The last window's summary is written when it ends (1 s after it opened).
    wait_until(lambda: counted(refusals()) == flood, timeout=10, step=0.5)
    records = refusals()
    assert len(records) <= 2 * (int(elapsed) + 2), (len(records), elapsed)
    assert all(r["detail"]["window_s"] == 1.0 for r in records if "refused" in r["detail"])
    verified = subprocess.run(
        [str(BASTION), "audit", "verify", "--db", str(limited.audit_db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_ds3_max_concurrent_refuses_a_second_call_in_flight(gw: Gateway) -> None:
    """DS-3: ``max_concurrent: 1`` on a tool: while alice's first call waits for her answer
    to its elicitation, her second call is refused -32005; bob's runs."""
    first = gw.session("alice", {"elicitation": {}})
    second = gw.session("alice", {"elicitation": {}})
    asked: dict[str, Any] = {}
    seen = threading.Event()
    done = threading.Event()
    answer = threading.Event()
    final: list[dict[str, Any]] = []

    def run_first() -> None:
        message = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": SLOW_TOOL, "arguments": {}},
        }
        with (
            httpx.Client(timeout=30) as client,
            client.stream("POST", first.url, json=message, headers=first.headers) as stream,
        ):
            for line in stream.iter_lines():
                if not line.startswith("data:") or not line[5:].strip():
                    continue
                parsed = json.loads(line[5:])
                if parsed.get("method") == "elicitation/create":
                    asked.update(parsed)
                    seen.set()
                    answer.wait(30)
                elif parsed.get("id") == 7:
                    final.append(parsed)
                    break
        done.set()

    worker = threading.Thread(target=run_first, daemon=True)
    worker.start()
    try:
        assert seen.wait(20), "the first call never asked for input"
        refused = second.call(SLOW_TOOL, {})
        error = _error(refused)
        assert error["code"] == RATE_LIMITED and error["data"]["retryAfter"] >= 1
        # Another principal has its own slot (2026-07-28: the tool asks in its result).
        other = gw.modern(
            "bob",
            "tools/call",
            {"name": SLOW_TOOL, "arguments": {}},
            capabilities={"elicitation": {}},
        )
        assert "result" in other.json(), other.text
    finally:
        reply = {
            "jsonrpc": "2.0",
            "id": asked.get("id", 0),
            "result": {"action": "accept", "content": {"ok": True}},
        }
        first.post(reply)
        answer.set()
        done.wait(20)
        worker.join(5)
    assert final and "Streaming elicitation answered" in final[0]["result"]["content"][0]["text"]
    first.close()
    second.close()


def test_ds3_ending_a_session_ends_its_calls_and_frees_their_slots(gw: Gateway) -> None:
    """DS-3, SE-3: a call in flight in a 2025-11-25 session ends with the session (here a
    DELETE), so its ``max_concurrent`` slot is free at once, not when the call would have
    finished (``hinted__wait`` allows one call at a time)."""
    first = gw.session("alice", {})
    started = threading.Event()
    ended = threading.Event()

    def run_first() -> None:
        message = {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "tools/call",
            "params": {"name": WAIT_TOOL, "arguments": {"seconds": 60}},
        }
        with (
            httpx.Client(timeout=90) as client,
            client.stream("POST", first.url, json=message, headers=first.headers) as stream,
        ):
            started.set()
            for _ in stream.iter_lines():
                pass
        ended.set()  # the stream closed: the session ended it

    worker = threading.Thread(target=run_first, daemon=True)
    worker.start()
    assert started.wait(20)
    busy = gw.call("alice", WAIT_TOOL, {"seconds": 0})
    deadline = time.monotonic() + 10
    while "error" not in busy:  # until the first call holds the slot
        assert time.monotonic() < deadline, "the first call never started"
        busy = gw.call("alice", WAIT_TOOL, {"seconds": 0})
    assert _error(busy)["code"] == RATE_LIMITED
    assert first.close() == 200  # DELETE
    assert ended.wait(10), "the call's stream outlived its session"
    worker.join(5)
    again = gw.call("alice", WAIT_TOOL, {"seconds": 0})
    assert again["result"]["content"][0]["text"] == "waited"  # the slot was freed


def test_au5_revoking_a_key_ends_its_stateless_calls_in_flight(gw: Gateway) -> None:
    """AU-5, DS-3: a 2026-07-28 call of a key revoked while it is in flight (``hinted__wait``,
    60 s) is cancelled within the credential check's period (1 s) and answered -32003 with
    a fixed message; the refusal is audited, and the upstream call's slot is free again."""
    answers: list[httpx.Response] = []
    key = gw.keys["frank"]

    def run() -> None:
        answers.append(
            modern_post_slow(gw.mcp, key, {"name": WAIT_TOOL, "arguments": {"seconds": 60}})
        )

    def start() -> threading.Thread:
        answers.clear()
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        return worker

    worker = start()
    deadline = time.monotonic() + 20
    while True:  # until the slow call holds the slot (max_concurrent: 1)
        assert time.monotonic() < deadline, ("the slow call never started", answers)
        time.sleep(0.2)
        if not worker.is_alive():  # refused: a probe held the slot at that moment
            worker = start()
            continue
        busy = gw.call("frank", WAIT_TOOL, {"seconds": 0})
        if "error" in busy:
            break
    assert _error(busy)["code"] == RATE_LIMITED
    revoked = subprocess.run(
        [str(BASTION), "keys", "revoke", "frank", "--db", str(gw.keys_db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert revoked.returncode == 0, revoked.stderr
    since = time.monotonic()
    worker.join(10)
    assert not worker.is_alive(), "the revoked key's call ran on"
    assert time.monotonic() - since < 5
    (answer,) = answers
    assert answer.status_code == 200
    error = _error(answer_of(answer))
    assert error["code"] == DENIED and error["message"] == "Credential no longer valid"
    assert "frank" not in answer.text and key not in answer.text
    records = [
        r
        for r in gw.audit()
        if r["principal"] == "apikey:frank"
        and r["target"] == WAIT_TOOL
        and r["outcome"] == "-32003"
    ]
    assert [r["detail"].get("ended") for r in records] == ["credential lapsed"]
    assert gw.call("alice", WAIT_TOOL, {"seconds": 0})["result"]["content"][0]["text"] == "waited"


def modern_post_slow(url: str, key: str, params: dict[str, Any]) -> httpx.Response:
    """A 2026-07-28 ``tools/call`` that may take up to 90 s to be answered."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {**params, "_meta": meta}}
    headers = {
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {key}",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": str(params["name"]),
    }
    return httpx.post(url, json=body, headers=headers, timeout=90)


# -- TC-6: human approval ------------------------------------------------------------------


def test_tc6_high_security_call_waits_for_an_admin_and_runs_once(gw: Gateway) -> None:
    """TC-6: ``fx__echo`` is ``level: high, approval: human``. A 2026-07-28 call is refused
    with data.approvalId; the admin approves it; alice's retry with the same arguments runs
    once, other arguments need their own approval, and a second retry needs a new one."""
    args = {"text": "deploy to prod"}
    refused = _error(gw.call("alice", APPROVAL_TOOL, args))
    assert refused["code"] == DENIED
    approval_id = refused["data"]["approvalId"]
    assert approval_id.startswith("apr_")
    # Pending: the same call is refused with the same id until the admin decides.
    assert _error(gw.call("alice", APPROVAL_TOOL, args))["data"]["approvalId"] == approval_id
    pending = _pending(gw)[approval_id]
    assert pending["principal"] == "apikey:alice" and pending["tool"] == APPROVAL_TOOL
    assert pending["status"] == "pending"
    # What approving it allows: these exact arguments (their digest, keyed by the gateway's
    # secret beside its audit log: AD-3), shown redacted.
    shown = '{"text":"deploy to prod"}'
    key = gw.audit_db.with_suffix(".pepper")
    assert key.stat().st_mode & 0o777 == 0o600
    digest = hmac.new(key.read_bytes(), shown.encode(), hashlib.sha256).hexdigest()
    assert pending["arguments_hmac"] == digest
    assert pending["arguments_preview"] == shown

    approved = gw.admin("POST", f"/approvals/{approval_id}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"]["status"] == "approved"
    # Deciding it again is a conflict while the approval waits for alice's retry.
    assert gw.admin("POST", f"/approvals/{approval_id}/approve").status_code == 409

    other = _error(gw.call("alice", APPROVAL_TOOL, {"text": "something else"}))
    assert other["data"]["approvalId"] != approval_id
    # bob's identical call is not covered by alice's approval.
    assert _error(gw.call("bob", APPROVAL_TOOL, args))["code"] == DENIED
    ran = gw.call("alice", APPROVAL_TOOL, args)
    assert ran["result"]["content"][0]["text"] == "deploy to prod"
    again = _error(gw.call("alice", APPROVAL_TOOL, args))
    assert again["data"]["approvalId"] not in (approval_id, other["data"]["approvalId"])
    # Used by the retry, the approval is gone: no such pending approval.
    assert gw.admin("POST", f"/approvals/{approval_id}/reject").status_code == 404

    records = gw.audit()
    decided = [
        (r["principal"], r["method"], r["outcome"])
        for r in records
        if r["kind"] == "admin" and r["target"] == approval_id
    ]
    assert decided[0] == ("apikey:admin", "approvals.approve", "ok")
    outcomes = [
        r["outcome"]
        for r in records
        if r["kind"] == "request"
        and r["method"] == "tools/call"
        and r["target"] == APPROVAL_TOOL
        and r["principal"] == "apikey:alice"
    ]
    # Refused while pending, refused for other arguments, ran once, refused again.
    assert outcomes == [str(DENIED), str(DENIED), str(DENIED), "ok", str(DENIED)]
