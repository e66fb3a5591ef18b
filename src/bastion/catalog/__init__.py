"""The catalog: every upstream's tools, resources, templates and prompts under namespaced
names, with collisions rejected."""

from __future__ import annotations

from bastion.catalog.catalog import Catalog, Entry, ServerListing, build_catalog
from bastion.catalog.names import MAX_NAME, exposed_name, strip_uri_prefix

__all__ = [
    "MAX_NAME",
    "Catalog",
    "Entry",
    "ServerListing",
    "build_catalog",
    "exposed_name",
    "strip_uri_prefix",
]
