"""The ``guard:`` configuration section: schema validation, result filtering, pinning, URIs.

Frozen msgspec Structs that refuse unknown fields, so a typo is an error, not a silently
disabled protection. Every protection is on by default. ``default_pin_db`` places the pin
database under ``$XDG_STATE_HOME/bastion/`` (``~/.local/state``), from an environ mapping
the caller passes: library code never reads ``os.environ``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from bastion._paths import state_dir
from bastion.guard.uris import ALWAYS_REFUSED, DEFAULT_SCHEMES

__all__ = [
    "GuardSettings",
    "PinSettings",
    "SanitiseSettings",
    "SchemaSettings",
    "UriSettings",
    "default_pin_db",
]


# A DNS name, or "*." and one: what an image URL's host is compared with, exactly.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_IMAGE_HOST = re.compile(rf"(?i)(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}")


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class SchemaSettings(_Section, frozen=True):
    enabled: bool = True  # validate tools/call arguments (and structuredContent) - IN-3
    reject_unknown_fields: bool = True
    validate_output: bool = True
    max_schema_bytes: Annotated[int, Meta(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024


class SanitiseSettings(_Section, frozen=True):
    """TC-4. ``remote_images``: which remote Markdown/HTML images are replaced by a marker
    (``remove-with-data``: those whose URL carries data; ``remove``: all; ``keep``: none);
    images from ``image_hosts`` (``cdn.example.com``, or ``*.example.com`` for its
    subdomains) stay."""

    enabled: bool = True  # filter results, resource contents and prompts - TC-4
    mask_secrets: bool = True
    strip_invisible: bool = True
    pii_patterns: tuple[Annotated[str, Meta(max_length=1000)], ...] = ()
    max_result_chars: Annotated[int, Meta(ge=1024)] = 1024 * 1024
    injection_action: Literal["annotate", "block", "off"] = "annotate"
    remote_images: Literal["remove-with-data", "remove", "keep"] = "remove-with-data"
    image_hosts: tuple[Annotated[str, Meta(max_length=253)], ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.pii_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid pii pattern: {exc}") from None
        bad = [host for host in self.image_hosts if not _IMAGE_HOST.fullmatch(host)]
        if bad:
            raise ValueError(f"image_hosts must be host names or *.<host name>: {bad}")


class PinSettings(_Section, frozen=True):
    enabled: bool = True  # TC-2, TC-3
    trust_on_first_use: bool = True
    hold_poisoned: bool = True
    db_path: str | None = None  # None: default_pin_db(environ)


class UriSettings(_Section, frozen=True):
    """IN-4. ``file_roots``: absolute; with none, every ``file:`` URI is refused. ``schemes``:
    the allow-list; unset, it is ``file`` and ``workspace`` when roots are configured, and
    otherwise every scheme that cannot fetch (those of ``ALWAYS_REFUSED`` never pass)."""

    schemes: tuple[str, ...] | None = None
    file_roots: tuple[str, ...] = ()

    def allowed_schemes(self) -> tuple[str, ...] | None:
        """The allow-list to enforce; ``None``: any scheme that cannot fetch."""
        if self.schemes is not None:
            return self.schemes
        return DEFAULT_SCHEMES if self.file_roots else None

    def __post_init__(self) -> None:
        bad = sorted({s.lower() for s in self.schemes or ()} & ALWAYS_REFUSED)
        if bad:
            raise ValueError(f"schemes that fetch cannot be allowed: {bad}")
        if any(not os.path.isabs(root) for root in self.file_roots):
            raise ValueError("file_roots must be absolute paths")


class GuardSettings(_Section, frozen=True):
    schemas: SchemaSettings = SchemaSettings()
    sanitise: SanitiseSettings = SanitiseSettings()
    pins: PinSettings = PinSettings()
    uris: UriSettings = UriSettings()


def default_pin_db(environ: Mapping[str, str], *, home: Path | None = None) -> Path:
    """``$XDG_STATE_HOME/bastion/pins.db``, or ``~/.local/state/bastion/pins.db`` when the
    variable is unset or relative (the XDG spec says to ignore a relative value)."""
    return state_dir(environ, home=home) / "pins.db"
