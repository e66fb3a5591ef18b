"""SECURITY.md 2.1, transport and protocol: TR-1 .. TR-12 against a real ``bastion serve``
with authentication on (every request below carries a valid credential unless the test is
about its absence, so a refusal is the transport's, not authentication's)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from bastion.transport.http_protocol import MAX_HEADER_FIELDS
from tests.security.conftest import (
    LEGACY,
    META_CAPS,
    META_VERSION,
    MODERN,
    Gateway,
    answer_of,
    raw_http,
)
from tests.support import BASTION, free_port

pytestmark = pytest.mark.e2e

CALL = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "tools/call",
    "params": {"name": "rec__whoami", "arguments": {"marker": "transport-probe"}},
}


def reached_upstream(gw: Gateway, marker: str) -> bool:
    return any(marker in entry["body"] for entry in gw.recorded())


# -- TR-1 Origin -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        "http://127.0.0.1.evil.example",  # prefix of an allowed origin
        "http://127.0.0.1:{port}.evil.example",
        "http://evil.example/http://127.0.0.1:{port}",  # allowed origin as a substring
        "http://127.0.0.1:1",  # right host, wrong port
        "http://127.0.0.1",  # right host, port 80: another local page
        "https://localhost",  # right host, port 443
        "http://[::1]",
    ],
)
def test_tr1_foreign_origin_is_403_without_id_before_any_work(gw: Gateway, origin: str) -> None:
    origin = origin.format(port=gw.port)
    marker = f"origin-{origin}"
    body = {**CALL, "params": {"name": "rec__whoami", "arguments": {"marker": marker}}}
    headers = {**gw.auth("root"), "origin": origin}
    response = gw.post(body, {**headers, "mcp-protocol-version": LEGACY})
    assert response.status_code == 403
    error = response.json()
    assert "id" not in error or error["id"] is None
    assert error["error"]["code"] == -32600
    assert not reached_upstream(gw, marker)
    # GET and DELETE are checked the same way, and before authentication too.
    for method in ("GET", "DELETE"):
        sse = {**headers, "accept": "text/event-stream"}
        answer = gw.client.request(method, gw.url, headers=sse)
        assert answer.status_code == 403, method
    assert gw.post(CALL, {"origin": origin}).status_code == 403  # no credential: still 403


def test_tr1_allowed_origin_is_matched_exactly_and_case_insensitively(gw: Gateway) -> None:
    for origin in (f"http://127.0.0.1:{gw.port}", f"HTTP://LOCALHOST:{gw.port}"):
        response = gw.call({**gw.auth("alice"), "origin": origin}, "fx__echo", {"text": "o"})
        assert response.status_code == 200, origin
        assert answer_of(response)["result"]["content"][0]["text"] == "o"


# -- TR-2 Host (SHOULD) ----------------------------------------------------------------------


def test_tr2_unknown_host_is_421(gw: Gateway) -> None:
    response = gw.call({**gw.auth("alice"), "host": "evil.example"}, "fx__echo", {"text": "h"})
    assert response.status_code == 421
    rebinding = {**gw.auth("alice"), "host": f"attacker.example:{gw.port}"}
    assert gw.call(rebinding, "fx__echo", {"text": "h"}).status_code == 421


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", "http://evil.example/mcp"),
        ("POST", "http://127.0.0.1:{port}/mcp"),
        ("GET", "http://evil.example/api/v1/keys"),
        ("GET", "http://evil.example/healthz"),
    ],
)
def test_tr2_an_absolute_form_target_is_400_whatever_its_authority(
    gw: Gateway, method: str, target: str
) -> None:
    """The target's authority is the one that counts (RFC 9112 §3.2.2), and the Host check
    reads ``Host``: such a target is refused before any check or work, on every path."""
    target = target.format(port=gw.port)
    marker = f"absolute-form-{target}"
    meta = {META_VERSION: MODERN, META_CAPS: {}}
    params = {"name": "rec__whoami", "arguments": {"marker": marker}, "_meta": meta}
    body = json.dumps({**CALL, "params": params})  # served (200) with an origin-form target
    key = gw.keys["root"]
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {MODERN}\r\n"
        "MCP-Method: tools/call\r\nMCP-Name: rec__whoami\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer = raw_http(gw.port, head + body.encode())
    assert answer.status == 400, answer.data[:200]
    assert answer.closed
    assert not reached_upstream(gw, marker)


# -- TR-3 loopback ---------------------------------------------------------------------------


def _listening_addresses(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_tr3_binds_loopback_by_default(gw: Gateway) -> None:
    # The config names no host: the only listening socket is 127.0.0.1 (0100007F).
    assert _listening_addresses(gw.port) == {"0100007F"}


def test_tr3_refuses_other_interfaces_without_auth(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("servers: {}\n")
    port = free_port()
    done = subprocess.run(
        [
            str(BASTION),
            "serve",
            "-c",
            str(config),
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--no-register",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "without authentication" in done.stderr
    assert not _listening_addresses(port)


# -- TR-4 CORS -------------------------------------------------------------------------------


def test_tr4_no_cors_headers_by_default(gw: Gateway) -> None:
    origin = f"http://127.0.0.1:{gw.port}"
    preflight = gw.client.options(
        gw.url,
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    posted = gw.call({**gw.auth("alice"), "origin": origin}, "fx__echo", {"text": "c"})
    foreign = gw.call({**gw.auth("alice"), "origin": "http://evil.example"}, "fx__echo", {})
    for response in (preflight, posted, foreign):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    assert preflight.status_code in (401, 403, 404, 405)  # never a CORS grant


# -- TR-5 one message per POST ---------------------------------------------------------------


def test_tr5_batch_is_400_invalid_request(gw: Gateway) -> None:
    batch = [
        {**CALL, "id": 1, "params": {"name": "rec__whoami", "arguments": {"marker": "batch-1"}}},
        {**CALL, "id": 2, "params": {"name": "rec__whoami", "arguments": {"marker": "batch-2"}}},
    ]
    response = gw.post(batch, {**gw.auth("root"), "mcp-protocol-version": MODERN})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600
    assert not reached_upstream(gw, "batch-1")
    assert not reached_upstream(gw, "batch-2")


def test_tr5_notifications_and_responses_get_202_without_body(gw: Gateway) -> None:
    session = gw.initialize(gw.auth("alice"))
    headers = {**gw.auth("alice"), "mcp-session-id": session, "mcp-protocol-version": LEGACY}
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}
    stray = {"jsonrpc": "2.0", "id": 12345, "result": {}}
    for message in (note, stray):
        response = gw.post(message, headers)
        assert response.status_code == 202
        assert response.content == b""
    modern_note = {
        "jsonrpc": "2.0",
        "method": "notifications/initialized",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}},
    }
    response = gw.post(modern_note, {**gw.auth("alice"), "mcp-protocol-version": MODERN})
    assert response.status_code == 202
    assert response.content == b""


# -- TR-6 Content-Type and Accept ------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_tr6_wrong_content_type_is_415(gw: Gateway, content_type: str) -> None:
    headers = {**gw.auth("alice"), "content-type": content_type}
    assert gw.post(CALL, headers).status_code == 415


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream", "text/html", ""])
def test_tr6_accept_without_both_types_is_406(gw: Gateway, accept: str) -> None:
    headers = {**gw.auth("alice"), "accept": accept}
    assert gw.post(CALL, headers).status_code == 406


# -- TR-7 MCP-Protocol-Version ---------------------------------------------------------------


@pytest.mark.parametrize("version", ["1999-01-01", "garbage", "2025-11-25x", ""])
def test_tr7_unsupported_or_malformed_version_is_400(gw: Gateway, version: str) -> None:
    session = gw.initialize(gw.auth("alice"))
    headers = {**gw.auth("alice"), "mcp-session-id": session, "mcp-protocol-version": version}
    body = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
    assert gw.post(body, headers).status_code == 400


def test_tr7_absent_version_is_treated_as_2025_03_26(gw: Gateway) -> None:
    session = gw.initialize(gw.auth("alice"))
    headers = {**gw.auth("alice"), "mcp-session-id": session}  # no MCP-Protocol-Version
    response = gw.post({"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers)
    assert response.status_code == 200
    assert answer_of(response)["result"] == {}


def test_tr7_initialize_never_echoes_an_unsupported_version(gw: Gateway) -> None:
    response = gw.post(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2099-12-31",
                "capabilities": {},
                "clientInfo": {"name": "battery", "version": "1"},
            },
        },
        gw.auth("alice"),
    )
    assert response.status_code == 200
    version = answer_of(response)["result"]["protocolVersion"]
    assert version != "2099-12-31"
    assert version in ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")


def test_tr7_modern_request_with_unsupported_version_is_400(gw: Gateway) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 4,
        "method": "tools/list",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01",
                             "io.modelcontextprotocol/clientCapabilities": {}}},
    }  # fmt: skip
    headers = {**gw.auth("alice"), "mcp-protocol-version": "2099-01-01", "mcp-method": "tools/list"}
    response = gw.post(body, headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32022


# -- TR-8 GET --------------------------------------------------------------------------------


def test_tr8_get_opens_sse_only_for_the_authenticated_owner(gw: Gateway) -> None:
    session = gw.initialize(gw.auth("alice"))
    headers = {"accept": "text/event-stream", "mcp-session-id": session}
    assert gw.client.get(gw.url, headers=headers).status_code == 401
    foreign = gw.client.get(gw.url, headers={**headers, **gw.auth("bob")})
    assert foreign.status_code == 404
    with gw.client.stream("GET", gw.url, headers={**headers, **gw.auth("alice")}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
    modern = {**gw.auth("alice"), "accept": "text/event-stream", "mcp-protocol-version": MODERN}
    assert gw.client.get(gw.url, headers=modern).status_code == 405


def test_tr8_delete_with_the_2026_version_is_405_and_ends_nothing(gw: Gateway) -> None:
    """DELETE, like GET, belongs to 2025-11-25 sessions: a request naming 2026-07-28 is 405,
    even when it carries the id of the caller's own live session."""
    session = gw.initialize(gw.auth("alice"))
    headers = {**gw.auth("alice"), "mcp-session-id": session}
    refused = gw.client.delete(gw.url, headers={**headers, "mcp-protocol-version": MODERN})
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"
    ping = gw.legacy(gw.auth("alice"), session, "ping")
    assert ping.status_code == 200


