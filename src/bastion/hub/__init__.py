"""The hub's registry and discovery: running instances announce themselves in a per-user
directory, and ``Discovery`` keeps the list of those that answer."""

from __future__ import annotations

from bastion.hub.discovery import Discovery
from bastion.hub.liveness import McpPinger, Pinger
from bastion.hub.registry import (
    InstanceRecord,
    default_registry_dir,
    ensure_registry_dir,
    is_loopback_url,
    read_record,
    registered,
    remove_record,
    write_record,
)
from bastion.hub.tracker import InstanceState, Transition

__all__ = [
    "Discovery",
    "InstanceRecord",
    "InstanceState",
    "McpPinger",
    "Pinger",
    "Transition",
    "default_registry_dir",
    "ensure_registry_dir",
    "is_loopback_url",
    "read_record",
    "registered",
    "remove_record",
    "write_record",
]
