"""The merged view of every upstream's tools, resources, templates and prompts.

``build_catalog`` takes each server's listings in configuration order and returns what
clients see. A name (or URI) exposed by more than one server is dropped from all of them
and reported in ``conflicts``: never shadowed, since first-come-wins would let a later
server's tool impersonate an earlier one (SECURITY.md TC-3). For the same reason a bare
server's resource or template in another server's namespace (``b+note://{id}`` beside server
``b``) is left out, logged, and so is a template the gateway cannot match (DS-4).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bastion._types import JSONObject
from bastion.catalog.names import carried_prefix, exposed_name, uri_prefix
from bastion.server.uri_template import TemplateError, compile_template

__all__ = ["Catalog", "Entry", "ServerListing", "build_catalog"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServerListing:
    server: str
    prefix: str  # for tool and prompt names; "" exposes bare names
    listings: dict[str, list[JSONObject]]


@dataclass(frozen=True, slots=True)
class Entry:
    server: str
    original: str  # the upstream's own name or URI (template)
    exposed: str
    item: JSONObject  # the upstream's definition, with the exposed name or URI
    uri_prefix: str = ""  # how its server's resource URIs are exposed (as in ``uri_prefixes``)


@dataclass
class Catalog:
    tools: dict[str, Entry] = field(default_factory=dict)
    prompts: dict[str, Entry] = field(default_factory=dict)
    resources: dict[str, Entry] = field(default_factory=dict)
    templates: dict[str, Entry] = field(default_factory=dict)
    uri_prefixes: dict[str, str] = field(default_factory=dict)  # server -> URI prefix
    conflicts: list[str] = field(default_factory=list)


def build_catalog(servers: Sequence[ServerListing]) -> Catalog:
    catalog = Catalog()
    for server in servers:
        catalog.uri_prefixes[server.server] = uri_prefix(server.server, server.prefix == "")
    kinds = (
        ("tools", "name", catalog.tools, lambda s: s.prefix, exposed_name),
        ("prompts", "name", catalog.prompts, lambda s: s.prefix, exposed_name),
        (
            "resources",
            "uri",
            catalog.resources,
            lambda s: catalog.uri_prefixes[s.server],
            lambda p, v: p + v,
        ),
        (
            "resourceTemplates",
            "uriTemplate",
            catalog.templates,
            lambda s: catalog.uri_prefixes[s.server],
            lambda p, v: p + v,
        ),
    )
    for kind, key, target, prefix_of, expose in kinds:
        entries: list[Entry] = []
        for server in servers:
            for item in server.listings.get(kind, []):
                original = item.get(key)
                if not isinstance(original, str) or not original:
                    continue
                exposed = expose(prefix_of(server), original)
                if key != "name" and _refused(catalog, server.server, kind, original, exposed):
                    continue
                shown = {**item, key: exposed}
                uris = catalog.uri_prefixes[server.server]
                entries.append(Entry(server.server, original, exposed, shown, uris))
        counts = Counter(e.exposed for e in entries)
        for entry in entries:
            if counts[entry.exposed] > 1:
                if entry.exposed not in catalog.conflicts:
                    catalog.conflicts.append(entry.exposed)
                    logger.error(
                        "%s %r is offered by more than one server; hidden from all",
                        kind,
                        entry.exposed,
                    )
                continue
            target[entry.exposed] = entry
    return catalog


def _refused(catalog: Catalog, server: str, kind: str, original: str, exposed: str) -> bool:
    """Whether ``server``'s resource or template is left out (logged): a bare server's in
    another's namespace (TC-3), or a template that cannot be matched (DS-4)."""
    if not catalog.uri_prefixes[server]:
        carried = carried_prefix(original)
        if carried and carried in catalog.uri_prefixes.values():
            problem = "in another server's namespace"
            logger.error("bare server %s offers %s %.200r %s", server, kind, original, problem)
            return True
    if kind == "resourceTemplates":
        try:
            compile_template(exposed)
        except TemplateError as exc:
            logger.warning("server %s offers resource template %.200r: %s", server, original, exc)
            return True
    return False
