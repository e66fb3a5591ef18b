"""The content guard (issue 6): schema validation (IN-3), result filtering (TC-4, AD-3),
tool poisoning scans (TC-1), pinning against rug pulls and shadowing (TC-2, TC-3) and
resource URI confinement (IN-4). Pure logic plus the pin store; the gateway wires it in.
"""

from __future__ import annotations

from bastion.guard.findings import Finding, FindingKind
from bastion.guard.pins import (
    PIN_FIELDS,
    Held,
    HoldReason,
    NotPending,
    PendingTool,
    PinEvent,
    PinStore,
    Review,
    pin_definition,
    tool_hash,
)
from bastion.guard.poison import PoisonScanner, is_poisoned
from bastion.guard.sanitise import (
    BLOCKED_TEXT,
    ImageMode,
    InjectionAction,
    Sanitised,
    Sanitiser,
)
from bastion.guard.schemas import CompiledSchema, SchemaUnusable, SchemaValidator, Violation
from bastion.guard.settings import (
    GuardSettings,
    PinSettings,
    SanitiseSettings,
    SchemaSettings,
    UriSettings,
    default_pin_db,
)
from bastion.guard.uris import ALWAYS_REFUSED, DEFAULT_SCHEMES, UriPolicy, UriRefused

__all__ = [  # noqa: RUF022 - plain sorted order, as tests/test_exported_members.py checks
    "ALWAYS_REFUSED",
    "BLOCKED_TEXT",
    "CompiledSchema",
    "DEFAULT_SCHEMES",
    "Finding",
    "FindingKind",
    "GuardSettings",
    "Held",
    "HoldReason",
    "ImageMode",
    "InjectionAction",
    "NotPending",
    "PIN_FIELDS",
    "PendingTool",
    "PinEvent",
    "PinSettings",
    "PinStore",
    "PoisonScanner",
    "Review",
    "SanitiseSettings",
    "Sanitised",
    "Sanitiser",
    "SchemaSettings",
    "SchemaUnusable",
    "SchemaValidator",
    "UriPolicy",
    "UriRefused",
    "UriSettings",
    "Violation",
    "default_pin_db",
    "is_poisoned",
    "pin_definition",
    "tool_hash",
]
