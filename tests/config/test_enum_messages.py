"""A value outside a field's allowed set is refused naming that field and what it allows.

Red team (SECURITY.md AU-6, INFO): ``algorithms: [HS256]`` was refused with the server
transport's choices (``expected one of "stdio", "http", "streamable-http"``): every
"Invalid enum value" was taken for ``servers.*.type``. Messages are compared whole.
"""

from __future__ import annotations

import pytest

from bastion.config import parse_config
from bastion.errors import ConfigError

ALGORITHMS = (
    '"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"'
)
OIDC = (
    "auth: {resource: 'https://gw.example.com/mcp', oidc: {issuer: 'https://idp', jwks_file: /j, "
)
TLS = "gateway: {tls: {cert_file: c, key_file: k, client_ca: ca, "


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            OIDC + "algorithms: [RS256, HS256]}}",
            f'auth.oidc.algorithms[1]: expected one of {ALGORITHMS}, got "HS256"',
        ),
        (
            OIDC + "algorithms: [none]}}",
            f'auth.oidc.algorithms[0]: expected one of {ALGORITHMS}, got "none"',
        ),
        (
            TLS + "client_cert: maybe}}",
            'gateway.tls.client_cert: expected one of "optional", "required", got "maybe"',
        ),
        (
            "guard: {sanitise: {injection_action: drop}}",
            'guard.sanitise.injection_action: expected one of "annotate", "block", "off", '
            'got "drop"',
        ),
        (
            "limits: {per_principal: {rate: 1, per: hour}}",
            'limits.per_principal.per: expected one of "second", "minute", got "hour"',
        ),
        (
            "servers: {s: {command: x, type: websocket}}",
            'servers.s.type: expected one of "stdio", "http", "streamable-http", got "websocket"',
        ),
    ],
    ids=["hs256", "none", "client_cert", "injection_action", "per", "transport"],
)
def test_au6_a_value_outside_an_enum_names_its_field_and_choices(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, {})
    assert str(info.value) == f"<string>: {message}"
