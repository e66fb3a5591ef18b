"""SECURITY.md 2.4, sessions (2025-11-25): SE-1 .. SE-4 against a real ``bastion serve``.
Alice and Bob are both role ``dev``: everything Bob is refused below is refused because the
session is not his, not because of policy."""

from __future__ import annotations

import base64
import sqlite3
import string
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import (
    LEGACY,
    REQUEST_TIMEOUT,
    Gateway,
    Issuer,
    answer_of,
    bearer,
    create_key,
    run_cli,
    sse_messages,
    start_serve,
    wait_ready,
    write_config,
)
from tests.support import free_port, stop_process

pytestmark = pytest.mark.e2e

VISIBLE_ASCII = set(string.printable) - set(string.whitespace)
PING = {"jsonrpc": "2.0", "id": 5, "method": "ping"}


def ping(gw: Gateway, headers: dict[str, str], session: str) -> httpx.Response:
    return gw.post(PING, {**headers, "mcp-session-id": session, "mcp-protocol-version": LEGACY})


def get_stream(gw: Gateway, headers: dict[str, str], session: str, **extra: str) -> httpx.Response:
    sent = {**headers, "accept": "text/event-stream", "mcp-session-id": session, **extra}
    with gw.client.stream("GET", gw.url, headers=sent) as response:
        if response.status_code == 200:
            response.close()  # a live stream: we only wanted to know it opened
        else:
            response.read()
        return response


# -- SE-1 ids from the CSPRNG ----------------------------------------------------------------


def test_se1_session_ids_are_long_random_visible_ascii(gw: Gateway) -> None:
    ids = [gw.initialize(gw.auth("alice")) for _ in range(8)]
    assert len(set(ids)) == len(ids)
    for sid in ids:
        assert set(sid) <= VISIBLE_ASCII
        raw = base64.urlsafe_b64decode(sid + "=" * (-len(sid) % 4))
        assert len(raw) >= 16  # >= 128 bits (these are 256)
    # No shared prefix or counter: ids differ from their first characters.
    assert len({sid[:8] for sid in ids}) == len(ids)


# -- SE-2 bound to principal and credential ---------------------------------------------------


def test_se2_foreign_session_is_answered_exactly_like_an_unknown_one(gw: Gateway) -> None:
    session = gw.initialize(gw.auth("alice"))
    unknown = "x" * len(session)
    foreign = ping(gw, gw.auth("bob"), session)
    missing = ping(gw, gw.auth("bob"), unknown)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content
    assert dict(foreign.headers) == dict(missing.headers)
    call = {"name": "fx__echo", "arguments": {"text": "hijack"}}
    hijack = gw.legacy(gw.auth("bob"), session, "tools/call", call)
    assert hijack.status_code == 404
    assert "hijack" not in hijack.text
    assert ping(gw, gw.auth("alice"), session).status_code == 200


def test_se2_initialize_with_a_foreign_session_id_is_answered_like_an_unknown_one(
    gw: Gateway,
) -> None:
    """``initialize`` naming someone else's live session id tells nothing of it: like an
    unknown id, it opens a new session for the caller, and the owner's session goes on."""
    session = gw.initialize(gw.auth("alice"))
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {},
                       "clientInfo": {"name": "probe", "version": "1"}}}  # fmt: skip
    foreign = gw.post(init, {**gw.auth("bob"), "mcp-session-id": session})
    unknown = gw.post(init, {**gw.auth("bob"), "mcp-session-id": "z" * len(session)})
    assert foreign.status_code == unknown.status_code == 200
    assert foreign.headers["mcp-session-id"] not in (session, unknown.headers["mcp-session-id"])
    assert ping(gw, gw.auth("alice"), session).status_code == 200
    # The owner re-initializing her own live session is still refused.
    again = gw.post(init, {**gw.auth("alice"), "mcp-session-id": session})
    assert again.status_code == 400


