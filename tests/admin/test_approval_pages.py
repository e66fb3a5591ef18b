"""The approvals listing is paged (DS-4) and every held tool is decided by a fixed-length id
(TC-2, AZ-3), however many are held and however long the upstream's names are."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bastion.admin.backends import MAX_APPROVALS_LIMIT
from bastion.admin.handlers import DEFAULT_APPROVALS_LIMIT
from bastion.errors import PeerError
from bastion.guard import _held_tools, tool_hash
from bastion.guard.pins import MAX_TOOL_NAME
from tests.admin.support import ADMIN, Admin, serve_in_thread
from tests.admin.test_keys_approvals import PROMPT, RUG_PULL, SEARCH


def _poisoned(name: str) -> dict[str, Any]:
    return {**RUG_PULL, "name": name}


def _pages(client: httpx.Client, admin: Admin, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    query: dict[str, Any] = {"limit": limit}
    while True:
        answer = client.get("/api/v1/approvals", params=query, headers=admin.auth(ADMIN))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append([a["id"] for a in body["approvals"]])
        if "next_cursor" not in body:
            return pages
        query = {"limit": limit, "cursor": body["next_cursor"]}


@pytest.mark.anyio
async def test_ds4_the_approvals_listing_is_paged(admin: Admin) -> None:
    """Calls, then held tools, then held prompts, resources and templates, oldest first, in
    pages of at most ``limit``; following ``next_cursor`` lists each exactly once."""
    with pytest.raises(PeerError) as waiting:
        await admin.call("user", "shell__exec", {"cmd": "ls"})
    call = waiting.value.peer_data["approvalId"]
    admin.pins.review("evil", [_poisoned(f"p{i}") for i in range(5)])
    prompt = admin.hold_definition("ev", "prompts", PROMPT)
    tools = [f"tool:evil:{tool_hash(_poisoned(f'p{i}'))}" for i in range(5)]
    with (
        serve_in_thread(admin.app()) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        assert _pages(client, admin, 3) == [[call, *tools[:2]], tools[2:], [prompt]]
        assert _pages(client, admin, 7) == [[call, *tools, prompt]]
        assert _pages(client, admin, 1) == [[i] for i in [call, *tools, prompt]]
        # Deciding one between two pages skips nothing and repeats nothing.
        first = client.get("/api/v1/approvals?limit=2", headers=admin.auth(ADMIN)).json()
        decided = client.post(f"/api/v1/approvals/{tools[0]}/reject", headers=admin.auth(ADMIN))
        assert decided.status_code == 200
        rest = client.get(
            "/api/v1/approvals",
            params={"cursor": first["next_cursor"]},
            headers=admin.auth(ADMIN),
        ).json()
        assert [a["id"] for a in rest["approvals"]] == [*tools[1:], prompt]
        for query in (
            f"limit={MAX_APPROVALS_LIMIT + 1}", "limit=0", "limit=x", "cursor=zz",
            "cursor=" + "A" * 2000, "since=1", "limit=1&limit=2",
        ):  # fmt: skip
            refused = client.get(f"/api/v1/approvals?{query}", headers=admin.auth(ADMIN))
            assert (refused.status_code, refused.json()["error"]) == (400, "invalid_request")


def test_ds4_the_listing_holds_at_most_the_default_page(client: httpx.Client, admin: Admin) -> None:
    admin.pins.review("evil", [_poisoned(f"p{i}") for i in range(DEFAULT_APPROVALS_LIMIT + 1)])
    body = client.get("/api/v1/approvals", headers=admin.auth(ADMIN)).json()
    assert len(body["approvals"]) == DEFAULT_APPROVALS_LIMIT and body["next_cursor"]


def test_tc2_a_held_tool_has_a_fixed_length_id(client: httpx.Client, admin: Admin) -> None:
    """TC-2: the id of a held tool is ``tool:<server>:<sha256>`` whatever its name (one of
    AZ-3's longest is decided like any other)."""
    name = "n/" + "L" * (MAX_TOOL_NAME - 2)
    admin.hold_changed_tool("github", {**SEARCH, "name": name}, {**RUG_PULL, "name": name})
    [listed] = client.get("/api/v1/approvals", headers=admin.auth(ADMIN)).json()["approvals"]
    digest = tool_hash({**RUG_PULL, "name": name})
    assert (listed["id"], listed["tool"]) == (f"tool:github:{digest}", name)
    approved = client.post(f"/api/v1/approvals/{listed['id']}/approve", headers=admin.auth(ADMIN))
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"]["id"] == listed["id"]
    assert admin.pins.approved("github")[name] == digest


def test_tc2_the_earlier_tool_id_still_decides(client: httpx.Client, admin: Admin) -> None:
    """An id listed before (``pin:<server>:<tool>:<sha256>``) still names the same hold."""
    admin.hold_changed_tool("github", SEARCH, RUG_PULL)
    earlier = quote(f"pin:github:search:{tool_hash(RUG_PULL)}", safe="")
    approved = client.post(f"/api/v1/approvals/{earlier}/approve", headers=admin.auth(ADMIN))
    assert approved.status_code == 200, approved.text
    assert admin.pins.approved("github") == {"search": tool_hash(RUG_PULL)}
    wrong = quote(f"pin:github:other:{tool_hash(RUG_PULL)}", safe="")
    assert (
        client.post(f"/api/v1/approvals/{wrong}/reject", headers=admin.auth(ADMIN)).status_code
        == 404
    )


def test_tc2_an_over_long_tool_name_is_never_listed_nor_shown(
    client: httpx.Client, admin: Admin
) -> None:
    """AZ-3: a name past 128 characters (the red team's 250) is held back for good: not
    listed for approval (it could not be named by an id before), never shown."""
    long = _poisoned("L" * 250)
    review = admin.pins.review("evil", [long, _poisoned("p")])
    assert review.allowed == []
    listed = client.get("/api/v1/approvals", headers=admin.auth(ADMIN)).json()["approvals"]
    assert [a["tool"] for a in listed] == ["p"]


def test_ds4_a_decision_reads_only_the_row_it_decides(
    client: httpx.Client, admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deciding one of many held tools neither lists nor diffs the others."""
    admin.pins.review("evil", [_poisoned(f"p{i}") for i in range(50)])
    diffs: list[str] = []
    real = _held_tools.unified

    def counted(old: Any, new: Any, name: str) -> str:
        diffs.append(name)
        return str(real(old, new, name))

    monkeypatch.setattr("bastion.guard._held_tools.unified", counted)
    target = f"tool:evil:{tool_hash(_poisoned('p7'))}"
    decided = client.post(f"/api/v1/approvals/{target}/reject", headers=admin.auth(ADMIN))
    assert decided.status_code == 200, decided.text
    assert set(diffs) <= {"p7"}  # its own row only
