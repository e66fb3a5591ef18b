"""SECURITY.md 2.5, input: IN-1 (the JSON-RPC envelope and its codes), IN-2 (nesting depth),
IN-5 (no credentials echoed, no stack traces) against a real ``bastion serve``. IN-3 (schema
validation) is shown end to end in tests/pipeline/test_threats_e2e.py, IN-4 (resource URI
confinement) in tests/pipeline/test_resource_uris_e2e.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.security.conftest import LEGACY, MODERN, Gateway, answer_of, bearer

pytestmark = pytest.mark.e2e

TRACE_MARKERS = ("Traceback", 'File "', ".py", "Error:", "site-packages", "/src/bastion")


def no_internals(text: str) -> None:
    for marker in TRACE_MARKERS:
        assert marker not in text, (marker, text[:300])


# -- IN-1 the envelope ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", -32700),
        (b"", -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"', -32700),
        (b"\xff\xfe{}", -32700),
        (b'"just a string"', -32600),
        (b"42", -32600),
        (b"null", -32600),
        (b"{}", -32600),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', -32600),
        (b'{"id":1,"method":"ping"}', -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":5}', -32600),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', -32600),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', -32600),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', -32600),
        (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2]}', -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}', -32600),
    ],
)
def test_in1_malformed_envelopes_get_their_json_rpc_code(
    gw: Gateway, body: bytes, code: int
) -> None:
    for era in (LEGACY, MODERN):
        response = gw.post(None, {**gw.auth("alice"), "mcp-protocol-version": era}, content=body)
        assert response.status_code == 400, (era, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] == code, f"{era}: expected {code}, got {error['code']}"
        no_internals(response.text)


def test_in1_unknown_method_is_32601(gw: Gateway) -> None:
    response = gw.modern(gw.auth("root"), "no/such/method")
    assert answer_of(response)["error"]["code"] == -32601
    assert response.status_code < 500


def test_in1_invalid_params_are_32602(gw: Gateway) -> None:
    response = gw.modern(gw.auth("root"), "tools/list", {"cursor": 5})
    assert answer_of(response)["error"]["code"] == -32602
    assert response.status_code < 500
    no_internals(response.text)


@pytest.mark.parametrize(
    "params",
    [
        {"name": "fx__echo", "arguments": "not an object"},
        {"name": "fx__echo", "arguments": {"text": {"nested": ["x"] * 5}}},
        {"name": ["fx__echo"]},
        {"name": "fx__echo", "arguments": {"text": "\ud800"}},
    ],
)
def test_in1_odd_params_never_cause_a_server_error(gw: Gateway, params: dict[str, Any]) -> None:
    response = gw.modern(gw.auth("root"), "tools/call", params, name="fx__echo")
    assert response.status_code < 500
    no_internals(response.text)
    answer = answer_of(response) if response.status_code == 200 else response.json()
    if "error" in answer:
        assert answer["error"]["code"] != -32603, answer


# -- IN-2 nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_in2_deep_nesting_is_a_parse_error(gw: Gateway, depth: int) -> None:
    inner = "[" * depth + "]" * depth
    body = f'{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":{inner}}}}}'
    response = gw.post(None, {**gw.auth("alice"), "mcp-protocol-version": MODERN},
                       content=body.encode())  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
    no_internals(response.text)


def test_in2_nesting_within_the_bound_is_accepted(gw: Gateway) -> None:
    value: Any = "deep"
    for _ in range(20):
        value = {"v": value}
    response = gw.call(gw.auth("root"), "rec__whoami", {"nested": value})
    assert "result" in answer_of(response)


# -- IN-5 nothing secret or internal goes back ------------------------------------------------


def test_in5_credentials_are_never_echoed(gw: Gateway) -> None:
    key = gw.keys["alice"]
    token = gw.issuer.token(sub="echo-probe")
    bad_token = token[:-4] + "AAAA"
    probes = [
        gw.post(None, bearer(key), content=f'{{"broken": "{key}"'.encode()),
        gw.post(None, bearer(key), content=json.dumps({"jsonrpc": "2.0", "id": key}).encode()),
        gw.post(None, bearer(bad_token), content=b"{}"),
        gw.post(None, bearer(key[:-1] + "Z"), content=b"{}"),
        gw.post({"jsonrpc": "2.0", "id": 1, "method": key}, bearer(token)),
        gw.modern(bearer(key), "tools/call", {"name": key, "arguments": {}}),
    ]
    for response in probes:
        text = response.text + json.dumps(dict(response.headers))
        for secret in (key, key.split("_", 2)[2], bad_token, token, token.split(".")[2]):
            assert secret not in text, response.status_code
        no_internals(response.text)


def test_in5_the_gateway_log_holds_no_credentials(gw: Gateway) -> None:
    """After every other test so far (valid, wrong, expired and tampered credentials), the
    gateway's own output names no API key secret and no JWT signature."""
    token = gw.issuer.token(sub="log-probe")
    gw.call(bearer(token), "fx__echo", {"text": "x"})
    gw.call(bearer(token[:-5] + "AAAAA"), "fx__echo", {"text": "x"})
    gw.call(bearer(gw.keys["bob"] + "x"), "fx__echo", {"text": "x"})
    log = gw.log_file.read_text()
    for key in gw.keys.values():
        assert key.split("_", 2)[2] not in log
    assert token.split(".")[2] not in log
    assert "Traceback" not in log
