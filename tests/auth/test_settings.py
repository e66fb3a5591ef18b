"""The auth: section: defaults, and the checks that keep AU-6/AU-7 unconfigurable away."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bastion.auth import AuthSettings, OidcSettings, parse_duration

OIDC = {"issuer": "https://idp.example.com", "jwks_url": "https://idp.example.com/jwks"}


def auth(**fields: Any) -> AuthSettings:
    return msgspec.convert({"resource": "https://gw.example.com/mcp", **fields}, AuthSettings)


def test_defaults() -> None:
    s = auth(oidc=OIDC)
    assert s.api_keys.enabled and s.api_keys.db is None
    assert s.oidc is not None and s.oidc.algorithms == ["RS256", "ES256"]
    assert (s.oidc.leeway, s.oidc.jwks_ttl, s.oidc.roles_claim) == (30, 300, "roles")
    assert s.audience == "https://gw.example.com/mcp"
    assert s.effective_authorization_servers == ("https://idp.example.com",)
    assert not s.break_glass.enabled and s.break_glass.max_ttl_seconds == 3600
    assert s.max_credential_bytes == 8192 and s.failed_auth.per_address_per_minute == 30


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512", "RS1", "rs256"])
def test_au6_algorithms_outside_the_allow_list_cannot_be_configured(alg: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**OIDC, "algorithms": [alg]}, OidcSettings)


@pytest.mark.parametrize("leeway", [-1, 61, 3600])
def test_au6_leeway_is_at_most_60(leeway: int) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**OIDC, "leeway": leeway}, OidcSettings)


def test_au7_exactly_one_jwks_source() -> None:
    with pytest.raises(msgspec.ValidationError, match="exactly one"):
        msgspec.convert({"issuer": "https://i"}, OidcSettings)
    with pytest.raises(msgspec.ValidationError, match="exactly one"):
        msgspec.convert({**OIDC, "jwks_file": "/x"}, OidcSettings)


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example.com/j",
        "ftp://x/j",
        "https://user:pw@idp/j",
        "https:///j",
        "file:///etc/passwd",
    ],
)
def test_au7_jwks_url_must_be_https(url: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"issuer": "https://i", "jwks_url": url}, OidcSettings)


def test_au7_ds2_jwks_refresh_interval_below_the_fetch_timeout_is_refused() -> None:
    """AU-7, DS-2: with a jwks_url, a refresh interval shorter than the 5 s fetch timeout is
    a configuration error that names the field; a local jwks_file has no such timeout."""
    with pytest.raises(msgspec.ValidationError, match=r"jwks_refresh_interval.*at least 5"):
        msgspec.convert({**OIDC, "jwks_refresh_interval": 4}, OidcSettings)
    assert msgspec.convert({**OIDC, "jwks_refresh_interval": 5}, OidcSettings)
    local = {"issuer": OIDC["issuer"], "jwks_file": "/etc/jwks.json", "jwks_refresh_interval": 1}
    assert msgspec.convert(local, OidcSettings).jwks_refresh_interval == 1


def test_unknown_fields_and_bad_resource_are_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        auth(oidc={**OIDC, "insecure_relaxed_audience_validation": True})
    with pytest.raises(msgspec.ValidationError):
        auth(resource="https://gw.example.com/mcp#x")
    with pytest.raises(msgspec.ValidationError, match="break_glass"):
        auth(break_glass={"max_ttl": "2d"})


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "15m", "12h", "30d")] == [
        90,
        90,
        900,
        43200,
        2592000,
    ]
    for bad in ("", "1y", "-5m", "1.5h", "m"):
        with pytest.raises(ValueError):
            parse_duration(bad)
