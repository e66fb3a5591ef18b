"""The Authenticator (AU-4, AU-8, break-glass): the Authorization header as the only source,
scheme dispatch, the size cap, failure throttling, break-glass gating, and a fuzz test that
no header can raise anything but Unauthenticated."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.auth import Authenticator, AuthSettings, KeyStore, Throttled, Unauthenticated
from tests.auth.support import DEFAULT_JWKS, ISSUER, RESOURCE, FakeClock, make_token, self_signed

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


def build(tmp_path: Path, clock: FakeClock | None = None, **auth: Any) -> Authenticator:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_bytes(DEFAULT_JWKS)
    config: dict[str, Any] = {
        "resource": RESOURCE,
        "api_keys": {"db": str(tmp_path / "keys.db")},
        "oidc": {"issuer": ISSUER, "jwks_file": str(jwks_file)},
    }
    config.update(auth)
    authenticator = Authenticator.from_settings(
        msgspec.convert(config, AuthSettings),
        default_keys_db=tmp_path / "unused.db",
        clock=clock or FakeClock(),
    )
    _OPENED.append(authenticator)
    return authenticator


def key_store(tmp_path: Path) -> KeyStore:
    store = KeyStore(tmp_path / "keys.db", clock=lambda: NOW)
    _OPENED.append(store)
    return store


_OPENED: list[Authenticator | KeyStore] = []


@pytest.fixture(autouse=True)
def _close_what_the_test_opened() -> Iterator[None]:
    """Every authenticator and key store a test opened is closed after it (an unclosed
    SQLite connection is a ResourceWarning, an error under this suite's settings, on
    Python 3.13)."""
    yield
    _FUZZ.clear()
    while _OPENED:
        opened = _OPENED.pop()
        if isinstance(opened, KeyStore):
            opened.close()
        else:
            anyio.run(opened.aclose)


async def refusal(auth: Authenticator, header: str | None, **kw: Any) -> Unauthenticated:
    kw.setdefault("client_cert", None)
    kw.setdefault("peer", "10.0.0.1")
    kw.setdefault("now", NOW)
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(header, **kw)
    return caught.value


async def test_api_key_and_jwt_dispatch(tmp_path: Path) -> None:
    auth = build(tmp_path)
    record, key = key_store(tmp_path).create("ci", ["user"])
    p = await auth.authenticate(f"Bearer {key}", client_cert=None, peer=None, now=NOW)
    assert (p.id, p.credential_id, p.method, p.roles) == (
        "apikey:ci",
        f"apikey:{record.id}",
        "api-key",
        ("user",),
    )
    p = await auth.authenticate(f"bearer  {make_token()}", client_cert=None, peer=None, now=NOW)
    assert p.method == "jwt" and p.id == f"jwt:{ISSUER}#alice"


async def test_au2_missing_credential_is_not_presented(tmp_path: Path) -> None:
    refused = await refusal(build(tmp_path), None)
    assert (refused.reason, refused.presented) == ("missing", False)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("Basic dXNlcjpwYXNz", "unsupported-scheme"),
        ("Bearer", "malformed"),
        ("Bearer a b", "malformed"),
        ("Bearer tök", "malformed"),
        ("Token abc", "unsupported-scheme"),
    ],
)
async def test_au2_refused_credentials_are_presented(tmp_path: Path, header: str, why: str) -> None:
    refused = await refusal(build(tmp_path), header)
    assert (refused.reason, refused.presented) == (why, True)


async def test_au8_credential_size_is_capped_before_parsing(tmp_path: Path) -> None:
    auth = build(tmp_path, max_credential_bytes=1024)
    refused = await refusal(auth, "Bearer " + "a" * 1100)
    assert refused.reason == "credential-too-large"


async def test_au5_api_keys_can_be_disabled(tmp_path: Path) -> None:
    _, key = key_store(tmp_path).create("ci", ["user"])
    auth = build(tmp_path, api_keys={"enabled": False})
    assert (await refusal(auth, f"Bearer {key}")).reason == "api-keys-disabled"


async def test_jwt_refused_when_oidc_not_configured(tmp_path: Path) -> None:
    auth = build(tmp_path, oidc=None)
    assert (await refusal(auth, f"Bearer {make_token()}")).reason == "jwt-not-configured"


async def test_au8_failed_attempts_are_throttled_per_address(tmp_path: Path) -> None:
    clock = FakeClock()
    auth = build(tmp_path, clock, failed_auth={"per_address_per_minute": 3})
    bad = "Bearer bst_000000000000_" + "A" * 43
    for _ in range(3):
        assert (await refusal(auth, bad, peer="10.0.0.9")).reason == "unknown"
    throttled = await refusal(auth, bad, peer="10.0.0.9")
    assert isinstance(throttled, Throttled)
    assert throttled.reason == "throttled" and 0 < throttled.retry_after <= 20
    # Another address is not affected; missing credentials do not count.
    for _ in range(5):
        assert (await refusal(auth, None, peer="10.0.0.11")).reason == "missing"
    assert (await refusal(auth, bad, peer="10.0.0.11")).reason == "unknown"
    clock.advance(throttled.retry_after)
    assert (await refusal(auth, bad, peer="10.0.0.9")).reason == "unknown"
    assert isinstance(await refusal(auth, bad, peer="10.0.0.9"), Throttled)


async def test_au8_ds3_throttled_address_still_serves_a_valid_credential(tmp_path: Path) -> None:
    """AU-8 without the DS-3 side effect: bad guesses from a shared address (every client
    of a loopback deployment is 127.0.0.1) keep failing with 429, but never lock out a
    valid credential on it, and do not buy the guesser more attempts."""
    clock = FakeClock()
    auth = build(tmp_path, clock, failed_auth={"per_address_per_minute": 3})
    _, key = key_store(tmp_path).create("ci", ["user"])
    bad = "Bearer bst_000000000000_" + "A" * 43
    for _ in range(4):
        await refusal(auth, bad, peer="127.0.0.1")
    assert isinstance(await refusal(auth, bad, peer="127.0.0.1"), Throttled)
    good = await auth.authenticate(f"Bearer {key}", client_cert=None, peer="127.0.0.1", now=NOW)
    assert good.id == "apikey:ci"
    assert isinstance(await refusal(auth, bad, peer="127.0.0.1"), Throttled)
    # A good JWT is not refused either; one without a credential is still told to wait.
    assert await auth.authenticate(f"Bearer {make_token()}", client_cert=None,
                                   peer="127.0.0.1", now=NOW)  # fmt: skip
    assert isinstance(await refusal(auth, None, peer="127.0.0.1"), Throttled)


async def test_break_glass_refused_unless_enabled(tmp_path: Path) -> None:
    store = key_store(tmp_path)
    record, key = store.create("bg", ["admin"], break_glass=True, expires_in=900)
    refused = await refusal(build(tmp_path), f"Bearer {key}")
    assert refused.reason == "break-glass-disabled"
    assert refused.credential_id == f"apikey:{record.id}"
    assert store.get(record.id).last_used is None  # a refused use is not a use


async def test_break_glass_use_is_logged_and_marked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = key_store(tmp_path).create("bg", ["admin"], break_glass=True, expires_in=900)
    auth = build(tmp_path, break_glass={"enabled": True, "max_ttl": "15m"})
    with caplog.at_level(logging.WARNING, logger="bastion.auth"):
        p = await auth.authenticate(f"Bearer {key}", client_cert=None, peer="10.1.1.1", now=NOW)
    assert p.method == "break-glass" and p.roles == ("admin",)
    assert any(
        "break-glass" in r.getMessage() and "10.1.1.1" in r.getMessage() for r in caplog.records
    )
    assert key not in caplog.text


async def test_break_glass_longer_than_configured_max_is_refused(tmp_path: Path) -> None:
    _, key = key_store(tmp_path).create("bg", ["admin"], break_glass=True, expires_in=3600)
    auth = build(tmp_path, break_glass={"enabled": True, "max_ttl": "15m"})
    assert (await refusal(auth, f"Bearer {key}")).reason == "break-glass-ttl"


async def test_client_certificate_when_no_header(tmp_path: Path) -> None:
    _, _, der = self_signed(tmp_path, cn="ci-bot", ip=None)
    auth = build(
        tmp_path, mtls={"accounts": [{"name": "ci", "subject_cn": "ci-bot", "roles": ["service"]}]}
    )
    now = time.time()  # the certificates are valid for an hour from now
    p = await auth.authenticate(None, client_cert=der, peer="10.0.0.1", now=now)
    assert (p.id, p.method, p.roles) == ("mtls:ci", "mtls", ("service",))
    _, _, other = self_signed(tmp_path, cn="stranger", ip=None)
    refused = await refusal(auth, None, client_cert=other, now=now)
    assert (refused.reason, refused.presented) == ("unknown-certificate", True)
    expired = await refusal(auth, None, client_cert=der, now=now + 7200)
    assert (expired.reason, expired.presented) == ("expired-certificate", True)


async def test_revocation_takes_effect_on_the_next_request(tmp_path: Path) -> None:
    auth = build(tmp_path)
    cli = key_store(tmp_path)
    _, key = cli.create("ci", ["user"])
    assert await auth.authenticate(f"Bearer {key}", client_cert=None, peer=None, now=NOW)
    cli.revoke("ci")
    assert (await refusal(auth, f"Bearer {key}")).reason == "revoked"


_HEADER = st.one_of(
    st.text(max_size=300),
    st.from_regex(r"(?i)bearer +[A-Za-z0-9._~+/=-]{0,200}", fullmatch=True),
    st.builds(lambda s: "Bearer bst_" + s, st.text(alphabet="0123456789abcdef_-xyzA", max_size=70)),
    st.builds(
        lambda s: "Bearer eyJ" + s, st.text(alphabet="ABCDEFabcdef0123456789._-", max_size=300)
    ),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(header=_HEADER)
def test_fuzz_any_header_raises_only_unauthenticated(tmp_path: Path, header: str) -> None:
    auth = _FUZZ.get(tmp_path) or _FUZZ.setdefault(tmp_path, build(tmp_path))

    async def once() -> None:
        try:
            await auth.authenticate(header, client_cert=None, peer=None, now=NOW)
        except Unauthenticated:
            return
        raise AssertionError(f"accepted {header!r}")

    anyio.run(once)


_FUZZ: dict[Path, Authenticator] = {}
