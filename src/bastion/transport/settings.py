"""The HTTP face's configuration sections: ``gateway.sessions`` (how long a 2025-11-25 session
lives and how many are kept, in all and per principal; SE-3, DS-3) and ``gateway.http`` (what
one client may send and hold: body size and time, idle keep-alive, connections; DS-1, DS-2).
The configuration and the transport's ``HttpSettings`` hold these same types, so they cannot
disagree."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

__all__ = ["HttpLimits", "SessionSettings"]

MiB = 1024 * 1024


class SessionSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """2025-11-25 sessions on the HTTP face (SE-3, DS-3, DS-4): how long one lives, how many
    are kept in all (``max_sessions``) and per principal (``max_sessions_per_principal``),
    and what their streams keep for resumption (``replay_*``). Over either session bound a
    session ends to make room, never one of a principal holding fewer than the one asking
    (see ``http_session_table``)."""

    idle_timeout: Annotated[float, Meta(gt=0.0, le=7 * 86400.0)] = 3600.0
    max_lifetime: Annotated[float, Meta(gt=0.0, le=30 * 86400.0)] = 86400.0
    max_sessions: Annotated[int, Meta(ge=1, le=1_000_000)] = 1024
    max_sessions_per_principal: Annotated[int, Meta(ge=1, le=1_000_000)] = 64
    # DS-4: bytes kept for Last-Event-ID resumption, per session and in all, and how long a
    # finished stream stays resumable (see ``http_replay``).
    replay_bytes: Annotated[int, Meta(ge=64 * 1024, le=1024 * MiB)] = 4 * MiB
    replay_bytes_total: Annotated[int, Meta(ge=64 * 1024, le=64 * 1024 * MiB)] = 128 * MiB
    replay_ttl: Annotated[float, Meta(gt=0.0, le=3600.0)] = 60.0


class HttpLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Bounds on what HTTP clients may send and hold (DS-1, DS-2).

    ``max_body``: bytes of one request body, checked against ``Content-Length`` before
    reading and while a chunked body streams in (413). ``body_timeout``: seconds to receive
    a whole body (408). ``keep_alive_timeout``: seconds an idle keep-alive connection is
    kept. ``max_connections``: open connections (and requests in flight) at once; past it
    new requests are answered 503. Over TLS a connection counts from its accept, handshake
    included, and one accepted past the cap is closed before its handshake (see
    ``http_tls_accept``). The process's open-file limit is raised to fit it at start (see
    ``http_run.fit_open_files``)."""

    max_body: Annotated[int, Meta(ge=1024, le=256 * MiB)] = 4 * MiB
    body_timeout: Annotated[float, Meta(gt=0.0, le=3600.0)] = 30.0
    keep_alive_timeout: Annotated[int, Meta(ge=1, le=3600)] = 15
    max_connections: Annotated[int, Meta(ge=1, le=1_000_000)] = 16_384
