"""SECURITY.md 2.2, authentication: AU-1 .. AU-8 against a real ``bastion serve``, with real
API keys made by ``bastion keys`` and real RS256 JWTs checked against a local JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import string
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.security.conftest import (
    ISSUER,
    JWT_ADMINS,
    KID,
    LEGACY,
    META_CAPS,
    META_VERSION,
    MODERN,
    Aux,
    Gateway,
    answer_of,
    b64url,
    bearer,
    create_key,
    run_cli,
)

pytestmark = pytest.mark.e2e

METADATA_PATH = "/.well-known/oauth-protected-resource"
DEEP_HEADER_JWT = b64url(b"[" * 1100 + b"]" * 1100) + ".e30." + b64url(b"sig")


def echo_ok(gw: Gateway, headers: dict[str, str]) -> bool:
    """True if ``headers`` authenticate a caller who may call ``fx__echo``; asserts a refusal
    is a bare 401, not anything else."""
    response = gw.call(headers, "fx__echo", {"text": "au"})
    if response.status_code == 401:
        assert response.content == b""
        return False
    assert response.status_code == 200, (response.status_code, response.text)
    return bool(answer_of(response)["result"]["content"][0]["text"] == "au")


def challenge(gw: Gateway, response: httpx.Response) -> str:
    assert response.status_code == 401
    return response.headers["www-authenticate"]


# -- AU-1 every request authenticated; a session id never authenticates ----------------------


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE", "PUT"])
def test_au1_every_method_on_mcp_needs_a_credential(gw: Gateway, method: str) -> None:
    response = gw.client.request(
        method,
        gw.url,
        content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
        headers={
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        },
    )
    assert response.status_code == 401
    assert response.content == b""


def test_au1_a_session_id_alone_never_authenticates(gw: Gateway) -> None:
    session = gw.initialize(gw.auth("alice"))
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "fx__echo", "arguments": {"text": "x"}}}  # fmt: skip
    headers = {"mcp-session-id": session, "mcp-protocol-version": LEGACY}
    assert gw.post(body, headers).status_code == 401
    sse = {**headers, "accept": "text/event-stream"}
    assert gw.client.get(gw.url, headers=sse).status_code == 401
    assert gw.client.delete(gw.url, headers=headers).status_code == 401
    # ... and the session still exists for its owner (the refused DELETE did not end it).
    ok = gw.legacy(gw.auth("alice"), session, "ping")
    assert ok.status_code == 200


# -- AU-2 401 with the resource-metadata challenge ---------------------------------------------


def test_au2_missing_credential_gets_401_with_resource_metadata(gw: Gateway) -> None:
    response = gw.call({}, "fx__echo", {"text": "x"})
    expected = f'Bearer resource_metadata="{gw.base}{METADATA_PATH}/mcp"'
    assert challenge(gw, response) == expected
    assert response.content == b""


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer bst_000000000000_" + "A" * 43,  # well-formed, unknown key
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Basic YWxpY2U6cGFzc3dvcmQ=",
        "Bearer",
        "Bearer   x",
        "bearer bst_",
        "Bearer " + "x" * 100 + " extra",
        "Bearer " + DEEP_HEADER_JWT,  # IN-2: nested past the JSON parser's own limit
    ],
)
def test_au2_invalid_credential_gets_401_invalid_token(gw: Gateway, authorization: str) -> None:
    response = gw.call({"authorization": authorization}, "fx__echo", {"text": "x"})
    header = challenge(gw, response)
    assert header.startswith(f'Bearer resource_metadata="{gw.base}{METADATA_PATH}/mcp"')
    assert 'error="invalid_token"' in header
    assert response.content == b""
    # Nothing of what was presented comes back.
    token = authorization.partition(" ")[2].strip()
    if len(token) > 4:
        assert token not in header


def test_au2_expired_jwt_gets_401_invalid_token(gw: Gateway) -> None:
    now = int(time.time())
    token = gw.issuer.token(iat=now - 7200, exp=now - 3600)
    header = challenge(gw, gw.call(bearer(token), "fx__echo", {"text": "x"}))
    assert 'error="invalid_token"' in header


def test_au2_authenticated_but_not_allowed_is_not_a_401(gw: Gateway) -> None:
    """Valid credentials that policy refuses are a 403/-32003, never a 401 that would make a
    client throw away a good token (AZ-4 covers the refusal itself)."""
    response = gw.call(gw.auth("alice"), "fx__test_image_content")
    assert response.status_code in (200, 403)
    if response.status_code == 403:
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    else:
        assert answer_of(response)["error"]["code"] == -32003


# -- AU-3 RFC 9728 metadata ------------------------------------------------------------------


@pytest.mark.parametrize("path", [METADATA_PATH, METADATA_PATH + "/mcp"])
def test_au3_protected_resource_metadata_is_public(gw: Gateway, path: str) -> None:
    response = gw.client.get(gw.base + path)
    assert response.status_code == 200
    document = response.json()
    assert document["resource"] == gw.url
    assert document["authorization_servers"] == [ISSUER]
    assert document["bearer_methods_supported"] == ["header"]
    assert document.get("scopes_supported", []) == []  # none configured: none advertised


# -- AU-4 only the Authorization header -------------------------------------------------------


@pytest.mark.parametrize("param", ["access_token", "api_key", "token", "key", "apikey"])
def test_au4_credentials_in_the_query_string_are_ignored(gw: Gateway, param: str) -> None:
    for credential in (gw.keys["root"], gw.issuer.token(roles=["admin"])):
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        response = gw.post(body, path=f"/mcp?{param}={credential}")
        assert response.status_code == 401
        assert 'error="invalid_token"' not in response.headers["www-authenticate"]


def test_au4_credentials_in_other_headers_or_cookies_are_ignored(gw: Gateway) -> None:
    key = gw.keys["root"]
    for headers in (
        {"x-api-key": key},
        {"cookie": f"access_token={key}"},
        {"proxy-authorization": f"Bearer {key}"},
        {"mcp-session-id": key},
    ):
        assert gw.call(headers, "fx__echo", {"text": "x"}).status_code == 401, headers


# -- AU-5 API keys ---------------------------------------------------------------------------


KEY_FORMAT = re.compile(r"bst_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})")


def test_au5_keys_carry_256_random_bits_behind_a_lookup_prefix(gw: Gateway) -> None:
    secrets_seen = set()
    for who, key in gw.keys.items():
        match = KEY_FORMAT.fullmatch(key)
        assert match, who
        secret = base64.urlsafe_b64decode(match["secret"] + "=")
        assert len(secret) == 32  # 256 bits (AU-5 asks for >= 128)
        secrets_seen.add(secret)
    assert len(secrets_seen) == len(gw.keys)


def test_au5_the_store_holds_no_key_and_list_shows_none(gw: Gateway) -> None:
    stored = b"".join(p.read_bytes() for p in gw.keys_db.parent.glob("keys.db*"))
    listing = run_cli("keys", "list", "--db", str(gw.keys_db)).stdout
    listing += run_cli("keys", "list", "--json", "--db", str(gw.keys_db)).stdout
    for key in gw.keys.values():
        secret = KEY_FORMAT.fullmatch(key)["secret"]  # type: ignore[index]
        assert secret.encode() not in stored
        assert hashlib.sha256(key.encode()).digest() not in stored  # not even an unkeyed hash
        assert secret not in listing


def _variants(key: str) -> list[str]:
    last = key[-1]
    flipped = "A" if last != "A" else "B"
    return [
        key[:-1],  # truncated
        key[:-1] + flipped,  # last character changed
        key + "A",  # extended
        key.upper(),
        key.lower(),
        key[:20],  # the lookup prefix and a bit
        key[:17],  # "bst_<id>_": the lookup prefix alone
    ]


def test_au5_only_the_exact_key_authenticates(gw: Gateway) -> None:
    key = gw.keys["alice"]
    assert echo_ok(gw, bearer(key))
    for variant in _variants(key):
        if variant != key:
            assert not echo_ok(gw, bearer(variant)), variant


def test_au5_revoked_key_is_refused_at_once(gw: Gateway) -> None:
    key = create_key(gw.keys_db, "au5-revoked", "dev")
    assert echo_ok(gw, bearer(key))
    run_cli("keys", "revoke", "au5-revoked", "--db", str(gw.keys_db))
    assert not echo_ok(gw, bearer(key))


def test_au5_expired_key_is_refused(gw: Gateway) -> None:
    key = create_key_expiring(gw, "au5-expiring", "1s")
    time.sleep(1.2)
    assert not echo_ok(gw, bearer(key))


def create_key_expiring(gw: Gateway, name: str, expires: str) -> str:
    out = run_cli(
        "keys", "create", "--name", name, "--role", "dev", "--expires", expires,
        "--db", str(gw.keys_db),
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def test_au5_rotation_gives_a_new_key_and_ends_the_old_one(gw: Gateway) -> None:
    old = create_key(gw.keys_db, "au5-rotated", "dev")
    out = run_cli("keys", "rotate", "au5-rotated", "--overlap", "0s", "--db", str(gw.keys_db))
    new = out.stdout.strip().splitlines()[-1]
    assert KEY_FORMAT.fullmatch(new) and new != old
    assert echo_ok(gw, bearer(new))
    assert not echo_ok(gw, bearer(old))


# -- AU-6 JWT validation ---------------------------------------------------------------------


def test_au6_a_valid_jwt_authenticates(gw: Gateway) -> None:
    assert echo_ok(gw, bearer(gw.issuer.token()))
    aud_list = gw.issuer.claims(aud=["https://other.example", gw.url])
    assert echo_ok(gw, bearer(gw.issuer.sign(aud_list)))


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(claims).encode()),
            b64url(signature),
        ]
    )


def _hs256(gw: Gateway, claims: dict[str, Any], secret: bytes) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": KID}
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    mac = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(mac)


def _tampered(gw: Gateway) -> dict[str, str]:
    issuer = gw.issuer
    good = issuer.claims()
    now = int(time.time())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger_jwk = {"kty": "RSA", "kid": "attacker", "n": "AQAB", "e": "AQAB"}
    valid = issuer.token()
    head, payload, signature = valid.split(".")
    admin_payload = b64url(json.dumps({**good, "roles": ["admin"]}).encode())
    return {
        "alg-none": _unsigned({"alg": "none", "typ": "JWT"}, good),
        "alg-none-kid": _unsigned({"alg": "none", "kid": KID}, good),
        "alg-None": _unsigned({"alg": "None", "kid": KID}, good),
        "hs256-key-confusion": _hs256(gw, good, public_pem),
        "rs512-not-allowed": issuer.sign(good, {"alg": "RS512", "kid": KID}),
        "no-alg": issuer.sign(good, {"kid": KID}),
        "unknown-kid": issuer.sign(good, {"alg": "RS256", "kid": "nope"}),
        "no-kid": issuer.sign(good, {"alg": "RS256"}),
        "other-key": issuer.sign(good, key=stranger),
        "other-key-jwk-header": issuer.sign(
            good, {"alg": "RS256", "kid": "attacker", "jwk": stranger_jwk}, key=stranger
        ),
        "other-key-x5c-header": issuer.sign(
            good, {"alg": "RS256", "kid": "attacker", "x5c": ["MIIB"]}, key=stranger
        ),
        "crit": issuer.sign(good, {"alg": "RS256", "kid": KID, "crit": ["exp"], "exp": 1}),
        "modified-payload": f"{head}.{admin_payload}.{signature}",
        "stripped-signature": f"{head}.{payload}.",
        "missing-exp": issuer.sign({k: v for k, v in good.items() if k != "exp"}),
        "expired": issuer.token(exp=now - 120),
        "nbf-future": issuer.token(nbf=now + 300),
        "iat-future": issuer.token(iat=now + 300),
        "wrong-iss": issuer.token(iss="https://evil.example"),
        "iss-trailing-slash": issuer.token(iss=ISSUER + "/"),
        "iss-case": issuer.token(iss=ISSUER.upper()),
        "missing-iss": issuer.sign({k: v for k, v in good.items() if k != "iss"}),
        "wrong-aud": issuer.token(aud="https://other-resource.example/mcp"),
        "aud-prefix": issuer.token(aud=gw.url + "x"),
        "missing-aud": issuer.sign({k: v for k, v in good.items() if k != "aud"}),
        "exp-string": issuer.token(exp=str(now + 600)),
        "typ-wrong": issuer.sign(good, {"alg": "RS256", "kid": KID, "typ": "id_token+jwt"}),
        "jwe-five-parts": valid + ".a.b",
    }


def test_au6_tampered_jwts_are_all_refused(gw: Gateway) -> None:
    accepted = [name for name, token in _tampered(gw).items() if echo_ok(gw, bearer(token))]
    assert accepted == []


def test_au6_leeway_is_at_most_60_seconds(gw: Gateway) -> None:
    now = int(time.time())
    assert not echo_ok(gw, bearer(gw.issuer.token(exp=now - 61)))
    assert not echo_ok(gw, bearer(gw.issuer.token(nbf=now + 61)))
    assert echo_ok(gw, bearer(gw.issuer.token(exp=now + 5, nbf=now + 5)))  # clock skew


def test_au6_claims_map_to_roles_for_the_same_policy_engine(gw: Gateway) -> None:
    admin = bearer(gw.issuer.token(sub="carol-admin", roles=[JWT_ADMINS]))  # oidc.grants
    dev = bearer(gw.issuer.token(sub="carol-dev", roles=["dev"]))
    nobody = bearer(gw.issuer.token(sub="carol-none", roles=[]))
    assert "result" in answer_of(gw.call(admin, "fx__test_image_content"))
    assert answer_of(gw.call(dev, "fx__test_image_content"))["error"]["code"] == -32003
    assert answer_of(gw.modern(nobody, "tools/list"))["error"]["code"] == -32003


def test_au6_a_token_naming_a_jwks_url_never_makes_the_gateway_fetch_it(aux: Aux) -> None:
    g = aux.gateway
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = {"alg": "RS256", "kid": "attacker", "jku": aux.jwks.url("/attacker-jwks"),
              "x5u": aux.jwks.url("/attacker-x5u")}  # fmt: skip
    token = g.issuer.sign(g.issuer.claims(), header, key=stranger)
    with aux.client_from("127.0.0.3") as client:
        response = client.post(
            g.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={**bearer(token), "accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401
    assert "/attacker-jwks" not in aux.jwks.hits
    assert "/attacker-x5u" not in aux.jwks.hits


# -- AU-7 where keys come from -----------------------------------------------------------------


def test_au7_jwks_url_redirects_are_not_followed(aux: Aux) -> None:
    g = aux.gateway
    with aux.client_from("127.0.0.4") as client:
        response = client.post(
            g.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={**bearer(g.issuer.token()), "accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401  # its key is only at the redirect target
    assert aux.jwks.hits.get("/jwks", 0) >= 1
    assert "/real" not in aux.jwks.hits


def test_au7_unknown_kids_cannot_make_the_gateway_hammer_the_jwks_url(aux: Aux) -> None:
    g = aux.gateway
    before = aux.jwks.hits.get("/jwks", 0)
    for i in range(12):
        token = g.issuer.sign(g.issuer.claims(), {"alg": "RS256", "kid": f"random-{i}"})
        with aux.client_from(f"127.0.1.{i + 1}") as client:  # dodge the AU-8 throttle
            response = client.post(
                g.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={**bearer(token), "accept": "application/json, text/event-stream"},
            )
        assert response.status_code == 401
    assert aux.jwks.hits.get("/jwks", 0) - before <= 1  # refresh_interval is 5 s


def test_au7_a_new_kid_in_the_configured_jwks_is_picked_up(gw: Gateway) -> None:
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks_file = gw.tmp / "jwks.json"
    saved = jwks_file.read_text()
    keys = json.loads(saved)["keys"]
    numbers = new_key.public_key().public_numbers()
    keys.append(
        {"kty": "RSA", "kid": "rotated-2", "alg": "RS256",
         "n": b64url(numbers.n.to_bytes(256, "big")), "e": b64url(numbers.e.to_bytes(3, "big"))}
    )  # fmt: skip
    token = gw.issuer.sign(gw.issuer.claims(), {"alg": "RS256", "kid": "rotated-2"}, key=new_key)
    try:
        jwks_file.write_text(json.dumps({"keys": keys}))
        deadline = time.monotonic() + 5
        while not echo_ok(gw, bearer(token)):  # refresh on an unknown kid: once a second
            assert time.monotonic() < deadline, "the new key was never picked up"
            time.sleep(0.3)
    finally:
        jwks_file.write_text(saved)


# -- AU-8 credential size cap and failed-auth throttle ---------------------------------------


def test_au8_oversized_credential_is_refused_unparsed(gw: Gateway) -> None:
    huge = "Bearer " + gw.keys["alice"] + "A" * 9000
    response = gw.call({"authorization": huge}, "fx__echo", {"text": "x"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    headers = {"authorization": "Bearer " + "A" * 70_000}
    assert gw.call(headers, "fx__echo", {"text": "x"}).status_code == 431


def test_au8_failed_authentications_are_throttled_per_address(aux: Aux) -> None:
    g = aux.gateway
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"accept": "application/json, text/event-stream"}
    bad = {**bearer("bst_000000000000_" + "B" * 43), **accept}
    with aux.client_from("127.0.0.2") as attacker, aux.client_from("127.0.0.5") as other:
        statuses = [attacker.post(g.url, json=body, headers=bad).status_code for _ in range(5)]
        assert statuses[:3] == [401, 401, 401]
        assert statuses[3:] == [429, 429]
        throttled = attacker.post(g.url, json=body, headers=bad)
        assert int(throttled.headers["retry-after"]) >= 1
        # Another address is not affected, and a good key still works from either (DS-3:
        # one client's bad guesses never lock out the others sharing its address).
        good = {**bearer(g.keys["root"]), **accept, "mcp-protocol-version": MODERN,
                "mcp-method": "tools/list"}  # fmt: skip
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list",
                   "params": {"_meta": {META_VERSION: MODERN, META_CAPS: {}}}}  # fmt: skip
        for client in (other, attacker):
            answer = client.post(g.url, json=listing, headers=good)
            assert answer.status_code == 200
            assert "result" in answer.json()
        assert attacker.post(g.url, json=body, headers=bad).status_code == 429


def test_au8_ds4_ad1_a_throttled_addresss_flood_is_audited_in_counted_records(aux: Aux) -> None:
    """AU-8, DS-4, AD-1: past its budget, an address flooding bad credentials gets 429s that
    are audited as the first refusal and one counted summary per window, not one record
    each; every attempt is still accounted for in the log."""
    g = aux.gateway
    flood = 80
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    bad = {
        **bearer("bst_000000000000_" + "D" * 43),
        "accept": "application/json, text/event-stream",
    }
    started = time.monotonic()
    with aux.client_from("127.0.0.9") as attacker:
        statuses = [attacker.post(g.url, json=body, headers=bad).status_code for _ in range(flood)]
    elapsed = time.monotonic() - started
    assert statuses == [401] * 3 + [429] * (flood - 3)

    def from_attacker() -> list[dict[str, Any]]:
        return [
            r["record"]
            for r in g.audit_export()
            if r["record"]["kind"] == "authentication"
            and r["record"]["detail"].get("peer") == "127.0.0.9"
        ]

    def counted() -> int:
        return sum(int(r["detail"].get("refused", 1)) for r in from_attacker())

    deadline = time.monotonic() + 10
    while counted() != flood:  # the last window's summary is written when it ends
        assert time.monotonic() < deadline, from_attacker()
        time.sleep(0.5)
    records = from_attacker()
    assert len(records) <= 3 + 2 * (int(elapsed) + 2), (len(records), elapsed)
    assert {r["outcome"] for r in records[3:]} == {"throttled"}


def test_au8_deeply_nested_jwt_headers_are_throttled_like_any_bad_token(aux: Aux) -> None:
    """IN-2, AU-8: a JWT header nested past the parser's limit is an invalid token: 401, then
    429 once the address's budget is spent, never a 500."""
    g = aux.gateway
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    deep = {**bearer(DEEP_HEADER_JWT), "accept": "application/json, text/event-stream"}
    with aux.client_from("127.0.0.6") as attacker:
        statuses = [attacker.post(g.url, json=body, headers=deep).status_code for _ in range(4)]
        admin = attacker.get(g.base + "/api/v1/keys", headers=deep).status_code
    assert statuses == [401, 401, 401, 429]
    assert admin == 429