def test_se2_foreign_delete_does_not_end_the_session(gw: Gateway) -> None:
    session = gw.initialize(gw.auth("alice"))
    headers = {"mcp-session-id": session, "mcp-protocol-version": LEGACY}
    foreign = gw.client.delete(gw.url, headers={**headers, **gw.auth("bob")})
    unknown = gw.client.delete(gw.url, headers={**headers, **gw.auth("bob"), "mcp-session-id": "y"})
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.content == unknown.content
    assert ping(gw, gw.auth("alice"), session).status_code == 200
    # The owner can end it, and then it is gone for her too.
    assert gw.client.delete(gw.url, headers={**headers, **gw.auth("alice")}).status_code == 200
    assert ping(gw, gw.auth("alice"), session).status_code == 404


def test_se3_a_wrong_secret_for_a_real_key_id_does_not_end_its_sessions(gw: Gateway) -> None:
    """SE-3 ends a revoked key's sessions; a key id is not secret (it is the key's visible
    prefix), so presenting it with a guessed secret is a 401 and ends nothing."""
    session = gw.initialize(gw.auth("alice"))
    key_id = gw.keys["alice"].split("_")[1]
    guessed = {"authorization": f"Bearer bst_{key_id}_{'A' * 43}"}
    assert ping(gw, guessed, session).status_code == 401
    assert ping(gw, gw.auth("alice"), session).status_code == 200


def test_se2_foreign_get_is_404(gw: Gateway) -> None:
    session = gw.initialize(gw.auth("alice"))
    assert get_stream(gw, gw.auth("bob"), session).status_code == 404
    assert get_stream(gw, gw.auth("alice"), session).status_code == 200


def test_se2_same_principal_with_another_credential_is_a_stranger(gw: Gateway) -> None:
    """Rotation leaves two valid keys for principal ``apikey:se2-rot``; a session opened with
    one is unknown to the other (bound to the credential, not only the principal)."""
    old = create_key(gw.keys_db, "se2-rot", "dev")
    out = run_cli("keys", "rotate", "se2-rot", "--overlap", "1h", "--db", str(gw.keys_db))
    new = out.stdout.strip().splitlines()[-1]
    session = gw.initialize(bearer(old))
    assert ping(gw, bearer(new), session).status_code == 404
    assert ping(gw, bearer(old), session).status_code == 200


def test_se2_jwt_sessions_bind_to_issuer_and_subject(gw: Gateway) -> None:
    first = bearer(gw.issuer.token(sub="frank"))
    session = gw.initialize(first)
    refreshed = bearer(gw.issuer.token(sub="frank", jti="second"))  # a refreshed token
    assert ping(gw, refreshed, session).status_code == 200
    other = bearer(gw.issuer.token(sub="frank2"))
    assert ping(gw, other, session).status_code == 404


def test_se3_a_refreshed_jwt_carries_its_session_past_the_first_tokens_expiry(
    gw: Gateway,
) -> None:
    """A session lives by its owner's freshest credential: after an OAuth refresh (same
    subject and roles, a later ``exp``), the first token's expiry does not end it."""
    short = bearer(gw.issuer.token(sub="heidi", exp=int(time.time()) + 2))
    session = gw.initialize(short)
    refreshed = bearer(gw.issuer.token(sub="heidi", jti="refreshed"))
    assert ping(gw, refreshed, session).status_code == 200
    time.sleep(3.5)  # past the first token's exp; the watcher runs every second
    assert ping(gw, refreshed, session).status_code == 200


# -- SE-3 unknown, missing, malformed; ended by revocation and role changes --------------------


