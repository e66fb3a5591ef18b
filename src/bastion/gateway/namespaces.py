"""Which upstream a resource URI belongs to (TC-3).

Every upstream but a bare one (``prefix: ""``) exposes its resource URIs and templates
under its own ``<server-scheme>+`` (``catalog.names``), so a URI that carries one (its
scheme compared without case) is in that server's namespace, whether or not the server is
up; a URI that carries none is in the bare servers' namespace, ``""``. An upstream's
resources and templates answer reads, subscriptions and update notifications only in its
own namespace: a bare server's ``{+u}`` never answers ``b+note://x``, nor does its
``b+note://{id}`` answer anything. Two servers whose schemes collide (``Notes``, ``notes``)
are refused when the configuration loads, and the hub names its instances apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from bastion.catalog import Catalog
from bastion.catalog.names import carried_prefix, uri_prefix
from bastion.config.model import ServerConfig

__all__ = ["UpstreamNamespaces"]

logger = logging.getLogger(__name__)


class UpstreamNamespaces:
    """The namespaces of ``servers`` (the live mapping of running upstreams, which mounts
    change) and of the entries of the current ``catalog()``; a ``registry.Namespaces``."""

    def __init__(self, servers: Mapping[str, ServerConfig], catalog: Callable[[], Catalog]):
        self._servers = servers
        self._catalog = catalog
        self._seen: tuple[tuple[str, ServerConfig], ...] = ()
        self._owners: dict[str, str] = {}  # "<server-scheme>+" -> server

    def _prefixes(self) -> dict[str, str]:
        """Each namespace's server: rebuilt when the servers change (a mount)."""
        seen = tuple(self._servers.items())
        if seen != self._seen:
            self._seen = seen
            self._owners = {uri_prefix(name, False): name for name, s in seen if s.prefix != ""}
        return self._owners

    def of_uri(self, uri: str) -> str:
        """``<server-scheme>+`` when ``uri`` carries a (not bare) server's, else ``""``."""
        prefix = carried_prefix(uri)
        return prefix if prefix and prefix in self._prefixes() else ""

    def of_server(self, server: str) -> str:
        return self._catalog().uri_prefixes.get(server, "")

    def of_resource(self, uri: str) -> str | None:
        entry = self._catalog().resources.get(uri)
        return None if entry is None else self.of_server(entry.server)

    def of_template(self, uri_template: str) -> str | None:
        entry = self._catalog().templates.get(uri_template)
        return None if entry is None else self.of_server(entry.server)

    def route(self, uri: str) -> tuple[str, str] | None:
        """The server a subscription to ``uri`` goes to, and the URI it knows: the owner of
        the resource ``uri`` names, else the server whose namespace ``uri`` is in, else the
        only bare server (with several, none: which one offers it cannot be told)."""
        catalog = self._catalog()
        namespace = self.of_uri(uri)
        entry = catalog.resources.get(uri)
        if entry is not None and self.of_server(entry.server) == namespace:
            return entry.server, entry.original
        if namespace:
            return self._prefixes()[namespace], uri[len(namespace) :]
        bare = [name for name, server in self._servers.items() if server.prefix == ""]
        return (bare[0], uri) if len(bare) == 1 else None

    def updated(self, server: str, uri: str) -> str | None:
        """The URI clients know for ``server``'s update notification about its ``uri``, or
        None (logged) when that would be in another server's namespace."""
        config = self._servers.get(server)
        if config is None:
            return None  # unmounted meanwhile
        prefix = uri_prefix(server, config.prefix == "")
        exposed = prefix + uri
        if self.of_uri(exposed) != prefix:
            logger.warning("upstream %s announced an update in another's namespace", server)
            return None
        return exposed
