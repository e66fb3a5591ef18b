"""The credential watcher's predicates (SE-3, AU-5): what they say of each kind of
credential once a second; ``watch_sessions`` ends whatever they say lapsed."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from bastion.auth import Authenticator, AuthSettings, KeyStore, Principal
from bastion.auth.mtls import MtlsMapper
from bastion.pipeline.lapses import lapsed_owners, lapsed_principals
from tests.auth.support import issue, make_ca, make_crl

RESOURCE = "https://gw.example.com/mcp"


@pytest.mark.anyio
async def test_se3_au5_a_certificate_revoked_in_the_crl_lapses_while_keys_and_jwts_do_as_before(
    tmp_path: Path,
) -> None:
    now = time.time()  # the certificates are valid for an hour from now
    ca = make_ca("Ops CA")
    (tmp_path / "ca.pem").write_bytes(ca.pem())
    (tmp_path / "clients.crl").write_bytes(make_crl(ca))
    _, _, leaked = issue(ca, tmp_path, cn="ci-bot", file="leaked")
    _, _, good = issue(ca, tmp_path, cn="ci-bot", file="good")
    settings = msgspec.convert(
        {
            "resource": RESOURCE,
            "api_keys": {"db": str(tmp_path / "keys.db")},
            "mtls": {"accounts": [{"name": "ci", "subject_cn": "ci-bot"}]},
        },
        AuthSettings,
    )
    mapper = MtlsMapper.from_files(
        settings.mtls, client_ca=tmp_path / "ca.pem", client_crl=tmp_path / "clients.crl", now=now
    )
    authenticator = Authenticator(settings, mtls=mapper)
    store = KeyStore(tmp_path / "keys.db")
    try:
        active, _ = store.create("active", ["dev"])
        revoked, _ = store.create("revoked", ["dev"])
        store.revoke(revoked.id)
        certificates = {
            n: mapper.authenticate(d, now=now) for n, d in (("leaked", leaked), ("good", good))
        }
        ids = {n: p.credential_id for n, p in certificates.items()}
        key = Principal(id="apikey:active", credential_id=f"apikey:{active.id}", method="api-key")
        gone = Principal(
            id="apikey:revoked", credential_id=f"apikey:{revoked.id}", method="api-key"
        )
        jwt = Principal(id="jwt:a", credential_id="jwt:idp:a", method="jwt", expires_at=now + 60)
        old = Principal(id="jwt:b", credential_id="jwt:idp:b", method="jwt", expires_at=now - 1)
        principals = [*certificates.values(), key, gone, jwt, old]

        def lapsed() -> tuple[set[str], set[str]]:
            """Whose sessions, streams and calls end; whose parked calls are dropped."""
            ends, drops = (
                lapsed_principals(store, now, authenticator),
                lapsed_owners(store, now, authenticator),
            )
            return (
                {p.credential_id for p in principals if ends(p)},
                {p.credential_id for p in principals if drops(p.binding)},
            )

        keys_and_jwts = ({gone.credential_id, old.credential_id}, {gone.credential_id})
        assert lapsed() == keys_and_jwts
        (tmp_path / "fresh.crl").write_bytes(make_crl(ca, (leaked,)))
        (tmp_path / "fresh.crl").replace(tmp_path / "clients.crl")
        await authenticator.refresh(now)
        assert lapsed() == tuple(s | {ids["leaked"]} for s in keys_and_jwts)
        (tmp_path / "clients.crl").unlink()  # revocation unknown: fail closed
        await authenticator.refresh(now)
        assert lapsed() == tuple(s | {ids["leaked"], ids["good"]} for s in keys_and_jwts)
    finally:
        store.close()
