"""AU-1 with mTLS: ``bastion serve`` over HTTPS, a client certificate signed by the
configured client CA authenticates as its service account; no certificate is a 401; a
certificate from anyone else does not get past the TLS handshake. The admin API takes the
same certificates (AZ-6: a service account with the admin role may use it). With two client
CAs, an account takes its CN only from the issuer it names; a certificate revoked in the
``client_crl`` file is refused, also when revoked after start, and then the session and
streams it holds end (SE-3, AU-5); an older CRL put back in place of the one in force is
refused, and every client certificate with it (red-team R3)."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.auth.support import Ca, issue, make_ca, make_crl, self_signed
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


@contextmanager
def _serving(config: Path, port: int) -> Iterator[None]:
    """``bastion serve -c config`` on ``port``, until the block ends."""
    proc = subprocess.Popen(
        [str(BASTION), "serve", "-c", str(config), "--port", str(port), "--no-register"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield
    finally:
        stop_process(proc)


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
      - {{name: ci-bot, subject_cn: ci-bot, issuer: CN=ci-bot, roles: [service]}}
      - {{name: ops-bot, subject_cn: ops-bot, issuer: CN=ops-bot, roles: [admin]}}
policy: {{file: {tmp / "policy.yaml"}}}
audit: {{db: {tmp / "audit.db"}}}
"""
    )
    with _serving(config, port):
        yield f"https://127.0.0.1:{port}/mcp", tmp


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


# Issuer binding and revocation (red-team finding F5): two client CAs in one bundle, the
# admin account bound to ca1, and a CRL file the tests replace while the gateway runs.


@dataclass
class Pki:
    url: str
    tmp: Path
    ca1: Ca
    ca2: Ca
    certs: dict[str, bytes]  # file stem -> DER

    def client(self, name: str | None) -> httpx.Client:
        return client(self.tmp, cert=None if name is None else self.tmp / "client" / f"{name}.crt")

    def admin(self, name: str) -> int:
        with self.client(name) as http:
            return http.get(self.url.removesuffix("/mcp") + "/api/v1/upstreams").status_code

    def write_crl(self, content: bytes) -> None:
        """Replace the CRL file as a deployment would: a new file renamed over the old."""
        fresh = self.tmp / "fresh.crl"
        fresh.write_bytes(content)
        os.replace(fresh, self.tmp / "clients.crl")

    def readyz_comes_to(self, status: int, crl: str) -> bool:
        """Whether /readyz answers ``status`` with ``"clientCrl": crl`` within 10 s."""
        with self.client(None) as http:

            def says() -> bool:
                answer = http.get(self.url.removesuffix("/mcp") + "/readyz")
                return answer.status_code == status and answer.json()["clientCrl"] == crl

            return _eventually(says)

    def outcomes(self, name: str) -> list[str]:
        """The audited authentication outcomes of the certificate ``name``."""
        return certificate_outcomes(self.tmp / "audit.db", self.certs[name])


