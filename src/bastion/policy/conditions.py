"""Rule conditions, compiled: tests on call arguments and on the (injected) time in UTC.

``failure()`` returns None when the condition holds, else a ``Reason``: a callable giving a
short human reason, which ``explain`` shows (deciding never builds the text). A missing
argument fails every test on it; ``True`` is not ``1``.

A condition's path may lead to several values (``policy.values``: the elements of an array,
a key spelt with the dots, an object's values for a deny). A deny's test holds when any one
value passes all its tests, an allow's only when the plain nested path is there and every
value passes (at least one): ``paths: ["secret/key"]`` is denied by a deny on
``secret/**``, and ``["public/x", "secret/y"]`` is not allowed by an allow on ``public/**``.
Types are strict for an allow (``"5"`` is no number, ``"777"`` does not equal 777); a deny
also reads a string as the JSON scalar it spells (``"5000"`` is 5000 for ``gt: 1000``,
``"777"`` equals 777, and the number 777 equals ``"777"``), so re-typing a value cannot
step around it. The decision therefore still depends on each rule alone, never on order.

A string argument may be a path or a URL, which an upstream may read another way than it
was sent (``./secret/key`` is ``secret/key`` to most file servers): the string tests
(``glob``, ``equals``, ``in``) look at every such reading (``policy.spellings``). A deny
rule's test holds when any reading passes it, an allow rule's only when all do: a deny on
``secret/**`` cannot be stepped around, an allow on ``pub/**`` cannot be stretched
(``pub/../secret/key``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Final, TypeAlias

from msgspec import UnsetType

from bastion.policy.glob import Glob, compile_glob
from bastion.policy.model import ArgCondition, Conditions, Scalar, TimeCondition
from bastion.policy.spellings import allow_spellings, deny_spellings
from bastion.policy.values import MAX_ARG_VALUES, number_of, reach, scalar_of

__all__ = ["CompiledConditions", "Reason"]

Reason: TypeAlias = Callable[[], str]

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _same(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    return isinstance(a, str) and isinstance(b, str) and a == b


class _Arg:
    __slots__ = (
        "_bounds",
        "_deny",
        "_glob",
        "_name",
        "_path",
        "_quantifier",
        "_readings",
        "_spec",
    )

    def __init__(self, path: str, spec: ArgCondition, *, deny: bool) -> None:
        self._path = path
        self._name = f"args.{path}"
        self._spec = spec
        self._deny = deny
        bounds = ((spec.le, "<="), (spec.lt, "<"), (spec.ge, ">="), (spec.gt, ">"))
        self._bounds = tuple((bound, op) for bound, op in bounds if bound is not None)
        self._glob: Glob | None = None if spec.glob is None else compile_glob(spec.glob)
        # A deny's test holds for any reading of a string, an allow's for all of them.
        self._quantifier: Callable[[Iterable[bool]], bool] = any if deny else all
        self._readings = deny_spellings if deny else allow_spellings

    def failure(self, arguments: Mapping[str, object]) -> Reason | None:
        """None when the test holds for the arguments (module docstring: a deny's for any
        value at the path, an allow's for every one, and at least one)."""
        values, complete, overflow = reach(arguments, self._path, deny=self._deny)
        name = self._name
        if overflow:
            if self._deny:
                return None
            return lambda: f"{name} has more than {MAX_ARG_VALUES} values"
        if not values or not (complete or self._deny):
            return lambda: f"{name} is missing"
        first: Reason | None = None
        for value in values:
            reason = self._value_failure(value)
            if reason is None and self._deny:
                return None
            if reason is not None and not self._deny:
                return reason
            first = first or reason
        return first

    def _value_failure(self, value: object) -> Reason | None:
        spec, holds, name = self._spec, self._quantifier, self._name
        forms: tuple[object, ...] = self._readings(value) if isinstance(value, str) else (value,)
        same = _loosely_same if self._deny else _same
        if self._glob is not None:
            glob = self._glob
            if not holds(isinstance(v, str) and glob.fullmatch(v) for v in forms):
                return lambda: f"{name} {_show(value)} does not match glob {spec.glob!r}"
        if not isinstance(spec.equals, UnsetType):
            equals = spec.equals
            if not holds(same(v, equals) for v in forms):
                return lambda: f"{name} {_show(value)} is not {spec.equals!r}"
        if spec.in_ is not None:
            among = spec.in_
            if not holds(any(same(v, c) for c in among) for v in forms):
                return lambda: f"{name} {_show(value)} is not in {spec.in_!r}"
        number = _number(value, loose=self._deny) if self._bounds else None
        for bound, op in self._bounds:
            if number is None:
                return lambda: f"{name} {_show(value)} is not a number (needs {op} {bound:g})"
            if not _compare(number, op, bound):
                return lambda: f"{name} {_show(value)} is not {op} {bound:g}"
        return None


def _loosely_same(a: object, b: Scalar) -> bool:
    """``_same``, or a string on one side spelling the scalar on the other (a deny's; a
    string that spells no scalar is ``NOT_A_SCALAR``, which equals nothing)."""
    if isinstance(a, str) and not isinstance(b, str):
        return _same(scalar_of(a), b)
    if isinstance(b, str) and not isinstance(a, str):
        return _same(a, scalar_of(b))
    return _same(a, b)


def _number(value: object, *, loose: bool) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if loose and isinstance(value, str):
        return number_of(value)
    return None


def _compare(value: float, op: str, bound: float) -> bool:
    if op == "<=":
        return value <= bound
    if op == "<":
        return value < bound
    if op == ">=":
        return value >= bound
    return value > bound


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Time:
    __slots__ = ("_days", "_hours")

    def __init__(self, spec: TimeCondition) -> None:
        self._days = None if spec.weekdays is None else frozenset(spec.weekdays)
        self._hours = None if spec.hours is None else (spec.hours[0], spec.hours[1])

    def failure(self, at: datetime) -> Reason | None:
        utc = at.astimezone(UTC)
        if self._days is not None:
            day, days = WEEKDAYS[utc.weekday()], self._days
            if day not in days:
                return lambda: f"time: {day} is not one of {sorted(days, key=WEEKDAYS.index)}"
        if self._hours is not None:
            start, end = self._hours
            hour = utc.hour
            inside = start <= hour < end if start < end else hour >= start or hour < end
            if not inside:
                return lambda: f"time: {utc:%H:%M} UTC is outside hours [{start}, {end})"
        return None


class CompiledConditions:
    """All of a rule's conditions; all must hold. ``deny``: a deny rule's (its tests hold for
    any value and any spelling of it; see the module docstring)."""

    __slots__ = ("_args", "_time", "has_args")

    def __init__(self, spec: Conditions, *, deny: bool = False) -> None:
        self._args = tuple(_Arg(path, c, deny=deny) for path, c in (spec.args or {}).items())
        self._time = None if spec.time is None else _Time(spec.time)
        self.has_args = bool(self._args)

    def failure(
        self, arguments: Mapping[str, object], at: datetime, *, skip_args: bool = False
    ) -> Reason | None:
        if self._time is not None and (reason := self._time.failure(at)) is not None:
            return reason
        if skip_args:
            return None
        for arg in self._args:
            if (reason := arg.failure(arguments)) is not None:
                return reason
        return None
