"""The content hash of a pinned definition (TC-2): SHA-256 of its canonical JSON.

Canonical means sorted keys and one spelling per number: JSON has a single number type, so
``1`` and ``1.0`` (and ``0`` and ``-0.0``) are the same value, which an upstream, or a JSON
library on its way, may write either way; every float with an integral value is hashed as
that integer (``canonical``), so re-serialising ``"minimum": 1`` as ``1.0`` is no change.
A definition without such a float hashes exactly as pins hashed before numbers were
canonical; ``legacy_digest`` is that earlier hash of one that has them, so a pin stored
then is still recognised (and re-keyed by the store) instead of held as changed.
"""

from __future__ import annotations

import hashlib
import math
from typing import Final

import msgspec

from bastion._types import JSONObject, JSONValue

__all__ = ["canonical", "digest", "legacy_digest"]

_ENCODER: Final = msgspec.json.Encoder(order="sorted")


def canonical(value: JSONValue) -> JSONValue:
    """``value`` with every integral float as an int; ``value`` itself when it has none."""
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, dict):
        items = {key: canonical(child) for key, child in value.items()}
        return value if all(items[key] is child for key, child in value.items()) else items
    if isinstance(value, list):
        children = [canonical(child) for child in value]
        same = all(new is old for new, old in zip(children, value, strict=True))
        return value if same else children
    return value


def digest(definition: JSONObject) -> str:
    """SHA-256 (hex) of the canonical JSON of ``definition``."""
    return _sha256(canonical(definition))


def legacy_digest(definition: JSONObject) -> str | None:
    """The hash pins had for ``definition`` before numbers were canonical, when it differs
    from ``digest`` (the definition has an integral float); else None."""
    return None if canonical(definition) is definition else _sha256(definition)


def _sha256(value: JSONValue) -> str:
    return hashlib.sha256(_ENCODER.encode(value)).hexdigest()
