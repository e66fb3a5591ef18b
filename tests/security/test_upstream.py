"""SECURITY.md 2.7, the upstream side: UP-1 (no client credential reaches an upstream), UP-4
(upstream failures leak no internal URL or credential), UP-5 (stdio upstreams come only from
configuration, without a shell). The recording upstream (``upstreams/recorder.py``) shows
exactly what arrived. UP-2/UP-3 (OAuth proxying, SSRF in OAuth discovery) have no wired code
path to attack yet."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.security.conftest import (
    DEAD_UPSTREAM_PATH,
    DEAD_UPSTREAM_SECRET,
    META_CAPS,
    META_VERSION,
    MODERN,
    UPSTREAM_CREDENTIAL,
    Aux,
    Gateway,
    answer_of,
    bearer,
)
from tests.security.upstreams.recorder import INTERNAL_URL, LEAKED_SECRET

pytestmark = pytest.mark.e2e


def entries_with(gw: Gateway, marker: str) -> list[dict[str, object]]:
    return [e for e in gw.recorded() if marker in str(e["body"])]


# -- UP-1 ------------------------------------------------------------------------------------


def test_up1_client_credentials_never_reach_the_upstream(gw: Gateway) -> None:
    token = gw.issuer.token(sub="up1", roles=["dev"])
    client_secrets = {
        "cookie": "session=client-cookie-secret-1",
        "x-api-key": "client-api-key-secret-2",
        "proxy-authorization": "Basic Y2xpZW50OnNlY3JldA==",
        "x-forwarded-authorization": "Bearer client-forwarded-secret-3",
    }
    for i, who in enumerate((gw.auth("alice"), bearer(token))):
        marker = f"up1-marker-{i}"
        response = gw.call({**who, **client_secrets}, "rec__whoami", {"marker": marker})
        assert "result" in answer_of(response)
        (entry,) = entries_with(gw, marker)
        headers = dict(entry["headers"])  # type: ignore[arg-type]
        assert headers["authorization"] == UPSTREAM_CREDENTIAL  # the configured one
    # Across everything the upstream ever received (this and every other test's traffic):
    everything = json.dumps(gw.recorded())
    for secret in [*gw.keys.values(), token, token.split(".")[2], *client_secrets.values()]:
        assert secret not in everything
    assert "bst_" not in everything
    for entry in gw.recorded():
        names = {name for name, _ in entry["headers"]}  # type: ignore[misc]
        assert not names & {"cookie", "x-api-key", "proxy-authorization"}
        auth = [v for n, v in entry["headers"] if n == "authorization"]  # type: ignore[misc]
        assert auth in ([UPSTREAM_CREDENTIAL], []), auth


def test_up1_the_2025_11_25_face_forwards_no_client_credential_either(gw: Gateway) -> None:
    alice = gw.auth("alice")
    session = gw.initialize(alice)
    marker = "up1-legacy-marker"
    call = {"name": "rec__whoami", "arguments": {"marker": marker}}
    assert "result" in answer_of(gw.legacy(alice, session, "tools/call", call))
    (entry,) = entries_with(gw, marker)
    headers = dict(entry["headers"])  # type: ignore[arg-type]
    assert headers["authorization"] == UPSTREAM_CREDENTIAL
    assert session not in json.dumps(entry)  # nor the client's session id


# -- UP-4 -------------------------------------------------------------------------------------


def test_up4_upstream_failure_leaks_no_url_or_credential(gw: Gateway) -> None:
    response = gw.call(gw.auth("alice"), "rec__boom", {"marker": "up4"})
    answer = answer_of(response)
    assert "error" in answer or answer["result"].get("isError")
    text = response.text + json.dumps(dict(response.headers))
    for leak in (INTERNAL_URL, LEAKED_SECRET, "10.20.30.40", UPSTREAM_CREDENTIAL,
                 "upstream-static-credential", f"127.0.0.1:{gw.recorder_port}"):  # fmt: skip
        assert leak not in text, leak
    assert entries_with(gw, "up4")  # the failure really came from the upstream


def test_up4_readiness_and_errors_of_a_dead_upstream_name_no_url_or_secret(aux: Aux) -> None:
    g = aux.gateway
    probes = [
        g.client.get(g.base + "/readyz"),  # public
        g.call(g.auth("root"), "dead__anything", {}),
        g.modern(g.auth("root"), "tools/list"),
    ]
    for response in probes:
        text = response.text + json.dumps(dict(response.headers))
        for leak in (DEAD_UPSTREAM_PATH, DEAD_UPSTREAM_SECRET, f":{aux.dead_port}"):
            assert leak not in text, (leak, response.text)
    assert aux.gateway.proc.poll() is None  # a dead upstream does not take the gateway down


# -- UP-5 --------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def test_up5_stdio_upstream_is_exactly_the_configured_argv_without_a_shell(gw: Gateway) -> None:
    argvs = [_cmdline(child) for child in _children(gw.proc.pid)]
    expected = [sys.executable, "-m", "bastion", "fixture", "--stdio"]
    assert expected in argvs or [os.path.realpath(sys.executable), *expected[1:]] in argvs
    for argv in argvs:
        assert Path(argv[0]).name not in ("sh", "bash", "dash", "zsh"), argv


def test_up5_requests_cannot_launch_processes(gw: Gateway, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    before = set(_children(gw.proc.pid))
    attempts = [
        ("servers/add", {"name": "x", "command": "touch", "args": [str(marker)]}),
        ("tools/call", {"name": f"fx__echo; touch {marker}", "arguments": {}}),
        (
            "tools/call",
            {
                "name": "fx__echo",
                "arguments": {"text": f"$(touch {marker})"},
                "command": "touch",
                "args": [str(marker)],
            },
        ),
        ("resources/read", {"uri": f"stdio://touch {marker}"}),
    ]
    for method, params in attempts:
        response = gw.modern(gw.auth("root"), method, params, name="fx__echo")
        assert response.status_code < 500
    assert not marker.exists()
    assert set(_children(gw.proc.pid)) == before


def test_up1_no_bastion_meta_key_of_a_client_and_no_principal_reach_an_upstream(
    gw: Gateway,
) -> None:
    """The gateway builds every upstream request's ``_meta`` itself: a client's
    ``io.bastion/*`` keys (a forged principal) never pass, and a server without
    ``pass_principal`` is not told who calls (DS-3: only opted-in upstreams learn it)."""
    alice = gw.auth("alice")
    forged = {"io.bastion/principal": "root", "io.bastion/anything": "x"}
    marker = "up1-meta-modern"
    meta = {META_VERSION: MODERN, META_CAPS: {}, **forged}
    params = {"name": "rec__whoami", "arguments": {"marker": marker}, "_meta": meta}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    headers = {**alice, "mcp-protocol-version": MODERN, "mcp-method": "tools/call"}
    assert "result" in answer_of(gw.post(body, {**headers, "mcp-name": "rec__whoami"}))
    session = gw.initialize(alice)
    legacy = {"name": "rec__whoami", "arguments": {"marker": "up1-meta-legacy"}, "_meta": forged}
    assert "result" in answer_of(gw.legacy(alice, session, "tools/call", legacy))
    for mark in (marker, "up1-meta-legacy"):
        (entry,) = entries_with(gw, mark)
        sent = json.dumps(entry["body"])
        assert "io.bastion/" not in sent and "alice" not in sent, sent