# -- TR-9 framing ----------------------------------------------------------------------------


def _head(gw: Gateway, *lines: str, body: bytes = b"") -> bytes:
    key = gw.keys["alice"]
    head = [
        "POST /mcp HTTP/1.1",
        f"Host: 127.0.0.1:{gw.port}",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        *lines,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'


def test_tr9_content_length_with_transfer_encoding_is_refused_and_closed(gw: Gateway) -> None:
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(PING), PING)
    answer = raw_http(
        gw.port,
        _head(gw, f"Content-Length: {len(PING)}", "Transfer-Encoding: chunked", body=chunked),
    )
    assert answer.status == 400
    assert answer.closed


def test_tr9_differing_duplicate_content_length_is_400(gw: Gateway) -> None:
    answer = raw_http(gw.port, _head(gw, "Content-Length: 5", "Content-Length: 40", body=PING))
    assert answer.status == 400
    assert answer.closed


def test_tr9_unknown_transfer_encoding_is_refused(gw: Gateway) -> None:
    answer = raw_http(gw.port, _head(gw, "Transfer-Encoding: gzip, chunked2", body=PING))
    assert answer.status in (400, 501)
    assert answer.closed


def test_tr9_request_head_over_64_kib_is_431(gw: Gateway) -> None:
    filler = [f"X-Filler-{i}: {'a' * 1000}" for i in range(70)]
    answer = raw_http(gw.port, _head(gw, *filler, "Content-Length: 0"))
    assert answer.status == 431
    assert answer.closed


