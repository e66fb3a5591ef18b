"""What of an upstream's result crosses the gateway: not the fields of its protocol era's
envelope (``resultType``, ``ttlMs``, ``cacheScope``: the client connection sets those, in
the client's era), nor the upstream's identity in ``_meta`` (the client talks to Bastion)."""

from __future__ import annotations

from typing import Final

from bastion._types import JSONObject
from bastion.protocol.versions import META_SERVER_INFO

__all__ = ["strip_era_fields"]

_ERA_FIELDS: Final = ("resultType", "ttlMs", "cacheScope")


def strip_era_fields(result: JSONObject) -> JSONObject:
    """``result`` (changed in place) without its era's envelope fields and server identity."""
    for key in _ERA_FIELDS:
        result.pop(key, None)
    meta = result.get("_meta")
    if isinstance(meta, dict) and META_SERVER_INFO in meta:
        meta = {k: v for k, v in meta.items() if k != META_SERVER_INFO}
        if meta:
            result["_meta"] = meta
        else:
            del result["_meta"]
    return result