@pytest.mark.parametrize(
    "session",
    ["does-not-exist", "A" * 257, "A" * 10_000, "\u00e9t\u00e9", "a b", "'; DROP TABLE s; --"],
)
def test_se3_unknown_or_malformed_ids_are_400_or_404(gw: Gateway, session: str) -> None:
    headers = {**gw.auth("alice"), "mcp-protocol-version": LEGACY}
    raw = session.encode("utf-8")
    response = gw.client.post(
        gw.url,
        json=PING,
        headers={
            **headers,
            "accept": "application/json, text/event-stream",
            "mcp-session-id": raw,
        },
    )
    assert response.status_code in (400, 404)
    assert session not in response.text


def test_se3_missing_id_on_a_later_request_is_400(gw: Gateway) -> None:
    response = gw.post(PING, {**gw.auth("alice"), "mcp-protocol-version": LEGACY})
    assert response.status_code == 400


def test_se3_revoking_the_key_ends_its_sessions(gw: Gateway) -> None:
    key = create_key(gw.keys_db, "se3-revoked", "dev")
    session = gw.initialize(bearer(key))
    assert ping(gw, bearer(key), session).status_code == 200
    run_cli("keys", "revoke", "se3-revoked", "--db", str(gw.keys_db))
    assert ping(gw, bearer(key), session).status_code == 401
    assert get_stream(gw, bearer(key), session).status_code == 401


def test_se3_revoking_the_key_ends_its_listen_streams(gw: Gateway) -> None:
    """AU-5/SE-3 for 2026-07-28: an open subscriptions/listen stream of a revoked key ends
    (-32003) instead of delivering notifications until the gateway stops."""
    key = create_key(gw.keys_db, "se3-listen", "admin")
    with gw.listen(bearer(key), {"toolsListChanged": True}) as messages:
        assert next(messages)["method"] == "notifications/subscriptions/acknowledged"
        run_cli("keys", "revoke", "se3-listen", "--db", str(gw.keys_db))
        rest = list(messages)  # the stream ends; one left open would time out instead
    assert rest[-1]["error"] == {"code": -32003, "message": "Subscription no longer authorized"}


def test_se3_a_role_change_ends_the_session(gw: Gateway) -> None:
    """The same JWT subject coming back with other roles finds its session gone, and the old
    token cannot revive it."""
    dev = bearer(gw.issuer.token(sub="grace", roles=["dev"]))
    admin = bearer(gw.issuer.token(sub="grace", roles=["admin"]))
    session = gw.initialize(dev)
    assert ping(gw, dev, session).status_code == 200
    assert ping(gw, admin, session).status_code == 404
    assert ping(gw, dev, session).status_code == 404


def test_se3_a_role_change_on_an_api_key_ends_its_session(gw: Gateway) -> None:
    key = create_key(gw.keys_db, "se3-role", "dev")
    session = gw.initialize(bearer(key))
    assert ping(gw, bearer(key), session).status_code == 200
    # An administrator changes the key's roles in the key database.
    with closing(sqlite3.connect(gw.keys_db)) as conn, conn:
        conn.execute("UPDATE keys SET roles = ? WHERE name = ?", ('["admin"]', "se3-role"))
    assert ping(gw, bearer(key), session).status_code == 404


# -- SE-4 replay only to the owner -------------------------------------------------------------


def test_se4_last_event_id_replays_only_to_the_owner(gw: Gateway) -> None:
    alice = gw.auth("alice")
    session = gw.initialize(alice)
    call = {"name": "fx__echo", "arguments": {"text": "replay-secret-91"}}
    response = gw.legacy(alice, session, "tools/call", call, request_id=41)
    ids = [
        line.split(":", 1)[1].strip()
        for line in response.text.splitlines()
        if line.startswith("id:")
    ]
    assert ids, response.text
    first = ids[0]
    stolen = get_stream(gw, gw.auth("bob"), session, **{"last-event-id": first})
    assert stolen.status_code == 404
    assert b"replay-secret-91" not in stolen.content
    # Bob's own session cannot name Alice's stream either.
    bobs = gw.initialize(gw.auth("bob"))
    sent = {**gw.auth("bob"), "accept": "text/event-stream", "mcp-session-id": bobs,
            "last-event-id": first}  # fmt: skip
    with gw.client.stream("GET", gw.url, headers=sent) as stream:
        seen = b""
        if stream.status_code == 200:
            for chunk in stream.iter_bytes():
                seen += chunk
                if b"\n\n" in seen:  # the priming event: nothing of Alice's came first
                    break
        assert b"replay-secret-91" not in seen
    # The owner gets the replay.
    sent = {**alice, "accept": "text/event-stream", "mcp-session-id": session,
            "last-event-id": first}  # fmt: skip
    replay = gw.client.get(gw.url, headers=sent)
    assert replay.status_code == 200
    answers = [m for m in sse_messages(replay.text) if m.get("id") == 41]
    assert answers and answers[0]["result"]["content"][0]["text"] == "replay-secret-91"
    assert answer_of(response)["result"]["content"][0]["text"] == "replay-secret-91"