def test_tr9_more_header_fields_than_the_cap_is_431(gw: Gateway) -> None:
    """DS-4: 12,900 repeats of ``x:`` (51 KiB, under the byte cap) cost 20.8 ms of server
    CPU before authentication (0.28 ms plain) while the join was quadratic; the number of
    fields is capped too."""
    answer = raw_http(gw.port, _head(gw, *["x:"] * MAX_HEADER_FIELDS, "Content-Length: 0"))
    assert answer.status == 431
    assert answer.closed


def test_tr9_refusal_with_unread_body_closes_the_connection(gw: Gateway) -> None:
    # 401 (no credential) for a POST whose body is never read: the connection must close,
    # or the unread body would be parsed as the next request (request smuggling).
    smuggled = b"GET /.well-known/oauth-protected-resource HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nContent-Length: {len(smuggled)}\r\n\r\n"
    ).encode()
    answer = raw_http(gw.port, head + smuggled, timeout=3)
    assert answer.status == 401
    assert answer.closed
    assert answer.data.count(b"HTTP/1.1 ") == 1  # the smuggled request was never served


# Answers given before the body is read: (method, path, extra head lines, expected status).
# Each request promises a body it never sends. "{auth}" is replaced by alice's credential.
EARLY_ANSWERS = [
    ("GET", "/healthz", (), 200),  # a public probe
    ("POST", "/nope", (), 404),  # unknown path
    ("POST", "/mcp", ("Origin: http://evil.example",), 403),
    ("PUT", "/mcp", ("{auth}",), 405),
    ("POST", "/mcp", ("{auth}", "Content-Type: text/plain"), 415),
    ("POST", "/mcp", ("{auth}", "Accept: application/json"), 406),
    ("POST", "/api/v1/keys", (), 401),  # the admin API, not authenticated
    ("POST", "/api/v1/keys", ("{auth}",), 403),  # the admin API, not an admin
]


