"""Every bound of the workspace server in one frozen struct, with the reason for each default.

Size caps keep one answer well under the 4 MiB message cap of our transports even after
JSON escaping; count caps keep every in-memory table bounded (STYLE 12). Shared tables
also have a per-principal share (behind a gateway that names principals), so one principal
cannot fill what others need; anonymous callers have only the overall caps.
"""

from __future__ import annotations

import msgspec

__all__ = ["WorkspaceLimits"]


class WorkspaceLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_workspaces: int = 64
    # There is no delete tool, so a quarter per principal keeps room for three others.
    max_workspaces_per_principal: int = 16
    # A read answers with the content once; escaping can grow text up to 6x on the wire.
    max_read_bytes: int = 512 * 1024
    max_write_bytes: int = 1024 * 1024
    max_list_entries: int = 1000
    max_search_results: int = 200
    max_search_files: int = 5000  # files opened by one search
    max_search_file_bytes: int = 1024 * 1024  # larger files are skipped by search
    max_members: int = 32  # per workspace
    max_members_per_principal: int = 8  # a quarter of a workspace's member places
    max_locks: int = 256  # per workspace
    max_lock_seconds: float = 600.0
    default_lock_seconds: float = 60.0
    # A stateless (2026-07-28) member has no connection to close; it lapses when idle.
    member_idle_seconds: float = 1800.0
    change_log_size: int = 1000  # entries kept per workspace
    message_log_size: int = 100  # broadcasts kept per workspace
    max_message_chars: int = 4000
