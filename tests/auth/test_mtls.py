"""Client certificates mapped to service accounts by fingerprint or subject CN."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from pathlib import Path

import msgspec
import pytest
from cryptography import x509

from bastion.auth import MtlsMapper, MtlsSettings, Unauthenticated
from bastion.auth.mtls import MtlsConfigError
from tests.auth.support import (
    Ca,
    issue,
    issue_unreadable_subject,
    make_ca,
    make_crl,
    self_signed,
)


def mapper(*accounts: dict[str, object]) -> MtlsMapper:
    return MtlsMapper(msgspec.convert({"accounts": list(accounts)}, MtlsSettings))


def test_match_by_subject_cn(tmp_path: Path) -> None:
    _, _, der = self_signed(tmp_path, cn="ci-bot", ip=None)
    p = mapper({"name": "ci", "subject_cn": "ci-bot", "roles": ["service"]}).authenticate(der)
    assert (p.id, p.method, p.roles) == ("mtls:ci", "mtls", ("service",))
    assert p.authenticated_at is None  # a service account: never satisfies a step-up (AZ-5)
    assert p.credential_id == "mtls:sha256:" + hashlib.sha256(der).hexdigest()


def test_match_by_fingerprint_with_colons_and_upper_case(tmp_path: Path) -> None:
    _, _, der = self_signed(tmp_path, cn="anything", ip=None)
    hexdigest = hashlib.sha256(der).hexdigest().upper()
    spelled = ":".join(hexdigest[i : i + 2] for i in range(0, 64, 2))
    p = mapper({"name": "deploy", "fingerprint_sha256": spelled}).authenticate(der)
    assert p.id == "mtls:deploy"


def test_unknown_certificate_is_refused(tmp_path: Path) -> None:
    _, _, der = self_signed(tmp_path, cn="ci-bot-2", ip=None)
    m = mapper(
        {"name": "ci", "subject_cn": "ci-bot"}, {"name": "d", "fingerprint_sha256": "0" * 64}
    )
    with pytest.raises(Unauthenticated) as caught:
        m.authenticate(der)
    assert caught.value.reason == "unknown-certificate" and caught.value.presented


def test_garbage_is_refused() -> None:
    with pytest.raises(Unauthenticated) as caught:
        mapper({"name": "ci", "subject_cn": "ci-bot"}).authenticate(b"not a certificate")
    assert caught.value.reason == "malformed-certificate"


def test_account_needs_exactly_one_matcher() -> None:
    for account in (
        {"name": "a"},
        {"name": "a", "subject_cn": "x", "fingerprint_sha256": "0" * 64},
    ):
        with pytest.raises(msgspec.ValidationError, match="one of"):
            msgspec.convert({"accounts": [account]}, MtlsSettings)
    with pytest.raises(msgspec.ValidationError, match="64 hex"):
        msgspec.convert({"accounts": [{"name": "a", "fingerprint_sha256": "z" * 64}]}, MtlsSettings)


# Issuer binding and revocation (SECURITY.md AU-1, AZ-6: red-team finding F5).

NOW = time.time()
# The CRLs are dated from NOW, as the checks are, however long after import a test runs.
make_crl = functools.partial(make_crl, now=NOW)


def from_files(
    tmp_path: Path, cas: list[Ca], *accounts: dict[str, object], crl: bytes | None = None
) -> MtlsMapper:
    """A mapper over a ``client_ca`` bundle of ``cas`` and, given ``crl``, a ``client_crl``."""
    bundle = tmp_path / "clients-ca.pem"
    bundle.write_bytes(b"".join(ca.pem() for ca in cas))
    crl_path = None
    if crl is not None:
        crl_path = tmp_path / "clients.crl"
        crl_path.write_bytes(crl)
    settings = msgspec.convert({"accounts": list(accounts)}, MtlsSettings)
    return MtlsMapper.from_files(settings, client_ca=bundle, client_crl=crl_path, now=NOW)


def refused(m: MtlsMapper, der: bytes, now: float = NOW) -> str:
    with pytest.raises(Unauthenticated) as caught:
        m.authenticate(der, now=now)
    assert caught.value.presented
    assert caught.value.credential_id == "mtls:sha256:" + hashlib.sha256(der).hexdigest()
    return caught.value.reason


def test_au1_az6_the_admin_cn_from_another_ca_of_the_bundle_is_refused(tmp_path: Path) -> None:
    """F5: with two CAs trusted, the account names the issuer it accepts; ca2's certificate
    with the admin account's CN is not that account."""
    ca1, ca2 = make_ca("Ops CA"), make_ca("Dev CA")
    _, _, ops = issue(ca1, tmp_path, cn="ops-bot", file="ops")
    _, _, impostor = issue(ca2, tmp_path, cn="ops-bot", file="impostor")
    admin = {"name": "ops", "subject_cn": "ops-bot", "issuer": ca1.subject, "roles": ["admin"]}
    m = from_files(tmp_path, [ca1, ca2], admin)
    assert ca1.subject == "CN=Ops CA,O=Example"  # the documented form: RFC 4514, as OpenSSL
    assert m.authenticate(ops, now=NOW).roles == ("admin",)
    assert refused(m, impostor) == "unknown-certificate"


