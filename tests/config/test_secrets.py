"""UP-4: the credentials a configuration gives its upstreams, which the gateway masks."""

from __future__ import annotations

from bastion.config.load import parse_config
from bastion.config.secrets import configured_secrets

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