def _promise(gw: Gateway, method: str, path: str, lines: tuple[str, ...], framing: str) -> bytes:
    sent = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    auth = f"Authorization: Bearer {gw.keys['alice']}"
    for line in lines:
        name, _, value = line.replace("{auth}", auth).partition(": ")
        sent[name.lower()] = value
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{gw.port}", framing]
    head += [f"{name}: {value}" for name, value in sent.items() if name != "host"]
    if "host" in sent:
        head[1] = f"Host: {sent['host']}"
    return ("\r\n".join(head) + "\r\n\r\n").encode()


@pytest.mark.parametrize("framing", ["Content-Length: 100000", "Transfer-Encoding: chunked"])
@pytest.mark.parametrize(("method", "path", "lines", "status"), EARLY_ANSWERS)
def test_tr9_an_answer_before_the_body_is_read_closes_the_connection(
    gw: Gateway, method: str, path: str, lines: tuple[str, ...], status: int, framing: str
) -> None:
    """DS-2: otherwise a client trickling the promised body holds the connection for ever
    (each byte restarts the keep-alive timer, and nothing reads the body to time it)."""
    started = time.monotonic()
    answer = raw_http(gw.port, _promise(gw, method, path, lines, framing), timeout=3)
    assert answer.status == status
    assert "connection: close" in answer.head
    assert answer.closed
    assert time.monotonic() - started < 2


def test_tr9_an_answer_to_a_wrong_host_closes_the_connection(gw: Gateway) -> None:
    head = _promise(gw, "POST", "/mcp", ("Host: evil.example",), "Transfer-Encoding: chunked")
    answer = raw_http(gw.port, head, b"1\r\nx\r\n", timeout=3)
    assert answer.status == 421
    assert "connection: close" in answer.head
    assert answer.closed


def test_tr9_a_body_still_coming_is_waited_for_not_answered(gw: Gateway) -> None:
    """The control: a request that passes every check waits for its body (408 after
    ``body_timeout``), and an answer to a complete request keeps the connection open."""
    waiting = raw_http(
        gw.port, _promise(gw, "POST", "/mcp", ("{auth}",), "Content-Length: 50"), timeout=1
    )
    assert (waiting.data, waiting.closed) == (b"", False)
    meta = {META_VERSION: MODERN, META_CAPS: {}}
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    body = json.dumps(listing).encode()
    complete = _head(
        gw,
        f"MCP-Protocol-Version: {MODERN}",
        "Mcp-Method: tools/list",
        f"Content-Length: {len(body)}",
        body=body,
    )
    answer = raw_http(gw.port, complete, timeout=1)
    assert answer.status == 200
    assert "connection: close" not in answer.head
    assert not answer.closed


