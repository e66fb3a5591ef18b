"""GET /api/v1/audit and POST /api/v1/audit/verify on a real audit database (AD-2, AD-4),
and admin events recorded into a real AuditLog."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from pathlib import Path

import anyio
import httpx
import pytest

from bastion.admin import AdminApi, SqliteAudit, audit_events
from bastion.audit import AuditLog
from tests.admin.support import ADMIN, AUDITOR, USER, Admin, serving


def test_query_pages_and_filters(client: httpx.Client, admin: Admin) -> None:
    first = client.get("/api/v1/audit?limit=10", headers=admin.auth(AUDITOR)).json()
    assert [r["seq"] for r in first["records"]] == list(range(1, 11))
    assert first["next_since_seq"] == 10
    assert first["records"][0]["record"]["principal"] == "user1"
    rest = client.get(
        "/api/v1/audit", params={"since_seq": 10, "limit": 1000}, headers=admin.auth(ADMIN)
    ).json()
    assert [r["seq"] for r in rest["records"]] == list(range(11, 26))
    mine = client.get(
        "/api/v1/audit",
        params={"principal": "user2", "method": "tools/list"},
        headers=admin.auth(ADMIN),
    ).json()["records"]
    assert {(r["record"]["principal"], r["record"]["method"]) for r in mine} == {
        ("user2", "tools/list")
    }
    assert [r["seq"] for r in mine] == [2, 8, 14, 20]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "since_seq=-1",
        "since_seq=99999999999999999999",
        "limit=1&limit=2",
        "order=desc",
        f"principal={'x' * 513}",
    ],
)
def test_bad_query_is_400(client: httpx.Client, admin: Admin, query: str) -> None:
    response = client.get(f"/api/v1/audit?{query}", headers=admin.auth(ADMIN))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_verify_clean_then_tampered(client: httpx.Client, admin: Admin) -> None:
    report = client.post("/api/v1/audit/verify", headers=admin.auth(AUDITOR)).json()
    assert report["ok"] is True
    assert (report["records"], report["last_seq"]) == (25, 25)
    conn = sqlite3.connect(admin.audit_path, isolation_level=None)
    conn.execute("DROP TRIGGER records_append_only_u")
    conn.execute("UPDATE records SET record = replace(record, 'user1', 'userX') WHERE seq = 4")
    conn.close()
    report = client.post("/api/v1/audit/verify", headers=admin.auth(AUDITOR)).json()
    assert report["ok"] is False
    assert {"seq": 4, "kind": "edited"}.items() <= report["problems"][0].items()
    assert ("apikey:auditor", "audit.verify", "audit", "ok") in admin.events


def test_ad2_verify_finds_an_emptied_log(client: httpx.Client, admin: Admin) -> None:
    """Every record, checkpoint and the head deleted: the file's freed pages still show it."""
    conn = sqlite3.connect(admin.audit_path, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.executescript("DELETE FROM records; DELETE FROM checkpoints; DELETE FROM head;")
    conn.close()
    report = client.post("/api/v1/audit/verify", headers=admin.auth(AUDITOR)).json()
    assert report["ok"] is False
    assert report["records"] == 0
    assert report["problems"][0]["kind"] == "truncated"


def test_missing_database_is_an_empty_log(tmp_path: Path) -> None:
    audit = SqliteAudit(tmp_path / "none.db")

    async def main() -> None:
        from bastion.admin import AuditFilters

        page = await audit.query(AuditFilters(), 10)
        assert (page.records, page.next_since_seq) == ((), 0)
        assert (await audit.verify()).ok

    anyio.run(main)


@pytest.mark.anyio
async def test_admin_events_go_to_the_audit_log(tmp_path: Path, admin: Admin) -> None:
    log_path = tmp_path / "events.db"
    async with AuditLog(log_path) as log:
        backends = dataclasses.replace(admin.backends(), audit=SqliteAudit(log_path))
        app = AdminApi(admin.authenticate, backends, audit=audit_events(log))
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
            await client.post("/api/v1/keys", headers=admin.auth(ADMIN), json={"name": "bot"})
            await client.get("/api/v1/keys", headers=admin.auth(USER))
            await log.flush()
            page = (await client.get("/api/v1/audit", headers=admin.auth(ADMIN))).json()
    records = [r["record"] for r in page["records"]]
    assert [
        (r["kind"], r["method"], r["principal"], r["decision"], r["outcome"]) for r in records
    ] == [
        ("admin", "keys.create", "apikey:admin", "allow", "ok"),
        ("admin", "keys.list", "apikey:user", "deny", "forbidden"),
    ]
    assert records[0]["credential_id"] == f"apikey:{admin.key_ids[ADMIN]}"


@pytest.mark.anyio
async def test_ad1_key_writes_are_recorded_with_roles_expiry_and_break_glass_AD1(
    tmp_path: Path, admin: Admin
) -> None:
    """AD-1: the admin records of a key's creation, rotation and revocation say what the key
    can do (its name, roles, expiry, break-glass flag; a rotation where it came from and the
    overlap, a revocation every key it ended), never its secret. They had an empty detail."""
    log_path = tmp_path / "events.db"
    async with AuditLog(log_path) as log:
        backends = dataclasses.replace(admin.backends(), audit=SqliteAudit(log_path))
        app = AdminApi(admin.authenticate, backends, audit=audit_events(log))
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
            headers = admin.auth(ADMIN)
            spec = {"name": "ci-bot", "roles": ["developer"], "expires_in": 3600}
            created = (await client.post("/api/v1/keys", headers=headers, json=spec)).json()
            key_id = created["key"]["id"]
            rotated = await client.post(
                f"/api/v1/keys/{key_id}/rotate", headers=headers, json={"overlap": 60}
            )
            successor = rotated.json()["key"]
            revoked = await client.delete(f"/api/v1/keys/{successor['id']}", headers=headers)
            assert revoked.status_code == 204
            await log.flush()
            page = (await client.get("/api/v1/audit", headers=headers)).json()
    records = {r["record"]["method"]: r["record"] for r in page["records"]}
    described = {
        "name": "ci-bot",
        "roles": ["developer"],
        "expiresAt": created["key"]["expires_at"],
        "breakGlass": False,
    }
    assert records["keys.create"]["target"] == key_id
    assert records["keys.create"]["detail"] == {"key": described}
    assert records["keys.rotate"]["target"] == successor["id"]
    assert records["keys.rotate"]["detail"] == {
        "key": {**described, "expiresAt": successor["expires_at"]},
        "rotatedFrom": key_id,
        "overlapSeconds": 60,
    }
    assert records["keys.revoke"]["detail"] == {
        "revoked": [{"id": successor["id"], **described, "expiresAt": successor["expires_at"]}],
        "count": 1,
    }
    dump = json.dumps(page)
    for secret in (created["secret"], rotated.json()["secret"]):
        assert secret not in dump


def test_ad2_verify_names_an_oddly_typed_row(client: httpx.Client, admin: Admin) -> None:
    """Red team R finding 5: one record stored as a blob made POST /audit/verify answer 500.
    It reports the row (unreadable, at its seq) and the rest; GET /audit shows it as
    unreadable."""
    conn = sqlite3.connect(admin.audit_path, isolation_level=None)
    conn.execute("DROP TRIGGER records_append_only_u")
    conn.execute("UPDATE records SET record = CAST(record AS BLOB) WHERE seq = 3")
    conn.execute("UPDATE records SET record = replace(record, 'user1', 'userX') WHERE seq = 4")
    conn.close()
    response = client.post("/api/v1/audit/verify", headers=admin.auth(AUDITOR))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is False
    assert [(p["seq"], p["kind"]) for p in report["problems"]] == [
        (3, "unreadable"),
        (4, "edited"),
    ]
    page = client.get("/api/v1/audit?limit=4", headers=admin.auth(AUDITOR)).json()
    assert page["records"][2]["record"] == {"unreadable": True}


def test_ad2_verify_while_the_log_is_written(client: httpx.Client, admin: Admin) -> None:
    """Red team R finding 2: POST /audit/verify on a log a gateway was writing answered
    TAMPERED (records after the head), reading head and pages at different moments."""
    from bastion.audit import AuditRecord, AuditStore

    store = AuditStore.open(admin.audit_path)
    store.append(AuditRecord(time=1.0, method="tools/list") for _ in range(3000))
    stop = threading.Event()

    def append() -> None:
        while not stop.is_set():
            store.append([AuditRecord(time=2.0, method="tools/call")])
            time.sleep(0.001)

    thread = threading.Thread(target=append)
    thread.start()
    try:
        reports = [
            client.post("/api/v1/audit/verify", headers=admin.auth(AUDITOR)).json()
            for _ in range(3)
        ]
    finally:
        stop.set()
        thread.join()
        store.close()
    assert [r["ok"] for r in reports] == [True, True, True], [r["problems"] for r in reports]
