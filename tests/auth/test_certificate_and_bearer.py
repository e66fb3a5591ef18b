"""A client certificate that comes with a bearer token (AU-1): with a client CRL, the
certificate is checked before the token is read, so a revoked one (or one of unknown
status, or one that does not parse) is refused whatever the token; the principal the token
proves names the certificate, and the credential watcher sees it lapse when it is revoked
(SE-3). Without a CRL, the TLS handshake is all the certificate gets, as before."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bastion.auth import Authenticator, AuthSettings, KeyStore, Unauthenticated
from bastion.pipeline.lapses import lapsed_principals
from tests.auth.support import Ca, issue, issue_unreadable_subject, make_ca, make_crl

pytestmark = pytest.mark.anyio

RESOURCE = "https://gw.example.com/mcp"


class Setup:
    """A CA, its certificates (``good``, ``leaked``, ``unreadable``), a CRL file, a key
    store with the API key ``key``, and an authenticator over them."""

    def __init__(self, tmp_path: Path, *, crl: bool) -> None:
        self.tmp, self.now = tmp_path, time.time()  # the certificates: an hour from now
        self.ca: Ca = make_ca("Ops CA")
        (tmp_path / "ca.pem").write_bytes(self.ca.pem())
        self.good = issue(self.ca, tmp_path, cn="ci-bot", file="good")[2]
        self.leaked = issue(self.ca, tmp_path, cn="ci-bot", file="leaked")[2]
        self.unreadable = issue_unreadable_subject(self.ca, tmp_path, file="unreadable")[2]
        self.write_crl(self.leaked)
        self.store = KeyStore(tmp_path / "keys.db")
        self.key = self.store.create("alice", ["dev"])[1]
        settings = msgspec.convert(
            {"resource": RESOURCE, "api_keys": {"db": str(tmp_path / "keys.db")}}, AuthSettings
        )
        self.auth = Authenticator.from_settings(
            settings,
            default_keys_db=tmp_path / "unused.db",
            client_ca=tmp_path / "ca.pem",
            client_crl=tmp_path / "clients.crl" if crl else None,
        )

    def write_crl(self, *revoked: bytes) -> None:
        (self.tmp / "fresh.crl").write_bytes(make_crl(self.ca, revoked))
        (self.tmp / "fresh.crl").replace(self.tmp / "clients.crl")

    async def bearer_over(self, der: bytes) -> Any:
        return await self.auth.authenticate(
            f"Bearer {self.key}", client_cert=der, peer="10.0.0.1", now=self.now
        )

    async def refusal(self, der: bytes) -> Unauthenticated:
        with pytest.raises(Unauthenticated) as caught:
            await self.bearer_over(der)
        return caught.value

    async def aclose(self) -> None:
        self.store.close()
        await self.auth.aclose()


@pytest.fixture
async def with_crl(tmp_path: Path) -> AsyncIterator[Setup]:
    setup = Setup(tmp_path, crl=True)
    yield setup
    await setup.aclose()


async def test_au1_a_revoked_certificate_is_refused_whatever_the_bearer(
    with_crl: Setup,
) -> None:
    """Red team AU-1: with ``client_cert: required`` and a CRL, a revoked certificate and
    any API key were served (the certificate was looked at only without a header)."""
    refused = await with_crl.refusal(with_crl.leaked)
    assert (refused.reason, refused.presented) == ("revoked-certificate", True)
    assert refused.credential_id is not None and refused.credential_id.startswith("mtls:")
    malformed = await with_crl.refusal(with_crl.unreadable)  # its serial cannot be read
    assert malformed.reason == "malformed-certificate"
    (with_crl.tmp / "clients.crl").unlink()
    await with_crl.auth.refresh(with_crl.now)
    assert (await with_crl.refusal(with_crl.good)).reason == "revocation-unknown"


async def test_au1_se3_the_bearers_principal_lapses_with_its_certificate(
    with_crl: Setup,
) -> None:
    principal = await with_crl.bearer_over(with_crl.good)
    assert principal.id == "apikey:alice"
    assert principal.client_certificate is not None
    assert not lapsed_principals(with_crl.store, with_crl.now, with_crl.auth)(principal)
    with_crl.write_crl(with_crl.leaked, with_crl.good)
    await with_crl.auth.refresh(with_crl.now)
    assert lapsed_principals(with_crl.store, with_crl.now, with_crl.auth)(principal)
    assert (await with_crl.refusal(with_crl.good)).reason == "revoked-certificate"


async def test_au1_without_a_crl_the_certificate_under_a_bearer_is_not_read(
    tmp_path: Path,
) -> None:
    setup = Setup(tmp_path, crl=False)
    try:
        for der in (setup.leaked, setup.unreadable):
            principal = await setup.bearer_over(der)
            assert (principal.id, principal.client_certificate) == ("apikey:alice", None)
    finally:
        await setup.aclose()
