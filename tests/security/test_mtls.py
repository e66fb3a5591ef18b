"""AU-1 with mTLS: ``bastion serve`` over HTTPS, a client certificate signed by the
configured client CA authenticates as its service account; no certificate is a 401; a
certificate from anyone else does not get past the TLS handshake. The admin API takes the
same certificates (AZ-6: a service account with the admin role may use it)."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.support import self_signed
from tests.support import BASTION, free_port, stop_process, wait_for_port

pytestmark = pytest.mark.e2e

MODERN = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
HEADERS = {
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/list",
}
BODY = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": MODERN}}


@pytest.fixture(scope="module")
def https_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("mtls")
    server_crt, server_key, _ = self_signed(tmp, cn="127.0.0.1")
    (tmp / "client").mkdir()
    client_crt, _, _ = self_signed(tmp / "client", cn="ci-bot", ip=None)
    ops_crt, _, _ = self_signed(tmp / "client", cn="ops-bot", ip=None)
    clients_ca = tmp / "clients-ca.pem"  # both self-signed certificates are trusted roots
    clients_ca.write_bytes(client_crt.read_bytes() + ops_crt.read_bytes())
    port = free_port()
    (tmp / "policy.yaml").write_text(
        "version: 1\nroles: {service: {}}\nrules:\n"
        "  - {id: svc, effect: allow, roles: [service], methods: [tools/list]}\n"
        "  - {id: svc-echo, effect: allow, roles: [service], tools: [fx__echo]}\n"
    )
    config = tmp / "bastion.yaml"
    config.write_text(
        f"""
servers:
  fx: {{command: {sys.executable}, args: ["-m", "bastion", "fixture", "--stdio"]}}
gateway:
  tls: {{cert_file: {server_crt}, key_file: {server_key}, client_ca: {clients_ca}}}
auth:
  resource: https://127.0.0.1:{port}/mcp
  api_keys: {{enabled: false}}
  mtls:
    accounts:
      - {{name: ci-bot, subject_cn: ci-bot, roles: [service]}}
      - {{name: ops-bot, subject_cn: ops-bot, roles: [admin]}}
policy: {{file: {tmp / "policy.yaml"}}}
audit: {{db: {tmp / "audit.db"}}}
"""
    )
    proc = subprocess.Popen(
        [str(BASTION), "serve", "-c", str(config), "--port", str(port), "--no-register"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"https://127.0.0.1:{port}/mcp", tmp
    finally:
        stop_process(proc)


def client(tmp: Path, *, cert: Path | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(tmp / "127.0.0.1.crt"))
    if cert is not None:
        context.load_cert_chain(cert, cert.with_suffix(".key"))
    return httpx.Client(verify=context, timeout=10)


def test_au1_a_client_certificate_authenticates_its_service_account(
    https_gateway: tuple[str, Path],
) -> None:
    url, tmp = https_gateway
    with client(tmp, cert=tmp / "client" / "ci-bot.crt") as http:
        answer = http.post(url, json=BODY, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    assert {tool["name"] for tool in answer.json()["result"]["tools"]} == {"fx__echo"}
    exported = subprocess.run(
        [str(BASTION), "audit", "export", "--db", str(tmp / "audit.db")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    principals = {json.loads(line)["record"].get("principal") for line in exported.splitlines()}
    assert "mtls:ci-bot" in principals


def test_au1_au2_without_a_certificate_the_answer_is_401(
    https_gateway: tuple[str, Path],
) -> None:
    url, tmp = https_gateway
    with client(tmp, cert=None) as http:
        answer = http.post(url, json=BODY, headers=HEADERS)
    assert answer.status_code == 401
    assert "resource_metadata=" in answer.headers["www-authenticate"]


def test_au1_a_certificate_from_another_ca_fails_the_handshake(
    https_gateway: tuple[str, Path], tmp_path: Path
) -> None:
    url, tmp = https_gateway
    stranger, _, _ = self_signed(tmp_path, cn="ci-bot", ip=None)  # same CN, not our CA
    with client(tmp, cert=stranger) as http, pytest.raises(httpx.HTTPError):
        http.post(url, json=BODY, headers=HEADERS)


def test_az6_the_admin_api_takes_client_certificates(https_gateway: tuple[str, Path]) -> None:
    """AZ-6 over mTLS: the admin API authenticates a client certificate as on ``/mcp``: a
    service account with the admin role is served, one without it gets 403, no certificate
    (and no other credential) 401."""
    url, tmp = https_gateway
    admin_url = url.removesuffix("/mcp") + "/api/v1/upstreams"
    with client(tmp, cert=tmp / "client" / "ops-bot.crt") as http:
        answer = http.get(admin_url)
    assert answer.status_code == 200, answer.text
    assert [u["server"] for u in answer.json()["upstreams"]] == ["fx"]
    with client(tmp, cert=tmp / "client" / "ci-bot.crt") as http:
        assert http.get(admin_url).status_code == 403
    with client(tmp, cert=None) as http:
        assert http.get(admin_url).status_code == 401
