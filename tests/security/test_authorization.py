"""SECURITY.md 2.3 and 2.8, authorization: AZ-1 .. AZ-5, TC-5, TC-6, with the policy file of
``conftest.POLICY`` (role ``dev``: the handshake plus four tools and one resource; ``admin``:
everything except the tool a deny rule names) on a real ``bastion serve``."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.security.conftest import JWT_ADMINS, POLICY, Gateway, answer_of, bearer

pytestmark = pytest.mark.e2e

DEV_TOOLS = {"fx__echo", "fx__test_simple_text", "rec__whoami", "rec__boom"}


def error_code(response: object) -> int | None:
    answer = answer_of(response)  # type: ignore[arg-type]
    return answer["error"]["code"] if "error" in answer else None


def reached_upstream(gw: Gateway, marker: str) -> bool:
    return any(marker in entry["body"] for entry in gw.recorded())


@contextlib.contextmanager
def policy_edit(gw: Gateway, text: str, active: Callable[[], bool]) -> Iterator[None]:
    """Replace the policy file while the gateway runs (no restart); wait until ``active``
    says the new policy decides; restore it afterwards and wait until it is back."""
    gw.policy_file.write_text(text)
    _wait(active, "the edited policy was not picked up")
    try:
        yield
    finally:
        gw.policy_file.write_text(POLICY)
        _wait(lambda: not active(), "the original policy was not restored")


def _wait(condition: Callable[[], bool], message: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


# -- AZ-1 deny by default, per request, one engine for every credential ----------------------


def test_az1_deny_by_default(gw: Gateway) -> None:
    # No rule names fx__test_image_content for dev: denied, with the generic message.
    response = gw.call(gw.auth("alice"), "fx__test_image_content")
    answer = answer_of(response)
    assert answer["error"] == {"code": -32003, "message": "Denied by policy"}
    # A principal with no role at all gets nothing, not even the tool list.
    nobody = bearer(gw.issuer.token(sub="no-roles", roles=[]))
    assert error_code(gw.modern(nobody, "tools/list")) == -32003
    assert error_code(gw.modern(nobody, "server/discover")) == -32003
    # A method the revision does not have is -32601 for everyone (ping is 2025-11-25 only).
    assert error_code(gw.modern(nobody, "ping")) == -32601


def test_az1_policy_is_evaluated_per_request_and_reloaded_without_restart(gw: Gateway) -> None:
    alice = gw.auth("alice")
    session = gw.initialize(alice)
    image = {"name": "fx__test_image_content", "arguments": {}}

    def allowed_in_session() -> bool:
        return error_code(gw.legacy(alice, session, "tools/call", image)) != -32003

    assert not allowed_in_session()
    granted = POLICY + (
        "  - id: dev-image\n    effect: allow\n    roles: [dev]\n"
        "    tools: [fx__test_image_content]\n"
    )
    pid = gw.proc.pid
    with policy_edit(gw, granted, allowed_in_session):
        # The same, already open session now gets the new decision: not fixed per session.
        answer = answer_of(gw.legacy(alice, session, "tools/call", image))
        assert answer["result"]["content"][0]["type"] == "image"
        assert "fx__test_image_content" in gw.tool_names(alice)
    assert not allowed_in_session()  # revoked again, in the same session
    assert gw.proc.pid == pid and gw.proc.poll() is None  # no restart happened


def test_az1_an_open_listen_ends_when_the_policy_stops_allowing_its_uri(gw: Gateway) -> None:
    """A 2026-07-28 listen stream is re-decided when the policy reloads: once the resource it
    follows is no longer allowed, the stream ends (-32003) rather than keep delivering."""
    alice = gw.auth("alice")
    listening = POLICY + (
        "  - id: dev-listen\n    effect: allow\n    roles: [dev]\n"
        "    methods: [subscriptions/listen]\n"
    )
    malformed = {"notifications": {"resourceSubscriptions": "x"}}

    def listen_allowed() -> bool:  # a malformed filter passes the policy, then is -32602
        return error_code(gw.modern(alice, "subscriptions/listen", malformed)) == -32602

    with policy_edit(gw, listening, listen_allowed):
        follow = {"resourceSubscriptions": ["fx+test://static-text"]}
        with gw.listen(alice, follow) as messages:
            assert next(messages)["method"] == "notifications/subscriptions/acknowledged"
            gw.policy_file.write_text(listening.replace("fx+test://static-text", "fx+test://x"))
            rest = list(messages)  # the stream ends; one left open would time out instead
    assert rest[-1]["error"] == {"code": -32003, "message": "Subscription no longer authorized"}


WATCHED = "fx+test://watched-resource"


def updates_so_far(gw: Gateway, headers: dict[str, str], session: str) -> list[str]:
    """The URIs of the ``notifications/resources/updated`` a 2025-11-25 session was sent so
    far (its standalone stream replayed from the start, read until it stays quiet)."""
    sent = {**headers, "accept": "text/event-stream", "mcp-session-id": session}
    timeout = httpx.Timeout(5.0, read=1.0)
    uris: list[str] = []
    with gw.client.stream("GET", gw.url, headers=sent, timeout=timeout) as stream:
        if stream.status_code == 409:  # the previous read's stream is not closed yet
            time.sleep(0.1)
            return updates_so_far(gw, headers, session)
        assert stream.status_code == 200
        try:
            for line in stream.iter_lines():
                data = line[5:].strip() if line.startswith("data:") else ""
                note = json.loads(data) if data else {}
                if note.get("method") == "notifications/resources/updated":
                    uris.append(note["params"]["uri"])
        except httpx.ReadTimeout:
            pass
    return uris


def test_az1_se3_a_legacy_subscription_ends_when_the_policy_stops_allowing_its_uri(
    gw: Gateway,
) -> None:
    """A 2025-11-25 ``resources/subscribe`` is re-decided when the policy reloads, like a
    listen stream: once the URI is no longer allowed, its updates stop reaching the session
    (the drop is audited), while a session still allowed it keeps receiving them."""
    alice, root = gw.auth("alice"), gw.auth("root")
    watching = POLICY + (
        f'  - id: dev-watched\n    effect: allow\n    roles: [dev]\n    resources: ["{WATCHED}"]\n'
    )

    def alice_may_read() -> bool:
        return error_code(gw.modern(alice, "resources/read", {"uri": WATCHED})) is None

    def announce() -> None:
        assert error_code(gw.call(root, "fx__test_trigger_resource_update")) is None

    with policy_edit(gw, watching, alice_may_read):
        sessions = {"alice": (alice, gw.initialize(alice)), "root": (root, gw.initialize(root))}
        for headers, session in sessions.values():
            for uri in (WATCHED, "fx+test://static-text"):
                answer = answer_of(gw.legacy(headers, session, "resources/subscribe", {"uri": uri}))
                assert answer.get("result") == {}, answer
        announce()
        _wait(lambda: updates_so_far(gw, *sessions["alice"]) == [WATCHED], "no first update")
        gw.policy_file.write_text(POLICY)
        _wait(lambda: not alice_may_read(), "the restored policy was not picked up")
        announce()
        _wait(lambda: len(updates_so_far(gw, *sessions["root"])) == 2, "root lost its updates")
        assert updates_so_far(gw, *sessions["alice"]) == [WATCHED]  # nothing after the deny
    records = [line["record"] for line in gw.audit_export()]
    ended = [
        r for r in records if r["method"] == "resources/subscribe" and r["detail"].get("ended")
    ]
    assert [(r["principal"], r["target"], r["decision"]) for r in ended][-1:] == [
        ("apikey:alice", WATCHED, "deny")
    ]  # static-text, still allowed, was not dropped


def test_az1_api_key_and_jwt_principals_get_the_same_decisions(gw: Gateway) -> None:
    key = gw.auth("alice")
    jwt = bearer(gw.issuer.token(sub="dana", roles=["dev"]))
    for tool, allowed in (("fx__echo", True), ("fx__test_image_content", False),
                          ("rec__forbidden", False), ("fx__test_simple_text", True)):  # fmt: skip
        for who in (key, jwt):
            code = error_code(gw.call(who, tool, {"text": "same"}))
            assert (code != -32003) is allowed, (tool, who)


def test_az1_a_deny_for_every_principal_applies_to_jwt_users(gw: Gateway) -> None:
    """``principals: ["*"]`` is everyone, a JWT user too, although the id of one
    (``jwt:https://idp.bastion.test#dana``) holds ``/``: in the call and in the list."""
    key = gw.auth("alice")
    jwt = bearer(gw.issuer.token(sub="dana", roles=["dev"]))
    assert error_code(gw.call(jwt, "fx__echo", {"text": "x"})) != -32003
    nobody_echoes = POLICY + (
        "  - id: nobody-echoes\n    effect: deny\n    principals: ['*']\n    tools: [fx__echo]\n"
    )

    def denied(who: dict[str, str]) -> bool:
        return error_code(gw.call(who, "fx__echo", {"text": "x"})) == -32003

    with policy_edit(gw, nobody_echoes, lambda: denied(key)):
        assert denied(jwt)
        assert "fx__echo" not in gw.tool_names(jwt)
        assert "fx__test_simple_text" in gw.tool_names(jwt)


# -- AZ-2 lists are filtered by the same policy ------------------------------------------------


def test_az2_tools_list_shows_only_what_may_be_called(gw: Gateway) -> None:
    assert gw.tool_names(gw.auth("alice")) == DEV_TOOLS
    admin = gw.tool_names(gw.auth("root"))
    assert admin > DEV_TOOLS
    assert "rec__forbidden" in admin
    assert "fx__test_error_handling" not in admin  # a deny rule also hides it from admins
    # The 2025-11-25 face filters the same way.
    session = gw.initialize(gw.auth("alice"))
    listed = answer_of(gw.legacy(gw.auth("alice"), session, "tools/list"))["result"]["tools"]
    assert {t["name"] for t in listed} == DEV_TOOLS


def test_az2_resources_prompts_and_templates_are_filtered(gw: Gateway) -> None:
    alice, root = gw.auth("alice"), gw.auth("root")

    def items(who: dict[str, str], method: str, key: str, field: str) -> set[str]:
        return {i[field] for i in answer_of(gw.modern(who, method))["result"][key]}

    assert items(alice, "resources/list", "resources", "uri") == {"fx+test://static-text"}
    assert len(items(root, "resources/list", "resources", "uri")) > 1
    assert items(alice, "prompts/list", "prompts", "name") == set()
    assert items(root, "prompts/list", "prompts", "name")
    templates = "resources/templates/list"
    assert items(alice, templates, "resourceTemplates", "uriTemplate") == set()
    assert items(root, templates, "resourceTemplates", "uriTemplate")
    # ... and what is hidden cannot be fetched either.
    hidden = {"uri": "fx+test://static-binary"}
    assert error_code(gw.modern(alice, "resources/read", hidden)) == -32003
    shown = gw.modern(alice, "resources/read", {"uri": "fx+test://static-text"})
    assert "result" in answer_of(shown)


# -- AZ-3 exact, case-sensitive names; invalid names refused before policy ----------------------


@pytest.mark.parametrize(
    "name",
    [
        "REC__WHOAMI",
        "rec__Whoami",
        "rec__whoami ",
        " rec__whoami",
        "rec__whoami\u200b",  # zero-width space
        "rec__wh\u043eami",  # Cyrillic o
        "rec__whoami\x00",
        "rec__whoami/",
        "rec_whoami",
        "rec__whoami*",
        "rec__*",
        "x" * 129,
        "",
    ],
)
def test_az3_only_the_exact_name_matches(gw: Gateway, name: str) -> None:
    marker = f"az3-{name.encode('unicode_escape').decode()}"
    response = gw.modern(
        gw.auth("alice"),
        "tools/call",
        {"name": name, "arguments": {"marker": marker}},
        name=name.strip(" ") if name.isascii() and "\x00" not in name else "rec__whoami",
    )
    if response.status_code == 400:  # the mirror header could not carry it: refused anyway
        assert response.json()["error"]["code"] in (-32020, -32602)
    else:
        assert error_code(response) in (-32003, -32602)
    assert not reached_upstream(gw, marker)


def test_az3_invalid_names_are_refused_before_any_rule(gw: Gateway) -> None:
    """Even for an admin allowed ``**``: a name outside [A-Za-z0-9_.-]{1,128} is denied
    (audited with rule ``invalid-name``), never normalised onto a real tool."""
    for name in ("fx__echo;rm", "fx__ech\u00f6", "fx__echo\t", "a" * 129):
        params = {"name": name, "arguments": {"text": "x"}}
        response = gw.modern(gw.auth("root"), "tools/call", params, name="fx__echo")
        assert response.status_code == 400  # Mcp-Name != body: -32020 at the edge
        legacy = gw.initialize(gw.auth("root"))
        answer = answer_of(
            gw.legacy(gw.auth("root"), legacy, "tools/call", {"name": name, "arguments": {}})
        )
        assert answer["error"]["code"] == -32003
    records = [r["record"] for r in gw.audit_export()]
    assert any(r.get("rule_id") == "invalid-name" for r in records)


# -- AZ-4 a denied call never reaches the upstream ---------------------------------------------


def test_az4_denied_call_never_reaches_the_upstream(gw: Gateway) -> None:
    marker = "az4-must-not-arrive"
    response = gw.call(gw.auth("alice"), "rec__forbidden", {"marker": marker})
    assert response.status_code in (200, 403)
    answer = answer_of(response)
    assert answer["error"]["code"] == -32003
    assert answer["error"]["message"] == "Denied by policy"
    assert "rule" not in response.text.lower()  # no policy internals on the wire
    assert not reached_upstream(gw, marker)
    # The same call by an admin does arrive: the upstream and the recorder work.
    allowed = "az4-admin-arrives"
    assert "result" in answer_of(gw.call(gw.auth("root"), "rec__forbidden", {"marker": allowed}))
    assert reached_upstream(gw, allowed)


def test_az4_deny_rules_beat_allow_rules(gw: Gateway) -> None:
    answer = answer_of(gw.call(gw.auth("root"), "fx__test_error_handling"))
    assert answer["error"]["code"] == -32003
    denied = [r["record"] for r in gw.audit_export()
              if r["record"].get("target") == "fx__test_error_handling"]  # fmt: skip
    assert denied and denied[-1]["rule_id"] == "no-error-tool"
    assert denied[-1]["decision"] == "deny"


# -- TC-5 upstream annotations never loosen policy -------------------------------------------


def test_tc5_read_only_annotation_does_not_grant_anything(gw: Gateway) -> None:
    root_tools = answer_of(gw.modern(gw.auth("root"), "tools/list"))["result"]["tools"]
    forbidden = next(t for t in root_tools if t["name"] == "rec__forbidden")
    assert forbidden.get("annotations", {}).get("readOnlyHint") is True
    assert error_code(gw.call(gw.auth("alice"), "rec__forbidden", {})) == -32003


# -- TC-6 high-risk tools: explicit grants, step-up, human approval -------------------------


def test_tc6_approval_and_step_up_obligations_hold_calls(gw: Gateway) -> None:
    guarded = POLICY + (
        "security:\n  tools:\n"
        "    rec__whoami: {level: high, approval: human}\n"
        "    fx__test_simple_text: {level: high, step_up: {recent_auth: 60s}}\n"
    )
    alice = gw.auth("alice")
    marker = "tc6-needs-approval"

    def held() -> bool:
        return error_code(gw.call(alice, "rec__whoami", {"marker": "probe"})) == -32003

    with policy_edit(gw, guarded, held):
        answer = answer_of(gw.call(alice, "rec__whoami", {"marker": marker}))
        assert answer["error"]["code"] == -32003
        assert answer["error"].get("data", {}).get("approvalId")
        assert not reached_upstream(gw, marker)
        now = int(time.time())
        stale = bearer(gw.issuer.token(sub="erin", iat=now - 3600))
        fresh = bearer(gw.issuer.token(sub="erin", iat=now))
        assert error_code(gw.call(stale, "fx__test_simple_text")) == -32003
        assert error_code(gw.call(fresh, "fx__test_simple_text")) is None
        # AZ-5: neither an API key nor a token without auth_time/iat is a recent sign-in.
        undated = bearer(gw.issuer.token(sub="erin", iat=None))
        for who in (undated, alice):  # alice: an API key her role allows the tool with
            refused = answer_of(gw.call(who, "fx__test_simple_text"))["error"]
            assert (refused["code"], refused["message"]) == (
                -32003,
                "Recent authentication required",
            )


def test_tc6_ad1_the_audit_links_a_waiting_call_its_approval_and_its_run(gw: Gateway) -> None:
    """TC-6, AD-1: the admin approves alice's call by the id she was refused with, seeing
    the keyed digest of her arguments; in ``bastion audit export`` the refusal, the admin's
    decision and the run it allowed all carry that id, and the call records that digest."""
    guarded = POLICY + "security:\n  tools:\n    fx__echo: {level: high, approval: admin}\n"
    alice = gw.auth("alice")
    arguments = {"text": "tc6-linked rm -rf /"}
    canonical = json.dumps(arguments, separators=(",", ":")).encode()
    # Keyed by the gateway's secret beside its audit log (AD-3: no guessing masked values).
    key = gw.audit_db.with_suffix(".pepper").read_bytes()
    digest = hmac.new(key, canonical, hashlib.sha256).hexdigest()

    def held() -> bool:
        return error_code(gw.call(alice, "fx__echo", {"text": "probe"})) == -32003

    with policy_edit(gw, guarded, held):
        refused = answer_of(gw.call(alice, "fx__echo", arguments))["error"]
        approval_id = refused["data"]["approvalId"]
        decided = gw.client.post(
            f"{gw.base}/api/v1/approvals/{approval_id}/approve", headers=gw.auth("root")
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["approval"]["arguments_hmac"] == digest
        assert error_code(gw.call(alice, "fx__echo", arguments)) is None
    linked = [
        (r["kind"], r["method"], r["outcome"], r.get("detail", {}).get("arguments_hmac"))
        for r in (entry["record"] for entry in gw.audit_export())
        if approval_id in (r.get("target"), r.get("detail", {}).get("approvalId"))
    ]
    assert linked == [
        ("request", "tools/call", "-32003", digest),
        ("admin", "approvals.approve", "ok", None),
        ("request", "tools/call", "ok", digest),
    ]


def test_az5_az6_an_idp_group_named_admin_is_no_gateway_admin(gw: Gateway) -> None:
    """``admin`` opens the admin API; a JWT gets it only through ``auth.oidc.grants``, not
    because the IdP has a group of that name. ``local`` never comes from a token either."""
    keys = f"{gw.base}/api/v1/keys"
    named_admin = bearer(gw.issuer.token(sub="mallory", roles=["admin", "local", "dev"]))
    assert gw.client.get(keys, headers=named_admin).status_code == 403
    assert error_code(gw.call(named_admin, "fx__test_image_content")) == -32003
    granted = bearer(gw.issuer.token(sub="olga", roles=[JWT_ADMINS]))
    assert gw.client.get(keys, headers=granted).status_code == 200
    assert error_code(gw.call(granted, "fx__test_image_content")) != -32003