def test_au1_a_copied_issuer_name_is_not_the_issuer(tmp_path: Path) -> None:
    """An intermediate under ca2 that copies ca1's name signs a leaf whose issuer field reads
    ca1: the binding is to ca1's key, so it is still refused."""
    ca1, ca2 = make_ca("Ops CA"), make_ca("Dev CA")
    copy = make_ca("Ops CA", signer=ca2)
    _, _, forged = issue(copy, tmp_path, cn="ops-bot", file="forged")
    admin = {"name": "ops", "subject_cn": "ops-bot", "issuer": ca1.subject, "roles": ["admin"]}
    m = from_files(tmp_path, [ca1, ca2], admin)
    assert refused(m, forged) == "unknown-certificate"


def test_au1_one_cn_under_two_issuers_is_two_accounts(tmp_path: Path) -> None:
    ca1, ca2 = make_ca("Ops CA"), make_ca("Dev CA")
    _, _, from1 = issue(ca1, tmp_path, cn="bot", file="one")
    _, _, from2 = issue(ca2, tmp_path, cn="bot", file="two")
    m = from_files(
        tmp_path,
        [ca1, ca2],
        {"name": "ops", "subject_cn": "bot", "issuer": ca1.subject, "roles": ["admin"]},
        {"name": "dev", "subject_cn": "bot", "issuer": ca2.subject, "roles": ["service"]},
    )
    assert m.authenticate(from1, now=NOW).id == "mtls:ops"
    assert m.authenticate(from2, now=NOW).id == "mtls:dev"


def test_au1_a_bundle_of_two_cas_needs_every_account_to_name_its_issuer(tmp_path: Path) -> None:
    """Secure by default: an account without an issuer (or a pinned fingerprint) would take
    its CN from any CA of the bundle, so such a configuration is refused at start."""
    ca1, ca2 = make_ca("Ops CA"), make_ca("Dev CA")
    with pytest.raises(MtlsConfigError, match=r"account ops: .*issuer.*fingerprint_sha256"):
        from_files(tmp_path, [ca1, ca2], {"name": "ops", "subject_cn": "ops-bot"})
    _, _, der = issue(ca2, tmp_path, cn="pinned")
    pinned = {"name": "p", "fingerprint_sha256": hashlib.sha256(der).hexdigest()}
    assert from_files(tmp_path, [ca1, ca2], pinned).authenticate(der, now=NOW).id == "mtls:p"
    _, _, one = issue(ca1, tmp_path, cn="ops-bot")
    alone = from_files(tmp_path, [ca1], {"name": "ops", "subject_cn": "ops-bot"})
    assert alone.authenticate(one, now=NOW).id == "mtls:ops"  # one CA: as before


