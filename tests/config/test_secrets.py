"""UP-4: the credentials a configuration gives its upstreams, which the gateway masks."""

from __future__ import annotations

from bastion.config.load import parse_config
from bastion.config.secrets import configured_secrets, server_secrets

CONFIG = """
servers:
  remote:
    url: "https://api.example.com/mcp?v=2&api_key=p%40ss-word-1"
    headers: {Authorization: "Bearer tok-123456789", X-Api-Key: "3a7bd3e2360a3d29"}
  local:
    command: server
    env: {API_TOKEN: "s3cr3t-value"}
"""


def test_up4_header_env_and_url_credentials_are_known() -> None:
    """UP-4: a header's whole value and its words, env values, a URL's query values."""
    known = configured_secrets(parse_config(CONFIG, {}))
    assert known >= {
        "Bearer tok-123456789",
        "tok-123456789",
        "3a7bd3e2360a3d29",
        "s3cr3t-value",
        "p%40ss-word-1",
        "p@ss-word-1",
    }


def test_up4_no_servers_no_credentials() -> None:
    assert configured_secrets(parse_config("servers: {}\n", {})) == frozenset()


def test_up4_a_credential_substituted_into_args_is_known() -> None:
    """Red-team w: ``args: [--api-key, "${SEARCH_API_KEY}"]`` came back unmasked in a tool's
    error and in /readyz, while the same value through ``env`` was [REDACTED]."""
    config = """
servers:
  search:
    command: search-server
    args: [--api-key, "${SEARCH_API_KEY}", "--token=${OTHER_TOKEN}"]
"""
    environ = {"SEARCH_API_KEY": "sr-live-7f3a9c2e41d8b6a0", "OTHER_TOKEN": "Zq81-xy-p0o9"}
    known = configured_secrets(parse_config(config, environ))
    assert {"sr-live-7f3a9c2e41d8b6a0", "Zq81-xy-p0o9"} <= known


def test_up4_a_substituted_url_masks_its_secret_parts_not_its_host() -> None:
    config = """
servers:
  hook:
    url: "${HOOK_URL}"
"""
    url = "https://hooks.example.com/services/T00A1/B00B2/aBcD3fGh5jKl7mNp?sig=Q9w8E7r6T5y4"
    known = configured_secrets(parse_config(config, {"HOOK_URL": url}))
    assert {"aBcD3fGh5jKl7mNp", "Q9w8E7r6T5y4"} <= known
    assert not {url, "hooks.example.com", "services"} & known


def test_up4_substituted_paths_and_words_are_not_masked() -> None:
    """A path, a word or a name from ``${VAR}`` is no credential: masking it would redact
    ordinary text in every result (``production``, a home directory)."""
    config = """
servers:
  local:
    command: "${TOOLS}/bin/server"
    args: [--mode, "${MODE}", --name, "${NAME}", --data, "${DATA}", --host, "${HOST}"]
    cwd: "${DATA}"
"""
    environ = {
        "TOOLS": "/opt/example-tools",
        "MODE": "production",
        "NAME": "search-server",
        "DATA": "/home/alice/projects",
        "HOST": "api.example.com",
    }
    assert configured_secrets(parse_config(config, environ)) == frozenset()


def test_up4_each_server_knows_only_the_substituted_values_in_its_fields() -> None:
    config = """
servers:
  a: {command: a, args: ["${A_KEY}"]}
  b: {command: b, args: [--verbose]}
"""
    parsed = parse_config(config, {"A_KEY": "k3y-for-a-only-91"})
    assert "k3y-for-a-only-91" in server_secrets(parsed.servers["a"])
    assert "k3y-for-a-only-91" not in server_secrets(parsed.servers["b"])