def test_au8_x_forwarded_for_does_not_move_the_throttled_address(aux: Aux) -> None:
    """Proxy headers are not trusted, not even from loopback: failures sent from 127.0.0.1
    naming 127.0.0.8 in X-Forwarded-For are not charged to 127.0.0.8, which keeps its own
    full budget (3 a minute on this gateway)."""
    g = aux.gateway
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    bad = {
        **bearer("bst_000000000000_" + "C" * 43),
        "accept": "application/json, text/event-stream",
    }
    framing = {**bad, "x-forwarded-for": "127.0.0.8", "x-real-ip": "127.0.0.8"}
    # Two, not three: 127.0.0.1 is the fixture's own address and must not be locked out.
    assert [g.client.post(g.url, json=body, headers=framing).status_code for _ in range(2)] == [
        401,
        401,
    ]
    with aux.client_from("127.0.0.8") as victim:
        statuses = [victim.post(g.url, json=body, headers=bad).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_au8_key_alphabet_is_bounded(gw: Gateway) -> None:
    """Characters outside RFC 6750's b64token never reach a lookup."""
    for junk in ("bst_" + "\u00e9" * 10, "bst_%00", "bst_" + string.punctuation):
        response = gw.client.post(
            gw.url,
            content=b"{}",
            headers={
                "authorization": ("Bearer " + junk).encode("utf-8"),
                "content-type": "application/json",
            },
        )
        assert response.status_code == 401