def test_au1_an_issuer_names_exactly_one_ca_of_the_bundle(tmp_path: Path) -> None:
    ca1, ca2 = make_ca("Ops CA"), make_ca("Dev CA")
    with pytest.raises(MtlsConfigError, match="names no CA"):
        from_files(tmp_path, [ca1, ca2], {"name": "ops", "subject_cn": "x", "issuer": "CN=Ops"})
    twin = make_ca("Ops CA")  # same name, another key
    with pytest.raises(MtlsConfigError, match="more than one CA"):
        from_files(tmp_path, [ca1, twin], {"name": "o", "subject_cn": "x", "issuer": ca1.subject})


def test_two_accounts_for_one_cn_and_issuer_are_refused() -> None:
    same = {"subject_cn": "bot", "issuer": "CN=Ops CA"}
    with pytest.raises(msgspec.ValidationError, match="same subject_cn"):
        msgspec.convert({"accounts": [{"name": "a", **same}, {"name": "b", **same}]}, MtlsSettings)


def test_au2_a_certificate_whose_subject_does_not_parse_is_malformed_not_a_crash(
    tmp_path: Path,
) -> None:
    """Red team AU-2: the CA signed a certificate whose CN is a T61String of 0x00 and 0xff;
    the TLS layer takes it, and reading its subject raised ValueError (every request a 500).
    Now it is ``malformed-certificate``, naming the certificate, with a CRL or without."""
    ca = make_ca("Ops CA")
    _, _, der = issue_unreadable_subject(ca, tmp_path, file="bad")
    account = {"name": "ci", "subject_cn": "ci-bot"}
    assert refused(from_files(tmp_path, [ca], account), der) == "malformed-certificate"
    with_crl = from_files(tmp_path, [ca], account, crl=make_crl(ca))
    assert refused(with_crl, der) == "malformed-certificate"
    with pytest.raises(Unauthenticated) as caught:
        with_crl.screen(der, NOW)
    assert caught.value.reason == "malformed-certificate"


def test_au1_a_certificate_revoked_in_the_crl_is_refused(tmp_path: Path) -> None:
    ca = make_ca("Ops CA")
    _, _, revoked = issue(ca, tmp_path, cn="leaked")
    _, _, good = issue(ca, tmp_path, cn="ci-bot")
    m = from_files(
        tmp_path,
        [ca],
        {"name": "leaked", "subject_cn": "leaked"},
        {"name": "ci", "subject_cn": "ci-bot"},
        crl=make_crl(ca, (revoked,)),
    )
    assert m.revocation_status(NOW) == "ok"
    assert refused(m, revoked) == "revoked-certificate"
    assert m.authenticate(good, now=NOW).id == "mtls:ci"


def test_au1_a_crl_replaced_while_running_applies_without_restart(tmp_path: Path) -> None:
    ca = make_ca("Ops CA")
    _, _, der = issue(ca, tmp_path, cn="ci-bot")
    m = from_files(tmp_path, [ca], {"name": "ci", "subject_cn": "ci-bot"}, crl=make_crl(ca))
    assert m.authenticate(der, now=NOW).id == "mtls:ci"
    fresh = tmp_path / "fresh.crl"
    fresh.write_bytes(make_crl(ca, (der,)))
    os.replace(fresh, tmp_path / "clients.crl")
    m.refresh(NOW)
    assert refused(m, der) == "revoked-certificate"