def certificate_outcomes(audit_db: Path, der: bytes) -> list[str]:
    """The authentication outcomes ``bastion audit export`` shows for the certificate ``der``."""
    credential = "mtls:sha256:" + hashlib.sha256(der).hexdigest()
    exported = subprocess.run(
        [str(BASTION), "audit", "export", "--db", str(audit_db)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    records = [json.loads(line)["record"] for line in exported.splitlines()]
    return [
        r["outcome"]
        for r in records
        if r.get("kind") == "authentication" and r.get("credential_id") == credential
    ]


def _config(tmp: Path, port: int, bundle: Path, accounts: str, crl: Path | None) -> Path:
    server_crt, server_key = tmp / "127.0.0.1.crt", tmp / "127.0.0.1.key"
    crl_line = f", client_crl: {crl}" if crl is not None else ""
    config = tmp / "bastion.yaml"
    config.write_text(
        f"""
servers:
  fx: {{command: {sys.executable}, args: ["-m", "bastion", "fixture", "--stdio"]}}
gateway:
  tls: {{cert_file: {server_crt}, key_file: {server_key}, client_ca: {bundle}{crl_line}}}
auth:
  resource: https://127.0.0.1:{port}/mcp
  api_keys: {{enabled: false}}
  mtls:
    accounts:
{accounts}
policy: {{file: {tmp / "policy.yaml"}}}
audit: {{db: {tmp / "audit.db"}, commit_interval: 0}}
"""
    )
    return config


@pytest.fixture(scope="module")
def two_cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    tmp = tmp_path_factory.mktemp("mtls-cas")
    self_signed(tmp, cn="127.0.0.1")
    (tmp / "client").mkdir()
    ca1, ca2 = make_ca("Ops CA"), make_ca("Dev CA")
    certs = {
        "ops": issue(ca1, tmp / "client", cn="ops-bot", file="ops")[2],
        "impostor": issue(ca2, tmp / "client", cn="ops-bot", file="impostor")[2],
        "leaked": issue(ca1, tmp / "client", cn="ops-bot", file="leaked")[2],
        "late": issue(ca2, tmp / "client", cn="ci-bot", file="late")[2],
        "ci": issue(ca2, tmp / "client", cn="ci-bot", file="ci")[2],
    }
    bundle = tmp / "clients-ca.pem"
    bundle.write_bytes(ca1.pem() + ca2.pem())
    (tmp / "clients.crl").write_bytes(make_crl(ca1, (certs["leaked"],)) + make_crl(ca2))
    (tmp / "policy.yaml").write_text(
        "version: 1\nroles: {service: {}}\nrules:\n"
        "  - {id: svc, effect: allow, roles: [service], methods: [tools/list]}\n"
    )
    port = free_port()
    accounts = (
        f'      - {{name: ops-bot, subject_cn: ops-bot, issuer: "{ca1.subject}", roles: [admin]}}\n'
        f'      - {{name: ci-bot, subject_cn: ci-bot, issuer: "{ca2.subject}", roles: [service]}}'
    )
    config = _config(tmp, port, bundle, accounts, tmp / "clients.crl")
    with _serving(config, port):
        yield Pki(f"https://127.0.0.1:{port}/mcp", tmp, ca1, ca2, certs)


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_au1_az6_the_admin_cn_from_another_ca_of_the_bundle_is_refused(two_cas: Pki) -> None:
    """F5: ca2 signs a certificate with the admin account's CN; the account names ca1 as
    its issuer, so the admin API answers 401 (audited), while ca1's certificate is admin."""
    assert two_cas.admin("ops") == 200
    assert two_cas.admin("impostor") == 401
    with two_cas.client("impostor") as http:
        assert http.post(two_cas.url, json=BODY, headers=HEADERS).status_code == 401
    assert _eventually(lambda: "unknown-certificate" in two_cas.outcomes("impostor"))


def test_au1_a_certificate_revoked_in_the_crl_is_refused(two_cas: Pki) -> None:
    assert two_cas.admin("leaked") == 401
    with two_cas.client("leaked") as http:
        assert http.post(two_cas.url, json=BODY, headers=HEADERS).status_code == 401
    assert _eventually(lambda: "revoked-certificate" in two_cas.outcomes("leaked"))
    with two_cas.client("ci") as http:  # not revoked: served
        assert http.post(two_cas.url, json=BODY, headers=HEADERS).status_code == 200


def test_au1_a_certificate_revoked_while_running_is_refused_without_restart(
    two_cas: Pki,
) -> None:
    """The CRL file is re-read when it changes: the next request of a certificate revoked
    after start is refused, on a new connection and on one kept alive from before."""
    with two_cas.client("late") as kept:
        assert kept.post(two_cas.url, json=BODY, headers=HEADERS).status_code == 200
        leaked, late = two_cas.certs["leaked"], two_cas.certs["late"]
        two_cas.write_crl(make_crl(two_cas.ca1, (leaked,)) + make_crl(two_cas.ca2, (late,)))

        def refused() -> bool:
            return kept.post(two_cas.url, json=BODY, headers=HEADERS).status_code == 401

        assert _eventually(refused)
    with two_cas.client("late") as http:
        assert http.post(two_cas.url, json=BODY, headers=HEADERS).status_code == 401
    with two_cas.client("ci") as http:
        assert http.post(two_cas.url, json=BODY, headers=HEADERS).status_code == 200
    assert two_cas.admin("ops") == 200


def test_au1_an_expired_crl_fails_closed_and_readyz_says_so(two_cas: Pki) -> None:
    good = make_crl(two_cas.ca1, (two_cas.certs["leaked"],)) + make_crl(two_cas.ca2)
    two_cas.write_crl(make_crl(two_cas.ca1, next_update=-60) + make_crl(two_cas.ca2))
    try:
        assert two_cas.readyz_comes_to(503, "expired")
        assert two_cas.admin("ops") == 401
    finally:
        two_cas.write_crl(good)
    assert two_cas.readyz_comes_to(200, "ok")
    assert two_cas.admin("ops") == 200


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    """A gateway whose CA issues numbered CRLs; CRL 2 (in force at start) revokes leaked."""
    tmp = tmp_path_factory.mktemp("mtls-numbered")
    self_signed(tmp, cn="127.0.0.1")
    (tmp / "client").mkdir()
    ca1, ca2 = make_ca("Ops CA"), make_ca("Dev CA")
    certs = {
        name: issue(ca1, tmp / "client", cn="ops-bot", file=name)[2] for name in ("ops", "leaked")
    }
    bundle = tmp / "clients-ca.pem"
    bundle.write_bytes(ca1.pem())
    (tmp / "clients.crl").write_bytes(make_crl(ca1, (certs["leaked"],), number=2))
    (tmp / "policy.yaml").write_text("version: 1\nroles: {}\nrules: []\n")
    port = free_port()
    accounts = (
        f'      - {{name: ops-bot, subject_cn: ops-bot, issuer: "{ca1.subject}", roles: [admin]}}'
    )
    config = _config(tmp, port, bundle, accounts, tmp / "clients.crl")
    with _serving(config, port):
        yield Pki(f"https://127.0.0.1:{port}/mcp", tmp, ca1, ca2, certs)


def test_au1_an_older_crl_put_back_keeps_the_revoked_certificate_out(numbered: Pki) -> None:
    """Red-team R3: CRL 1 (older, validly signed, not yet past its nextUpdate, revoking
    nothing) put back in place of CRL 2 let the revoked certificate in with 200 while /readyz
    said ok. Now it is a rollback: every client certificate is refused and /readyz answers
    503 with ``"clientCrl": "rollback"``, until a CRL at least as new is back."""
    assert numbered.admin("leaked") == 401
    assert numbered.admin("ops") == 200
    numbered.write_crl(make_crl(numbered.ca1, number=1))
    assert numbered.readyz_comes_to(503, "rollback")
    assert numbered.admin("leaked") == 401
    assert numbered.admin("ops") == 401
    numbered.write_crl(make_crl(numbered.ca1, (numbered.certs["leaked"],), number=3))
    assert numbered.readyz_comes_to(200, "ok")
    assert numbered.admin("ops") == 200
    assert numbered.admin("leaked") == 401
    assert "revocation-unknown" in numbered.outcomes("leaked")


def test_au1_a_bundle_of_two_cas_with_an_account_naming_no_issuer_refuses_to_start(
    tmp_path: Path,
) -> None:
    """Secure by default: with two CAs trusted, an account matched by CN alone would take
    that CN from either, so ``bastion serve`` refuses the configuration and says why."""
    self_signed(tmp_path, cn="127.0.0.1")
    bundle = tmp_path / "clients-ca.pem"
    bundle.write_bytes(make_ca("Ops CA").pem() + make_ca("Dev CA").pem())
    (tmp_path / "policy.yaml").write_text("version: 1\nroles: {}\nrules: []\n")
    port = free_port()
    accounts = "      - {name: ops-bot, subject_cn: ops-bot, roles: [admin]}"
    config = _config(tmp_path, port, bundle, accounts, None)
    proc = subprocess.Popen(
        [str(BASTION), "serve", "-c", str(config), "--port", str(port), "--no-register"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("bastion serve started with an account bound to no issuer")
    assert proc.returncode != 0
    assert "ops-bot" in stderr and "issuer" in stderr and "fingerprint_sha256" in stderr


# What a certificate already holds when it is revoked (SE-3, AU-5): its 2025-11-25 session
# with the standalone GET stream, and its 2026-07-28 subscriptions/listen stream. Three
# certificates of one account: each is its own credential.

LEGACY = "2025-11-25"
REVOCATION_NOTICED = 3.0  # seconds: the watcher re-reads the CRL and ends sessions each second


@pytest.fixture(scope="module")
def revocable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    tmp = tmp_path_factory.mktemp("mtls-held")
    self_signed(tmp, cn="127.0.0.1")
    (tmp / "client").mkdir()
    ca1, ca2 = make_ca("Ops CA"), make_ca("Dev CA")
    certs = {
        name: issue(ca1, tmp / "client", cn="svc-bot", file=name)[2]
        for name in ("alpha", "beta", "gamma")
    }
    bundle = tmp / "clients-ca.pem"
    bundle.write_bytes(ca1.pem() + ca2.pem())
    (tmp / "clients.crl").write_bytes(make_crl(ca1) + make_crl(ca2))
    (tmp / "policy.yaml").write_text(
        "version: 1\nroles: {service: {}}\nrules:\n"
        "  - {id: svc, effect: allow, roles: [service], methods: [initialize, ping,\n"
        '      "notifications/*", tools/list, subscriptions/listen]}\n'
    )
    port = free_port()
    accounts = (
        f'      - {{name: svc, subject_cn: svc-bot, issuer: "{ca1.subject}", roles: [service]}}'
    )
    config = _config(tmp, port, bundle, accounts, tmp / "clients.crl")
    with _serving(config, port):
        yield Pki(f"https://127.0.0.1:{port}/mcp", tmp, ca1, ca2, certs)


def _revoke(pki: Pki, *names: str) -> None:
    """Replace the CRL with one revoking ``names`` (none: every certificate is good)."""
    pki.write_crl(make_crl(pki.ca1, tuple(pki.certs[n] for n in names)) + make_crl(pki.ca2))


def _served(pki: Pki, name: str) -> bool:
    with pki.client(name) as http:
        return http.post(pki.url, json=BODY, headers=HEADERS).status_code == 200


def _initialize(http: httpx.Client, url: str) -> str:
    params = {
        "protocolVersion": LEGACY,
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    body = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    answer = http.post(url, json=body, headers={"accept": HEADERS["accept"]})
    assert "mcp-session-id" in answer.headers, answer.text
    session = answer.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert http.post(url, json=note, headers=_legacy(session)).status_code == 202
    return session


def _legacy(session: str) -> dict[str, str]:
    return {
        "accept": HEADERS["accept"],
        "mcp-session-id": session,
        "mcp-protocol-version": LEGACY,
    }


def _ping(http: httpx.Client, url: str, session: str) -> int:
    body = {"jsonrpc": "2.0", "id": 5, "method": "ping"}
    return http.post(url, json=body, headers=_legacy(session)).status_code


def test_se3_the_session_of_a_certificate_revoked_while_open_ends(revocable: Pki) -> None:
    """SE-3: revoking a certificate in the CRL ends its 2025-11-25 session within about two
    seconds, its open GET stream included, though the client sends nothing: once the
    certificate is accepted again, the session id is answered 404 like an unknown one.
    Another certificate of the same account keeps its session."""
    url = revocable.url
    assert _eventually(lambda: _served(revocable, "alpha"))
    with revocable.client("alpha") as alpha, revocable.client("beta") as beta:
        session, other = _initialize(alpha, url), _initialize(beta, url)
        assert _ping(alpha, url, session) == 200
        opened, ended = threading.Event(), threading.Event()

        def hold_stream() -> None:
            headers = {**_legacy(session), "accept": "text/event-stream"}
            try:
                with (
                    revocable.client("alpha") as http,
                    http.stream("GET", url, headers=headers, timeout=None) as stream,
                ):
                    if stream.status_code == 200:
                        opened.set()
                        for _ in stream.iter_lines():
                            pass
            except httpx.HTTPError:
                pass
            ended.set()

        worker = threading.Thread(target=hold_stream, daemon=True)
        worker.start()
        try:
            assert opened.wait(5) and not ended.wait(1.0), "the GET stream did not stay open"
            _revoke(revocable, "alpha")
            assert ended.wait(REVOCATION_NOTICED), "the revoked certificate's stream is open"
            _revoke(revocable)  # alpha is good again: its requests are served...
            assert _eventually(lambda: _served(revocable, "alpha"))
            assert _ping(alpha, url, session) == 404  # ...but its session is gone
            assert _ping(alpha, url, "x" * len(session)) == 404
            assert _ping(beta, url, other) == 200  # another certificate's session lives
        finally:
            _revoke(revocable)
            if not ended.is_set():
                _ping(alpha, url, session)
            worker.join(10)


def test_se3_au5_the_listen_stream_of_a_certificate_revoked_while_open_ends(
    revocable: Pki,
) -> None:
    """AU-5/SE-3 for 2026-07-28: an open ``subscriptions/listen`` stream of a certificate
    revoked in the CRL ends (-32003) instead of delivering notifications until the gateway
    stops."""
    assert _eventually(lambda: _served(revocable, "gamma"))
    params = {"notifications": {"toolsListChanged": True}, "_meta": MODERN}
    body = {"jsonrpc": "2.0", "id": "listen", "method": "subscriptions/listen", "params": params}
    headers = {**HEADERS, "mcp-method": "subscriptions/listen"}
    try:
        with (
            revocable.client("gamma") as http,
            http.stream("POST", revocable.url, json=body, headers=headers) as stream,
        ):
            assert stream.status_code == 200
            messages = (
                json.loads(line[5:])
                for line in stream.iter_lines()
                if line.startswith("data:") and line[5:].strip()
            )
            assert next(messages)["method"] == "notifications/subscriptions/acknowledged"
            revoked_at = time.monotonic()
            _revoke(revocable, "gamma")
            rest = list(messages)  # the stream ends; one left open would time out instead
            assert time.monotonic() - revoked_at < REVOCATION_NOTICED
    finally:
        _revoke(revocable)
    assert rest[-1]["error"] == {"code": -32003, "message": "Subscription no longer authorized"}
