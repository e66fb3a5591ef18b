"""What the guard reports: one typed ``Finding`` per problem, for held tools and the audit log.

A finding names its ``kind``, the JSON path of the field it was found in (``$.inputSchema.
properties.path.description``) and a short ``excerpt`` with hidden characters escaped. An
excerpt never carries a masked secret: the result filter reports counts, not matches.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

__all__ = ["Finding", "FindingKind"]

FindingKind: TypeAlias = Literal[
    # tool, prompt and resource definitions (TC-1, TC-3)
    "hidden-instruction",
    "sensitive-file",
    "invisible-character",
    "exfiltration",
    "cross-server-reference",
    "oversized",
    # results (TC-4)
    "secret",
    "pii",
    "injection",
    "truncated",
    "remote-image",  # an image whose URL could carry data out when rendered (TC-4)
    "context-request",  # a sampling request asking for the client's context (TC-4)
]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    kind: FindingKind
    path: str
    excerpt: str = ""
