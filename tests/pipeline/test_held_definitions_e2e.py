"""TC-1, AZ-6, AD-1 against a real ``bastion serve`` fronting the malicious fixture: its
poisoned prompt (``summarise``), resource (``note://lure``) and template (``lure://{id}``)
are held back and listed in ``GET /api/v1/approvals``; only an admin may approve one; an
approved one is listed, got and read at once, is audited as kind ``pin``, and stays approved
when the gateway restarts on the same pin database; one not approved stays held."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pipeline.live import MALICIOUS, Gateway, answer_of, policy_text, serve, wait_until
from tests.support import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SERVERS = f"""\
  evil:
    command: {MALICIOUS[0]}
    args: {json.dumps(MALICIOUS[1:])}
    cwd: {ROOT}
"""
POLICY = policy_text(["evil__*"])
INVALID_PARAMS = -32602
RESOURCE_NOT_FOUND = -32002


def _listed(gw: Gateway, method: str, key: str) -> set[str]:
    field = {"prompts": "name", "resources": "uri", "resourceTemplates": "uriTemplate"}[key]
    items: list[dict[str, Any]] = answer_of(gw.modern("admin", method))["result"][key]
    return {item[field] for item in items}


def _prompts(gw: Gateway) -> set[str]:
    return _listed(gw, "prompts/list", "prompts")


def _pending(gw: Gateway) -> dict[tuple[str, str], dict[str, Any]]:
    answer = gw.admin("GET", "/approvals")
    assert answer.status_code == 200, answer.text
    return {(a["kind"], a["tool"]): a for a in answer.json()["approvals"] if a["kind"] != "tool"}


def _held(gw: Gateway) -> dict[tuple[str, str], dict[str, Any]]:
    wanted = {
        ("prompt", "summarise"),
        ("resource", "note://lure"),
        ("resource-template", "lure://{id}"),
    }
    held: dict[tuple[str, str], dict[str, Any]] = wait_until(
        lambda: (pending := _pending(gw)).keys() >= wanted and pending, timeout=20
    )
    return held


def _read(gw: Gateway, uri: str) -> dict[str, Any]:
    answer: dict[str, Any] = answer_of(
        gw.modern("admin", "resources/read", {"uri": uri}, headers={"mcp-name": uri})
    )
    return answer


def test_tc1_an_admin_approves_a_held_prompt_and_it_survives_a_restart(tmp_path: Path) -> None:
    keys: dict[str, tuple[str, ...]] = {"admin": ("admin",), "alice": ("dev",)}
    with serve(tmp_path, SERVERS, POLICY, keys) as gw:
        held = _held(gw)
        prompt = held[("prompt", "summarise")]
        assert prompt["principal"] == "upstream:evil" and prompt["server"] == "evil"
        assert prompt["status"] == "pending" and prompt["definition"]["name"] == "summarise"
        assert "hidden-instruction" in {f["kind"] for f in prompt["findings"]}
        assert prompt["id"] == f"prompt:evil:{prompt['hash']}"
        assert "evil__summarise" not in _prompts(gw)
        got = answer_of(gw.modern("admin", "prompts/get", {"name": "evil__summarise"}))
        assert got["error"]["code"] == INVALID_PARAMS

        # AZ-6: a developer cannot approve it.
        as_dev = httpx.post(
            f"{gw.api}/approvals/{prompt['id']}/approve",
            headers={"authorization": f"Bearer {gw.keys['alice']}"},
            timeout=15,
        )
        assert as_dev.status_code == 403
        assert "evil__summarise" not in _prompts(gw)

        # An admin approves the prompt and the resource: offered at once, no restart.
        resource = held[("resource", "note://lure")]
        for item in (prompt, resource):
            approved = gw.admin("POST", f"/approvals/{item['id']}/approve")
            assert approved.status_code == 200, approved.text
            body = approved.json()["approval"]
            assert (body["status"], body["decided_by"]) == ("approved", "apikey:admin")
        wait_until(lambda: "evil__summarise" in _prompts(gw))
        got = answer_of(gw.modern("admin", "prompts/get", {"name": "evil__summarise"}))
        assert got["result"]["messages"], got
        assert "evil+note://lure" in _listed(gw, "resources/list", "resources")
        assert _read(gw, "evil+note://lure")["result"]["contents"]
        # The template was not approved: still held.
        assert set(_pending(gw)) == {("resource-template", "lure://{id}")}
        assert "evil+lure://{id}" not in _listed(
            gw, "resources/templates/list", "resourceTemplates"
        )
        assert "error" in _read(gw, "evil+lure://1")

        # AD-1: who approved which definition (its hash), as kind pin; and the admin write.
        records = gw.audit()
        [decided] = [
            r for r in records if r["kind"] == "pin" and r["method"] == "pin.approved"
            and r["target"] == "summarise"
        ]  # fmt: skip
        assert decided["principal"] == "apikey:admin" and decided["decision"] == "allow"
        assert decided["detail"]["hash"] == prompt["hash"]
        assert decided["detail"]["by"] == "apikey:admin"
        assert decided["detail"]["kind"] == "prompt"
        writes = [
            (r["method"], r["outcome"]) for r in records
            if r["kind"] == "admin" and r["target"] == prompt["id"]
        ]  # fmt: skip
        assert writes == [("approvals.approve", "ok")]

    # A restart on the same pin database: still approved, the template still held, and
    # its hold not audited a second time.
    with serve(tmp_path, SERVERS, POLICY, {}) as restarted:
        gw = dataclasses.replace(restarted, keys=gw.keys)
        wait_until(lambda: "evil__summarise" in _prompts(gw))
        assert _read(gw, "evil+note://lure")["result"]["contents"]
        assert set(_pending(gw)) == {("resource-template", "lure://{id}")}
        holds = [
            r for r in gw.audit() if r["method"] == "pin.held" and r["target"] == "lure://{id}"
        ]
        assert len(holds) == 1


def test_tc1_a_held_resource_is_not_read_or_followed_through_a_clean_template(
    tmp_path: Path,
) -> None:
    """Red-team R6: the fixture also offers the clean template ``note://{name}``, which
    matches the held ``note://lure``. Until an admin approves the resource, reading it (in
    either era) or subscribing to it is answered as for a resource
    nobody offers, while other notes are read through the template; once approved it reads."""
    keys: dict[str, tuple[str, ...]] = {"admin": ("admin",)}
    with serve(tmp_path, SERVERS, POLICY, keys) as gw:
        resource = _held(gw)[("resource", "note://lure")]
        templates = _listed(gw, "resources/templates/list", "resourceTemplates")
        assert "evil+note://{name}" in templates
        assert _read(gw, "evil+note://other")["result"]["contents"]
        assert _read(gw, "evil+note://lure")["error"]["code"] == INVALID_PARAMS
        legacy = gw.session("admin")
        read = answer_of(legacy.request("resources/read", {"uri": "evil+note://lure"}))
        assert read["error"] == {
            "code": RESOURCE_NOT_FOUND,
            "message": "Resource not found",
            "data": {"uri": "evil+note://lure"},
        }
        subscribed = answer_of(legacy.request("resources/subscribe", {"uri": "evil+note://lure"}))
        assert subscribed["error"]["code"] == RESOURCE_NOT_FOUND

        approved = gw.admin("POST", f"/approvals/{resource['id']}/approve")
        assert approved.status_code == 200, approved.text
        wait_until(lambda: "contents" in _read(gw, "evil+note://lure").get("result", {}))
        subscribed = answer_of(legacy.request("resources/subscribe", {"uri": "evil+note://lure"}))
        assert subscribed["result"] == {}
