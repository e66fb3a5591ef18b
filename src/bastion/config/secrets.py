"""The credentials a configuration holds for its upstreams (UP-4, IN-5): what the gateway must
never hand back to a client, even when an upstream echoes it.

Each server's ``headers`` values (the whole value, and each word of it: the token of
``Authorization: Bearer <token>``), a stdio server's ``env`` values and the values of a
server URL's query (``?api_key=...``; a URL with user info does not load, as it would never
be sent). Then every value the loader substituted from a ``${VAR}`` into a server's fields
(``args``, ``command``, ``cwd``, ``url``, ``headers``, ``env``, the sandbox's), since that is
how a credential is kept out of the file: ``--api-key ${SEARCH_API_KEY}``. The loader hands
them to ``note_substituted``; a server's own are those found in its fields. Of a substituted
value, what is plainly not a credential is left out, so that ordinary text is not masked:
a filesystem path (``${HOME}/data``), a word or a name made of words (``production``,
``search-server``, ``api.example.com``), and a URL's host (its user info, path segments and
query values are each judged as a value); a value with spaces is judged word by word. The
result filter masks them exactly (``Sanitiser.known_secrets``, which ignores values shorter
than ``MIN_KNOWN_SECRET``, as the stderr filter and ``clean_reason`` do).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from bastion.config.model import Config, ServerConfig

__all__ = ["configured_secrets", "credential_parts", "note_substituted", "server_secrets"]

# Lowercase words joined by - _ . (a name, a host), one Capitalised word, or UPPER_CASE.
_WORD: Final = re.compile(r"[a-z]+(?:[-_.][a-z]+)*|[A-Z][a-z]+|[A-Z]+(?:_[A-Z]+)*")
_PATH_STARTS: Final = ("/", "~", "./", "../")
_QUERY_SEPARATORS: Final = re.compile(r"[&;=]")

_substituted: set[str] = set()  # every credential part of a value substituted into a server
_lock = threading.Lock()


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
    with _lock:
        substituted = tuple(_substituted)
    if substituted:
        texts = tuple(_texts(server))
        found.update(part for part in substituted if any(part in text for text in texts))
    found.discard("")
    return frozenset(found)


def note_substituted(values: Iterable[str]) -> None:
    """Remember the credential parts of ``values``, substituted from ``${VAR}`` into servers'
    fields, for ``server_secrets`` (process-wide: a configuration is loaded once)."""
    parts = {part for value in values for part in credential_parts(value)}
    with _lock:
        _substituted.update(parts)


def credential_parts(value: str) -> frozenset[str]:
    """What of ``value``, substituted from a ``${VAR}``, may be a credential: the value,
    unless it is a path or a word (see the module docstring); a URL's parts; each word of a
    value with spaces."""
    words = value.split()
    if len(words) != 1:
        return frozenset(part for word in words for part in credential_parts(word))
    value = words[0]
    if "://" in value:
        return _url_parts(value)
    if value.startswith(_PATH_STARTS) or _WORD.fullmatch(value):
        return frozenset()
    return frozenset({value})


def _url_parts(url: str) -> frozenset[str]:
    """A URL's user info, path segments, query names and values and fragment, each judged
    as a value, as written and unescaped; the whole URL if it does not parse."""
    try:
        parts = urlsplit(url)
        pieces = [parts.username or "", parts.password or ""]
    except ValueError:
        return frozenset({url})
    pieces += [*parts.path.split("/"), *_QUERY_SEPARATORS.split(parts.query), parts.fragment]
    found: set[str] = set()
    for piece in filter(None, pieces):  # each shorter than the URL: a URL in it ends too
        for form in {piece, unquote(piece)}:
            found.update(credential_parts(form))
    return frozenset(found)


def _texts(server: ServerConfig) -> Iterator[str]:
    """Every string of ``server``'s configuration a substituted value may have gone into."""
    yield from (server.command or "", *server.args, server.cwd or "", server.url or "")
    for mapping in (server.env, server.headers):
        yield from mapping.keys()
        yield from mapping.values()
    if server.sandbox is not None:
        yield from (*server.sandbox.paths, *server.sandbox.network)