# -- TR-10 CR/LF/NUL in header values, no reflection ---------------------------------------


@pytest.mark.parametrize("value", [b"a\x00b", b"a\rb", b"a\x0bb\x7f\x01"])
def test_tr10_control_characters_in_header_values_are_rejected(gw: Gateway, value: bytes) -> None:
    head = _head(gw, f"Content-Length: {len(PING)}").replace(
        b"\r\n\r\n", b"\r\nX-Probe: " + value + b"\r\n\r\n", 1
    )
    answer = raw_http(gw.port, head + PING, timeout=3)
    if answer.status == 200:  # replaced by SP is allowed too; then nothing may echo it
        assert value not in answer.data
    else:
        assert answer.status == 400


def test_tr10_request_data_is_never_reflected_into_response_headers(gw: Gateway) -> None:
    probe = "reflect-me-5b1c"
    response = gw.post(
        {"jsonrpc": "2.0", "id": probe, "method": "ping"},
        {
            **gw.auth("alice"),
            "mcp-session-id": probe,
            "mcp-protocol-version": LEGACY,
            "origin": f"http://127.0.0.1:{gw.port}",
            "x-forwarded-host": probe,
            "last-event-id": probe,
        },
    )
    assert response.status_code == 404
    for name, value in response.headers.items():
        assert probe not in value, name
        assert f"127.0.0.1:{gw.port}" not in value, name


# -- TR-11 exact path ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/MCP",
        "/mcp/",
        "/mcp;a=b",
        "/%6dcp",
        "/mcp%2f",
        "/x/../mcp",
        "/./mcp",
        "//mcp",
        "/mcp/.",
        "/api/../mcp",
        "/mcp%00",
    ],
)
def test_tr11_only_the_exact_raw_path_is_served(gw: Gateway, path: str) -> None:
    marker = f"path-probe-{path}"
    body = (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rec__whoami",'
        b'"arguments":{"marker":"%s"}}}' % marker.encode()
    )
    key = gw.keys["root"]
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        f"MCP-Protocol-Version: {LEGACY}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    answer = raw_http(gw.port, head + body)
    assert answer.status in (400, 404), answer.data[:200]
    assert not reached_upstream(gw, marker)


# -- TR-12 mirrored headers (MUST on 2026-07-28) ---------------------------------------------


def test_tr12_mcp_name_disagreeing_with_the_body_is_400_32020(gw: Gateway) -> None:
    # alice may call rec__whoami but not rec__forbidden: a lying header must not smuggle it.
    response = gw.modern(
        gw.auth("alice"),
        "tools/call",
        {"name": "rec__forbidden", "arguments": {"marker": "tr12-forbidden"}},
        name="rec__whoami",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    assert not reached_upstream(gw, "tr12-forbidden")


def test_tr12_a_2026_body_in_a_2025_session_is_400_32020_not_served(gw: Gateway) -> None:
    """Red-team t26: ``MCP-Protocol-Version: 2025-11-25`` and a live session took the
    2025-11-25 path, which skipped the mirror checks, while the body's ``_meta`` had it
    served by 2026-07-28 rules: lying ``Mcp-Method``/``Mcp-Name`` went unnoticed."""
    session = gw.initialize(gw.auth("alice"))
    body = {
        "jsonrpc": "2.0",
        "id": 8,
        "method": "tools/call",
        "params": {
            "name": "rec__whoami",
            "arguments": {"marker": "tr12-era-mix"},
            "_meta": {META_VERSION: MODERN, META_CAPS: {}},
        },
    }
    headers = {
        **gw.auth("alice"),
        "mcp-session-id": session,
        "mcp-protocol-version": LEGACY,
        "mcp-method": "tools/list",
        "mcp-name": "fx__test_simple_text",
    }
    response = gw.post(body, headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    assert not reached_upstream(gw, "tr12-era-mix")


def test_tr12_mcp_method_disagreeing_with_the_body_is_400_32020(gw: Gateway) -> None:
    response = gw.modern(
        gw.auth("alice"),
        "tools/call",
        {"name": "rec__whoami", "arguments": {"marker": "tr12-method"}},
        extra={"mcp-method": "tools/list"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    assert not reached_upstream(gw, "tr12-method")
