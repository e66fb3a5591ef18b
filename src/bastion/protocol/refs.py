"""The reference a ``completion/complete`` request completes an argument for (AZ-1).

One reading serves both the policy (what the request is about) and the gateway's router
(which upstream gets it), so they can never disagree: the ref must be an object whose
``type`` is exactly ``ref/prompt`` with a string ``name`` or exactly ``ref/resource`` with
a string ``uri``, as in both schema revisions; anything else (``ref/Resource``, a missing
type, ``"ref/prompt "``, a ref without its name) is -32602, never a guess.
"""

from __future__ import annotations

from typing import Final, Literal

from bastion._types import JSONValue
from bastion.errors import InvalidParams

__all__ = ["RefKind", "completion_ref"]

RefKind = Literal["prompt", "resource"]

# ref ``type`` -> (what it names, the field holding the name)
_REFS: Final[dict[str, tuple[RefKind, str]]] = {
    "ref/prompt": ("prompt", "name"),
    "ref/resource": ("resource", "uri"),
}


def completion_ref(ref: JSONValue) -> tuple[RefKind, str]:
    """The kind of ``ref`` and the prompt name or resource URI it names.

    Raises:
        InvalidParams: ``ref`` is not one of the two kinds, or lacks its name or URI.
    """
    ref_type = ref.get("type") if isinstance(ref, dict) else None
    found = _REFS.get(ref_type) if isinstance(ref_type, str) else None
    if found is None:
        raise InvalidParams("ref: type is not exactly ref/prompt or ref/resource")
    kind, field = found
    name = ref.get(field)
    if not isinstance(name, str):
        raise InvalidParams(f"ref: {ref_type} without a string {field}")
    return kind, name
