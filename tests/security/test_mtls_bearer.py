"""Red-team findings on client certificates, on a real ``bastion serve`` over HTTPS with
``client_cert: required``, a ``client_crl`` and API keys:

* AU-1: a revoked certificate with any bearer token (an API key) was served 200, as the
  certificate was looked at only when no ``Authorization`` header came. Now, with a CRL,
  the certificate is checked first: revoked, it is a 401 whatever the token, and a session
  opened with a token over a certificate revoked later ends as the certificate's own do.
* AU-2: a certificate the client CA signed whose subject does not parse (a T61String CN of
  0x00 and 0xff) made every request of it a 500. Now it is a 401, audited.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.auth.support import Ca, issue, issue_unreadable_subject, make_ca, make_crl, self_signed
from tests.security.conftest import create_key
from tests.security.test_mtls import (
    BODY,
    HEADERS,
    REVOCATION_NOTICED,
    _eventually,
    _initialize,
    _legacy,
    _ping,
    _serving,
    certificate_outcomes,
)
from tests.support import free_port

pytestmark = pytest.mark.e2e


@dataclass
class Gateway:
    url: str
    tmp: Path
    ca: Ca
    certs: dict[str, bytes]  # file stem -> DER
    key: str  # alice's API key

    def client(self, cert: str | None, *, bearer: bool) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.tmp / "127.0.0.1.crt"))
        if cert is not None:
            crt = self.tmp / "client" / f"{cert}.crt"
            context.load_cert_chain(crt, crt.with_suffix(".key"))
        headers = {"authorization": f"Bearer {self.key}"} if bearer else {}
        return httpx.Client(verify=context, headers=headers, timeout=10)

    def status(self, cert: str | None, *, bearer: bool) -> int:
        with self.client(cert, bearer=bearer) as http:
            return http.post(self.url, json=BODY, headers=HEADERS).status_code

    def revoke(self, *names: str) -> None:
        fresh = self.tmp / "fresh.crl"
        fresh.write_bytes(make_crl(self.ca, tuple(self.certs[n] for n in names)))
        os.replace(fresh, self.tmp / "clients.crl")

    def outcomes(self, name: str) -> list[str]:
        """The audited authentication outcomes of the certificate ``name``."""
        return certificate_outcomes(self.tmp / "audit.db", self.certs[name])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("mtls-bearer")
    server_crt, server_key, _ = self_signed(tmp, cn="127.0.0.1")
    (tmp / "client").mkdir()
    ca = make_ca("Ops CA")
    certs = {
        name: issue(ca, tmp / "client", cn="svc-bot", file=name)[2]
        for name in ("good", "leaked", "held")
    }
    certs["unreadable"] = issue_unreadable_subject(ca, tmp / "client", file="unreadable")[2]
    (tmp / "clients-ca.pem").write_bytes(ca.pem())
    (tmp / "policy.yaml").write_text(
        "version: 1\nroles: {dev: {}, service: {}}\nrules:\n"
        "  - {id: dev, effect: allow, roles: [dev, service], methods: [initialize, ping,\n"
        '      "notifications/*", tools/list]}\n'
    )
    key = create_key(tmp / "keys.db", "alice", "dev")
    port = free_port()
    config = tmp / "bastion.yaml"
    config.write_text(
        f"""
servers:
  fx: {{command: {sys.executable}, args: ["-m", "bastion", "fixture", "--stdio"]}}
gateway:
  tls: {{cert_file: {server_crt}, key_file: {server_key}, client_ca: {tmp / "clients-ca.pem"},
        client_crl: {tmp / "clients.crl"}, client_cert: required}}
auth:
  resource: https://127.0.0.1:{port}/mcp
  api_keys: {{db: {tmp / "keys.db"}}}
  failed_auth: {{per_address_per_minute: 100000}}
  mtls:
    accounts:
      - {{name: svc, subject_cn: svc-bot, roles: [service]}}
policy: {{file: {tmp / "policy.yaml"}}}
audit: {{db: {tmp / "audit.db"}, commit_interval: 0}}
"""
    )
    served = Gateway(f"https://127.0.0.1:{port}/mcp", tmp, ca, certs, key)
    served.revoke("leaked")
    with _serving(config, port):
        assert _eventually(lambda: served.status("good", bearer=True) == 200)
        yield served


def test_au1_a_revoked_certificate_is_refused_whatever_the_bearer(gateway: Gateway) -> None:
    assert gateway.status("leaked", bearer=True) == 401
    assert gateway.status("leaked", bearer=False) == 401
    assert gateway.status("good", bearer=True) == 200
    assert gateway.status("good", bearer=False) == 200
    assert _eventually(lambda: "revoked-certificate" in gateway.outcomes("leaked"))


def test_au2_a_certificate_whose_subject_does_not_parse_is_a_401_not_a_500(
    gateway: Gateway,
) -> None:
    assert gateway.status("unreadable", bearer=False) == 401
    assert gateway.status("unreadable", bearer=True) == 401  # its serial: unreadable too
    assert _eventually(lambda: "malformed-certificate" in gateway.outcomes("unreadable"))
    assert gateway.status("good", bearer=False) == 200  # the gateway serves the others


def test_au1_se3_a_bearers_session_ends_when_its_certificate_is_revoked(
    gateway: Gateway,
) -> None:
    """An API key's 2025-11-25 session, opened over the certificate ``held``: revoking the
    certificate ends its GET stream and the session, as it would the certificate's own."""
    url = gateway.url
    with gateway.client("held", bearer=True) as held, gateway.client("good", bearer=True) as good:
        session, other = _initialize(held, url), _initialize(good, url)
        opened, ended = threading.Event(), threading.Event()

        def hold_stream() -> None:
            headers = {**_legacy(session), "accept": "text/event-stream"}
            try:
                with (
                    gateway.client("held", bearer=True) as http,
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
            gateway.revoke("leaked", "held")
            assert ended.wait(REVOCATION_NOTICED), "the revoked certificate's stream is open"
            assert _ping(held, url, session) == 401
            gateway.revoke("leaked")  # held is good again: its requests are served...
            assert _eventually(lambda: gateway.status("held", bearer=True) == 200)
            assert _ping(held, url, session) == 404  # ...but its session is gone
            assert _ping(good, url, other) == 200  # the same key over another certificate
        finally:
            gateway.revoke("leaked")
            if not ended.is_set():
                _ping(held, url, session)
            worker.join(10)
