"""The completion values a caller may be shown (AZ-2).

A value completing the one variable of a resource template names a resource: the URI the
template makes of it. When this request's caller may be shown only some resources
(``Call.shown``: a gateway's policy decides), a value whose URI the caller may not read is
dropped, so a completion cannot list what the policy keeps from the caller (``.env`` beside
``readme.txt``). Only the spec's first ``MAX_VALUES`` values are looked at, and the answer's
``total`` becomes the number kept (or is left out while more follow), so it counts nothing
withheld. A template with several variables, or with an expression other than ``{name}`` and
``{+name}`` (RFC 6570 simple and reserved expansion, the forms ``ServerApp`` matches), and a
ref that is not one of the app's templates, are answered as the completion says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import quote

from bastion._types import JSONObject
from bastion.server.registry import TemplateEntry
from bastion.session.peer import Call

__all__ = ["MAX_VALUES", "shown_values"]

MAX_VALUES: Final = 100  # the most values a completion may carry (both schema revisions)
_EXPRESSION: Final = re.compile(r"\{([^{}]*)\}")
_VARIABLE: Final = re.compile(r"(\+?)[A-Za-z0-9_]+")
_ESCAPE: Final = re.compile(r"(%[0-9A-Fa-f]{2})")
_RESERVED: Final = ":/?#[]@!$&'()*+,;="  # RFC 3986 gen-delims and sub-delims


def shown_values(
    completion: JSONObject, ref: JSONObject, templates: Sequence[TemplateEntry], call: Call
) -> JSONObject:
    """``completion`` without the values naming a resource ``call``'s caller may not read."""
    uri = ref.get("uri") if ref.get("type") == "ref/resource" else None
    expand = _expander(uri, templates) if isinstance(uri, str) else None
    values = completion.get("values")
    if expand is None or not isinstance(values, list):
        return completion
    shown = call.shown("resource")
    if shown is None:
        return completion
    kept = [v for v in values[:MAX_VALUES] if isinstance(v, str) and shown(expand(v))]
    filtered = {key: value for key, value in completion.items() if key != "total"}
    filtered["values"] = kept
    if completion.get("hasMore") is True or len(values) > MAX_VALUES:
        filtered["hasMore"] = True
    else:
        filtered["total"] = len(kept)
    return filtered


def _expander(uri: str, templates: Sequence[TemplateEntry]) -> Callable[[str], str] | None:
    """How a value becomes a URI of template ``uri``: None unless ``uri`` is one of
    ``templates`` with exactly one expression, of one variable, simple or reserved."""
    if not any(entry.template.uriTemplate == uri for entry in templates):
        return None
    expressions = list(_EXPRESSION.finditer(uri))
    if len(expressions) != 1:
        return None
    expression = expressions[0]
    variable = _VARIABLE.fullmatch(expression.group(1))
    if variable is None:
        return None
    encode = _reserved if variable.group(1) else _simple
    head, tail = uri[: expression.start()], uri[expression.end() :]
    return lambda value: head + encode(value) + tail


def _simple(value: str) -> str:
    """RFC 6570 simple expansion: everything but the unreserved characters escaped."""
    return quote(value, safe="")


def _reserved(value: str) -> str:
    """RFC 6570 reserved expansion (``{+name}``): reserved characters and escapes kept."""
    parts = _ESCAPE.split(value)
    return "".join(p if i % 2 else quote(p, safe=_RESERVED) for i, p in enumerate(parts))
