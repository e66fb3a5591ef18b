"""The credentials a configuration holds for its upstreams (UP-4): what the gateway must never
hand back to a client, even when an upstream echoes it.

Each server's ``headers`` values (the whole value, and each word of it: the token of
``Authorization: Bearer <token>``), a stdio server's ``env`` values and the values of a
server URL's query (``?api_key=...``; a URL with user info does not load, as it would never
be sent). The result filter masks them exactly (``Sanitiser.known_secrets``, which ignores
values shorter than ``MIN_KNOWN_SECRET``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlsplit

from bastion.config.model import Config, ServerConfig

__all__ = ["configured_secrets", "server_secrets"]


def configured_secrets(config: Config) -> frozenset[str]:
    """Every credential value ``config`` gives its servers (see the module docstring)."""
    return frozenset(
        value for server in config.servers.values() for value in server_secrets(server)
    )


def server_secrets(server: ServerConfig) -> frozenset[str]:
    """The credential values one server's configuration holds (see the module docstring)."""
    found: set[str] = set()
    for value in server.headers.values():
        found.add(value.strip())
        found.update(value.split())
    found.update(server.env.values())
    if server.url is not None:
        for _name, value in parse_qsl(urlsplit(server.url).query):
            found.add(value)
            found.add(quote(value, safe=""))  # as written in the URL, if it was escaped
    found.discard("")
    return frozenset(found)
