"""RFC 9728 metadata (AU-3) and the WWW-Authenticate challenge (AU-2)."""

from __future__ import annotations

import json

import msgspec
import pytest

from bastion.auth import (
    AuthSettings,
    metadata_paths,
    metadata_url,
    protected_resource_metadata,
    www_authenticate,
)


def test_au3_metadata_document() -> None:
    settings = msgspec.convert(
        {
            "resource": "https://gw.example.com/mcp",
            "oidc": {"issuer": "https://idp.example.com", "jwks_url": "https://idp.example.com/j"},
            "scopes_supported": ["mcp:tools"],
        },
        AuthSettings,
    )
    document = json.loads(protected_resource_metadata(settings))
    assert document == {
        "resource": "https://gw.example.com/mcp",
        "authorization_servers": ["https://idp.example.com"],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["mcp:tools"],
    }


def test_au3_configured_authorization_servers_win_and_scopes_are_optional() -> None:
    settings = AuthSettings(
        resource="https://gw.example.com/mcp", authorization_servers=["https://as.example.com"]
    )
    document = json.loads(protected_resource_metadata(settings))
    assert document["authorization_servers"] == ["https://as.example.com"]
    assert "scopes_supported" not in document
    assert document["bearer_methods_supported"] == ["header"]  # never query (AU-4)


def test_au3_well_known_paths() -> None:
    assert metadata_url("https://gw.example.com/mcp") == (
        "https://gw.example.com/.well-known/oauth-protected-resource/mcp"
    )
    assert metadata_paths("https://gw.example.com/mcp") == (
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    )
    assert metadata_paths("https://gw.example.com") == ("/.well-known/oauth-protected-resource",)


def test_au2_challenges() -> None:
    url = "https://gw.example.com/.well-known/oauth-protected-resource/mcp"
    assert www_authenticate(url) == f'Bearer resource_metadata="{url}"'
    assert www_authenticate(url, error="invalid_token") == (
        f'Bearer resource_metadata="{url}", error="invalid_token"'
    )
    assert www_authenticate(url, error="insufficient_scope", scope="mcp:admin") == (
        f'Bearer resource_metadata="{url}", error="insufficient_scope", scope="mcp:admin"'
    )


@pytest.mark.parametrize("bad", ['a"b', "a\\b", "a\r\nSet-Cookie: x", "a\x00"])
def test_challenge_refuses_values_that_would_break_the_header(bad: str) -> None:
    with pytest.raises(ValueError):
        www_authenticate(bad)
    with pytest.raises(ValueError):
        www_authenticate("https://gw/x", scope=bad)
