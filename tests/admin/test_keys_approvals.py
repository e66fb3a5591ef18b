"""Keys and approvals through the API (placeholder in-memory stores from support.py):
the plaintext key only in the create/rotate answer, and every write reported."""

from __future__ import annotations

import httpx

from tests.admin.support import ADMIN, Admin, auth


def test_key_lifecycle(client: httpx.Client, admin: Admin) -> None:
    created = client.post(
        "/api/v1/keys", headers=auth(ADMIN), json={"name": "ci-bot", "roles": ["developer"]}
    )
    assert created.status_code == 201
    key, secret = created.json()["key"], created.json()["secret"]
    assert secret.startswith(key["prefix"])
    listed = client.get("/api/v1/keys", headers=auth(ADMIN))
    assert listed.json() == {"keys": [key]}
    assert secret not in listed.text

    rotated = client.post(f"/api/v1/keys/{key['id']}/rotate", headers=auth(ADMIN))
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != secret
    # The key store rotates the current key only: the successor, not the key it replaced.
    successor = rotated.json()["key"]["id"]
    stale = client.post(f"/api/v1/keys/{key['id']}/rotate", headers=auth(ADMIN))
    assert stale.status_code == 409
    with_body = client.post(
        f"/api/v1/keys/{successor}/rotate", headers=auth(ADMIN), json={"overlap": 3600}
    )
    assert with_body.status_code == 200

    assert client.delete(f"/api/v1/keys/{key['id']}", headers=auth(ADMIN)).status_code == 204
    again = client.post(f"/api/v1/keys/{key['id']}/rotate", headers=auth(ADMIN))
    assert (again.status_code, again.json()["error"]) == (409, "conflict")
    assert client.delete("/api/v1/keys/k404", headers=auth(ADMIN)).status_code == 404
    assert [(e[1], e[3]) for e in admin.events] == [
        ("keys.create", "ok"),
        ("keys.rotate", "ok"),
        ("keys.rotate", "conflict"),
        ("keys.rotate", "ok"),
        ("keys.revoke", "ok"),
        ("keys.rotate", "conflict"),
        ("keys.revoke", "not_found"),
    ]
    assert all(secret not in str(e) for e in admin.events)


def test_key_create_validation(client: httpx.Client) -> None:
    bad = [
        {},
        {"name": ""},
        {"name": "x", "roles": ["bad role!"]},
        {"name": "x", "expires_in": 1},
        {"name": "x", "unknown": 1},
        {"name": "x" * 200},
    ]
    for body in bad:
        response = client.post("/api/v1/keys", headers=auth(ADMIN), json=body)
        assert response.status_code == 400, body
        assert response.json()["error"] == "invalid_request"
    not_json = client.post("/api/v1/keys", headers=auth(ADMIN), content=b"name=x")
    assert not_json.status_code == 415
    broken = client.post(
        "/api/v1/keys",
        headers={**auth(ADMIN), "content-type": "application/json"},
        content=b"{",
    )
    assert broken.status_code == 400


def test_approvals(client: httpx.Client, admin: Admin) -> None:
    listed = client.get("/api/v1/approvals", headers=auth(ADMIN)).json()["approvals"]
    assert [a["id"] for a in listed] == ["a1", "a2"]
    approved = client.post("/api/v1/approvals/a1/approve", headers=auth(ADMIN))
    assert approved.json()["approval"] | {"requested_at": 0} == {
        "id": "a1",
        "principal": "user",
        "tool": "shell__exec",
        "requested_at": 0,
        "status": "approved",
        "decided_by": "admin",
    }
    assert client.post("/api/v1/approvals/a2/reject", headers=auth(ADMIN)).status_code == 200
    assert client.post("/api/v1/approvals/a1/reject", headers=auth(ADMIN)).status_code == 409
    assert client.post("/api/v1/approvals/zz/approve", headers=auth(ADMIN)).status_code == 404
    assert client.get("/api/v1/approvals", headers=auth(ADMIN)).json() == {"approvals": []}
    assert [(e[1], e[2], e[3]) for e in admin.events] == [
        ("approvals.approve", "a1", "ok"),
        ("approvals.reject", "a2", "ok"),
        ("approvals.reject", "a1", "conflict"),
        ("approvals.approve", "zz", "not_found"),
    ]


def test_upstreams(client: httpx.Client) -> None:
    body = client.get("/api/v1/upstreams", headers=auth(ADMIN)).json()
    assert body["upstreams"][0]["server"] == "github"
