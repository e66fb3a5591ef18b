"""What a client is shown of an upstream's listed definitions (IN-5, TC-4, UP-4).

An upstream's tools, prompts, resources and templates reach every client that may list them,
so their text is filtered like a result's, once per catalog rebuild rather than per request.
``ListingFilter.definitions`` takes one server's list of one kind and returns it as clients
may see it: every string under a ``title`` or ``description`` key, at any depth (the
definition's own, its ``annotations``', a prompt argument's, each subschema's of
``inputSchema``/``outputSchema``, ``_meta``'s), has the gateway's own configured upstream
credentials masked (always, whatever ``mask_secrets`` says) and, with result filtering on,
secrets and the configured PII patterns masked and invisible characters stripped, as in a
result. Nothing else is rewritten: names, URIs, schema keywords and values identify or
constrain something, and a mask there would change what the definition means. So a
definition that still holds one of the gateway's credentials anywhere (its name, a URI, an
``enum`` value, an object key) is left out of the list instead. Prompt injection in a
definition is the poison screen's concern (TC-1), not this filter's; descriptions are never
wrapped or cut.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from bastion._types import JSONObject, JSONValue
from bastion.guard._text_filter import TextFilter, Walk

__all__ = ["FilteredListing", "ListingFilter"]

TEXT_KEYS: Final = frozenset({"title", "description"})


@dataclass(frozen=True, slots=True)
class FilteredListing:
    """The definitions to show, the number of findings in them by kind (``secret``,
    ``pii``, ``invisible-character``), and the positions (in the input) of the definitions
    left out because they hold one of the gateway's credentials where it cannot be masked."""

    items: list[JSONObject]
    findings: Counter[str] = field(default_factory=Counter)
    left_out: tuple[int, ...] = ()


class ListingFilter(TextFilter):
    """One configured filter of listed definitions; safe to share between threads."""

    def __init__(
        self,
        *,
        known_secrets: Iterable[str],
        mask_secrets: bool = True,
        pii_patterns: Iterable[str] = (),
        strip_invisible: bool = True,
    ) -> None:
        """Raises:
        re.error: a PII pattern does not compile.
        """
        super().__init__(
            mask_secrets=mask_secrets,
            pii_patterns=pii_patterns,
            strip_invisible=strip_invisible,
            injection_action="off",
            known_secrets=known_secrets,
        )

    def definitions(self, items: list[JSONObject]) -> FilteredListing:
        """``items`` (definitions of one kind) as a client may see them; an unchanged
        definition comes back as the very same object."""
        kept: list[JSONObject] = []
        findings: Counter[str] = Counter()
        left_out: list[int] = []
        for index, item in enumerate(items):
            walk = Walk(self._max)
            cleaned = self._texts(item, walk)
            if self._known_values and self._holds_anywhere(cleaned):
                left_out.append(index)
                continue
            findings.update(finding.kind for finding in walk.findings)
            kept.append(cleaned if isinstance(cleaned, dict) else item)
        return FilteredListing(kept, findings, tuple(left_out))

    def _texts(self, value: JSONValue, walk: Walk) -> JSONValue:
        """``value`` with the strings under ``TEXT_KEYS`` filtered (the MCP schema's and
        JSON Schema's human-readable text); copied only where something changed."""
        if isinstance(value, list):
            items: list[JSONValue] | None = None
            for index, child in enumerate(value):
                new = self._texts(child, walk)
                if new is not child:
                    items = list(value) if items is None else items
                    items[index] = new
            return value if items is None else items
        if not isinstance(value, dict):
            return value
        changed: JSONObject | None = None
        for key, child in value.items():
            if key in TEXT_KEYS and isinstance(child, str):
                new = self._string(child, "$", walk, token=True)
            else:
                new = self._texts(child, walk)
            if new is not child:
                changed = dict(value) if changed is None else changed
                changed[key] = new
        return value if changed is None else changed

    def _holds_anywhere(self, value: JSONValue) -> bool:
        """Whether a configured credential occurs in any string or key of ``value``."""
        stack: list[JSONValue] = [value]
        while stack:
            current = stack.pop()
            if isinstance(current, str):
                if self._holds_known(current):
                    return True
            elif isinstance(current, dict):
                stack.extend(current.keys())
                stack.extend(current.values())
            elif isinstance(current, list):
                stack.extend(current)
        return False