@pytest.mark.parametrize(
    ("problem", "content"),
    [
        ("missing", None),
        ("unparseable", b"-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n"),
        ("unparseable", b""),
        ("expired", "expired"),
        ("unsigned", "unsigned"),
    ],
)
def test_au1_an_unusable_crl_fails_closed(
    tmp_path: Path, problem: str, content: bytes | str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """Missing, unparseable, past its nextUpdate, or not signed by a client CA: every
    client certificate is refused (and ``revocation_status`` says why, for /readyz), and the
    log says so."""
    ca = make_ca("Ops CA")
    _, _, der = issue(ca, tmp_path, cn="ci-bot")
    m = from_files(tmp_path, [ca], {"name": "ci", "subject_cn": "ci-bot"}, crl=make_crl(ca))
    assert m.authenticate(der, now=NOW).id == "mtls:ci"
    crl = tmp_path / "clients.crl"
    if content == "expired":
        crl.write_bytes(make_crl(ca, next_update=-60))
    elif content == "unsigned":
        crl.write_bytes(make_crl(ca, key=make_ca("Ops CA").key))
    elif isinstance(content, bytes):
        crl.write_bytes(content)
    else:
        crl.unlink()
    with caplog.at_level(logging.ERROR, logger="bastion.auth.crl"):
        m.refresh(NOW)
    assert m.revocation_status(NOW) == problem
    assert refused(m, der) == "revocation-unknown"
    assert [r.getMessage() for r in caplog.records] == [
        f"client_crl {crl}: {problem}; every client certificate is refused until it is fixed"
    ]


def test_au1_a_crl_past_its_next_update_fails_closed_without_a_reload(tmp_path: Path) -> None:
    ca = make_ca("Ops CA")
    _, _, der = issue(ca, tmp_path, cn="ci-bot")
    m = from_files(
        tmp_path, [ca], {"name": "ci", "subject_cn": "ci-bot"}, crl=make_crl(ca, next_update=60)
    )
    assert m.authenticate(der, now=NOW).id == "mtls:ci"
    assert m.revocation_status(NOW + 120) == "expired"
    assert refused(m, der, now=NOW + 120) == "revocation-unknown"


def test_au1_a_ca_without_a_crl_in_the_file_fails_closed(tmp_path: Path) -> None:
    """As OpenSSL's CRL check: a certificate whose CA has no CRL in the file is refused."""
    ca1, ca2 = make_ca("Ops CA"), make_ca("Dev CA")
    _, _, der = issue(ca2, tmp_path, cn="dev-bot")
    m = from_files(
        tmp_path,
        [ca1, ca2],
        {"name": "dev", "subject_cn": "dev-bot", "issuer": ca2.subject},
        crl=make_crl(ca1),
    )
    assert refused(m, der) == "revocation-unknown"
    (tmp_path / "clients.crl").write_bytes(make_crl(ca1) + make_crl(ca2))
    m.refresh(NOW)
    assert m.authenticate(der, now=NOW).id == "mtls:dev"


# What the credential watcher asks once a second (SE-3, AU-5): which certificates that hold
# sessions, streams or calls would now be refused.


def credential(der: bytes) -> str:
    return "mtls:sha256:" + hashlib.sha256(der).hexdigest()


def test_se3_au5_lapsed_names_the_certificates_the_crl_now_refuses(tmp_path: Path) -> None:
    """Revoked after it was accepted: lapsed; another certificate of the same account is
    not; a CRL that cannot be trusted lapses them all (fail closed, as new requests are)."""
    ca = make_ca("Ops CA")
    _, _, leaked = issue(ca, tmp_path, cn="ci-bot", file="leaked")
    _, _, good = issue(ca, tmp_path, cn="ci-bot", file="good")
    m = from_files(tmp_path, [ca], {"name": "ci", "subject_cn": "ci-bot"}, crl=make_crl(ca))
    for der in (leaked, good):
        assert m.authenticate(der, now=NOW).credential_id == credential(der)
        assert not m.lapsed(credential(der), NOW)
    fresh = tmp_path / "fresh.crl"
    fresh.write_bytes(make_crl(ca, (leaked,)))
    os.replace(fresh, tmp_path / "clients.crl")
    m.refresh(NOW)
    assert m.lapsed(credential(leaked), NOW)
    assert not m.lapsed(credential(good), NOW)
    (tmp_path / "clients.crl").unlink()
    m.refresh(NOW)
    assert m.lapsed(credential(good), NOW)


def test_se3_lapsed_is_false_for_other_credentials_and_true_for_unknown_certificates(
    tmp_path: Path,
) -> None:
    ca = make_ca("Ops CA")
    m = from_files(tmp_path, [ca], {"name": "ci", "subject_cn": "ci-bot"}, crl=make_crl(ca))
    for other in ("apikey:k_0123", "jwt:https://idp.example.com:alice", "local:alice"):
        assert not m.lapsed(other, NOW)
    assert m.lapsed("mtls:sha256:" + "0" * 64, NOW)  # never accepted here: nothing to trust


def test_se3_a_certificate_past_its_not_after_lapses_and_is_refused(tmp_path: Path) -> None:
    """Without a CRL too: the principal expires with the certificate, the watcher sees it
    lapse, and a connection kept alive past ``notAfter`` is refused."""
    ca = make_ca("Ops CA")
    _, _, der = issue(ca, tmp_path, cn="ci-bot")
    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    m = from_files(tmp_path, [ca], {"name": "ci", "subject_cn": "ci-bot"})
    assert m.authenticate(der, now=NOW).expires_at == not_after
    assert not m.lapsed(credential(der), not_after - 1)
    assert m.lapsed(credential(der), not_after)
    assert refused(m, der, now=not_after) == "expired-certificate"


def test_se3_the_certificates_in_use_stay_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table of known certificates is bounded; the least recently used leaves first,
    and then lapses (fail closed), so a certificate still in use is not ended by others."""
    monkeypatch.setattr("bastion.auth.mtls.MAX_KNOWN_CERTIFICATES", 2)
    ca = make_ca("Ops CA")
    one, two, three = (issue(ca, tmp_path, cn="ci-bot", file=n)[2] for n in ("1", "2", "3"))
    m = from_files(tmp_path, [ca], {"name": "ci", "subject_cn": "ci-bot"}, crl=make_crl(ca))
    m.authenticate(one, now=NOW)
    m.authenticate(two, now=NOW)
    m.authenticate(one, now=NOW)  # in use again
    m.authenticate(three, now=NOW)
    assert not m.lapsed(credential(one), NOW)
    assert m.lapsed(credential(two), NOW)
    assert not m.lapsed(credential(three), NOW)


def test_az5_the_reserved_local_role_is_dropped_from_an_account(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, _, der = self_signed(tmp_path, cn="ci-bot", ip=None)
    account = {"name": "ci", "subject_cn": "ci-bot", "roles": ["local", "service"]}
    with caplog.at_level(logging.WARNING, logger="bastion.auth.roles"):
        m = mapper(account)
    assert m.authenticate(der).roles == ("service",)
    assert "auth.mtls account ci: role 'local' is reserved" in caplog.text


@pytest.mark.parametrize("loose", ["client_ca", "client_crl"])
def test_au1_a_client_ca_or_crl_others_may_change_is_refused(tmp_path: Path, loose: str) -> None:
    """Whoever may write ``client_ca`` adds a CA of their own and mints any account's
    certificate; whoever may write ``client_crl`` puts an older CRL back after a restart."""
    ca = make_ca("Ops CA")
    from_files(
        tmp_path, [ca], {"name": "ci", "subject_cn": "ci", "roles": ["dev"]}, crl=make_crl(ca)
    )
    path = tmp_path / ("clients-ca.pem" if loose == "client_ca" else "clients.crl")
    path.chmod(0o666)
    settings = msgspec.convert({"accounts": []}, MtlsSettings)
    with pytest.raises(MtlsConfigError) as info:
        MtlsMapper.from_files(
            settings,
            client_ca=tmp_path / "clients-ca.pem",
            client_crl=tmp_path / "clients.crl",
            now=NOW,
        )
    what = "client CAs" if loose == "client_ca" else "client CRL"
    assert str(info.value) == (
        f"{path}: others may change the {what} (gateway.tls.{loose}): {path} is writable by"
        f" every user; run: chmod o-w {path}"
    )
