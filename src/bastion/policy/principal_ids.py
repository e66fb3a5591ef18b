"""The principal ids authentication gives, and principal globs in a policy that match none.

A policy's ``principals:`` globs (in rules and in bindings) match the principal id, which
always starts with how the caller authenticated (``ID_FORMS``): ``apikey:<key name>`` (API
and break-glass keys), ``jwt:<issuer>#<subject>``, ``mtls:<service account>`` and
``local:<user>`` (stdio, and an unauthenticated loopback gateway). A glob such as ``alice``
or ``ci-*`` can therefore never match; it loads (it is a valid glob), but
``warn_unmatchable`` logs a warning for each one, as the CLI and the gateway load a file.
A glob is taken to be able to match when it starts with one of the prefixes, or when its
characters before the first wildcard (``*`` or ``?``) begin one (``*``, ``api*``).
"""

from __future__ import annotations

import logging
import re
from typing import Final

from bastion.policy.model import PolicyFile

__all__ = ["ID_FORMS", "ID_PREFIXES", "can_match_an_id", "unmatchable", "warn_unmatchable"]

logger = logging.getLogger(__name__)

ID_PREFIXES: Final = ("apikey:", "jwt:", "local:", "mtls:")
ID_FORMS: Final = "apikey:<key name>, jwt:<issuer>#<subject>, mtls:<account>, local:<user>"
_WILDCARD: Final = re.compile(r"[*?]")


def can_match_an_id(glob: str) -> bool:
    """Whether principal glob ``glob`` may match some id of the forms in ``ID_PREFIXES``."""
    found = _WILDCARD.search(glob)
    if found is None:
        return glob.startswith(ID_PREFIXES)
    literal = glob[: found.start()]
    return any(p.startswith(literal) or literal.startswith(p) for p in ID_PREFIXES)


def unmatchable(source: PolicyFile) -> list[str]:
    """Where ``source`` has a principal glob that matches no id, and the glob, in file order
    (``principals[0].principal 'alice'``, ``rules[2].principals[0] 'bob'``)."""
    found = [
        f"principals[{i}].principal {binding.principal!r}"
        for i, binding in enumerate(source.principals)
        if binding.principal is not None and not can_match_an_id(binding.principal)
    ]
    for i, rule in enumerate(source.rules):
        found += [
            f"rules[{i}].principals[{j}] {glob!r}"
            for j, glob in enumerate(rule.principals or ())
            if not can_match_an_id(glob)
        ]
    return found


def warn_unmatchable(source: PolicyFile, origin: object) -> list[str]:
    """Log a warning for each principal glob of ``source`` (loaded from ``origin``) that can
    match no principal id; returns them, as ``unmatchable`` does."""
    found = unmatchable(source)
    for where in found:
        logger.warning("%s: %s can never match: principal ids are %s", origin, where, ID_FORMS)
    return found
