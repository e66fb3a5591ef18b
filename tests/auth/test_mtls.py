"""Client certificates mapped to service accounts by fingerprint or subject CN."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest

from bastion.auth import MtlsMapper, MtlsSettings, Unauthenticated
from tests.auth.support import self_signed


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