def test_se3_idle_and_absolute_timeouts_come_from_the_configuration(
    tmp_path: Path,
) -> None:
    """``gateway.sessions``: a session unused for ``idle_timeout`` is gone (404, like an
    unknown id), and a busy one still ends at ``max_lifetime``."""
    port = free_port()
    servers = f"""\
  fx:
    command: {sys.executable}
    args: ["-m", "bastion", "fixture", "--stdio"]
"""
    config = write_config(tmp_path, port, servers=servers)
    text = config.read_text().replace(
        f"gateway:\n  port: {port}\n",
        f"gateway:\n  port: {port}\n  sessions: {{idle_timeout: 1.5, max_lifetime: 4}}\n",
    )
    config.write_text(text)
    (tmp_path / "jwks.json").write_text("{}")
    keys = {"alice": create_key(tmp_path / "keys.db", "alice", "dev")}
    proc = start_serve(config, port, tmp_path / "serve.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, tmp_path / "serve.log")
        gw = Gateway(
            port=port,
            tmp=tmp_path,
            keys=keys,
            issuer=Issuer(audience=f"http://127.0.0.1:{port}/mcp"),
            proc=proc,
            recorder_log=tmp_path / "none.jsonl",
            recorder_port=0,
        )
        alice = gw.auth("alice")
        idle = gw.initialize(alice)
        assert ping(gw, alice, idle).status_code == 200
        time.sleep(2.0)
        assert ping(gw, alice, idle).status_code == 404

        busy = gw.initialize(alice)
        started = time.monotonic()
        answers: list[tuple[float, int]] = []
        while (age := time.monotonic() - started) < 4.6:  # never idle for long
            answers.append((age, ping(gw, alice, busy).status_code))
            time.sleep(0.3)
        assert {status for age, status in answers if age < 3.7} == {200}
        last_age, last_status = answers[-1]
        assert last_age > 4.0 and last_status == 404
        gw.client.close()
    finally:
        stop_process(proc, grace=15)


def test_in1_a_duplicate_id_in_flight_is_refused_and_the_first_call_still_answered(
    gw: Gateway,
) -> None:
    """IN-1: a second request reusing the id of one still being served in the session is
    refused at once (-32600); the first keeps its stream and gets its answer (here the
    upstream's timeout). The duplicate used to take over the first one's stream, whose POST
    then waited for an answer that never came."""
    root = gw.auth("root")
    session = gw.initialize(root)
    slow = {"name": "rec__sleepy", "arguments": {}}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(gw.legacy, root, session, "tools/call", slow, 41)
        time.sleep(REQUEST_TIMEOUT / 4)  # the first is being served upstream
        assert not first.done()
        duplicate = gw.legacy(root, session, "ping", None, 41)
        assert duplicate.status_code == 200
        assert answer_of(duplicate)["error"]["code"] == -32600
        answered = first.result(timeout=REQUEST_TIMEOUT + 15)
    answer = answer_of(answered)
    assert answer["id"] == 41 and "error" in answer  # the upstream's deadline, as always
