"""The ``limits:`` configuration section (DS-2, DS-3): rates per principal, per tool and
overall, and in-flight caps for expensive tools, as frozen msgspec structs.

Rates are ``rate`` calls ``per`` second or minute with a ``burst`` (default: the rate per
second rounded up, at least 1). ``tools`` entries match canonical tool names by glob (``*``
and ``?`` only, the AZ-3 alphabet): the first entry that matches and sets a rate gives a
tool's rate, the first that matches and sets ``max_concurrent`` its cap. ``parse_limits``
turns a decoded YAML/JSON mapping into ``LimitSettings`` and names the offending path.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Final, Literal

import msgspec

from bastion._types import JSONValue
from bastion.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_TRACKED",
    "LimitSettings",
    "Per",
    "RateSpec",
    "ToolLimit",
    "parse_limits",
]

DEFAULT_MAX_TRACKED: Final = 100_000  # buckets kept (LRU); ~200 B each, so ~20 MB at most
_SECONDS: Final = {"second": 1.0, "minute": 60.0}
_TOOL_GLOB: Final = r"^[A-Za-z0-9_.*?-]{1,128}$"

Per = Literal["second", "minute"]


class RateSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``rate`` calls per ``per``, with bursts up to ``burst`` calls."""

    rate: Annotated[float, msgspec.Meta(gt=0, le=1e9)]
    per: Per = "second"
    burst: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] | None = None

    @property
    def per_second(self) -> float:
        return self.rate / _SECONDS[self.per]

    @property
    def capacity(self) -> int:
        """The burst: as configured, else the rate per second rounded up (at least 1)."""
        return self.burst if self.burst is not None else max(1, math.ceil(self.per_second))


class ToolLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits for the tools whose canonical name matches ``match``.

    ``rate``/``per``/``burst`` replace ``per_tool`` for these tools, counted for the whole
    group per principal (``workspace__exec*`` at 5/minute means five exec-family calls in
    total, not five per tool); ``max_concurrent`` caps the group's calls in flight per
    principal. At least one of ``rate`` and ``max_concurrent`` is required.
    """

    match: Annotated[str, msgspec.Meta(pattern=_TOOL_GLOB)]
    rate: Annotated[float, msgspec.Meta(gt=0, le=1e9)] | None = None
    per: Per = "second"
    burst: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] | None = None
    max_concurrent: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None

    def __post_init__(self) -> None:
        if self.rate is None and self.max_concurrent is None:
            raise ValueError("give rate, max_concurrent or both")
        if self.rate is None and self.burst is not None:
            raise ValueError("burst needs a rate")

    @property
    def rate_spec(self) -> RateSpec | None:
        if self.rate is None:
            return None
        return RateSpec(rate=self.rate, per=self.per, burst=self.burst)


def _default_per_principal() -> RateSpec:
    return RateSpec(rate=50, per="second", burst=100)


class LimitSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every limit; the defaults are what an empty ``limits:`` section means.

    ``per_principal`` (default 50/s, burst 100; ``null`` turns it off, loudly at the
    caller) applies to every request of a principal; ``per_tool`` (default off) to each
    (principal, tool) pair without a ``tools`` override; ``global`` (default off) to all
    requests together, the one bucket that lets one caller's traffic slow another's.
    """

    per_principal: RateSpec | None = msgspec.field(default_factory=_default_per_principal)
    per_tool: RateSpec | None = None
    global_: RateSpec | None = msgspec.field(default=None, name="global")
    tools: Annotated[tuple[ToolLimit, ...], msgspec.Meta(max_length=1000)] = ()
    max_tracked: Annotated[int, msgspec.Meta(ge=16, le=100_000_000)] = DEFAULT_MAX_TRACKED


_AT: Final = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<where>[^`]*)`)?$", re.DOTALL)


def parse_limits(data: JSONValue, *, source: str = "limits") -> LimitSettings:
    """``LimitSettings`` from decoded YAML/JSON (``None`` means all defaults).

    Raises:
        ConfigError: ``<source>.<path>: <problem>``.
    """
    try:
        return msgspec.convert({} if data is None else data, LimitSettings)
    except msgspec.ValidationError as exc:
        found = _AT.fullmatch(str(exc))
        problem, where = (found["problem"], found["where"] or "") if found else (str(exc), "")
        raise ConfigError(f"{source}{where}: {problem[:1].lower()}{problem[1:]}") from exc
