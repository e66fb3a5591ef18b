"""What an upstream lists, against a real ``bastion serve`` fronting a real stdio upstream
(``tests/security/upstreams/leaker.py``) that quotes the credential the gateway's
configuration gives it (``env: LEAK_TOKEN``) and ordinary secrets in its titles and
descriptions.

IN-5, TC-4 (UP-4): the gateway's own upstream credential never reaches a client in any list
(``tools/list``, ``prompts/list``, ``resources/list``, ``resources/templates/list``), in a
2026-07-28 stateless request or a 2025-11-25 session, even with ``mask_secrets: false``: it
is masked in every title and description, and a tool whose name holds it is left out.
Ordinary secrets in list descriptions are masked as in call results.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.live import Gateway, answer_of, serve, wait_until
from tests.security.upstreams.leaker import AWS_KEY, GITHUB_TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

LEAKER = Path(__file__).resolve().parent.parent / "security" / "upstreams" / "leaker.py"
TOKEN = "Zq7-upstream-credential-9f3k2m"
REDACTED = "[REDACTED]"
LISTS = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}
POLICY = """\
version: 1
roles:
  admin: {description: operators}
  dev: {description: developers}
rules:
  - id: dev
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", tools/list, prompts/list, resources/list,
              resources/templates/list]
  - id: dev-use
    effect: allow
    roles: [dev]
    tools: ["leaker__*"]
    prompts: ["leaker__*"]
    resources: ["leaker+note://**"]
  - id: admin-all
    effect: allow
    roles: [admin]
    methods: ["**"]
"""


def _servers() -> str:
    return f"""\
  leaker:
    command: {sys.executable}
    args: [{json.dumps(str(LEAKER))}]
    env: {{LEAK_TOKEN: {json.dumps(TOKEN)}}}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    keys = {"alice": ("dev",), "admin": ("admin",)}
    with serve(tmp_path_factory.mktemp("leaker"), _servers(), POLICY, keys) as gateway:
        wait_until(lambda: "leaker__embed" in gateway.tools("alice"))
        yield gateway


@pytest.fixture(scope="module")
def unmasked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The same, with ``guard.sanitise.mask_secrets: false``."""
    keys = {"alice": ("dev",), "admin": ("admin",)}
    guard = "  sanitise: {mask_secrets: false}\n"
    directory = tmp_path_factory.mktemp("leaker-unmasked")
    with serve(directory, _servers(), POLICY, keys, guard=guard) as gateway:
        wait_until(lambda: "leaker__embed" in gateway.tools("alice"))
        yield gateway


def _modern_lists(gw: Gateway) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Each list's raw answer text and its items, by a 2026-07-28 stateless request."""
    found = {}
    for method, key in LISTS.items():
        response = gw.modern("alice", method)
        found[method] = response.text, response.json()["result"][key]
    return found


def _legacy_lists(gw: Gateway) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """The same through one 2025-11-25 session."""
    session = gw.session("alice")
    found = {}
    for method, key in LISTS.items():
        response = session.request(method)
        found[method] = response.text, answer_of(response)["result"][key]
    session.close()
    return found


def _by(items: list[dict[str, Any]], field: str, value: str) -> dict[str, Any]:
    [item] = [item for item in items if item.get(field) == value]
    return item


def _assert_credential_masked(lists: dict[str, tuple[str, list[dict[str, Any]]]]) -> None:
    for method, (text, _) in lists.items():
        assert TOKEN not in text, method
    tools = lists["tools/list"][1]
    lookup = _by(tools, "name", "leaker__lookup")
    assert lookup["title"] == f"Lookup as {REDACTED}"
    assert lookup["description"].startswith(f"Looks things up with key {REDACTED} or ")
    assert lookup["annotations"] == {"title": f"lookup {REDACTED}", "readOnlyHint": True}
    query = lookup["inputSchema"]["properties"]["q"]
    assert query["type"] == "string" and query["description"].startswith(
        f"What to look up (key {REDACTED}"
    )
    assert [t["name"] for t in tools if t["name"].startswith("leaker__x-")] == []
    prompt = _by(lists["prompts/list"][1], "name", "leaker__brief")
    assert prompt["description"] == f"Briefs, signed {REDACTED}"
    assert prompt["arguments"][0]["name"] == "topic"
    assert prompt["arguments"][0]["description"].startswith(REDACTED)
    resource = _by(lists["resources/list"][1], "uri", "leaker+note://public")
    assert resource["title"] == f"Public note {REDACTED}"
    template = _by(lists["resources/templates/list"][1], "uriTemplate", "leaker+note://{id}")
    assert template["description"] == f"Notes by {REDACTED}"


def test_in5_the_upstreams_credential_is_in_no_stateless_list_IN5_TC4(gw: Gateway) -> None:
    """IN-5, TC-4: every 2026-07-28 list is free of the credential the gateway gives the
    upstream: masked in each title and description (a tool's, its annotations', its
    argument schema's, a prompt argument's, a resource's, a template's), and the tool whose
    name holds it is left out; names, URIs and schema keywords are as the upstream sent."""
    _assert_credential_masked(_modern_lists(gw))


def test_in5_the_upstreams_credential_is_in_no_session_list_IN5_TC4(gw: Gateway) -> None:
    """IN-5, TC-4: the same through a 2025-11-25 session's lists."""
    _assert_credential_masked(_legacy_lists(gw))


def test_in5_the_credential_is_masked_in_lists_even_with_mask_secrets_off_IN5(
    unmasked: Gateway,
) -> None:
    """IN-5 (UP-4): with ``mask_secrets: false`` ordinary secrets are shown, but the
    gateway's own credential is still in no list, of either era."""
    for lists in (_modern_lists(unmasked), _legacy_lists(unmasked)):
        _assert_credential_masked(lists)
        tools = lists["tools/list"][1]
        assert GITHUB_TOKEN in _by(tools, "name", "leaker__lookup")["description"]


def test_tc4_ordinary_secrets_in_list_descriptions_are_masked_as_in_results_TC4(
    gw: Gateway,
) -> None:
    """TC-4: a GitHub token and an AWS key in list descriptions reach no client, of either
    era: each is masked as it would be in a call result."""
    for lists in (_modern_lists(gw), _legacy_lists(gw)):
        for method, (text, _) in lists.items():
            assert GITHUB_TOKEN not in text and AWS_KEY not in text, method
        lookup = _by(lists["tools/list"][1], "name", "leaker__lookup")
        assert lookup["description"] == f"Looks things up with key {REDACTED} or {REDACTED}."
        resource = _by(lists["resources/list"][1], "uri", "leaker+note://public")
        assert resource["description"] == f"Readable; mirrors {REDACTED}"
        prompt = _by(lists["prompts/list"][1], "name", "leaker__brief")
        assert prompt["arguments"][0]["description"] == f"{REDACTED} {REDACTED}"


def test_tc4_a_tool_whose_description_was_masked_still_works_TC4(gw: Gateway) -> None:
    """TC-4: masking a definition's text changes nothing it does: ``lookup`` validates its
    argument against the filtered schema and is forwarded under its own name."""
    answer = gw.call("alice", "leaker__lookup", {"q": "x"})
    assert answer["result"]["content"] == [{"type": "text", "text": "found"}]
    refused = gw.call("alice", "leaker__lookup", {"q": 1})
    assert "error" in refused or refused["result"].get("isError") is True
