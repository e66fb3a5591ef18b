"""AZ-6, AD-4, AU-1, AU-2, AU-8: who may call what, decided before routing and body
validation. Callers present real API keys through the gateway's authenticator (see
support.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bastion.admin import OPENAPI_PATH, ROUTES
from tests.admin.support import ADMIN, AUDITOR, USER, Admin, auth, serve_in_thread

# Every documented route (ids filled in), plus unknown paths and wrong methods.
KNOWN = [(r.method, r.path.replace("{id}", "k1")) for r in ROUTES if r.access != "public"]
UNKNOWN = [
    ("GET", "/api/v1/nope"),
    ("GET", "/api/v1/keys/k1/rotate"),  # wrong method on a known path
    ("PATCH", "/api/v1/policies"),
    ("DELETE", "/api/v1/audit"),
    ("POST", OPENAPI_PATH),  # only GET of the document is public
    ("GET", "/api/v1/"),
    ("GET", "/api/v1/keys/..%2F..%2Fetc/rotate"),
    ("GET", "/api/v1/audit/"),
]
EVERY = KNOWN + UNKNOWN
AUDIT_READS = {("GET", "/api/v1/audit"), ("POST", "/api/v1/audit/verify")}
# Credentials the authenticator refuses: not an API key (and no OIDC configured), and a
# well-formed API key that is not in the key store.
FORGED = ["stolen", "bst_000000000000_" + "A" * 43]


@pytest.mark.parametrize(("method", "path"), EVERY)
def test_anonymous_gets_401_without_body(
    shared_client: httpx.Client, method: str, path: str
) -> None:
    response = shared_client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.content == b""


@pytest.mark.parametrize("token", FORGED)
@pytest.mark.parametrize(("method", "path"), EVERY)
def test_invalid_credential_gets_401_invalid_token(
    shared_client: httpx.Client, method: str, path: str, token: str
) -> None:
    response = shared_client.request(method, path, headers=auth(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(("method", "path"), EVERY)
def test_user_role_gets_403_everywhere(
    shared_client: httpx.Client, shared_admin: Admin, method: str, path: str
) -> None:
    response = shared_client.request(
        method, path, headers=shared_admin.auth(USER), content=b"\x00garbage{"
    )
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
    assert response.content == b""


@pytest.mark.parametrize(("method", "path"), EVERY)
def test_auditor_reads_audit_and_nothing_else(
    shared_client: httpx.Client, shared_admin: Admin, method: str, path: str
) -> None:
    response = shared_client.request(method, path, headers=shared_admin.auth(AUDITOR))
    if (method, path) in AUDIT_READS:
        assert response.status_code == 200
    else:
        assert response.status_code == 403


def test_garbage_policy_from_a_non_admin_is_403_not_400(
    shared_client: httpx.Client, shared_admin: Admin
) -> None:
    for name in (USER, AUDITOR):
        response = shared_client.put(
            "/api/v1/policies",
            headers={**shared_admin.auth(name), "content-type": "application/yaml"},
            content=b"{{{ not yaml",
        )
        assert response.status_code == 403


def test_user_can_never_create_keys_or_change_policy(client: httpx.Client, admin: Admin) -> None:
    before = admin.policy_path.read_text()
    keys = [(k.id, k.name, k.roles, k.revoked_at) for k in admin.key_store.list()]
    assert [name for _, name, _, _ in keys] == [ADMIN, AUDITOR, USER]  # the seeded keys
    client.post("/api/v1/keys", headers=admin.auth(USER), json={"name": "mine", "roles": ["admin"]})
    client.put(
        "/api/v1/policies",
        headers={**admin.auth(USER), "content-type": "application/yaml"},
        content=b"roles: {}\nrules: []\n",
    )
    assert [(k.id, k.name, k.roles, k.revoked_at) for k in admin.key_store.list()] == keys
    assert admin.policy_path.read_text() == before


def test_admin_gets_404_and_405_after_authorization(client: httpx.Client, admin: Admin) -> None:
    assert client.get("/api/v1/nope", headers=admin.auth(ADMIN)).status_code == 404
    response = client.patch("/api/v1/policies", headers=admin.auth(ADMIN))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"
    assert response.json()["error"] == "method_not_allowed"
    # Parameters are single safe segments: traversal never reaches a backend.
    traversal = client.post("/api/v1/keys/..%2F..%2Fetc/rotate", headers=admin.auth(ADMIN))
    assert traversal.status_code == 404
    assert client.delete("/api/v1/keys/..", headers=admin.auth(ADMIN)).status_code == 404


def test_openapi_document_is_public(shared_client: httpx.Client) -> None:
    response = shared_client.get(OPENAPI_PATH)
    assert response.status_code == 200
    assert response.json()["openapi"] == "3.1.0"


def test_refusals_are_reported(client: httpx.Client, admin: Admin) -> None:
    client.post("/api/v1/keys")
    client.delete("/api/v1/keys/k9", headers=admin.auth(USER))
    client.get("/api/v1/elsewhere", headers=admin.auth(USER))
    assert admin.events == [
        (None, "keys.create", "POST /api/v1/keys", "unauthenticated"),
        ("apikey:user", "keys.revoke", "DELETE /api/v1/keys/k9", "forbidden"),
        ("apikey:user", "unknown", "GET /api/v1/elsewhere", "forbidden"),
    ]


def test_body_cap(shared_client: httpx.Client, shared_admin: Admin) -> None:
    huge = b"x" * (1024 * 1024 + 1)
    # Declared too large: refused before authentication (DS-1), nothing read.
    response = shared_client.put("/api/v1/policies", content=huge)
    assert response.status_code == 413
    # Streamed (no Content-Length): counted while reading, after authorization.
    response = shared_client.put(
        "/api/v1/policies",
        headers={**shared_admin.auth(ADMIN), "content-type": "application/yaml"},
        content=iter([huge[:600_000], huge[600_000:]]),
    )
    assert response.status_code == 413
    assert response.json() == {"error": "too_large", "message": "request body too large"}


def test_au8_failed_attempts_are_throttled_per_address(tmp_path: Path) -> None:
    """AU-8: the admin API counts failed authentications per client address, as ``/mcp``
    does: past the budget (3 a minute here) that address's failed attempts get 429 with
    ``Retry-After``, while a good key, from it or from another address, is served (DS-3)."""
    with Admin(tmp_path, failures_per_minute=3) as admin, serve_in_thread(admin.app()) as url:
        other = httpx.HTTPTransport(local_address="127.0.0.2")
        with (
            httpx.Client(base_url=url) as attacker,
            httpx.Client(base_url=url, transport=other) as bystander,
        ):
            statuses = [
                attacker.get("/api/v1/keys", headers=auth(FORGED[1])).status_code for _ in range(5)
            ]
            assert statuses == [401, 401, 401, 429, 429]
            throttled = attacker.get("/api/v1/keys", headers=auth(FORGED[1]))
            assert throttled.status_code == 429
            assert int(throttled.headers["retry-after"]) >= 1
            assert attacker.get("/api/v1/keys", headers=admin.auth(ADMIN)).status_code == 200
            assert bystander.get("/api/v1/keys", headers=admin.auth(ADMIN)).status_code == 200
        outcomes = [outcome for _, _, _, outcome in admin.events]
        # audited as such, and the admin's two reads too (AD-1)
        assert outcomes == ["unauthenticated"] * 3 + ["throttled"] * 3 + ["ok"] * 2
