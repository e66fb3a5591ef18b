"""The policy file as typed structs: roles, principal bindings, rules, security levels.

These mirror the YAML document one to one and carry no behaviour; ``load.py`` converts and
checks them, ``compile.py`` turns them into matchers. Unknown fields are refused everywhere,
so a misspelt key (``rule:`` for ``rules:``) is an error, not a silently ignored allow.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

__all__ = [
    "MAX_RULES",
    "ArgCondition",
    "Binding",
    "Conditions",
    "PolicyFile",
    "RoleDef",
    "Rule",
    "Scalar",
    "SecurityDef",
    "SecurityTable",
    "StepUp",
    "TimeCondition",
    "Weekday",
]

MAX_RULES: Final = 10_000  # with load.MAX_POLICY_GLOBS: compiled in about a second at most
_MAX_LIST: Final = 10_000

Name = Annotated[str, Meta(min_length=1, max_length=256)]
Glob = Annotated[str, Meta(min_length=1, max_length=4096)]
Globs = Annotated[list[Glob], Meta(min_length=1, max_length=_MAX_LIST)]
Scalar = str | int | float | bool | None
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Hour = Annotated[int, Meta(ge=0, le=24)]
Duration = Annotated[str, Meta(pattern=r"^[0-9]{1,7}(s|m|h)$")] | Annotated[int, Meta(ge=1)]


class RoleDef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A role; its name is the key under ``roles:``."""

    description: str = ""


class Binding(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Grants ``roles`` to a principal chosen by id glob, or by a claim value.

    ``claim: groups, value: devs`` matches a claim equal to ``"devs"`` or a list of strings
    that contains it (the usual shape of a JWT ``groups`` claim).
    """

    principal: Glob | None = None
    claim: Name | None = None
    value: Annotated[str, Meta(max_length=4096)] | None = None
    roles: Annotated[list[Name], Meta(min_length=1, max_length=_MAX_LIST)]


class ArgCondition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Tests on one argument; every test given must hold. A missing argument fails them all."""

    glob: Glob | None = None
    equals: Scalar | UnsetType = UNSET  # UNSET: not given; None: must be null
    in_: Annotated[list[Scalar], Meta(min_length=1, max_length=_MAX_LIST)] | None = msgspec.field(
        default=None, name="in"
    )
    le: float | None = None
    lt: float | None = None
    ge: float | None = None
    gt: float | None = None


class TimeCondition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Weekdays and an hour window, both in UTC; ``hours: [22, 6]`` wraps past midnight."""

    weekdays: Annotated[list[Weekday], Meta(min_length=1, max_length=7)] | None = None
    hours: Annotated[list[Hour], Meta(min_length=2, max_length=2)] | None = None


class Conditions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``args`` keys are dotted paths into the call's arguments (``path``, ``options.mode``)."""

    args: dict[Annotated[str, Meta(min_length=1, max_length=256)], ArgCondition] | None = None
    time: TimeCondition | None = None


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One rule: who (``roles``/``principals``), what (``methods``, targets), ``when``."""

    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
    effect: Literal["allow", "deny"]
    description: str = ""
    roles: Globs | None = None
    principals: Globs | None = None
    methods: Globs | None = None
    tools: Globs | None = None
    resources: Globs | None = None
    prompts: Globs | None = None
    when: Conditions | None = None


class StepUp(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The caller must have authenticated within ``recent_auth`` (``90s``, ``10m``, ``1h``)."""

    recent_auth: Duration


class SecurityDef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A tool's security level; only ``high`` may carry obligations."""

    level: Literal["low", "medium", "high"]
    step_up: StepUp | None = None
    approval: Literal["human", "admin"] | None = None
    """``human``: the caller's client is asked (elicitation), else an admin; ``admin``: only
    an admin, through the admin API."""


class SecurityTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Security levels by tool-name glob (the strictest of all matching entries applies)."""

    tools: dict[Glob, SecurityDef] = msgspec.field(default_factory=dict)


class PolicyFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole document."""

    version: Literal[1] = 1
    roles: dict[Name, RoleDef | None] = msgspec.field(default_factory=dict)
    principals: Annotated[list[Binding], Meta(max_length=_MAX_LIST)] = msgspec.field(
        default_factory=list
    )
    rules: Annotated[list[Rule], Meta(max_length=MAX_RULES)] = msgspec.field(default_factory=list)
    security: SecurityTable = msgspec.field(default_factory=SecurityTable)
