"""A bound on the work of one jsonschema validation (IN-3, DS-4).

The schema compiler refuses a schema whose references expand too far (``_expansion``), but
a recursive schema's cost also depends on the instance: ``{properties: {a: {allOf: [{$ref:
"#"}, {$ref: "#"}]}}}`` doubles per level of ``{"a": {"a": ...}}``, and validation runs on
the event loop. Work multiplies only through the keywords that apply subschemas (``allOf``,
``$ref``, ``properties``, ...: ``_expansion.APPLICATORS``); the others are bounded by the
schema's size. ``budgeted`` returns a validator class (one per class, made once) whose
applicators each take one unit from the current validation's budget first.
``within_budget`` runs a validation with ``BASE_UNITS`` units and, once they are spent,
``UNITS_PER_VALUE`` more for each JSON value in the instance (counted only then), so the
work stays linear in the instance; past that it raises ``OverBudget`` (about 0.1 s of
work). Ordinary validations never come near: a tool call's arguments take a handful of
units, a structured result of 10,000 rows a few per row against 64 per value; only a
schema near the compiler's expansion cap could spend the base on a small instance.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final, TypeVar

import jsonschema.validators

from bastion._types import JSONValue
from bastion.guard._expansion import APPLICATORS

__all__ = ["BASE_UNITS", "UNITS_PER_VALUE", "OverBudget", "budgeted", "within_budget"]

BASE_UNITS: Final = 10_000  # applicator evaluations (the expansion cap): well under a second
UNITS_PER_VALUE: Final = 64
_T = TypeVar("_T")


class OverBudget(Exception):
    """The validation applied more subschemas than its instance can justify."""


class _Budget:
    __slots__ = ("extended", "instance", "left")

    def __init__(self, left: int, instance: JSONValue, *, extended: bool) -> None:
        self.left = left
        self.instance = instance
        self.extended = extended


# The budget of the validation running in this thread (and task); None outside
# ``within_budget`` (no validator of Bastion's runs there): not counted.
_CURRENT: Final[ContextVar[_Budget | None]] = ContextVar("bastion_validation_budget", default=None)
_CLASSES: Final[dict[type[Any], type[Any]]] = {}  # one per draft: there are six


def budgeted(cls: type[Any]) -> type[Any]:
    """``cls`` with every applicator counted against the current validation's budget."""
    made = _CLASSES.get(cls)
    if made is None:
        keywords = {
            name: _counted(function)
            for name, function in cls.VALIDATORS.items()
            if name in APPLICATORS
        }
        # types-jsonschema leaves extend() unannotated.
        made = jsonschema.validators.extend(cls, keywords)  # type: ignore[no-untyped-call]
        _CLASSES[cls] = made
    return made


def within_budget(instance: JSONValue, validate: Callable[[], _T]) -> _T:
    """``validate()``, with the budget that validating ``instance`` may spend.

    Raises:
        OverBudget: it would have spent more.
    """
    token = _CURRENT.set(_Budget(BASE_UNITS, instance, extended=False))
    try:
        return validate()
    finally:
        _CURRENT.reset(token)


def _counted(keyword: Callable[..., Any]) -> Callable[..., Any]:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        budget = _CURRENT.get()
        if budget is not None:
            budget.left -= 1
            if budget.left < 0:
                _extend(budget)
        return keyword(validator, value, instance, schema)

    return run


def _extend(budget: _Budget) -> None:
    if budget.extended:
        raise OverBudget
    budget.extended = True
    budget.left = UNITS_PER_VALUE * _values(budget.instance)
    budget.instance = None


def _values(instance: JSONValue) -> int:
    """How many JSON values ``instance`` holds, itself included."""
    count = 0
    pending: list[JSONValue] = [instance]
    while pending:
        value = pending.pop()
        count += 1
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return count
