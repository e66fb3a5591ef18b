"""The admin API under abuse, on a real ``bastion serve`` with break-glass enabled and a
per-principal limit of 20 requests a second (burst 40):

- a break-glass key's admin reads, writes and refusals carry ``breakGlass: true`` in their
  audit records, as its ``/mcp`` requests do, and a key it creates or rotates expires when
  it does, at the latest: emergency access cannot be made permanent (README: break-glass);
- floods of refusals (401 without a credential on ``/mcp`` and ``/api/v1``, 403 of a
  non-admin) cost a bounded number of audit records whose counts add up to every attempt
  (AD-1, DS-3, AU-8), and the 401 stays AU-2's (``WWW-Authenticate``, no body);
- one principal flooding the admin API gets 429 with ``Retry-After`` past its limit while
  another is served (DS-3, AZ-6).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.pipeline.live import Gateway, policy_text, serve, wait_until
from tests.support import BASTION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KEYS = {"admin": ("admin",), "ops": ("admin",), "other": ("admin",), "alice": ("dev",)}
SERVERS = f"""\
  fx:
    command: {BASTION}
    args: [fixture, --stdio]
"""
LIMITS = "limits:\n  per_principal: {rate: 20, per: second, burst: 40}\n"
BREAK_GLASS = "  break_glass: {enabled: true, max_ttl: 30m}\n"
FLOOD = 150


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("admin-abuse")
    policy = policy_text(["fx__echo"])
    with serve(directory, SERVERS, policy, KEYS, extra=LIMITS, auth=BREAK_GLASS) as gateway:
        yield gateway


def break_glass_key(gw: Gateway, name: str, expires: str) -> str:
    """``bastion keys create --break-glass`` of an admin key expiring in ``expires``."""
    argv = [str(BASTION), "keys", "create", "--db", str(gw.keys_db), "--name", name]
    argv += ["--role", "admin", "--break-glass", "--expires", expires]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    key = done.stdout.splitlines()[-1]
    assert key.startswith("bst_")
    return key


def as_key(gw: Gateway, key: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = dict(kw.pop("headers", {}))
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.request(method, f"{gw.api}{path}", headers=headers, timeout=15, **kw)


def listed(gw: Gateway, key_id: str) -> dict[str, Any]:
    keys: list[dict[str, Any]] = gw.admin("GET", "/keys").json()["keys"]
    return next(k for k in keys if k["id"] == key_id)


# -- break-glass ------------------------------------------------------------------------------


def test_break_glass_admin_reads_writes_and_refusals_are_marked_in_the_audit_log_AD1(
    gw: Gateway,
) -> None:
    """AD-1, README (break-glass: "every use is ... marked in its audit records"): each admin
    record of a break-glass key's requests (reads, a key's creation, a refused body) carries
    ``breakGlass: true`` at the top of its detail, as its ``/mcp`` record does; the created
    key is described under ``key`` (its own ``breakGlass: false`` cannot be read as the
    caller's). The admin records had no marker, and the key's flag was at the top."""
    key = break_glass_key(gw, "oncall-marked", "15m")
    key_id = key.split("_")[1]
    assert as_key(gw, key, "GET", "/keys").status_code == 200
    assert as_key(gw, key, "GET", "/policies").status_code == 200
    assert as_key(gw, key, "GET", "/audit", params={"limit": "1"}).status_code == 200
    made = as_key(gw, key, "POST", "/keys", json={"name": "made-in-emergency", "roles": ["dev"]})
    assert made.status_code == 201, made.text
    assert as_key(gw, key, "POST", "/keys", json={"name": "x", "bogus": 1}).status_code == 400
    assert gw.modern(key, "tools/list").status_code == 200

    def own() -> list[dict[str, Any]]:
        found = [r for r in gw.audit() if r["credential_id"] == f"apikey:{key_id}"]
        return found if len(found) >= 6 else []

    records = wait_until(own, timeout=10, step=0.5)
    admin = {(r["method"], r["outcome"]): r for r in records if r["kind"] == "admin"}
    assert set(admin) == {
        ("keys.list", "ok"),
        ("policies.get", "ok"),
        ("audit.query", "ok"),
        ("keys.create", "ok"),
        ("keys.create", "invalid_request"),
    }, admin
    assert [r["method"] for r in records if r["kind"] == "request"] == ["tools/list"]
    for record in records:
        assert record["detail"].get("breakGlass") is True, record
    created = admin[("keys.create", "ok")]["detail"]
    assert created["key"]["name"] == "made-in-emergency"
    assert created["key"]["breakGlass"] is False  # the new key is an ordinary one


def test_a_key_made_by_a_break_glass_key_expires_with_it_AD1(gw: Gateway) -> None:
    """README (break-glass), AD-1: a key created through the admin API with a break-glass
    key, without an expiry or with a longer one, expires when the break-glass key does
    (the answer says ``expiry_capped``), and so does the successor of a permanent key it
    rotates; once the break-glass key has expired, what it made is refused too. An ordinary
    admin's key keeps the expiry asked for. Before, the emergency key could mint permanent
    admin keys."""
    key = break_glass_key(gw, "oncall-short", "10s")
    own = listed(gw, key.split("_")[1])
    forever = as_key(gw, key, "POST", "/keys", json={"name": "bg-forever", "roles": ["admin"]})
    month = {"name": "bg-month", "roles": ["admin"], "expires_in": 30 * 86400}
    long = as_key(gw, key, "POST", "/keys", json=month)
    permanent = gw.admin("POST", "/keys", json={"name": "perm", "roles": ["admin"]}).json()
    rotated = as_key(gw, key, "POST", f"/keys/{permanent['key']['id']}/rotate", json={})
    for answer in (forever, long, rotated):
        assert answer.status_code in (200, 201), answer.text
        body = answer.json()
        assert body["expiry_capped"] is True
        assert body["key"]["expires_at"] is not None
        assert body["key"]["expires_at"] <= own["expires_at"]
        assert listed(gw, body["key"]["id"])["expires_at"] == body["key"]["expires_at"]
    assert "expiry_capped" not in permanent and permanent["key"]["expires_at"] is None
    made = forever.json()["secret"]
    assert as_key(gw, made, "GET", "/upstreams").status_code == 200
    time.sleep(max(0.0, own["expires_at"] - time.time()) + 0.5)
    assert as_key(gw, key, "GET", "/upstreams").status_code == 401
    for secret in (made, long.json()["secret"], rotated.json()["secret"]):
        assert as_key(gw, secret, "GET", "/upstreams").status_code == 401
        assert gw.modern(secret, "tools/list").status_code == 401


# -- floods of refusals -----------------------------------------------------------------------


def tallied(records: list[dict[str, Any]], method: str, match: Callable[[Any], bool]) -> int:
    """The attempts of ``method`` that ``records`` (some of them summaries) account for."""
    total = 0
    for record in records:
        if not match(record):
            continue
        if "refused" in record["detail"]:
            attempts = record["detail"]["attempts"]
            total += sum(a["count"] for a in attempts if a["method"] == method)
        elif record["method"] == method:
            total += 1
    return total


def test_floods_of_401_without_credential_cost_bounded_counted_records_AD1_DS3_AU8(
    gw: Gateway,
) -> None:
    """AD-1, DS-3, AU-8: requests without any credential (which the failed-attempt throttle
    does not count) on ``/mcp`` and on ``/api/v1`` are answered as before, 401 with AU-2's
    ``WWW-Authenticate`` (``resource_metadata``, no ``error``) and no body, but audited in
    bounded numbers per address: the first of each second written, the others counted in
    one summary a second, the counts adding up to every attempt. Before, each one was its
    own record (two on the admin API), each admin one waiting for its commit."""
    before = len(gw.audit())
    started = time.monotonic()
    with httpx.Client(timeout=15) as client:
        for path in ("/mcp", "/api/v1/keys"):
            for _ in range(FLOOD):
                if path == "/mcp":
                    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
                    answer = client.post(gw.base + path, json=body)
                else:
                    answer = client.get(gw.base + path)
                assert answer.status_code == 401
                challenge = answer.headers["www-authenticate"]
                assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge
                assert "error=" not in challenge and answer.content == b""
    elapsed = time.monotonic() - started

    def new() -> list[dict[str, Any]]:
        return gw.audit()[before:]

    def missing(r: dict[str, Any]) -> bool:
        return r["kind"] == "authentication" and r["outcome"] == "missing"

    def unauthenticated(r: dict[str, Any]) -> bool:
        return r["kind"] == "admin" and r["outcome"] == "unauthenticated"

    def counted() -> bool:
        records = new()
        return (
            tallied(records, "POST /mcp", missing) == FLOOD
            and tallied(records, "GET /api/v1/keys", missing) == FLOOD
            and tallied(records, "keys.list", unauthenticated) == FLOOD
        )

    wait_until(counted, timeout=10, step=0.5)
    records = new()
    bound = 2 * (int(elapsed) + 2)
    assert len([r for r in records if missing(r)]) <= bound, (len(records), elapsed)
    assert len([r for r in records if unauthenticated(r)]) <= bound
    assert all(r["detail"]["peer"] == "127.0.0.1" for r in records if missing(r))


def test_a_non_admin_flooding_the_admin_api_costs_bounded_counted_records_AZ6_DS3_AD1(
    gw: Gateway,
) -> None:
    """AZ-6, DS-3, AD-1: a dev key sending GET /api/v1/keys in a loop gets 403 (AZ-6), then
    429 once over its rate limit; its refusals are audited in bounded numbers whose counts
    add up to every attempt. Before, 150 attempts were 150 records of 403."""
    key = gw.keys["alice"]
    started = time.monotonic()
    with httpx.Client(timeout=15, headers={"authorization": f"Bearer {key}"}) as client:
        statuses = [client.get(f"{gw.api}/keys").status_code for _ in range(FLOOD)]
    elapsed = time.monotonic() - started
    assert set(statuses) <= {403, 429} and statuses[0] == 403 and 429 in statuses

    def alice(r: dict[str, Any]) -> bool:
        return r["kind"] == "admin" and r["principal"] == "apikey:alice"

    def count() -> int:
        return tallied(gw.audit(), "keys.list", alice)

    wait_until(lambda: count() == FLOOD, timeout=10, step=0.5)
    records = [r for r in gw.audit() if alice(r)]
    assert {r["outcome"] for r in records} == {"forbidden", "rate_limited"}
    assert len(records) <= 4 * (int(elapsed) + 2), (len(records), elapsed)


def test_an_admin_flooding_the_api_gets_429_and_another_is_served_DS3_AZ6(gw: Gateway) -> None:
    """DS-3: the admin API charges each principal's token bucket (here 20/s, burst 40), as
    ``/mcp`` does: an admin reading in a loop gets 429 with ``Retry-After`` (no body) once
    over it, while another admin is served at once; after ``Retry-After`` seconds it is
    served again. Before, the admin API had no rate limit at all."""
    key, other = gw.keys["ops"], gw.keys["other"]
    with httpx.Client(timeout=15, headers={"authorization": f"Bearer {key}"}) as client:
        statuses = []
        for _ in range(200):
            answer = client.get(f"{gw.api}/upstreams")
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}
    assert len(statuses) > 40  # the burst first
    retry = int(answer.headers["retry-after"])
    assert 1 <= retry <= 2 and answer.content == b""
    assert as_key(gw, other, "GET", "/upstreams").status_code == 200
    time.sleep(retry)
    assert as_key(gw, key, "GET", "/upstreams").status_code == 200
    limited = [
        r for r in gw.audit() if r["principal"] == "apikey:ops" and r["outcome"] == "rate_limited"
    ]
    assert limited and limited[0]["detail"]["limit"] == "principal"
